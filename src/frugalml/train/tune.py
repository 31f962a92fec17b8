"""Hyperparameter search with early stopping: an Optuna study whose trials are fine-tunes.

Every trial is a ledger run (kind ``trial``) under one ``tune`` run, with its own measured cost.
Each evaluated checkpoint's dev accuracy is reported to Optuna as it arrives (step = the
checkpoint's index, 1..``evals_per_run``), so a pruner can stop a trial that is losing while
it trains. The summary gives the best accuracy, the total compute of all trials (from the
ledger) and the compute pruning saved: measured, by running the same study (same space,
sampler seed and data seeds) without a pruner when ``compare_unpruned`` is set, else an
estimate that extends each pruned trial to its planned length at its own measured cost per
step (labelled as an estimate).

Search space (``suggest``): recipe (among ``recipes``), learning rate (log-uniform, per
recipe), LoRA rank and alpha/rank ratio, batch size, warm-up ratio. Epochs, max length and
the rest come from ``TuneConfig.base``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugalml.data import Dataset
from frugalml.errors import BadInput, FrugalError
from frugalml.train.finetune import FinetuneConfig, TrainingDiverged, finetune

SAMPLERS = ("tpe", "random")
PRUNERS = ("hyperband", "median", "none")
LR_RANGE = {"lora": (3e-4, 5e-3), "full": (1e-5, 3e-4)}
COMPUTE_KEYS = ("wall_s", "cpu_s", "device_s", "energy_j", "cost_usd", "co2_g")


@dataclass(frozen=True)
class TuneConfig:
    """A study: how many trials, how to sample and prune, and the fixed fine-tune settings."""

    trials: int = 20
    sampler: str = "tpe"  # tpe | random
    pruner: str = "hyperband"  # hyperband | median | none
    storage: str | None = None  # Optuna storage URL (sqlite:///optuna.db); None: in memory
    study_name: str | None = None
    seed: int = 0  # sampler seed and every trial's data/initialisation seed
    max_minutes: float | None = None  # stop starting trials after this long
    recipes: tuple[str, ...] = ("lora", "full")
    batch_sizes: tuple[int, ...] = (16, 32)
    lora_ranks: tuple[int, ...] = (4, 8, 16)
    reduction_factor: int = 3  # Hyperband: keep ~1/reduction_factor at each rung
    min_resource: int = 1  # Hyperband: checkpoints a trial runs before it can first be pruned
    compare_unpruned: bool = False  # also run the study without pruning, to measure savings
    base: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(evals_per_run=9))

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise BadInput(
                f"unknown sampler '{self.sampler}'", hint=f"use one of {', '.join(SAMPLERS)}"
            )
        if self.pruner not in PRUNERS:
            raise BadInput(
                f"unknown pruner '{self.pruner}'", hint=f"use one of {', '.join(PRUNERS)}"
            )
        if self.trials < 1:
            raise BadInput(f"trials must be at least 1, got {self.trials}")
        if self.reduction_factor < 2:
            raise BadInput(f"reduction factor must be at least 2, got {self.reduction_factor}")
        if self.pruner == "hyperband" and not 1 <= self.min_resource < self.base.evals_per_run:
            raise BadInput(
                f"min resource {self.min_resource} must be at least 1 and below the "
                f"{self.base.evals_per_run} checkpoints per trial",
                hint="it counts evaluated checkpoints; raise --evals or lower --min-resource",
            )
        bad = [r for r in self.recipes if r not in LR_RANGE]
        if bad or not self.recipes:
            raise BadInput(
                f"unknown recipe(s) {', '.join(bad) or '(none)'}", hint="use lora, full or both"
            )
        if self.base.target_accuracy is not None:
            raise BadInput(
                "a target accuracy would stop trials early for another reason than the pruner",
                hint="drop --target for tune",
            )
        self.base.validate()


@dataclass(frozen=True)
class TrialSummary:
    number: int
    state: str  # complete | pruned | diverged | failed
    accuracy: float | None  # best dev accuracy of the trial (points)
    params: dict[str, Any]
    steps: int
    planned_steps: int
    run_id: str | None
    compute: dict[str, float]  # COMPUTE_KEYS from the trial's ledger run
    curve: tuple[float, ...] = ()  # dev accuracy at each evaluated checkpoint, as reported


@dataclass(frozen=True)
class StudySummary:
    pruner: str
    run_id: str  # the ``tune`` run
    best_accuracy: float | None
    best_params: dict[str, Any]
    best_run_id: str | None
    trials: tuple[TrialSummary, ...]
    compute: dict[str, float]  # summed over trials

    @property
    def pruned(self) -> int:
        return sum(t.state in ("pruned", "diverged") for t in self.trials)


@dataclass(frozen=True)
class TuneResult:
    """The study, and the compute pruning saved (measured, or an estimate when not compared)."""

    study: StudySummary
    unpruned: StudySummary | None  # the same study without pruning (``compare_unpruned``)
    saved_fraction: float | None  # 1 - compute / unpruned compute (cpu seconds; device on GPU)
    saved_basis: str  # "measured" | "estimate" | "none"
    unpruned_estimate: dict[str, float]
    storage: str | None
    study_name: str

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["study"]["pruned"] = self.study.pruned
        return data


def suggest(trial: Any, tcfg: TuneConfig) -> FinetuneConfig:
    """The trial's fine-tune config, sampled from the search space."""
    recipe = (
        trial.suggest_categorical("recipe", list(tcfg.recipes))
        if len(tcfg.recipes) > 1
        else tcfg.recipes[0]
    )
    lo, hi = LR_RANGE[recipe]
    changes: dict[str, Any] = {
        "recipe": recipe,
        "learning_rate": trial.suggest_float(f"lr_{recipe}", lo, hi, log=True),
        "batch_size": trial.suggest_categorical("batch_size", list(tcfg.batch_sizes)),
        "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
        "seed": tcfg.seed,
    }
    if recipe == "lora":
        r = trial.suggest_categorical("lora_r", list(tcfg.lora_ranks))
        changes["lora_r"] = r
        changes["lora_alpha"] = r * trial.suggest_categorical("lora_alpha_ratio", [1, 2, 4])
    return dataclasses.replace(tcfg.base, **changes)


