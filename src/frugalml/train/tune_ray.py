"""``tune --engine ray``: the study on Ray Tune, with Optuna's TPE as the searcher and Tune's
ASHA scheduler for early stopping.

- Searcher: ``OptunaSearch`` over the same space as the local study (``tuning.suggest``,
  define-by-run), TPE seeded as ``TuneConfig.seed``; with ``--storage`` the study lives in that
  database (Optuna's ``RDBStorage`` with no connection pool: a connection per operation, closed
  after it, so a long study never holds idle connections; no heartbeat thread), readable and
  resumable with ``optuna.load_study``.
- Scheduler: ``hyperband`` is ASHA (asynchronous successive halving: ``min_resource``
  checkpoints before a trial can be stopped, ``reduction_factor``), ``median`` the median
  stopping rule, ``none`` FIFO. The resource is the evaluated checkpoint (1..``evals``).
- Trial: a Ray Tune trainable that runs ``finetune`` in a thread; each evaluated checkpoint is
  one Tune iteration, and training waits for Tune's decision before going on. A trial Tune
  stops ends cleanly (the trainable's ``cleanup`` tells the fine-tune to stop), so its ledger
  run (kind ``trial``, child of the ``tune`` run) is written with its measured cost like any
  other; it runs where Ray puts it, and ``track`` records that node. It is priced at the
  instance that node declares (``FRUGAL_INSTANCE``), else the study's ``--instance``.
- Summary: as the local study (``StudySummary``): each trial's state, curve and steps come
  back through a small Ray actor (on the driver's node); its compute from the ledger. Trials
  are numbered in the order they started; one whose worker or node died is a failed trial,
  and the ledger run its dead process left ``running`` is closed as failed.
- ``--out``: each completed or diverged trial trains into a temporary folder on its node; the
  driver then copies it to ``out/trial-NNN`` (same machine) or receives it through Ray (a node
  on another host), as the local study keeps them (``_place_models``).

The ledger must be one every node can reach (PostgreSQL) when the cluster has several hosts.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import queue
import shutil
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

from frugalml.data import Dataset
from frugalml.errors import BadInput, FrugalError
from frugalml.train.config import TrainingDiverged

# ``kit``: what this module uses of ``tuning`` (which calls it), handed in by ``tuning.tune`` so
# that this module does not import it back: ``suggest``, ``sampler``, ``study_params``,
# ``summarize``, ``log_study``, ``compute``, ``pruner_name``, ``TrialSummary``.


def _ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError:
        raise BadInput("--engine ray needs Ray Tune", hint="pip install 'frugalml[ray]'") from None
    return ray


def _space(trial: Any, tcfg: Any, suggest: Any) -> None:
    suggest(trial, tcfg)  # define-by-run: the sampled values are the Tune config


def optuna_storage(url: str | None) -> Any:
    """Optuna's RDBStorage for ``url`` without a connection pool (None: in memory)."""
    if url is None:
        return None
    import optuna
    import sqlalchemy as sa

    return optuna.storages.RDBStorage(url, engine_kwargs={"poolclass": sa.pool.NullPool})


