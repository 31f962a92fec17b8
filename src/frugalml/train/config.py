"""The types of training: what to do (``FinetuneConfig``), what came of it
(``FinetuneResult``, ``EvalPoint``), the callbacks, and the errors a run can end with.

Shared by ``finetuning`` (the entry point), ``loop`` (the trainer) and ``tuning``; it imports
none of them, so the dependencies run one way: finetuning → loop → config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from frugalml.errors import BadInput, FrugalError
from frugalml.records import Usage
from frugalml.train.registry import Curriculum, Recipe, curriculum_config, recipe_config

# The classification head starts from random weights, and a sentence encoder's pooler (which
# feeds it) was never trained (all-MiniLM-L6-v2's has weights of std ~0.01): at the encoder's
# learning rate they barely move in a short run, so they train at a larger one.
DEFAULT_HEAD_LR = 1e-3
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

    ``recipe`` and ``curriculum`` are registered configs (``frugalml.train.registry``): give
    one (``Lora(r=16)``, ``ByLength(start=0.1)``) or its name for its defaults (``"lora"``,
    ``"full"``; ``"none"``, ``"length"``, ``"loss"``). Learning rate ``None`` picks the
    recipe's default (5e-5 ``full``, 2e-3 ``lora``: adapters start at zero and need a larger
    step); the new head and the pooler train at ``head_learning_rate`` (default: the larger of
    the learning rate and 1e-3). ``target_accuracy`` is dev accuracy in points (0-100); a
    value ≤ 1 is read as a fraction. Checkpoints are evaluated every ``eval_every`` steps, or
    ``evals_per_run`` times spread over the run, and always at the last step.
    """

    recipe: Recipe = field(default_factory=lambda: recipe_config("lora"))
    precision: str = "fp32"  # fp32 | bf16 | fp16 (CUDA only)
    grad_checkpointing: bool = False
    compile: bool = False  # torch.compile; first-step (compile) time reported apart
    curriculum: Curriculum = field(default_factory=lambda: curriculum_config("none"))
    target_accuracy: float | None = None  # points; stop at the first checkpoint reaching it
    max_minutes: float | None = None  # wall-clock budget for the whole run
    learning_rate: float | None = None
    head_learning_rate: float | None = None  # new head + pooler; None: max(lr, 1e-3)
    batch_size: int = 32
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    # linear warm-up from 0 over this fraction of steps, then linear decay to 0 at the last
    # step (transformers.get_linear_schedule_with_warmup)
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 128  # tokens per example (truncated)
    eval_every: int | None = None  # steps between evaluated checkpoints
    evals_per_run: int = 5
    eval_mode: str = "async"  # async (separate process) | sync (blocking) | none (final only)
    eval_batch_size: int = 64
    eval_nice: int = 19  # evaluator process priority on CPU (19: only idle cycles)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    seed: int = 0

    def __post_init__(self) -> None:
        # names are accepted for the registered configs (their defaults)
        object.__setattr__(self, "recipe", recipe_config(self.recipe))
        object.__setattr__(self, "curriculum", curriculum_config(self.curriculum))

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else self.recipe.default_lr

    @property
    def head_lr(self) -> float:
        if self.head_learning_rate is not None:
            return self.head_learning_rate
        return max(self.lr, DEFAULT_HEAD_LR)

    @property
    def target_points(self) -> float | None:
        t = self.target_accuracy
        return None if t is None else (t * 100.0 if t <= 1.0 else t)

    def warmup_steps(self, steps: int) -> int:
        """Steps of linear warm-up in a run of ``steps`` (at least 1 when the ratio is > 0)."""
        return max(1, int(self.warmup_ratio * steps)) if self.warmup_ratio > 0 else 0

    def validate(self) -> None:
        """Raise ``BadInput`` for values that cannot work (before any model is loaded)."""
        from frugalml.train.async_eval import EVAL_MODES
        from frugalml.train.recipes import PRECISIONS

        for name, value, allowed in (
            ("precision", self.precision, PRECISIONS),
            ("eval mode", self.eval_mode, EVAL_MODES),
        ):
            if value not in allowed:
                raise BadInput(f"unknown {name} '{value}'", hint=f"use one of {', '.join(allowed)}")
        self.recipe.validate()
        self.curriculum.validate()
        positive: dict[str, float] = {
            "batch size": self.batch_size,
            "max length": self.max_length,
            "epochs": self.epochs,
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
        """Flat settings for the ledger: the recipe's and curriculum's settings inlined."""
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("recipe", "curriculum")
        }
        data["learning_rate"] = self.lr
        data["head_learning_rate"] = self.head_lr
        return {**data, **self.recipe.params(), **self.curriculum.params()}


@dataclass(frozen=True)
class EvalPoint:
    """One evaluated checkpoint: dev accuracy (points) at ``step``, taken ``train_s`` seconds
    into the run, evaluated in ``eval_s`` seconds by ``by``; the trainer saw it at ``seen_s``."""

    step: int
    accuracy: float
    train_s: float
    eval_s: float
    seen_s: float
    by: str = "evaluator"  # evaluator process, or "trainer" (sync mode; leftovers after the loop)


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
    # memory (bytes; RSS on CPU, torch-allocated on CUDA) held after loading and building the
    # model, and what training added on top at its peak (activations, gradients, optimizer
    # state); the run's overall peak is ``usage.peak_host_bytes`` / ``peak_device_bytes``
    setup_memory_bytes: int
    train_memory_bytes: int
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


__all__ = [
    "EvalPoint",
    "FinetuneConfig",
    "FinetuneResult",
    "OnEval",
    "OnStep",
    "OutOfMemory",
    "TrainingDiverged",
]