def _sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def _pruner(name: str, tcfg: TuneConfig) -> Any:
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=tcfg.min_resource,
            max_resource=tcfg.base.evals_per_run,
            reduction_factor=tcfg.reduction_factor,
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def _compute(book: Any, run_id: str | None) -> dict[str, float]:
    if run_id is None:
        return dict.fromkeys(COMPUTE_KEYS, 0.0)
    usage = book.get(run_id).usage
    return {k: float(getattr(usage, k)) if usage else 0.0 for k in COMPUTE_KEYS}


def _run_study(
    model: str,
    train: Dataset,
    dev: Dataset,
    tcfg: TuneConfig,
    pruner: str,
    book: Any,
    *,
    study_name: str,
    out: Path | None,
    progress: bool,
    instance: str | None,
    region: str | None,
) -> StudySummary:
    import optuna

    from frugalml.measure.track import track

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = {
        "model": model,
        "trials": tcfg.trials,
        "sampler": tcfg.sampler,
        "pruner": pruner,
        "seed": tcfg.seed,
        "recipes": list(tcfg.recipes),
        "study_name": study_name,
        "storage": _safe_url(tcfg.storage),
        "train_rows": len(train),
        "dev_rows": len(dev),
        "base": tcfg.base.to_params(),
    }
    summaries: dict[int, TrialSummary] = {}
    with track(
        f"tune {Path(model).name} ({pruner})",
        ledger=book,
        kind="tune",
        params=params,
        instance=instance,
        region=region,
    ) as tune_run:
        study = optuna.create_study(
            direction="maximize",
            sampler=_sampler(tcfg.sampler, tcfg.seed),
            pruner=_pruner(pruner, tcfg),
            storage=tcfg.storage,
            study_name=study_name,
            load_if_exists=tcfg.storage is not None,
        )
        bar = _TrialBar(progress, tcfg.trials, pruner)

        def objective(trial: Any) -> float:
            cfg = suggest(trial, tcfg)
            reported: list[float] = []

            def on_eval(_step: int, acc: float) -> bool:
                reported.append(acc)
                trial.report(acc, len(reported))
                return bool(trial.should_prune())

            trial_out = out / f"trial-{trial.number:03d}" if out else None
            try:
                res = finetune(
                    model,
                    train,
                    dev,
                    cfg,
                    out=trial_out,
                    ledger=book,
                    kind="trial",
                    parent=tune_run,
                    name=f"trial {trial.number}",
                    instance=instance,
                    region=region,
                    on_eval=on_eval,
                )
            except TrainingDiverged as e:
                if e.model_dir and out is None:
                    shutil.rmtree(e.model_dir, ignore_errors=True)
                summaries[trial.number] = TrialSummary(
                    trial.number,
                    "diverged",
                    max(reported, default=None),
                    trial.params,
                    0,
                    0,
                    e.run_id,
                    _compute(book, e.run_id),
                    tuple(reported),
                )
                raise optuna.TrialPruned(str(e)) from e
            except FrugalError as e:  # e.g. out of memory at this batch size: a failed trial
                run_id = getattr(e, "run_id", None)
                summaries[trial.number] = TrialSummary(
                    trial.number,
                    "failed",
                    max(reported, default=None),
                    trial.params,
                    0,
                    0,
                    run_id,
                    _compute(book, run_id),
                    tuple(reported),
                )
                raise
            pruned = res.stopped == "pruned"
            summaries[trial.number] = TrialSummary(
                trial.number,
                "pruned" if pruned else "complete",
                res.accuracy,
                trial.params,
                res.steps,
                res.planned_steps,
                res.run_id,
                _compute(book, res.run_id),
                tuple(reported),
            )
            if pruned:
                if trial_out is not None:
                    shutil.rmtree(trial_out, ignore_errors=True)
                raise optuna.TrialPruned()
            return res.accuracy

        def after(study: Any, trial: Any) -> None:
            best = None
            with contextlib.suppress(ValueError):  # no complete trial yet
                best = study.best_value
            bar.advance(best)

        try:
            study.optimize(
                objective,
                n_trials=tcfg.trials,
                callbacks=[after],
                timeout=tcfg.max_minutes * 60 if tcfg.max_minutes else None,
                catch=(FrugalError,),
                gc_after_trial=True,
            )
        finally:
            bar.close()
        trials = tuple(summaries[k] for k in sorted(summaries))
        compute = {k: sum(t.compute[k] for t in trials) for k in COMPUTE_KEYS}
        complete = [t for t in trials if t.state == "complete" and t.accuracy is not None]
        best_t = max(complete, key=lambda t: t.accuracy or 0.0, default=None)
        if best_t is not None:
            tune_run.log_quality(accuracy=best_t.accuracy or 0.0)
        tune_run.log_quality(
            trials=float(len(trials)),
            pruned=float(sum(t.state != "complete" for t in trials)),
            trials_cpu_s=compute["cpu_s"],
            trials_cost_usd=compute["cost_usd"],
        )
    return StudySummary(
        pruner=pruner,
        run_id=tune_run.id,
        best_accuracy=best_t.accuracy if best_t else None,
        best_params=dict(best_t.params) if best_t else {},
        best_run_id=best_t.run_id if best_t else None,
        trials=trials,
        compute=compute,
    )


