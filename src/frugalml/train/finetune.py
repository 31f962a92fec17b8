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
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugalml.data import Dataset
from frugalml.errors import BadInput, FrugalError
from frugalml.records import Usage

DEFAULT_LR = {"full": 5e-5, "lora": 1e-3}
STOP_REASONS = ("completed", "target", "time-limit", "pruned", "nan")


class TrainingDiverged(FrugalError):
    """The loss became NaN/inf; training stopped and the best checkpoint was kept."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        model_dir: str | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.model_dir, self.run_id = model_dir, run_id


class OutOfMemory(FrugalError):
    """Training ran out of (device or host) memory; the message says what to change."""


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune. Every field has a default that works for MiniLM-sized encoders.

    Learning rate ``None`` picks 5e-5 for ``full`` and 1e-3 for ``lora`` (adapters start at
    zero and need a larger step). ``target_accuracy`` is dev accuracy in points (0-100); a
    value ≤ 1 is read as a fraction. Checkpoints are evaluated every ``eval_every`` steps, or
    ``evals_per_run`` times spread over the run, and always at the last step.
    """

    recipe: str = "lora"  # full | lora
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA only)
    grad_checkpointing: bool = False
    compile: bool = False  # torch.compile; first-step (compile) time reported apart
    curriculum: str = "none"  # none | length | loss
    target_accuracy: float | None = None  # points; stop at the first checkpoint reaching it
    max_minutes: float | None = None  # wall-clock budget for the whole run
    learning_rate: float | None = None
    batch_size: int = 32
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    warmup_ratio: float = 0.06  # linear warm-up over this fraction of steps, then linear decay
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 128  # tokens per example (truncated)
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = ("query", "value")
    eval_every: int | None = None  # steps between evaluated checkpoints
    evals_per_run: int = 5
    eval_mode: str = "async"  # async (separate process) | sync (blocking) | none (final only)
    eval_batch_size: int = 64
    eval_nice: int = 19  # evaluator process priority on CPU (19: only idle cycles)
    curriculum_start: float = 0.2  # fraction of easiest data in the pool at step 0
    curriculum_ramp: float = 0.5  # fraction of the run until the pool is all data
    merge_lora: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LR[self.recipe]

    @property
    def target_points(self) -> float | None:
        t = self.target_accuracy
        return None if t is None else (t * 100.0 if t <= 1.0 else t)

    def validate(self) -> None:
        """Raise ``BadInput`` for values that cannot work (before any model is loaded)."""
        from frugalml.train.async_eval import EVAL_MODES
        from frugalml.train.curriculum import CURRICULA
        from frugalml.train.recipes import PRECISIONS, RECIPES

        for name, value, allowed in (
            ("recipe", self.recipe, RECIPES),
            ("precision", self.precision, PRECISIONS),
            ("curriculum", self.curriculum, CURRICULA),
            ("eval mode", self.eval_mode, EVAL_MODES),
        ):
            if value not in allowed:
                raise BadInput(f"unknown {name} '{value}'", hint=f"use one of {', '.join(allowed)}")
        positive: dict[str, float] = {
            "batch size": self.batch_size,
            "max length": self.max_length,
            "epochs": self.epochs,
            "LoRA rank": self.lora_r,
            "evals per run": self.evals_per_run,
            "learning rate": self.lr,
        }
        for what, number in positive.items():
            if not number > 0:
                raise BadInput(f"{what} must be positive, got {number}")
        for name, opt in (
            ("max steps", self.max_steps),
            ("eval every", self.eval_every),
            ("max minutes", self.max_minutes),
        ):
            if opt is not None and not opt > 0:
                raise BadInput(f"{name} must be positive, got {opt}")
        t = self.target_points
        if t is not None and not 0 < t <= 100:
            raise BadInput(
                f"target accuracy {self.target_accuracy} is out of range",
                hint="give points (e.g. 85) or a fraction (0.85)",
            )

    def to_params(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["learning_rate"] = self.lr
        data["lora_targets"] = list(self.lora_targets)
        return data


@dataclass(frozen=True)
class EvalPoint:
    """One evaluated checkpoint: dev accuracy (points) at ``step``, taken ``train_s`` seconds
    into the run, evaluated in ``eval_s`` seconds; the trainer saw it at ``seen_s``."""

    step: int
    accuracy: float
    train_s: float
    eval_s: float
    seen_s: float


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tune produced and cost. Accuracies in points; times in seconds."""

    run_id: str
    model_dir: str | None  # the saved model (best checkpoint), None when not saved
    accuracy: float  # dev accuracy of the best checkpoint (the saved one)
    best_step: int
    steps: int  # optimizer steps taken
    planned_steps: int
    examples_seen: int
    stopped: str  # completed | target | time-limit | pruned | nan
    target_accuracy: float | None
    time_to_target_s: float | None  # run start → end of the step whose checkpoint hit target
    steps_to_target: int | None
    setup_s: float  # loading, tokenizing, building the model
    curriculum_s: float  # scoring examples for the curriculum
    loop_s: float  # the training loop (all steps, checkpoint hand-offs)
    first_step_s: float  # warm-up (and compile, with --compile), apart from the median
    step_s_median: float
    compile_s: float | None  # first step minus a median step, with --compile
    examples_per_s: float  # examples seen / loop seconds
    trainable_params: int
    total_params: int
    recipe: str
    precision: str
    curriculum: str
    learning_rate: float
    labels: tuple[str, ...]
    evals: tuple[EvalPoint, ...] = ()
    usage: Usage | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["usage"] = self.usage.to_dict() if self.usage else None
        return data


OnEval = Callable[[int, float], bool]
OnStep = Callable[[int, Any, float], None]


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
    from frugalml.train.prepare import check_data, resolve_model
    from frugalml.train.recipes import check_precision, pick_device

    config = config or FinetuneConfig()
    config.validate()
    labels = check_data(train, dev)
    model_path = resolve_model(model)
    device = pick_device(config.device)
    check_precision(config.precision, device)
    params = {
        "model": str(model),
        "train": train.source,
        "dev": dev.source,
        "train_rows": len(train),
        "dev_rows": len(dev),
        "labels": list(labels.names),
        "device": device,
        **config.to_params(),
    }
    out_dir = Path(out).expanduser() if out is not None else None
    with track(
        name or f"finetune {Path(str(model)).name}",
        ledger=ledger,
        kind=kind,
        params=params,
        parent=parent,
        instance=instance,
        region=region,
    ) as run:
        trainer = Trainer(
            model_spec=str(model),
            model_path=model_path,
            labels=labels,
            train=train,
            dev=dev,
            config=config,
            device=device,
            out=out_dir,
            run_id=run.id,
            progress=progress,
            on_eval=on_eval,
            on_step=on_step,
        )
        result = trainer.run()
        run.log_quality(**_quality(result))
        if result.model_dir:
            run.log_artifacts(model=result.model_dir)
        if result.stopped == "nan":
            message, hint = trainer.diverged_message(result)
            raise TrainingDiverged(message, hint=hint, model_dir=result.model_dir, run_id=run.id)
    return dataclasses.replace(result, run_id=run.id, usage=run.usage, params=params)


def _quality(r: FinetuneResult) -> dict[str, float]:
    q = {
        "accuracy": r.accuracy,
        "steps": float(r.steps),
        "examples_per_s": r.examples_per_s,
        "loop_s": r.loop_s,
        "best_step": float(r.best_step),
    }
    if r.time_to_target_s is not None:
        q["time_to_target_s"] = r.time_to_target_s
    if r.steps_to_target is not None:
        q["steps_to_target"] = float(r.steps_to_target)
    if r.compile_s is not None:
        q["compile_s"] = r.compile_s
    return q
