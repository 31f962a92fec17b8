"""Fine-tune an encoder with a classification head, as one measured run in the ledger.

    from frugalml.data import load_data
    from frugalml.train import FinetuneConfig, finetune

    result = finetune("minilm", load_data("train.tsv"), load_data("dev.tsv"),
                      FinetuneConfig(recipe="lora", target_accuracy=85.0), out="out/sst2")
    print(result.accuracy, result.time_to_target_s, result.usage.cost_usd)

The run (kind ``finetune``, or ``trial`` under ``frugal tune``) records the usage (wall/CPU/
device seconds, peak memory, energy with its source, $, CO2) and, as quality: dev ``accuracy``
in points, ``time_to_target_s``, ``steps``, ``examples_per_s``. Checkpoints are evaluated by a
separate process while training continues (``eval_mode="async"``); the run stops early once a
checkpoint reaches ``target_accuracy``. The saved model is the best evaluated checkpoint, as a
standard Hugging Face folder (LoRA merged) plus ``frugal.json``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from frugalml.data import Dataset
from frugalml.errors import FrugalError
from frugalml.train.config import (
    FinetuneConfig,
    FinetuneResult,
    OnEval,
    OnStep,
    TrainingDiverged,
)


def finetune(
    model: str | os.PathLike[str],
    train: Dataset,
    dev: Dataset,
    config: FinetuneConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    ledger: Any = None,
    name: str | None = None,
    kind: str = "finetune",
    parent: Any = None,
    instance: str | None = None,
    region: str | None = None,
    progress: bool = False,
    on_eval: OnEval | None = None,
    on_step: OnStep | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (``minilm`` or a local HF folder) on ``train``; score on ``dev``.

    Args:
        model: ``minilm`` (bundled all-MiniLM-L6-v2) or a local Hugging Face model folder.
        train, dev: labelled ``Dataset``s (``frugalml.data.load_data``); pairs are supported.
        config: a ``FinetuneConfig`` (defaults: LoRA, fp32, 1 epoch, batch 32).
        out: folder for the saved model (best checkpoint); None saves nothing (except the best
            checkpoint when the loss diverges, kept in a temporary folder the error names).
        ledger: a ``Ledger``, a URL, or None for the default ledger.
        name, kind, parent: the ledger run's name, kind (``finetune``; ``trial`` under tune)
            and parent run (``Run`` or id).
        instance, region: price the run as this instance / region (see ``frugal prices``).
        progress: show a Rich progress bar on stderr.
        on_eval: called as ``on_eval(step, accuracy_points)`` for each evaluated checkpoint,
            when its result arrives; return True to stop training (pruning).
        on_step: called as ``on_step(step, model, loss)`` after every optimizer step (tests,
            custom logging); it may raise.

    Raises:
        BadInput: unusable data, model or config (missing labels, a single class, dev labels
            not in the head, fp16 on a CPU...).
        TrainingDiverged: the loss became NaN/inf; the best checkpoint so far was saved and the
            message says where.
        OutOfMemory: what to change (batch size, --grad-checkpointing, --recipe lora).
    """
    from frugalml.measure.track import track
    from frugalml.train.loop import Trainer

    config = config or FinetuneConfig()
    trainer = Trainer(
        model_spec=str(model),
        **_checked(model, train, dev, config),
        out=Path(out).expanduser() if out is not None else None,
        progress=progress,
        on_eval=on_eval,
        on_step=on_step,
    )
    params = trainer.params()
    with track(
        name or f"finetune {Path(str(model)).name}",
        ledger=ledger,
        kind=kind,
        params=params,
        parent=parent,
        instance=instance,
        region=region,
    ) as run:
        result = _train(trainer, run)
    return dataclasses.replace(result, run_id=run.id, usage=run.usage, params=params)


def _checked(
    model: str | os.PathLike[str], train: Dataset, dev: Dataset, config: FinetuneConfig
) -> dict[str, Any]:
    """The trainer's inputs, every one checked before a run starts (``BadInput`` if not)."""
    from frugalml.train.prepare import check_data, resolve_model
    from frugalml.train.recipes import check_precision, pick_device

    config.validate()
    labels = check_data(train, dev)
    model_path = resolve_model(model)
    device = pick_device(config.device)
    check_precision(config.precision, device)
    return {
        "model_path": model_path,
        "labels": labels,
        "train": train,
        "dev": dev,
        "config": config,
        "device": device,
    }


def _train(trainer: Any, run: Any) -> FinetuneResult:
    """Run the trainer inside the ledger run; log its figures and the saved model."""
    trainer.run_id = run.id
    try:
        result: FinetuneResult = trainer.run()
    except FrugalError as e:  # callers (tune) find the failed run's cost by its id
        e.run_id = run.id  # type: ignore[attr-defined]
        raise
    run.log_quality(**_quality(result))
    if result.model_dir:
        run.log_artifacts(model=result.model_dir)
    if result.stopped == "nan":
        message, hint = trainer.diverged_message(result)
        raise TrainingDiverged(message, hint=hint, model_dir=result.model_dir, run_id=run.id)
    return result


def _quality(r: FinetuneResult) -> dict[str, float]:
    q = {  # no NaN: JSON columns (PostgreSQL) refuse it
        "steps": float(r.steps),
        "examples_per_s": r.examples_per_s,
        "loop_s": r.loop_s,
        "best_step": float(r.best_step),
    }
    if math.isfinite(r.accuracy):
        q = {"accuracy": r.accuracy, **q}
    if r.time_to_target_s is not None:
        q["time_to_target_s"] = r.time_to_target_s
    if r.steps_to_target is not None:
        q["steps_to_target"] = float(r.steps_to_target)
    if r.compile_s is not None:
        q["compile_s"] = r.compile_s
    return q