def scheduler(name: str, tcfg: Any) -> Any:
    """Tune's scheduler for a pruner name: hyperband is ASHA, median the median rule."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    if name == "hyperband":
        return ASHAScheduler(
            time_attr="training_iteration",
            metric="accuracy",
            mode="max",
            max_t=tcfg.base.evals_per_run,
            grace_period=tcfg.min_resource,
            reduction_factor=tcfg.reduction_factor,
        )
    if name == "median":
        return MedianStoppingRule(
            time_attr="training_iteration", metric="accuracy", mode="max", grace_period=1
        )
    if name == "none":
        return FIFOScheduler()
    raise BadInput(f"--engine ray takes the pruners hyperband, median or none, not {name}")


def _finetune_trial(
    kw: dict[str, Any],
    cfg: Any,
    params: dict[str, Any],
    model_dir: Path | None,
    trial_id: str,
    on_eval: Any,
) -> dict[str, Any]:
    """Run one trial's ``finetune`` on this node (priced as its declared instance) and sum it
    up: state, ledger run, accuracy, steps. Every failure is a summary, never lost."""
    from frugalml.measure.track import node_instance
    from frugalml.train.finetuning import finetune

    summary: dict[str, Any] = {
        "params": params, "state": "failed", "run_id": None, "accuracy": None,
        "steps": 0, "planned_steps": 0,
    }  # fmt: skip
    try:
        res = finetune(
            kw["model"], kw["train"], kw["dev"], cfg, ledger=kw["ledger"], out=model_dir,
            kind="trial", parent=kw["parent_id"], name=f"trial {trial_id}",
            on_eval=on_eval, instance=node_instance() or kw["instance"], region=kw["region"],
        )  # fmt: skip
        summary.update(
            state="pruned" if res.stopped == "pruned" else "complete",
            run_id=res.run_id, accuracy=res.accuracy, steps=res.steps,
            planned_steps=res.planned_steps,
        )  # fmt: skip
    except TrainingDiverged as e:
        summary.update(state="diverged", run_id=e.run_id, error=str(e))
    except FrugalError as e:
        summary.update(run_id=getattr(e, "run_id", None), error=str(e))
    except BaseException as e:  # reported as a failed trial, never lost
        summary["error"] = f"{type(e).__name__}: {e}"[:500]
    return summary


def _make_trainable(suggest: Any) -> Any:
    import optuna
    import ray
    from ray import tune

    class FinetuneTrial(tune.Trainable):
        """One trial: ``finetune`` in a thread, one Tune iteration per evaluated checkpoint."""

        def setup(self, config: dict[str, Any], **kw: Any) -> None:
            self.kw = kw
            self.params = dict(config)
            # numbered in the order trials start; one that never reports back is still known
            ray.get(kw["collector"].start.remote(self.trial_id, self.params))
            self.model_dir = (  # --out: trained here, then sent to the driver (_place_models)
                Path(tempfile.mkdtemp(prefix="frugal-trial-")) / "model"
                if kw["keep_models"]
                else None
            )
            self.cfg = suggest(optuna.trial.FixedTrial(self.params), kw["tcfg"])
            self.planned = kw["tcfg"].base.evals_per_run
            self.curve: list[float] = []
            self.results: queue.Queue[tuple[str, Any, bool]] = queue.Queue()
            self.decisions: queue.Queue[bool] = queue.Queue()
            self.waiting = False
            self.stopping = False
            self.thread = threading.Thread(target=self._train, daemon=True)
            self.thread.start()

        def _on_eval(self, _step: int, acc: float) -> bool:
            self.curve.append(acc)
            if self.stopping:
                return True
            blocks = len(self.curve) < self.planned  # the last one ends the trial anyway
            self.results.put(("eval", acc, blocks))
            return self.decisions.get() if blocks else False

        def _train(self) -> None:
            kw = self.kw
            summary = _finetune_trial(
                kw, self.cfg, self.params, self.model_dir, self.trial_id, self._on_eval
            )
            summary["curve"] = list(self.curve)
            summary["pid"] = os.getpid()
            summary["node_id"] = ray.get_runtime_context().get_node_id()
            model = self._model(summary["state"])
            summary["has_model"] = model is not None
            with contextlib.suppress(Exception):
                ray.get(kw["collector"].put.remote(self.trial_id, summary, model))
            self.results.put(("done", summary, False))

        def _model(self, state: str) -> dict[str, Any] | None:
            """The trained model for ``--out`` (a completed or diverged trial's, as the local
            study keeps): its folder when the driver shares this machine, else its files."""
            if self.model_dir is None:
                return None
            keep = state in ("complete", "diverged") and self.model_dir.is_dir()
            if keep and not self.kw["ship"]:
                return {"path": str(self.model_dir)}  # the driver copies it, then deletes it
            try:
                return {"tar": _tar(self.model_dir)} if keep else None
            finally:
                shutil.rmtree(self.model_dir.parent, ignore_errors=True)

        def step(self) -> dict[str, Any]:
            if self.waiting:
                self.decisions.put(False)  # Tune asked for more: go on training
                self.waiting = False
            kind, value, blocks = self.results.get()
            if kind == "eval":
                self.waiting = blocks
                return {"accuracy": value}
            acc = value["accuracy"]
            if value["state"] == "failed":
                raise RuntimeError(value.get("error") or "the trial failed")
            return {"accuracy": acc if acc is not None else math.nan, "done": True}

        def save_checkpoint(self, checkpoint_dir: str) -> dict[str, Any]:
            return {}  # nothing to restore: a trial is not resumed from the middle

        def load_checkpoint(self, checkpoint: Any) -> None:
            return None

        def cleanup(self) -> None:
            self.stopping = True  # Tune stopped it (ASHA) or the study ended: stop cleanly
            if self.waiting:
                self.decisions.put(True)
            self.thread.join(timeout=600)

    return FinetuneTrial


def run_study(
    model: str,
    train: Dataset,
    dev: Dataset,
    tcfg: Any,
    pruner: Any,
    book: Any,
    *,
    kit: Any,
    study_name: str,
    out: Path | None,
    progress: bool,
    instance: str | None,
    region: str | None,
    address: str | None = None,
    max_parallel: int = 1,
) -> Any:
    """One study on Ray Tune as one ``tune`` run (the driver's); its trials on the cluster."""
    ray = _ray()
    from ray.tune.search.optuna import OptunaSearch

    from frugalml.measure.track import track

    if max_parallel < 1:
        raise BadInput("--max-parallel must be at least 1")
    name = kit.pruner_name(pruner)
    sched = scheduler(name, tcfg)
    owns = not ray.is_initialized()
    if owns:
        from frugalml.measure.track import ray_address

        ray.init(address=ray_address(address), include_dashboard=False, log_to_driver=False)
    params = {**kit.study_params(model, train, dev, tcfg, name, study_name), "engine": "ray",
              "max_parallel": max_parallel}  # fmt: skip
    storage = optuna_storage(tcfg.storage)
    results_dir = tempfile.mkdtemp(prefix="frugal-tune-ray-")
    collector = _start_collector(ray)
    ship = SHIP_MODELS if SHIP_MODELS is not None else _other_hosts(ray)
    try:
        with track(f"tune {Path(model).name} ({name}, ray)", ledger=book, kind="tune",
                   params=params, instance=instance, region=region) as tune_run:  # fmt: skip
            search = OptunaSearch(
                space=functools.partial(_space, tcfg=tcfg, suggest=kit.suggest),
                metric="accuracy",
                mode="max",
                sampler=kit.sampler(tcfg.sampler, tcfg.seed),
                storage=storage,
                study_name=study_name,
            )
            tuner = _tuner(
                kit, tcfg, search, sched, model, train, dev, book, tune_run.id, instance,
                region, collector, out is not None, ship, study_name, results_dir, max_parallel,
            )  # fmt: skip
            tuner.fit()
            started, got = ray.get(collector.all.remote())
            numbers = {
                tid: n for n, tid in enumerate([*started, *(t for t in got if t not in started)])
            }
            summaries = {
                n: _trial_summary(
                    kit, n, got.get(tid) or _lost(book, tune_run.id, tid, started[tid]), book
                )
                for tid, n in numbers.items()
            }
            if out is not None:
                _place_models(ray, collector, book, got, numbers, out)
            summary = kit.summarize(name, tune_run.id, summaries)
            kit.log_study(tune_run, summary)
    finally:
        with contextlib.suppress(Exception):
            ray.kill(collector)
        shutil.rmtree(results_dir, ignore_errors=True)
        if storage is not None:
            storage.engine.dispose()
        if owns:
            ray.shutdown()
    return summary


def _tuner(
    kit: Any,
    tcfg: Any,
    search: Any,
    sched: Any,
    model: str,
    train: Dataset,
    dev: Dataset,
    book: Any,
    parent_id: str,
    instance: str | None,
    region: str | None,
    collector: Any,
    keep_models: bool,
    ship: bool,
    study_name: str,
    results_dir: str,
    max_parallel: int,
) -> Any:
    """The Tune ``Tuner``: one fine-tune per trial on 1 CPU (and a GPU for a CUDA study),
    at most ``max_parallel`` at once, failures recorded and never retried."""
    from ray import tune

    cpus = 1.0
    gpu = 1.0 if str(tcfg.base.device).startswith("cuda") else 0.0
    trainable = tune.with_resources(
        tune.with_parameters(
            _make_trainable(kit.suggest),
            model=model,
            train=train,
            dev=dev,
            tcfg=tcfg,
            ledger=book.url,
            parent_id=parent_id,
            instance=instance,
            region=region,
            collector=collector,
            keep_models=keep_models,
            ship=ship,
        ),
        {"cpu": cpus, "gpu": gpu},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=sched,
            num_samples=tcfg.trials,
            max_concurrent_trials=max_parallel,
            time_budget_s=tcfg.max_minutes * 60 if tcfg.max_minutes else None,
        ),
        run_config=tune.RunConfig(
            name=study_name,
            storage_path=results_dir,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    return tuner


SHIP_MODELS: bool | None = None  # tests: force models through Ray (None: when hosts differ)
LOST = "its Ray worker or node was lost mid-trial"


class _Collector:
    """Each trial's summary, sent by the trial itself (it knows whether Tune stopped it); the
    trials that started, in order, with their parameters; the models kept for ``--out``."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}
        self.got: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}

    def start(self, trial_id: str, params: dict[str, Any]) -> None:
        self.started.setdefault(trial_id, params)

    def put(self, trial_id: str, summary: dict[str, Any], model: Any = None) -> None:
        self.got[trial_id] = summary
        if model is not None:
            self.models[trial_id] = model

    def all(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        return self.started, self.got

    def take_model(self, trial_id: str) -> Any:
        return self.models.pop(trial_id, None)


def _start_collector(ray: Any) -> Any:
    """The collector actor, on the driver's node (hard affinity: that node lives as long as the
    driver does; a worker node may go away, and a soft affinity let it land on one)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = ray.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(here, soft=False)
    return ray.remote(num_cpus=0)(_Collector).options(scheduling_strategy=strategy).remote()


def _other_hosts(ray: Any) -> bool:
    """Whether the cluster has a node on another host than the driver (models then travel
    through Ray instead of being copied from the node's temporary folder)."""
    here = ray.util.get_node_ip_address()
    return any(n["NodeManagerAddress"] != here for n in ray.nodes() if n["Alive"])


def _lost(book: Any, parent_id: str, trial_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """A trial that started but never reported back (its worker or node died): failed. Its
    ledger run, left ``running`` by the dead process, is closed as failed with that reason."""
    run_id = None
    for run in book.runs(name=f"trial {trial_id}", parent_id=parent_id):
        run_id = run.id
        if run.status in ("running", "crashed"):
            book.finish_run(run.id, status="failed", usage=run.usage, error=LOST)
    return {"params": params, "state": "failed", "run_id": run_id, "accuracy": None, "steps": 0,
            "planned_steps": 0, "curve": [], "error": LOST}  # fmt: skip


def _tar(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buf.getvalue()


def _place_models(
    ray: Any, collector: Any, book: Any, got: dict[str, Any], numbers: dict[str, int], out: Path
) -> None:
    """``--out``: each kept trial's model in ``out/trial-NNN`` (NNN: its number in the summary),
    as the local study does; a folder frugal wrote there before is replaced, nothing else is
    touched (``remove_written``). The trial's ledger run points at it."""
    from frugalml.outputs import remove_written

    for tid, n in sorted(numbers.items(), key=lambda kv: kv[1]):
        if not (got.get(tid) or {}).get("has_model"):
            continue
        model = ray.get(collector.take_model.remote(tid))
        if model is None:
            continue
        dest = Path(out).expanduser().absolute() / f"trial-{n:03d}"
        remove_written(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if "path" in model:
            src = Path(model["path"])
            shutil.copytree(src, dest, dirs_exist_ok=True)
            shutil.rmtree(src.parent, ignore_errors=True)
        else:
            with tarfile.open(fileobj=io.BytesIO(model["tar"])) as tar:
                tar.extractall(dest, filter="data")
        if got[tid].get("run_id"):
            book.log_artifacts(got[tid]["run_id"], model=str(dest))


def _trial_summary(kit: Any, number: int, s: dict[str, Any], book: Any) -> Any:
    return kit.TrialSummary(
        number,
        s["state"],
        s["accuracy"] if s["accuracy"] is not None else max(s["curve"], default=None),
        dict(s["params"]),
        int(s["steps"]),
        int(s["planned_steps"]),
        s["run_id"],
        kit.compute(book, s["run_id"]),
        tuple(s["curve"]),
    )
