"""A broken model folder gets the same one-line error from every command that loads it.

``frugal eval`` and ``frugal finetune`` read models through the same loader
(``frugalml.models``): a truncated safetensors file, a malformed ``config.json`` and pickled
weights (refused, never unpickled) exit 2 with one line on stderr, the same line for both.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_roundtrip import frugal

from tinymodels import tiny_bert, write_jsonl


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo UNPICKLED > /dev/null",))


def _truncated(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _malformed_config(folder: Path) -> None:
    (folder / "config.json").write_text('{"model_type": "bert", ', encoding="utf-8")


def _pickle_weights(folder: Path) -> None:
    import torch

    (folder / "model.safetensors").unlink()
    torch.save({"weight": _Evil()}, folder / "pytorch_model.bin")


BREAKS = {
    "truncated safetensors": (_truncated, "cannot load the model weights"),
    "malformed config.json": (_malformed_config, "cannot read"),
    "pickle weights": (_pickle_weights, "can result in arbitrary code execution"),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken")
    rows = [f"{i % 2} some words number {i}" for i in range(20)]
    labelled = root / "labelled.txt"
    labelled.write_text("\n".join(rows) + "\n", encoding="utf-8")
    texts = write_jsonl(root / "texts.jsonl", [{"text": r[2:]} for r in rows])
    return {"model": tiny_bert(root / "tiny"), "labelled": labelled, "texts": texts}


@pytest.mark.parametrize("kind", list(BREAKS))
def test_eval_and_finetune_say_the_same_one_line(
    kind: str, base: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(base["model"], folder)
    breaker, message = BREAKS[kind]
    breaker(folder)
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    runs = {
        "eval": frugal(
            "eval",
            str(folder),
            "--task",
            "fidelity",
            "--data",
            str(base["texts"]),
            "--ledger",
            ledger,
        ),
        "finetune": frugal(
            "finetune",
            str(folder),
            "--data",
            str(base["labelled"]),
            "--eval",
            str(base["labelled"]),
            "--max-steps",
            "1",
            "--eval-mode",
            "none",
            "--ledger",
            ledger,
        ),
    }
    lines = {}
    for command, (code, _out, err) in runs.items():
        assert code == 2, (command, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (command, err)
        assert message in err, (command, err)
        lines[command] = err.strip()
    assert lines["eval"] == lines["finetune"]