def _safe_url(url: str | None) -> str | None:
    if url is None:
        return None
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def check_storage(storage: str | None, ledger: str) -> None:
    """Refuse an Optuna ``storage`` that SQLAlchemy cannot open, or that is the ``ledger``'s
    own database (Optuna would create its tables in the ledger)."""
    if storage is None:
        return
    import sqlalchemy as sa

    try:
        url = sa.engine.make_url(storage)
        url.get_dialect()
    except Exception as e:  # ArgumentError, NoSuchModuleError, a missing driver...
        raise BadInput(
            f"cannot use the Optuna storage '{_safe_url(storage)}': "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}",
            hint="give a database URL, e.g. sqlite:///optuna.db or postgresql+psycopg://HOST/DB",
        ) from e
    if _same_database(url, sa.engine.make_url(ledger)):
        raise BadInput(
            f"the Optuna storage '{_safe_url(storage)}' is the ledger's database",
            hint="give the study its own database, e.g. sqlite:///optuna.db",
        )


def _same_database(a: Any, b: Any) -> bool:
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() != "sqlite":
        return bool((a.host, a.port, a.database) == (b.host, b.port, b.database))
    if not a.database or not b.database or ":memory:" in (a.database, b.database):
        return False
    pa, pb = Path(a.database).expanduser(), Path(b.database).expanduser()
    if pa.exists() and pb.exists():
        return pa.samefile(pb)
    return pa.resolve() == pb.resolve()


