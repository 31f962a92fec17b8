"""The training loop behind ``finetune``: one object per run, used once (``Trainer.run``).

The loop never waits for evaluation: it hands each checkpoint to the evaluator and polls for
results after every step. It stops at the planned step count, at the time limit, when a
checkpoint reaches the target accuracy, when ``on_eval`` asks (pruning), or when the loss is
NaN/inf. Afterwards it waits for outstanding results (only when they still matter), loads the
best evaluated checkpoint back into the model and saves it.
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugalml import __version__
from frugalml.data import Dataset
from frugalml.errors import FrugalError
from frugalml.train.async_eval import EvalResult, EvalSpec, make_evaluator
from frugalml.train.config import (
    EvalPoint,
    FinetuneConfig,
    FinetuneResult,
    OnEval,
    OnStep,
    OutOfMemory,
)
from frugalml.train.prepare import Labels, collate, encode
from frugalml.train.registry import CurriculumData


def linear_schedule(optimizer: Any, warmup_steps: int, steps: int) -> Any:
    """The learning-rate schedule: linear warm-up from 0 over ``warmup_steps``, then linear
    decay to 0 at ``steps`` (transformers' ``get_linear_schedule_with_warmup``; one
    ``step()`` per optimizer step)."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, warmup_steps, steps)


def _is_oom(e: BaseException) -> bool:
    import torch

    if isinstance(e, torch.OutOfMemoryError):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _memory_now(device: str) -> int:
    """Memory held now: GPU memory allocated by torch on CUDA, else this process's RSS."""
    import torch

    if device.startswith("cuda"):
        return int(torch.cuda.memory_allocated(device))
    import psutil

    return int(psutil.Process().memory_info().rss)


def _memory_peak(device: str) -> int:
    """Peak since the run started (the tracker resets the marks at its start)."""
    import torch

    from frugalml.measure import memory

    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    return memory.peak_rss_bytes()


