"""finetune on a tiny in-file BERT: what is saved, what the ledger keeps, how runs stop.

The tiny model's accuracy is not the point here (it is random and small); the saved model's
accuracy matching the reported one, the stop reasons and the error messages are.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from frugalml.data import load_data
from frugalml.ledger import Ledger
from frugalml.train import FinetuneConfig, Lora, OutOfMemory, TrainingDiverged, finetune

TINY = {"max_length": 32, "batch_size": 16}


@pytest.fixture(scope="module")
def data(sst2_small: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    return load_data(sst2_small[0]), load_data(sst2_small[1])


def _accuracy_of_saved(folder: Path, dev) -> float:  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    label2id = model.config.label2id
    enc = tok(list(dev.texts), truncation=True, max_length=32, padding=True, return_tensors="pt")
    with torch.no_grad():
        pred = model(**enc).logits.argmax(-1).tolist()
    return 100.0 * sum(p == label2id[y] for p, y in zip(pred, dev.labels, strict=True)) / len(pred)


def test_full_sync_saves_best_checkpoint_and_records_run(
    tiny_model, data, tmp_path, sqlite_url
) -> None:  # type: ignore[no-untyped-def]
    train, dev = data
    out = tmp_path / "model"
    cfg = FinetuneConfig(
        recipe="full", eval_mode="sync", epochs=1, eval_every=5, learning_rate=1e-3, **TINY
    )
    r = finetune(tiny_model, train, dev, cfg, out=out, ledger=sqlite_url)
    assert r.stopped == "completed" and r.steps == r.planned_steps == 15
    assert [e.step for e in r.evals] == [5, 10, 15]
    assert r.accuracy == max(e.accuracy for e in r.evals)
    assert r.best_step in [e.step for e in r.evals if e.accuracy == r.accuracy]
    assert r.trainable_params == r.total_params > 0 and r.examples_seen == 240
    # the saved folder is the best checkpoint, as a standard HF model + manifest
    manifest = json.loads((out / "frugal.json").read_text())
    assert manifest["kind"] == "hf-sequence-classification" and manifest["recipe"] == "full"
    assert manifest["run_id"] == r.run_id and manifest["step"] == r.best_step
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1"}
    assert (out / "model.safetensors").is_file() and not (out / ".checkpoints").exists()
    assert _accuracy_of_saved(out, dev) == pytest.approx(r.accuracy)
    with Ledger(sqlite_url) as book:
        run = book.get(r.run_id)
    assert run.kind == "finetune" and run.status == "finished"
    assert run.quality["accuracy"] == pytest.approx(r.accuracy)
    assert run.quality["steps"] == 15 and run.quality["examples_per_s"] > 0
    assert run.params["recipe"] == "full" and run.artifacts["model"] == str(out)
    assert run.usage is not None and run.usage.peak_host_bytes > 0 and run.usage.cpu_s > 0
    assert r.usage is not None and r.usage.cost_usd > 0


def test_lora_async_stops_at_target_and_saves_merged(
    tiny_model, data, tmp_path, sqlite_url
) -> None:  # type: ignore[no-untyped-def]
    train, dev = data
    out = tmp_path / "lora"
    # 5 points is reached by any checkpoint: the run must stop at the first result it gets
    cfg = FinetuneConfig(
        recipe="lora",
        eval_mode="async",
        eval_every=4,
        max_steps=100_000,
        target_accuracy=5.0,
        max_minutes=4,
        eval_nice=0,
        **TINY,
    )
    r = finetune(tiny_model, train, dev, cfg, out=out, ledger=sqlite_url)
    assert r.stopped == "target", r.stopped
    assert r.steps_to_target == 4 and r.best_step == 4 and r.steps < r.planned_steps
    assert r.time_to_target_s is not None and 0 < r.time_to_target_s < r.setup_s + r.loop_s
    assert 0 < r.trainable_params < r.total_params
    manifest = json.loads((out / "frugal.json").read_text())
    assert manifest["recipe"] == "lora" and manifest["merged"] is True
    assert not (out / "adapter_config.json").exists()
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and not any("lora" in k for k in keys)
    assert _accuracy_of_saved(out, dev) == pytest.approx(r.accuracy)
    with Ledger(sqlite_url) as book:
        assert book.get(r.run_id).quality["time_to_target_s"] == pytest.approx(r.time_to_target_s)


def test_async_training_never_waits_for_a_slow_evaluator(tiny_model, data, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    train, dev = data
    delay_s = 8.0
    monkeypatch.setenv("FRUGAL_TEST_EVAL_DELAY_S", str(delay_s))  # the evaluator sleeps per ckpt
    cfg = FinetuneConfig(
        recipe="lora", eval_mode="async", max_steps=9, eval_every=3, eval_nice=0, **TINY
    )
    r = finetune(tiny_model, train, dev, cfg)
    assert [e.step for e in r.evals] == [3, 6, 9]  # every checkpoint still gets a result
    # a loop that waited for each evaluation would take >= 3 x 8 s; this one did not wait
    assert r.loop_s < 3 * delay_s, r.loop_s
    # what the slow evaluator had not returned when training ended, the trainer evaluated
    assert all(e.eval_s >= delay_s for e in r.evals if e.by == "evaluator")
    assert r.evals[-1].by == "trainer"


def test_nan_loss_stops_and_keeps_best_checkpoint(tiny_model, data, tmp_path, sqlite_url) -> None:  # type: ignore[no-untyped-def]
    import torch

    train, dev = data

    def poison(step: int, model, loss: float) -> None:  # type: ignore[no-untyped-def]
        if step == 3:  # weights go NaN after step 3: step 4's loss is NaN
            with torch.no_grad():
                next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))

    out = tmp_path / "best"
    cfg = FinetuneConfig(recipe="full", eval_mode="sync", eval_every=2, max_steps=10, **TINY)
    with pytest.raises(TrainingDiverged) as info:
        finetune(tiny_model, train, dev, cfg, out=out, ledger=sqlite_url, on_step=poison)
    message = str(info.value)
    assert "NaN/inf at step 4" in message and "kept the best checkpoint (step 2" in message
    assert str(out) in message and info.value.model_dir == str(out)
    assert "lower --lr" in message
    from transformers import AutoModelForSequenceClassification

    saved = AutoModelForSequenceClassification.from_pretrained(str(out))
    assert all(torch.isfinite(p).all() for p in saved.parameters())
    assert json.loads((out / "frugal.json").read_text())["step"] == 2
    with Ledger(sqlite_url) as book:
        run = book.get(info.value.run_id or "")
    assert run.status == "failed" and "NaN" in (run.error or "")
    assert not math.isnan(run.quality["accuracy"])


def test_out_of_memory_says_what_to_change(tiny_model, data) -> None:  # type: ignore[no-untyped-def]
    import torch

    def oom(step: int, model, loss: float) -> None:  # type: ignore[no-untyped-def]
        # a fake for hardware that is not here: what a GPU raises when it runs out
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    train, dev = data
    cfg = FinetuneConfig(recipe="full", eval_mode="none", max_steps=3, **TINY)
    with pytest.raises(OutOfMemory) as info:
        finetune(tiny_model, train, dev, cfg, on_step=oom)
    message = str(info.value)
    for tip in (
        "--batch-size (now 16)",
        "--grad-checkpointing",
        "--recipe lora",
        "--precision bf16",
    ):
        assert tip in message


def test_on_eval_can_prune(tiny_model, data) -> None:  # type: ignore[no-untyped-def]
    train, dev = data
    calls: list[tuple[int, float]] = []

    def prune(step: int, acc: float) -> bool:
        calls.append((step, acc))
        return True

    cfg = FinetuneConfig(recipe="lora", eval_mode="sync", eval_every=2, max_steps=20, **TINY)
    r = finetune(tiny_model, train, dev, cfg, on_eval=prune)
    assert r.stopped == "pruned" and r.steps == 2 and calls == [(2, r.accuracy)]
    assert r.model_dir is None  # out=None: nothing saved


@pytest.mark.parametrize(
    "change",
    [
        {"precision": "bf16", "grad_checkpointing": True, "curriculum": "length"},
        {"recipe": "full", "curriculum": "loss"},
    ],
    ids=["bf16-ckpt-length", "full-loss"],
)
def test_recipes_and_curricula_train(tiny_model, data, change) -> None:  # type: ignore[no-untyped-def]
    train, dev = data
    cfg = FinetuneConfig(eval_mode="none", max_steps=6, **{**TINY, **change})
    r = finetune(tiny_model, train, dev, cfg)
    assert r.stopped == "completed" and r.steps == 6 and [e.step for e in r.evals] == [6]
    assert 0 <= r.accuracy <= 100
    if change.get("curriculum") == "loss":
        assert r.curriculum_s > 0


def test_compile_reports_compile_time(tiny_model, data) -> None:  # type: ignore[no-untyped-def]
    train, dev = data
    cfg = FinetuneConfig(compile=True, eval_mode="none", max_steps=4, recipe="full", **TINY)
    r = finetune(tiny_model, train, dev, cfg)
    assert r.steps == 4 and r.compile_s is not None
    assert r.first_step_s > r.step_s_median and r.compile_s > 0


def test_unmerged_lora_saves_an_adapter(tiny_model, data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from peft import AutoPeftModelForSequenceClassification

    train, dev = data
    out = tmp_path / "adapter"
    cfg = FinetuneConfig(recipe=Lora(merge=False), eval_mode="none", max_steps=2, **TINY)
    r = finetune(tiny_model, train, dev, cfg, out=out)
    manifest = json.loads((out / "frugal.json").read_text())
    assert manifest["kind"] == "peft-lora-sequence-classification" and not manifest["merged"]
    assert (out / "adapter_config.json").is_file()
    assert (out / "adapter_model.safetensors").is_file()
    assert r.model_dir == str(out)
    model = AutoPeftModelForSequenceClassification.from_pretrained(str(out))
    assert model.peft_config["default"].r == 8
