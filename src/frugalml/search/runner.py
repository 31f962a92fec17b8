"""``optimize``: find and save the cheapest variant whose quality stays within a bound.

The loop is ask/tell (``space.Strategy``) and decoupled from evaluation: the runner builds a
candidate by applying its passes (sharing work between candidates with a common prefix),
saves it, and evaluates the saved folder in a fresh process (``worker``) with the one
measurement (``evaluate``). A candidate that fails — in a pass, out of memory, NaN outputs —
becomes a record with its error and the search goes on. Every candidate is a ``candidate`` run
in the ledger (usage of building + evaluating it, its quality), child of the ``optimize`` run;
``candidates.json`` is rewritten after each one, so an interrupted search keeps what it found.

Outputs in ``out``: ``best/`` (the chosen model, ``frugalml.load``-able), ``candidates.json``,
``report.md`` (``search.report.write_reports``: the hook for more report formats).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frugalml.data import Dataset
from frugalml.errors import BadInput, FrugalError
from frugalml.models import Model, load
from frugalml.outputs import OutputGuard
from frugalml.passes import PassContext, apply
from frugalml.passes.registry import config_to_dict, info_of
from frugalml.search.constraints import Cheapest, QualityBound
from frugalml.search.evaluate import EVAL_KEYS, resolve_data
from frugalml.search.pareto import pareto_front
from frugalml.search.space import Candidate, Pipeline, Strategy, base_pipelines
from frugalml.search.worker import Evaluator
from frugalml.tasks import get_task

Listener = Callable[[str, dict[str, Any]], None]


class NoCandidateMeetsBound(FrugalError):
    """No optimized candidate is cheaper than the original within the quality bound."""


@dataclass
class OptimizeResult:
    """What ``optimize`` found. ``best`` is None when nothing beat the original in bound."""

    baseline: dict[str, Any]
    best: dict[str, Any] | None
    pareto: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    out: Path
    run_id: str
    task: str
    metric: str
    max_quality_drop: float
    budget_s: float
    elapsed_s: float
    skipped: int = 0
    model: str = ""
    data: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "best": self.best,
            "pareto": self.pareto,
            "candidates": self.candidates,
            "out": str(self.out),
            "run_id": self.run_id,
            "task": self.task,
            "metric": self.metric,
            "max_quality_drop": self.max_quality_drop,
            "budget_s": self.budget_s,
            "elapsed_s": self.elapsed_s,
            "skipped": self.skipped,
            "model": self.model,
            "data": self.data,
            "notes": self.notes,
        }


def restrict(
    tiers: dict[str, list[Pipeline]], passes: Sequence[str] | None
) -> dict[str, list[Pipeline]]:
    """Only pipelines made of the named passes."""
    if passes is None:
        return tiers
    from frugalml.passes import PASSES

    unknown = sorted(set(passes) - set(PASSES))
    if unknown:
        raise BadInput(
            f"unknown pass(es): {', '.join(unknown)}",
            hint=f"known passes: {', '.join(sorted(PASSES))}",
        )
    allowed = set(passes)
    return {
        tier: [p for p in pipes if all(info_of(c).name in allowed for c in p)]
        for tier, pipes in tiers.items()
    }


def _write_jsonl(dataset: Dataset, path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(len(dataset)):
            row: dict[str, Any] = {"text": dataset.texts[i]}
            if dataset.texts2 is not None:
                row["text2"] = dataset.texts2[i]
            if dataset.labels is not None:
                row["label"] = dataset.labels[i]
            if dataset.scores is not None:
                row["score"] = dataset.scores[i]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


class _Builder:
    """Applies pipelines, caching every prefix (and every prefix that failed)."""

    def __init__(self, base: Model, ctx: PassContext) -> None:
        self.cache: dict[Pipeline, Model] = {(): base}
        self.failed: dict[Pipeline, FrugalError] = {}
        self.ctx = ctx

    def build(self, pipeline: Pipeline) -> Model:
        for n in range(len(pipeline), -1, -1):
            if pipeline[:n] in self.failed:
                raise self.failed[pipeline[:n]]
            if pipeline[:n] in self.cache:
                model, start = self.cache[pipeline[:n]], n
                break
        for i in range(start, len(pipeline)):
            prefix = pipeline[: i + 1]
            try:
                model = apply(model, pipeline[i], self.ctx)
            except FrugalError as e:
                self.failed[prefix] = e
                raise
            except MemoryError as e:
                err = FrugalError(f"out of memory applying {info_of(pipeline[i]).name}")
                self.failed[prefix] = err
                raise err from e
            self.cache[prefix] = model
        return model


def optimize(
    model: str | Path | Model,
    task: str,
    data: str | Path | Dataset,
    *,
    metric: str | None = None,
    max_quality_drop: float = 1.0,
    device: str = "cpu",
    threads: int | None = None,
    instance: str | None = None,
    region: str | None = None,
    budget_minutes: float = 30.0,
    seed: int = 0,
    out: str | Path = "frugal-out",
    ledger: Any = None,
    repeats: int = 3,
    data_options: dict[str, Any] | None = None,
    listener: Listener | None = None,
    tiers: dict[str, list[Pipeline]] | None = None,
    passes: Sequence[str] | None = None,
    memory_limit_mb: float | None = None,
    runtime_variants: int = 2,
    keep_candidates: bool = False,
    overwrite: bool = False,
) -> OptimizeResult:
    """Search for the cheapest variant of ``model`` within ``max_quality_drop`` points.

    Raises ``BadInput`` for unusable input before any work. Returns the result even when no
    candidate meets the bound (``best`` is None; the CLI exits 2). ``tiers`` replaces the
    default space (``space.base_pipelines``); ``passes`` keeps only pipelines made of these
    pass names (list ``runtime_settings`` to let it try batch sizes); ``memory_limit_mb`` caps
    each candidate's
    evaluation process; ``runtime_variants``: try other batch sizes for this many of the best
    candidates; ``listener(event, info)`` receives progress.
    """
    from frugalml.ledger import Ledger
    from frugalml.measure.prices import resolve
    from frugalml.measure.track import track

    started = time.monotonic()
    emit = listener or (lambda _e, _i: None)
    resolve(instance, region)  # unknown instance/region fails before any work
    if budget_minutes <= 0:
        raise BadInput("--budget-minutes must be positive")
    guard = OutputGuard(ledger=ledger, inputs=[model, data], overwrite=overwrite)
    guard.claim_dir(out, writes=[".work", "best", "candidates.json", "report.md", "report.html"])
    the_task = get_task(task, metric=metric, seed=seed)
    dataset = resolve_data(data, **(data_options or {}))
    the_task.check(dataset)
    base = load(model, device=device)
    if threads is not None:
        from frugalml.search.evaluate import with_runtime

        base = with_runtime(base, threads=threads)
    tune, score = the_task.split(dataset, seed)
    out_dir = Path(out).expanduser().absolute()
    work = out_dir / ".work"
    work.mkdir(parents=True, exist_ok=True)
    data_path = work / "data.jsonl"
    _write_jsonl(dataset, data_path)
    book = ledger if isinstance(ledger, Ledger) else Ledger(ledger)
    records: list[dict[str, Any]] = []
    skipped = 0
    name = f"optimize {model if not isinstance(model, Model) else model.base}"
    params = {
        "model": str(model if not isinstance(model, Model) else model.base),
        "task": the_task.name,
        "data": str(dataset.source),
        "rows": len(dataset),
        "max_quality_drop": max_quality_drop,
        "device": device,
        "seed": seed,
        "budget_minutes": budget_minutes,
        "out": str(out_dir),
    }
    with contextlib.ExitStack() as stack:
        run = stack.enter_context(
            track(
                name, kind="optimize", ledger=book, instance=instance, region=region, params=params
            )
        )
        evaluator = stack.enter_context(Evaluator()).start()  # imports while we work
        ref_path = None
        if the_task.name == "fidelity":
            emit("phase", {"text": "reference outputs of the original model"})
            import numpy as np

            ref_path = work / "reference.npy"
            np.save(ref_path, base.encode(the_task.texts(score)))
        layers = getattr(getattr(base.module, "config", None), "num_hidden_layers", None)
        space = tiers or base_pipelines(
            engine=base.engine, device=device, layers=layers, has_tune_text=bool(tune.texts_all())
        )
        strategy = Strategy(
            restrict(space, passes),
            bound_max_drop=max_quality_drop,
            device=device,
            seed=seed,
            runtime_top=runtime_variants if passes is None or "runtime_settings" in passes else 0,
        )
        ctx = PassContext(
            texts=tune.texts_all(),
            work_dir=work / "passes",
            seed=seed,
            device=device,
            log=lambda m: emit("log", {"text": m}),
        )
        builder = _Builder(base, ctx)
        common = {
            "task": the_task.name,
            "metric": the_task.metric,
            "data": {"path": str(data_path), "options": {}},
            "seed": seed,
            "device": device,
            "threads": threads,
            "instance": instance,
            "region": region,
            "repeats": repeats,
            "reference": str(ref_path) if ref_path else None,
        }
        spec_of = str(model) if not isinstance(model, Model) else None
        deadline = started + budget_minutes * 60.0
        interrupted = False
        try:
            while (cand := strategy.ask()) is not None:
                if cand.tier != "baseline" and time.monotonic() > deadline:
                    skipped = 1 + strategy.pending()
                    emit("budget", {"skipped": skipped})
                    break
                emit("start", {"candidate": cand, "queued": strategy.estimate_remaining()})
                record = _run_candidate(
                    cand,
                    builder,
                    book,
                    run.id,
                    instance,
                    region,
                    common,
                    work,
                    spec_of if not cand.pipeline else None,
                    emit,
                    keep_candidates,
                    memory_limit_mb,
                    evaluator,
                )
                strategy.tell(cand, record)
                records.append(record)
                emit("done", {"record": record})
                _finish(records, max_quality_drop, out_dir, run.id, write_best=False)
        except KeyboardInterrupt:  # keep what was found: report it, then stop
            interrupted = True
            if not any(r["tier"] == "baseline" and r["status"] == "ok" for r in records):
                raise
        result = _finish(
            records,
            max_quality_drop,
            out_dir,
            run.id,
            write_best=True,
            keep_candidates=keep_candidates,
            guard=guard,
        )
        elapsed = time.monotonic() - started
        res = OptimizeResult(
            baseline=result["baseline"],
            best=result["best"],
            pareto=result["pareto"],
            candidates=records,
            out=out_dir,
            run_id=run.id,
            task=the_task.name,
            metric=the_task.metric,
            max_quality_drop=max_quality_drop,
            budget_s=budget_minutes * 60.0,
            elapsed_s=elapsed,
            skipped=skipped,
            model=str(params["model"]),
            data=str(dataset.source),
            notes=result["notes"],
        )
        if interrupted:
            res.notes.append("interrupted: the report covers the candidates evaluated so far")
        from frugalml.search.report import write_reports

        paths = write_reports(res)
        run.log_artifacts(
            candidates=str(out_dir / "candidates.json"),
            **{p.name.replace(".", "_"): str(p) for p in paths},
            **({"best": str(out_dir / "best")} if res.best else {}),
        )
        if res.best:
            run.log_quality(
                **{
                    the_task.metric: float(res.best["quality"]),
                    "baseline_" + the_task.metric: float(res.baseline["quality"]),
                }
            )
        if interrupted:
            raise KeyboardInterrupt
    if not keep_candidates:
        guard.remove(work / "cands")
        guard.remove(work / "passes")
    guard.mark_written(out_dir)
    return res


def _run_candidate(
    cand: Candidate,
    builder: _Builder,
    book: Any,
    parent_id: str,
    instance: str | None,
    region: str | None,
    common: dict[str, Any],
    work: Path,
    original_spec: str | None,
    emit: Listener,
    keep_candidates: bool = False,
    memory_limit_mb: float | None = None,
    evaluator: Evaluator | None = None,
) -> dict[str, Any]:
    from frugalml.measure.hardware import environment, hardware
    from frugalml.measure.prices import resolve
    from frugalml.measure.track import UsageMeter
    from frugalml.search.worker import run_isolated

    meter = UsageMeter(resolve(instance, region), hardware())
    meter.start()
    record: dict[str, Any] = {
        "id": cand.id,
        "label": cand.label,
        "tier": cand.tier,
        "passes": [{"name": info_of(c).name, "config": config_to_dict(c)} for c in cand.pipeline],
        "status": "ok",
        "error": None,
        "optimize_run_id": parent_id,
        "model_dir": None,
    }
    t0 = time.perf_counter()
    try:
        emit("phase", {"candidate": cand, "text": "applying passes"})
        model = builder.build(cand.pipeline)
        record["runtime"] = model.runtime.to_dict()
        if original_spec is not None:
            model_ref = original_spec
        else:
            folder = work / "cands" / cand.id
            model.save(folder, candidate_id=cand.id, optimize_run_id=parent_id)
            model_ref = str(folder)
            record["model_dir"] = str(folder)
        record["prepare_s"] = time.perf_counter() - t0
        emit("phase", {"candidate": cand, "text": "evaluating"})
        t1 = time.perf_counter()
        result = run_isolated(
            {**common, "model": model_ref, "out": str(work / cand.id)},
            work,
            evaluator=evaluator,
            memory_limit_bytes=int(memory_limit_mb * 2**20) if memory_limit_mb else None,
        )
        record["eval_s"] = time.perf_counter() - t1
        record.update(result.to_dict())
    except FrugalError as e:
        record.update(status="failed", error=str(e))
    except Exception as e:
        record.update(status="failed", error=f"{type(e).__name__}: {e}"[:500])
    usage = meter.stop()
    quality = {record["metric"]: float(record["quality"])} if record["status"] == "ok" else {}
    record["run_id"] = book.record(
        f"{cand.id} {cand.label}"[:200],
        kind="candidate",
        status="finished" if record["status"] == "ok" else "failed",
        usage=usage,
        params={
            "passes": record["passes"],
            "runtime": record.get("runtime"),
            "eval": {k: record.get(k) for k in EVAL_KEYS if k in record},
        },
        quality=quality,
        artifacts={"model": record["model_dir"]} if record["model_dir"] and keep_candidates else {},
        error=record["error"],
        parent_id=parent_id,
        hardware=hardware(),
        environment=environment(),
    )
    return record


def _finish(
    records: list[dict[str, Any]],
    max_drop: float,
    out_dir: Path,
    run_id: str,
    *,
    write_best: bool,
    keep_candidates: bool = True,
    guard: OutputGuard | None = None,
) -> dict[str, Any]:
    """Mark Pareto/chosen, write candidates.json (and best/ at the end)."""
    notes: list[str] = []
    baseline = next((r for r in records if r["tier"] == "baseline"), None)
    if baseline is None or baseline["status"] != "ok":
        why = baseline["error"] if baseline else "not evaluated"
        raise BadInput(f"the original model could not be evaluated: {why}")
    bound = QualityBound(
        float(baseline["quality"]), max_drop, bool(baseline.get("higher_is_better", True))
    )
    front = pareto_front(records)
    front_ids = {r["id"] for r in front}
    contenders = [
        r
        for r in records
        if r["tier"] != "baseline"
        and float(r.get("cost_usd_per_1m", math.inf)) < float(baseline["cost_usd_per_1m"])
    ]
    best = Cheapest().pick(contenders, bound)
    for r in records:
        r["on_pareto"] = r["id"] in front_ids
        r["chosen"] = best is not None and r["id"] == best["id"]
        if r["status"] == "ok":
            r["quality_drop"] = bound.drop(r)
            r["meets_bound"] = bound.allows(r)
            r["cost_ratio"] = (
                float(baseline["cost_usd_per_1m"]) / float(r["cost_usd_per_1m"])
                if float(r["cost_usd_per_1m"]) > 0
                else math.inf
            )
            r["throughput_ratio"] = float(r["throughput_per_s"]) / float(
                baseline["throughput_per_s"]
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_best:
        best_dir = out_dir / "best"
        (guard or OutputGuard()).remove(best_dir)  # only what frugal wrote there
        if best is not None and best.get("model_dir"):
            shutil.copytree(best["model_dir"], best_dir, dirs_exist_ok=True)
            man_path = best_dir / "frugal.json"
            man = json.loads(man_path.read_text())
            man.update(
                optimize_run_id=run_id,
                candidate_id=best["id"],
                candidate_run_id=best.get("run_id"),
                quality={k: best.get(k) for k in EVAL_KEYS},
            )
            man_path.write_text(json.dumps(man, indent=2, default=str) + "\n")
            best["best_dir"] = str(best_dir)
        elif best is None:
            notes.append(
                f"no candidate within {max_drop:g} points of the original "
                f"({baseline['quality']:.2f}) is cheaper than it"
            )
        if not keep_candidates:  # the folders are removed after this write
            for r in records:
                r["model_dir"] = r.get("best_dir")
    (out_dir / "candidates.json").write_text(json.dumps(records, indent=2, default=str) + "\n")
    return {"baseline": baseline, "best": best, "pareto": front, "notes": notes}