def _basis_key(compute: dict[str, float]) -> str:
    """Device seconds where a GPU was used, else CPU seconds: the compute that is paid for."""
    return "device_s" if compute.get("device_s", 0.0) > 0 else "cpu_s"


def estimate_unpruned(trials: tuple[TrialSummary, ...]) -> dict[str, float]:
    """Compute of the same trials run to their planned length: each pruned trial's measured
    cost scaled by planned/actual steps (an estimate; fixed start-up cost scaled too)."""
    total = dict.fromkeys(COMPUTE_KEYS, 0.0)
    for t in trials:
        scale = t.planned_steps / t.steps if t.state != "complete" and t.steps > 0 else 1.0
        for k in COMPUTE_KEYS:
            total[k] += t.compute[k] * scale
    return total


def tune(
    model: str | os.PathLike[str],
    train: Dataset,
    dev: Dataset,
    config: TuneConfig | None = None,
    *,
    ledger: Any = None,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    instance: str | None = None,
    region: str | None = None,
) -> TuneResult:
    """Search fine-tune hyperparameters with Optuna; every trial measured in the ledger.

    ``out``: keep each completed trial's model under ``out/trial-NNN`` (pruned ones are
    deleted). With ``config.compare_unpruned`` the same study runs again without a pruner
    (recorded as a second ``tune`` run) and the saving is measured; otherwise it is estimated.
    """
    from frugalml.ledger import Ledger
    from frugalml.settings import ledger_url
    from frugalml.train.prepare import check_data, resolve_model

    config = config or TuneConfig()
    config.validate()
    check_storage(config.storage, ledger.url if hasattr(ledger, "url") else ledger_url(ledger))
    check_data(train, dev)
    resolve_model(model)
    name = config.study_name or f"frugal-tune-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(out).expanduser() if out is not None else None
    owned = not hasattr(ledger, "start_run")
    book = Ledger(ledger) if owned else ledger
    try:
        main = _run_study(
            str(model),
            train,
            dev,
            config,
            config.pruner,
            book,
            study_name=name,
            out=out_dir,
            progress=progress,
            instance=instance,
            region=region,
        )
        unpruned = None
        if config.compare_unpruned and config.pruner != "none":
            unpruned = _run_study(
                str(model),
                train,
                dev,
                config,
                "none",
                book,
                study_name=f"{name}-unpruned",
                out=out_dir / "unpruned" if out_dir else None,
                progress=progress,
                instance=instance,
                region=region,
            )
    finally:
        if owned:
            book.close()
    estimate = estimate_unpruned(main.trials)
    key = _basis_key(main.compute)
    if unpruned is not None and unpruned.compute[key] > 0:
        saved: float | None = 1.0 - main.compute[key] / unpruned.compute[key]
        basis = "measured"
    elif config.pruner != "none" and estimate[key] > 0:
        saved, basis = 1.0 - main.compute[key] / estimate[key], "estimate"
    else:
        saved, basis = (0.0 if config.pruner == "none" else None), "none"
    if saved is not None and not math.isfinite(saved):
        saved = None
    return TuneResult(
        study=main,
        unpruned=unpruned,
        saved_fraction=saved,
        saved_basis=basis,
        unpruned_estimate=estimate,
        storage=_safe_url(config.storage),
        study_name=name,
    )


class _TrialBar:
    def __init__(self, enabled: bool, total: int, pruner: str) -> None:
        self._p: Any = None
        if not enabled:
            return
        from frugalml.progress import progress_bar

        self._p = progress_bar(f"trials ({pruner})", remaining=False, info=True)
        self._task = self._p.add_task("tune", total=total, info="")
        self._p.start()

    def advance(self, best: float | None) -> None:
        if self._p is not None:
            self._p.update(
                self._task, advance=1, info=f"best {best:.2f}" if best is not None else ""
            )

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