class Trainer:
    """Fine-tunes one model; see ``frugalml.train.finetuning.finetune`` for the contract."""

    def __init__(
        self,
        *,
        model_spec: str,
        model_path: Path,
        labels: Labels,
        train: Dataset,
        dev: Dataset,
        config: FinetuneConfig,
        device: str,
        out: Path | None,
        run_id: str = "",
        progress: bool = False,
        on_eval: OnEval | None = None,
        on_step: OnStep | None = None,
    ) -> None:
        self.model_spec, self.model_path, self.labels = model_spec, model_path, labels
        self.train_data, self.dev_data, self.cfg, self.device = train, dev, config, device
        self.out, self.run_id, self.progress = out, run_id, progress
        self.on_eval, self.on_step = on_eval, on_step
        self.t0 = time.perf_counter()
        self.evals: list[EvalPoint] = []
        self.best: EvalResult | None = None
        self.first_target: EvalResult | None = None
        self.stop: str | None = None
        self.nan_step: int | None = None
        self.step = 0
        self.planned_steps = 0
        self.seen = 0  # examples trained on
        self.last_submit = 0  # step of the last checkpoint handed to the evaluator
        self.loss = float("nan")  # of the last step

    def params(self) -> dict[str, Any]:
        """The run's settings for the ledger."""
        return {
            "model": self.model_spec,
            "train": self.train_data.source,
            "dev": self.dev_data.source,
            "train_rows": len(self.train_data),
            "dev_rows": len(self.dev_data),
            "labels": list(self.labels.names),
            "device": self.device,
            **self.cfg.to_params(),
        }

    def _now(self) -> float:
        return time.perf_counter() - self.t0

    # ---- setup --------------------------------------------------------------------------
    def _build(self) -> None:
        import torch

        from frugalml.train.recipes import (
            build_model,
            count_params,
            enable_grad_checkpointing,
            load_tokenizer,
        )

        cfg = self.cfg
        self.tokenizer = load_tokenizer(self.model_path)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.enc_train = encode(self.tokenizer, self.train_data, self.labels, cfg.max_length)
        self.enc_dev = encode(self.tokenizer, self.dev_data, self.labels, cfg.max_length)
        self.model = build_model(self.model_path, self.labels, recipe=cfg.recipe, seed=cfg.seed).to(
            self.device
        )
        if cfg.grad_checkpointing:
            enable_grad_checkpointing(self.model)
        self.model.train()
        self.trainable, self.total = count_params(self.model)
        torch.manual_seed(cfg.seed)  # dropout stream, same for every recipe

    def _batches(self, steps: int) -> Any:
        cfg = self.cfg
        data = CurriculumData(self.enc_train, self.pad_id, self.model, self.device)
        return cfg.curriculum.batches(data, cfg.batch_size, steps, cfg.seed)

    def _optimizer(self, steps: int) -> tuple[Any, Any]:
        import torch

        from frugalml.train.recipes import is_head

        cfg = self.cfg
        groups: dict[tuple[bool, bool], list[Any]] = {}
        for n, p in self.model.named_parameters():
            if p.requires_grad:
                decays = p.ndim >= 2 and "LayerNorm" not in n
                groups.setdefault((is_head(n), decays), []).append(p)
        opt = torch.optim.AdamW(
            [
                {
                    "params": params,
                    "lr": cfg.head_lr if head else cfg.lr,
                    "weight_decay": cfg.weight_decay if decays else 0.0,
                }
                for (head, decays), params in sorted(groups.items())
            ],
            lr=cfg.lr,
        )
        return opt, linear_schedule(opt, cfg.warmup_steps(steps), steps)

    def _evaluator(self, folder: Path) -> Any:
        cfg = self.cfg
        spec = EvalSpec(
            model_path=str(self.model_path),
            labels=self.labels,
            recipe=cfg.recipe,
            seed=cfg.seed,
            dev=self.enc_dev,
            pad_id=self.pad_id,
            batch_size=cfg.eval_batch_size,
            device=self.device,
            nice=cfg.eval_nice if self.device == "cpu" else 0,
        )
        return make_evaluator(cfg.eval_mode, spec, folder, self.model)

    # ---- results --------------------------------------------------------------------------
    def _take(self, results: list[EvalResult]) -> None:
        for r in results:
            self.evals.append(EvalPoint(r.step, r.accuracy, r.train_s, r.eval_s, self._now(), r.by))
            if self.best is None or r.accuracy > self.best.accuracy:
                if self.best is not None:
                    Path(self.best.path).unlink(missing_ok=True)
                self.best = r
            else:
                Path(r.path).unlink(missing_ok=True)
            target = self.cfg.target_points
            if target is not None and self.first_target is None and r.accuracy >= target:
                self.first_target = r
                self.stop = self.stop or "target"
            prune = self.on_eval is not None and self.on_eval(r.step, r.accuracy)
            # Once every planned step has run, stopping saves nothing: the trial is complete.
            if prune and self.step < self.planned_steps:
                self.stop = self.stop or "pruned"

    def _evaluate_path(self, path: str) -> float:
        """Dev accuracy of a checkpoint file, in this process (loads it into the model)."""
        from safetensors.torch import load_file

        from frugalml.train.async_eval import accuracy
        from frugalml.train.recipes import load_trainable_state

        load_trainable_state(self.model, load_file(path, device=self.device))
        return accuracy(
            self.model, self.enc_dev, self.pad_id, self.cfg.eval_batch_size, self.device
        )

    # ---- the loop ------------------------------------------------------------------------
    def run(self) -> FinetuneResult:
        """Train, evaluate, save the best checkpoint; used once per ``Trainer``."""
        self.t0 = time.perf_counter()  # the run's clock starts here, not at construction
        if self.out:  # a fresh folder it provably made, so removing it loses nobody's files
            self.out.mkdir(parents=True, exist_ok=True)
        folder = Path(
            tempfile.mkdtemp(prefix=".checkpoints-" if self.out else "frugal-ckpt-", dir=self.out)
        )
        try:
            return self._run(folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run(self, folder: Path) -> FinetuneResult:
        self._build()
        every = self._plan()
        timing = _Timing(setup_s=self._now(), setup_bytes=_memory_now(self.device))
        batches = self._batches(self.planned_steps)
        timing.curriculum_s = self._now() - timing.setup_s
        train_step = self._step_fn(self.planned_steps)
        evaluator = self._evaluator(folder)
        bar = _Bar(self.progress, self.planned_steps)
        try:
            self._loop(batches, train_step, evaluator, bar, every, timing)
            self._last_evals(evaluator)
            bar.update(self.step, self.loss, self.best)
        finally:
            bar.close()
            evaluator.close()
        return self._result(self._save(folder), timing)

    def _plan(self) -> int:
        """Set the planned step count; return the steps between evaluated checkpoints."""
        cfg, n = self.cfg, len(self.enc_train)
        steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * math.ceil(n / cfg.batch_size)))
        self.planned_steps = steps
        if cfg.eval_mode == "none":
            return steps  # only the final model is evaluated
        return cfg.eval_every or max(1, math.ceil(steps / cfg.evals_per_run))

    def _step_fn(self, steps: int) -> Callable[[list[int]], float]:
        """One optimizer step on a batch of rows (mixed precision, clipping, schedule)."""
        import torch

        from frugalml.train.recipes import autocast

        cfg = self.cfg
        opt, sched = self._optimizer(steps)
        scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        forward = torch.compile(self.model) if cfg.compile else self.model
        pad_to = cfg.max_length if cfg.compile else None  # fixed shapes: no recompiles
        trained = [p for p in self.model.parameters() if p.requires_grad]

        def train_step(rows: list[int]) -> float:
            padded = collate(self.enc_train, rows, self.pad_id, pad_to)
            batch = {k: v.to(self.device) for k, v in padded.items()}
            with autocast(cfg.precision, self.device):
                loss = forward(**batch).loss
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(trained, cfg.max_grad_norm)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            return float(loss.detach())

        return train_step

    def _loop(
        self,
        batches: Any,
        train_step: Callable[[list[int]], float],
        evaluator: Any,
        bar: _Bar,
        every: int,
        timing: _Timing,
    ) -> None:
        """Train until the plan, the clock, the target, the pruner or a NaN stops it."""
        from frugalml.train.recipes import trainable_state

        deadline = self.cfg.max_minutes * 60 if self.cfg.max_minutes else math.inf
        loop_t0 = time.perf_counter()
        for rows in batches:
            t = time.perf_counter()
            self._guarded_step(train_step, rows)
            timing.step_times.append(time.perf_counter() - t)
            if not math.isfinite(self.loss):
                self.nan_step, self.stop = self.step, "nan"
                break
            if self.step % every == 0 or self.step == self.planned_steps:
                evaluator.submit(self.step, trainable_state(self.model), self._now())
                self.last_submit = self.step
            self._take(evaluator.poll())
            bar.update(self.step, self.loss, self.best)
            if self.stop is None and self._now() > deadline:
                self.stop = "time-limit"
            if self.stop is not None:
                break
        timing.loop_s = time.perf_counter() - loop_t0
        timing.train_bytes = max(0, _memory_peak(self.device) - timing.setup_bytes)

    def _guarded_step(self, train_step: Callable[[list[int]], float], rows: list[int]) -> None:
        """A step, counted, with ``on_step`` called; out of memory becomes ``OutOfMemory``."""
        import torch

        try:
            self.loss = train_step(rows)
            self.step += 1
            self.seen += len(rows)
            if self.on_step is not None:
                self.on_step(self.step, self.model, self.loss)
        except (RuntimeError, torch.OutOfMemoryError) as e:
            if _is_oom(e):
                raise self._oom(e) from e
            raise

    def _last_evals(self, evaluator: Any) -> None:
        """Evaluate the final model and wait for outstanding results, when they still matter."""
        from frugalml.train.recipes import trainable_state

        if self.stop in (None, "time-limit") and self.last_submit != self.step:
            evaluator.submit(self.step, trainable_state(self.model), self._now())
        if self.stop in (None, "time-limit", "nan"):
            self._take(evaluator.finish(self._evaluate_path))

    def _result(self, model_dir: str | None, timing: _Timing) -> FinetuneResult:
        cfg, times = self.cfg, timing.step_times
        first = times[0] if times else 0.0
        median = statistics.median(times[1:]) if len(times) > 1 else first
        return FinetuneResult(
            run_id=self.run_id,
            model_dir=model_dir,
            accuracy=self.best.accuracy if self.best else float("nan"),
            best_step=self.best.step if self.best else 0,
            steps=self.step,
            planned_steps=self.planned_steps,
            examples_seen=self.seen,
            stopped=self.stop or "completed",
            target_accuracy=cfg.target_points,
            time_to_target_s=self.first_target.train_s if self.first_target else None,
            steps_to_target=self.first_target.step if self.first_target else None,
            setup_s=timing.setup_s,
            curriculum_s=timing.curriculum_s,
            loop_s=timing.loop_s,
            first_step_s=first,
            step_s_median=median,
            compile_s=max(0.0, first - median) if cfg.compile else None,
            examples_per_s=self.seen / timing.loop_s if timing.loop_s > 0 else 0.0,
            setup_memory_bytes=timing.setup_bytes,
            train_memory_bytes=timing.train_bytes,
            trainable_params=self.trainable,
            total_params=self.total,
            recipe=cfg.recipe.name,
            precision=cfg.precision,
            curriculum=cfg.curriculum.name,
            learning_rate=cfg.lr,
            labels=self.labels.names,
            evals=tuple(sorted(self.evals, key=lambda e: e.step)),
        )

    def _save(self, folder: Path) -> str | None:
        """Load the best checkpoint into the model and save it (see ``recipes.save_model``)."""
        from safetensors.torch import load_file

        from frugalml.train.recipes import load_trainable_state, save_model

        if self.best is None:
            return None
        out = self.out
        if out is None and self.stop == "nan":  # keep the best model where the error says
            out = Path(tempfile.mkdtemp(prefix=f"frugal-best-{self.run_id[:8]}-"))
        if out is None:
            return None
        load_trainable_state(self.model, load_file(self.best.path, device=self.device))
        manifest = {
            "base_model": self.model_spec,
            "base_model_path": str(self.model_path),
            "recipe": self.cfg.recipe.name,
            "precision": self.cfg.precision,
            "labels": list(self.labels.names),
            "max_length": self.cfg.max_length,
            "step": self.best.step,
            "dev_accuracy": self.best.accuracy,
            "run_id": self.run_id,
            "frugal_version": __version__,
        }
        merge = self.cfg.recipe.merge_on_save()
        save_model(self.model, self.tokenizer, out, manifest, merge=merge)
        return str(out)

    def _oom(self, e: BaseException) -> FrugalError:
        cfg = self.cfg
        tips = [
            f"a smaller --batch-size (now {cfg.batch_size})",
            f"a shorter --max-length (now {cfg.max_length})",
        ]
        if not cfg.grad_checkpointing:
            tips.append("--grad-checkpointing")
        tips += cfg.recipe.oom_tips()
        if cfg.precision == "fp32":
            tips.append("--precision bf16")
        where = "the GPU" if self.device.startswith("cuda") else "host memory"
        return OutOfMemory(
            f"out of memory on {where} at step {self.step + 1} ({str(e).splitlines()[0][:120]})",
            hint="try " + ", ".join(tips),
        )

    def diverged_message(self, result: FinetuneResult) -> tuple[str, str]:
        lead = (
            f"the loss became NaN/inf at step {self.nan_step} "
            f"(learning rate {self.cfg.lr:g}, precision {self.cfg.precision}); "
            "training stopped"
        )
        if result.model_dir:
            kept = (
                f"kept the best checkpoint (step {result.best_step}, dev accuracy "
                f"{result.accuracy:.2f}) at {result.model_dir}"
            )
        else:
            kept = "no checkpoint had been evaluated, so none was kept"
        tips = "lower --lr" + (", use --precision fp32" if self.cfg.precision != "fp32" else "")
        return f"{lead}; {kept}", f"{tips}, or check the data for broken rows"


@dataclass
class _Timing:
    """Where a run's time and memory went (seconds; bytes)."""

    setup_s: float = 0.0
    setup_bytes: int = 0
    curriculum_s: float = 0.0
    loop_s: float = 0.0
    train_bytes: int = 0
    step_times: list[float] = field(default_factory=list)


class _Bar:
    """A Rich progress bar on stderr (or nothing)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._progress: Any = None
        if not enabled:
            return
        from frugalml.progress import progress_bar

        self._progress = progress_bar("training", unit="steps", info=True)
        self._task = self._progress.add_task("train", total=total, info="")
        self._progress.start()

    def update(self, step: int, loss: float, best: EvalResult | None) -> None:
        if self._progress is None:
            return
        info = f"loss {loss:.4f}" + (f" · dev {best.accuracy:.2f} @ {best.step}" if best else "")
        self._progress.update(self._task, completed=step, info=info)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


__all__ = ["Trainer"]
