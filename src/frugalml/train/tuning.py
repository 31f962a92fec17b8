"""Hyperparameter search with early stopping: an Optuna study whose trials are fine-tunes.

Every trial is a ledger run (kind ``trial``) under one ``tune`` run, with its own measured cost.
Each evaluated checkpoint's dev accuracy is reported to Optuna as it arrives (step = the
checkpoint's index, 1..``evals_per_run``), so a pruner can stop a trial that is losing while
it trains. The summary gives the best accuracy, the total compute of all trials (from the
ledger) and the compute pruning saved: measured, by running the same study (same space,
sampler seed and data seeds) without a pruner when ``compare_unpruned`` is set, else an
estimate that extends each pruned trial to its planned length at its own measured cost per
step (labelled as an estimate).

Search space (``suggest``): recipe (among ``recipes``), learning rate (log-uniform, the
recipe's ``lr_range``), the recipe's own settings (``Recipe.suggest``: LoRA rank and
alpha/rank ratio), batch size, warm-up ratio. Epochs, max length and the rest come from
``TuneConfig.base``. ``pruner`` is a name or any Optuna pruner object.
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
from frugalml.outputs import remove_written
from frugalml.train.config import FinetuneConfig, TrainingDiverged
from frugalml.train.finetuning import finetune
from frugalml.train.registry import recipe_config, recipe_names

SAMPLERS = ("tpe", "random")
PRUNERS = ("hyperband", "median", "none")
COMPUTE_KEYS = ("wall_s", "cpu_s", "device_s", "energy_j", "cost_usd", "co2_g")


@dataclass(frozen=True)
class TuneConfig:
    """A study: how many trials, how to sample and prune, and the fixed fine-tune settings."""

    trials: int = 20
    sampler: str = "tpe"  # tpe | random
    pruner: Any = "hyperband"  # hyperband | median | none, or an Optuna pruner object
    storage: str | None = None  # Optuna storage URL (sqlite:///optuna.db); None: in memory
    study_name: str | None = None
    seed: int = 0  # sampler seed and every trial's data/initialisation seed
    max_minutes: float | None = None  # stop starting trials after this long
    recipes: tuple[str, ...] = ("lora", "full")
    batch_sizes: tuple[int, ...] = (16, 32)
    reduction_factor: int = 3  # Hyperband: keep ~1/reduction_factor at each rung
    min_resource: int = 1  # Hyperband: checkpoints a trial runs before it can first be pruned
    compare_unpruned: bool = False  # also run the study without pruning, to measure savings
    base: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(evals_per_run=9))

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise BadInput(
                f"unknown sampler '{self.sampler}'", hint=f"use one of {', '.join(SAMPLERS)}"
            )
        if isinstance(self.pruner, str) and self.pruner not in PRUNERS:
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
        known = recipe_names()
        bad = [r for r in self.recipes if r not in known]
        if bad or not self.recipes:
            raise BadInput(
                f"unknown recipe(s) {', '.join(bad) or '(none)'}",
                hint=f"use one or more of {', '.join(known)}",
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
    name = (
        trial.suggest_categorical("recipe", list(tcfg.recipes))
        if len(tcfg.recipes) > 1
        else tcfg.recipes[0]
    )
    recipe = recipe_config(name)
    lo, hi = recipe.lr_range
    return dataclasses.replace(
        tcfg.base,
        learning_rate=trial.suggest_float(f"lr_{name}", lo, hi, log=True),
        batch_size=trial.suggest_categorical("batch_size", list(tcfg.batch_sizes)),
        warmup_ratio=trial.suggest_float("warmup_ratio", 0.0, 0.2),
        recipe=recipe.suggest(trial),
        seed=tcfg.seed,
    )


def _sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)


def pruner_name(pruner: Any) -> str:
    return pruner if isinstance(pruner, str) else type(pruner).__name__


def make_pruner(pruner: Any, tcfg: TuneConfig) -> Any:
    """The Optuna pruner for a name (``PRUNERS``); a pruner object passes through."""
    import optuna

    if not isinstance(pruner, str):
        return pruner
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=tcfg.min_resource,
            max_resource=tcfg.base.evals_per_run,
            reduction_factor=tcfg.reduction_factor,
        )
    if pruner == "median":
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
    pruner: Any,
    book: Any,
    *,
    study_name: str,
    out: Path | None,
    progress: bool,
    instance: str | None,
    region: str | None,
) -> StudySummary:
    """One study as one ``tune`` run: trials sampled, trained, pruned and summed up."""
    import optuna

    from frugalml.measure.track import track

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = pruner_name(pruner)
    params = _study_params(model, train, dev, tcfg, name, study_name)
    where: dict[str, Any] = {"instance": instance, "region": region}
    with track(
        f"tune {Path(model).name} ({name})",
        ledger=book,
        kind="tune",
        params=params,
        instance=instance,
        region=region,
    ) as tune_run:
        study = optuna.create_study(
            direction="maximize",
            sampler=_sampler(tcfg.sampler, tcfg.seed),
            pruner=make_pruner(pruner, tcfg),
            storage=tcfg.storage,
            study_name=study_name,
            load_if_exists=tcfg.storage is not None,
        )
        objective = _Objective(model, train, dev, tcfg, book, tune_run, out, where)
        _optimize(study, objective, tcfg, _TrialBar(progress, tcfg.trials, name))
        summary = _summarize(name, tune_run.id, objective.summaries)
        _log_study(tune_run, summary)
    return summary


def _study_params(
    model: str, train: Dataset, dev: Dataset, tcfg: TuneConfig, pruner: str, study_name: str
) -> dict[str, Any]:
    return {
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


class _Objective:
    """Optuna's objective: a trial is a fine-tune (a ``trial`` run under the ``tune`` run)
    whose checkpoints are reported to the pruner as they are evaluated."""

    def __init__(
        self,
        model: str,
        train: Dataset,
        dev: Dataset,
        tcfg: TuneConfig,
        book: Any,
        parent: Any,
        out: Path | None,
        where: dict[str, Any],
    ) -> None:
        self.model, self.train, self.dev, self.tcfg = model, train, dev, tcfg
        self.book, self.parent, self.out, self.where = book, parent, out, where
        self.summaries: dict[int, TrialSummary] = {}

    def __call__(self, trial: Any) -> float:
        import optuna

        reported: list[float] = []

        def on_eval(_step: int, acc: float) -> bool:
            reported.append(acc)
            trial.report(acc, len(reported))
            return bool(trial.should_prune())

        trial_out = self.out / f"trial-{trial.number:03d}" if self.out else None
        made = trial_out is not None and not trial_out.exists()  # so provably frugal's
        try:
            res = finetune(
                self.model,
                self.train,
                self.dev,
                suggest(trial, self.tcfg),
                out=trial_out,
                ledger=self.book,
                kind="trial",
                parent=self.parent,
                name=f"trial {trial.number}",
                on_eval=on_eval,
                **self.where,
            )
        except TrainingDiverged as e:
            if e.model_dir and self.out is None:
                shutil.rmtree(e.model_dir, ignore_errors=True)
            self._record(trial, "diverged", reported, e.run_id)
            raise optuna.TrialPruned(str(e)) from e
        except FrugalError as e:  # e.g. out of memory at this batch size: a failed trial
            self._record(trial, "failed", reported, getattr(e, "run_id", None))
            raise
        pruned = res.stopped == "pruned"
        state = "pruned" if pruned else "complete"
        self._record(trial, state, reported, res.run_id, res.accuracy, res.steps, res.planned_steps)
        if pruned:
            if trial_out is not None:
                if made:
                    shutil.rmtree(trial_out, ignore_errors=True)
                else:
                    remove_written(trial_out)  # only what frugal wrote there
            raise optuna.TrialPruned()
        return res.accuracy

    def _record(
        self,
        trial: Any,
        state: str,
        reported: list[float],
        run_id: str | None,
        accuracy: float | None = None,
        steps: int = 0,
        planned_steps: int = 0,
    ) -> None:
        best = accuracy if accuracy is not None else max(reported, default=None)
        self.summaries[trial.number] = TrialSummary(
            trial.number,
            state,
            best,
            trial.params,
            steps,
            planned_steps,
            run_id,
            _compute(self.book, run_id),
            tuple(reported),
        )


def _optimize(study: Any, objective: _Objective, tcfg: TuneConfig, bar: _TrialBar) -> None:
    def after(study: Any, _trial: Any) -> None:
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


def _summarize(pruner: str, run_id: str, summaries: dict[int, TrialSummary]) -> StudySummary:
    trials = tuple(summaries[k] for k in sorted(summaries))
    complete = [t for t in trials if t.state == "complete" and t.accuracy is not None]
    best_t = max(complete, key=lambda t: t.accuracy or 0.0, default=None)
    return StudySummary(
        pruner=pruner,
        run_id=run_id,
        best_accuracy=best_t.accuracy if best_t else None,
        best_params=dict(best_t.params) if best_t else {},
        best_run_id=best_t.run_id if best_t else None,
        trials=trials,
        compute={k: sum(t.compute[k] for t in trials) for k in COMPUTE_KEYS},
    )


def _log_study(tune_run: Any, s: StudySummary) -> None:
    if s.best_accuracy is not None:
        tune_run.log_quality(accuracy=s.best_accuracy)
    tune_run.log_quality(
        trials=float(len(s.trials)),
        pruned=float(sum(t.state != "complete" for t in s.trials)),
        trials_cpu_s=s.compute["cpu_s"],
        trials_cost_usd=s.compute["cost_usd"],
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
    engine: str = "local",
    address: str | None = None,
    max_parallel: int = 1,
) -> TuneResult:
    """Search fine-tune hyperparameters with Optuna; every trial measured in the ledger.

    ``engine="ray"``: the study runs on Ray Tune (``tune_ray``: OptunaSearch + ASHA) on the
    cluster at ``address``, up to ``max_parallel`` trials at once.

    ``out``: keep each completed trial's model under ``out/trial-NNN`` (pruned ones are
    deleted). With ``config.compare_unpruned`` the same study runs again without a pruner
    (recorded as a second ``tune`` run) and the saving is measured; otherwise it is estimated.
    """
    from frugalml.ledger import Ledger
    from frugalml.settings import ledger_url
    from frugalml.train.prepare import check_data, resolve_model

    config = config or TuneConfig()
    config.validate()
    if engine not in ("local", "ray"):
        raise BadInput(f"unknown engine {engine!r}", hint="known engines: local, ray")
    if engine == "local" and (address or max_parallel != 1):
        raise BadInput("--address and --max-parallel need --engine ray")
    check_storage(config.storage, ledger.url if hasattr(ledger, "url") else ledger_url(ledger))
    check_data(train, dev)
    resolve_model(model)
    name = config.study_name or f"frugal-tune-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(out).expanduser() if out is not None else None
    owned = not hasattr(ledger, "start_run")
    book = Ledger(ledger) if owned else ledger

    def study(pruner: Any, study_name: str, folder: Path | None) -> StudySummary:
        if engine == "ray":
            from frugalml.train import tune_ray

            return tune_ray.run_study(
                str(model), train, dev, config, pruner, book, kit=_kit(), study_name=study_name,
                out=folder, progress=progress, instance=instance, region=region,
                address=address, max_parallel=max_parallel,
            )  # fmt: skip
        return _run_study(
            str(model),
            train,
            dev,
            config,
            pruner,
            book,
            study_name=study_name,
            out=folder,
            progress=progress,
            instance=instance,
            region=region,
        )

    try:
        main = study(config.pruner, name, out_dir)
        unpruned = None
        if config.compare_unpruned and config.pruner != "none":
            unpruned = study("none", f"{name}-unpruned", out_dir / "unpruned" if out_dir else None)
    finally:
        if owned:
            book.close()
    estimate = estimate_unpruned(main.trials)
    saved, basis = _saving(config, main, unpruned, estimate)
    return TuneResult(
        study=main,
        unpruned=unpruned,
        saved_fraction=saved,
        saved_basis=basis,
        unpruned_estimate=estimate,
        storage=_safe_url(config.storage),
        study_name=name,
    )


def _kit() -> Any:
    """What ``tune_ray`` uses of this module (handed in, so it does not import this one)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        suggest=suggest, sampler=_sampler, study_params=_study_params, summarize=_summarize,
        log_study=_log_study, compute=_compute, pruner_name=pruner_name,
        TrialSummary=TrialSummary,
    )  # fmt: skip


def _saving(
    config: TuneConfig,
    main: StudySummary,
    unpruned: StudySummary | None,
    estimate: dict[str, float],
) -> tuple[float | None, str]:
    """(fraction of compute pruning saved, ``measured`` | ``estimate`` | ``none``)."""
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
    return saved, basis


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
