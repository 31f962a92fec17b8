"""The evaluator process: a failure in it reaches the trainer as a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalml.errors import FrugalError
from frugalml.train.async_eval import AsyncEvaluator, EvalSpec
from frugalml.train.prepare import Encoded, Labels


def test_evaluator_failure_is_reported(tmp_path: Path) -> None:
    import torch

    spec = EvalSpec(
        model_path=str(tmp_path / "no-model"),
        labels=Labels(("0", "1")),
        recipe="lora",
        lora_r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        lora_targets=("query",),
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
        with pytest.raises(FrugalError, match=r"the evaluator failed: .*no-model"):
            evaluator.drain(timeout_s=120)
    finally:
        evaluator.close()
    assert evaluator._proc.returncode is not None  # the process was reaped
