"""The evaluator process: a failure in it reaches the trainer as a clear error."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from frugalml.errors import FrugalError
from frugalml.train import Lora
from frugalml.train.async_eval import AsyncEvaluator, EvalSpec
from frugalml.train.prepare import Encoded, Labels


def test_evaluator_failure_is_reported(tmp_path: Path) -> None:
    import torch

    spec = EvalSpec(
        model_path=str(tmp_path / "no-model"),
        labels=Labels(("0", "1")),
        recipe=Lora(r=4, alpha=8, targets=("query",)),
        seed=0,
        dev=Encoded(input_ids=[[1, 2]], token_type_ids=None, labels=[0]),
        pad_id=0,
        batch_size=8,
        device="cpu",
        nice=0,
    )
    evaluator = AsyncEvaluator(spec, tmp_path / "ckpt")
    try:
        evaluator.submit(1, {"w": torch.zeros(2)}, 0.5)
        deadline = time.monotonic() + 120
        with pytest.raises(FrugalError, match=r"the evaluator failed: .*no-model"):
            while time.monotonic() < deadline:  # the trainer polls between steps
                evaluator.poll()
                time.sleep(0.2)
    finally:
        evaluator.close()
    assert evaluator.returncode is not None  # the process was reaped


def test_finish_evaluates_leftovers_in_the_trainer(tmp_path: Path) -> None:
    import torch

    spec = EvalSpec(
        model_path=str(tmp_path / "no-model"),
        labels=Labels(("0", "1")),
        recipe=Lora(r=4, alpha=8, targets=("query",)),
        seed=0,
        dev=Encoded(input_ids=[[1, 2]], token_type_ids=None, labels=[0]),
        pad_id=0,
        batch_size=8,
        device="cpu",
        nice=0,
    )
    evaluator = AsyncEvaluator(spec, tmp_path / "ckpt")
    seen: list[str] = []
    try:
        for step in (2, 4):
            evaluator.submit(step, {"w": torch.full((2,), float(step))}, step / 10)
        results = evaluator.finish(lambda path: (seen.append(path), 50.0)[1])
    finally:
        evaluator.close()
    assert [(r.step, r.accuracy, r.by) for r in results] == [
        (2, 50.0, "trainer"),
        (4, 50.0, "trainer"),
    ]
    assert all(Path(p).is_file() for p in seen) and evaluator.pending == 0
