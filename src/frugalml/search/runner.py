"""``optimize``: find the cheapest variant whose quality stays within a bound, held out.

The loop is ask/tell (``space.Strategy``) and decoupled from evaluation: the runner builds a
candidate by applying its passes (sharing work between candidates with a common prefix),
saves it, and evaluates the saved folder in a fresh process (``worker``) with the one
measurement (``evaluate``). A candidate that fails — in a pass, out of memory, NaN outputs —
becomes a record with its error and the search goes on. Every candidate is a ``candidate`` run
in the ledger (usage of building it in this process + evaluating it in its own, its quality),
child of the ``optimize`` run; ``candidates.json`` is rewritten after each one, so an
interrupted search keeps what it found.

The data is split three ways, seeded (``Task.search_split``): passes learn from ``tune``,
candidates are scored and selected on ``select``, and the chosen one is checked once more on
``final``, which no pass and no selection touched: a candidate within the bound on ``select``
but not on ``final`` is not chosen (the next in order is checked). "On ``final``" means with
90% one-sided confidence by default (a paired bootstrap of the rows against the original:
``constraints.choose``), so a model at the edge does not pass on a lucky few hundred rows.

Outputs in ``out``: ``best/`` (the chosen model, ``frugalml.load``-able) and
``candidates.json`` (``OptimizeResult.candidates_file()``). ``optimize`` returns its
``OptimizeResult``; reports are the caller's (``reporter``, e.g.
``frugalml.report.markdown.write_reports``).
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
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.data import Dataset
from frugalml.errors import BadInput, FrugalError
from frugalml.models import Model
from frugalml.outputs import OutputGuard
from frugalml.passes import PassContext, apply, persist
from frugalml.passes.persist import load
from frugalml.passes.registry import config_to_dict, info_of
from frugalml.search.constraints import (
    FINAL_CONFIDENCE,
    QualityBound,
    check_confidence,
    choose,
)
from frugalml.search.evaluate import EVAL_KEYS, resolve_data
from frugalml.search.pareto import pareto_front
from frugalml.search.result import CandidateRecord, OptimizeResult, ProductionCost, StopReason
from frugalml.search.space import Candidate, Pipeline, Strategy, base_pipelines
from frugalml.search.worker import Outcome
from frugalml.tasks import Task, get_task

if TYPE_CHECKING:
    from frugalml.ledger import Ledger
    from frugalml.measure.prices import Price
    from frugalml.records import Usage

Listener = Callable[[str, dict[str, Any]], None]
Reporter = Callable[[OptimizeResult], list[Path]]
FINAL_REPEATS = 1  # the final check needs quality only: one timed pass


class NoCandidateMeetsBound(FrugalError):
    """No optimized candidate is cheaper than the original within the quality bound."""


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


@dataclass
class _Search:
    """What every step of one search shares (the task, the worker spec, the ledger run)."""

    task: Task
    base: Model
    splits: dict[str, Dataset]  # tune, select, final
    book: Ledger
    run_id: str
    price: Price
    work: Path
    builder: _Builder
    engine: Any  # engines.Engine: where evaluations run (local, ray)
    spec: dict[str, Any]  # what every evaluation shares: data, task, seed, device, prices
    original_spec: str | None  # the original's MODEL spec (evaluated as given), if a spec
    emit: Listener
    keep_candidates: bool = False
    memory_limit_mb: float | None = None
    model_refs: dict[str, str] = field(default_factory=dict)  # candidate id -> folder/spec
    node_baselines: dict[Any, dict[str, Any]] = field(default_factory=dict)  # ray: per node
    remote_cpu_s: float = 0.0  # CPU of evaluations on other machines (not reaped here)
    _references: dict[str, str | None] = field(default_factory=dict)

    def reference(self, split: str) -> str | None:
        """The original's outputs on ``split``'s texts (.npy), for a task that needs them."""
        if not self.task.needs_reference:
            return None
        if split not in self._references:
            self.emit("phase", {"text": f"reference outputs of the original ({split} split)"})
            path = self.work / f"reference-{split}.npy"
            np.save(path, self.base.encode(self.task.texts(self.splits[split])))
            self._references[split] = str(path)
        return self._references[split]

    def submit(self, model_ref: str, name: str, split: str, node_id: str | None = None,
               **over: Any) -> Any:  # fmt: skip
        """Start evaluating ``model_ref`` on ``split`` in a fresh process (the engine's)."""
        from frugalml.search.engines import Resources

        limit = int(self.memory_limit_mb * 2**20) if self.memory_limit_mb else None
        spec = {**self.spec, **over, "model": model_ref, "split": split,
                "reference": self.reference(split), "out": str(self.work / name)}  # fmt: skip
        resources = Resources.for_spec(spec, limit)
        resources.node_id = node_id
        return self.engine.submit(spec, self.work, resources, tag=name)

    def evaluate(
        self, model_ref: str, name: str, split: str, used: list[Outcome], **over: Any
    ) -> Any:
        """Evaluate ``model_ref`` on ``split`` in a fresh process; its ``EvalResult``."""
        job = self.submit(model_ref, name, split, **over)
        self.engine.wait([job])
        try:
            return job.collect(used)
        finally:
            self.remote_cpu_s += sum(o.cpu_s for o in used) if self.engine.name != "local" else 0


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
    reporter: Reporter | None = None,
    overwrite: bool = False,
    engine: str = "local",
    address: str | None = None,
    max_parallel: int = 1,
    extra_text: str | Path | None = None,
    final_confidence: float = FINAL_CONFIDENCE,
) -> OptimizeResult:
    """Search for the cheapest variant of ``model`` within ``max_quality_drop`` points.

    ``BadInput`` for unusable input before any work. The result comes back even when no
    candidate meets the bound (``best`` None). ``tiers`` replaces ``space.base_pipelines``;
    ``passes`` keeps only pipelines made of these pass names (list ``runtime_settings`` to let
    it try batch sizes); ``memory_limit_mb`` caps each candidate's evaluation process;
    ``runtime_variants``: try other batch sizes for this many of the best candidates;
    ``listener(event, info)`` receives progress; ``reporter(result)`` writes reports (also
    when interrupted) and returns their paths, which the ledger keeps. ``engine``: ``local``,
    or ``ray`` at ``address`` (``max_parallel`` at once). ``extra_text``: sentences to distil
    on. ``final_confidence``: of the bound on the final split (``constraints.choose``)."""
    from frugalml.measure.track import track
    from frugalml.search.engines import get_engine

    the_engine = get_engine(engine, address=address, max_parallel=max_parallel)
    started = time.monotonic()
    guard = OutputGuard(ledger=ledger, inputs=[model, data], overwrite=overwrite)
    guard.claim_dir(out, writes=[".work", "best", "candidates.json", "report.md", "report.html"])
    price, the_task, dataset, corpus = _inputs(
        task, data, metric, seed, instance, region, budget_minutes, data_options, extra_text,
        final_confidence,
    )  # fmt: skip
    splits = _splits(the_task, dataset, seed)
    base = _load_base(model, device, threads)
    work = _workdir(out, dataset)
    book = _ledger(ledger)
    params = _params(model, the_task, dataset, max_quality_drop, device, seed, budget_minutes)
    params |= {"final_confidence": final_confidence, **_corpus_param(extra_text, corpus)}
    with contextlib.ExitStack() as stack:
        run = stack.enter_context(track(
            f"optimize {params['model']}", kind="optimize", ledger=book, instance=instance,
            region=region, params={**params, "out": str(work.parent)},
        ))  # fmt: skip
        production = _meter(price)  # the whole search: this process, the server, its workers
        emit = listener or (lambda _e, _i: None)
        search = _Search(
            task=the_task, base=base, splits=splits, book=book, run_id=run.id, price=price,
            work=work,
            builder=_Builder(base, _pass_context(splits["tune"], corpus, work, seed, device, emit)),
            engine=_started(stack, the_engine),  # the local one imports while we work
            spec=_worker_spec(the_task, seed, work, device, threads, instance, region, repeats),
            original_spec=str(model) if not isinstance(model, Model) else None, emit=emit,
            keep_candidates=keep_candidates, memory_limit_mb=memory_limit_mb,
        )  # fmt: skip
        strategy = _strategy(
            search, tiers, passes, max_quality_drop, device, seed, runtime_variants
        )
        records: list[CandidateRecord] = []
        deadline = started + budget_minutes * 60.0
        stop, untried = _loop(search, strategy, records, deadline, max_quality_drop, work.parent)
        best, notes = _choose(search, records, max_quality_drop, final_confidence, stop)
        search.engine.close()  # reaped: its processes' CPU now counts in the meter
        result = OptimizeResult(
            baseline=_baseline(records), best=best, pareto=pareto_front(records),
            candidates=records, out=work.parent, run_id=run.id, task=the_task.name,
            metric=the_task.metric, max_quality_drop=max_quality_drop,
            budget_s=budget_minutes * 60.0, elapsed_s=time.monotonic() - started,
            untried=untried, stop_reason=stop, rows={k: len(v) for k, v in splits.items()},
            production_cost=_production_cost(
                production, run.id, len(records), book, model, search.remote_cpu_s
            ),
            model=str(params["model"]), data=str(dataset.source), notes=notes,
        )  # fmt: skip
        _save(result, search, guard)
        _log_result(run, result, reporter(result) if reporter else [])
        if stop == "interrupted":
            raise KeyboardInterrupt
    _tidy(guard, work, keep_candidates)
    return result


def _splits(task: Task, dataset: Dataset, seed: int) -> dict[str, Dataset]:
    """optimize's three-way split, by name (``Task.search_split``)."""
    return dict(zip(("tune", "select", "final"), task.search_split(dataset, seed), strict=True))


def _tidy(guard: OutputGuard, work: Path, keep_candidates: bool) -> None:
    """Remove the candidates' model folders (unless kept) and mark OUT as frugal's."""
    if not keep_candidates:
        guard.remove(work / "cands")
        guard.remove(work / "passes")
    guard.mark_written(work.parent)


def _worker_spec(
    task: Task,
    seed: int,
    work: Path,
    device: str,
    threads: int | None,
    instance: str | None,
    region: str | None,
    repeats: int,
) -> dict[str, Any]:
    """What every candidate's evaluation process needs to rebuild the task and its data."""
    return {
        "task": task.name, "metric": task.metric, "seed": seed,
        "data": {"path": str(work / "data.jsonl"), "options": {}}, "device": device,
        "threads": threads, "instance": instance, "region": region, "repeats": repeats,
    }  # fmt: skip


def _started(stack: contextlib.ExitStack, engine: Any) -> Any:
    stack.callback(engine.close)
    return engine.start()


def _inputs(
    task: str,
    data: str | Path | Dataset,
    metric: str | None,
    seed: int,
    instance: str | None,
    region: str | None,
    budget_minutes: float,
    data_options: dict[str, Any] | None,
    extra_text: str | Path | None,
    final_confidence: float,
) -> tuple[Price, Task, Dataset, list[str]]:
    """Every input checked before any work: prices, budget, task, data, the extra text's
    sentences, the final check's confidence."""
    from frugalml.measure.prices import resolve

    price = resolve(instance, region)
    check_confidence(final_confidence)
    if budget_minutes <= 0:
        raise BadInput("--budget-minutes must be positive")
    the_task = get_task(task, metric=metric, seed=seed)
    dataset = resolve_data(data, **(data_options or {}))
    the_task.check(dataset)
    return price, the_task, dataset, _extra_sentences(extra_text)


def _workdir(out: str | Path, dataset: Dataset) -> Path:
    """``OUT/.work``, made, with the data as JSONL for the evaluation processes."""
    work = Path(out).expanduser().absolute() / ".work"
    work.mkdir(parents=True, exist_ok=True)
    _write_jsonl(dataset, work / "data.jsonl")
    return work


def _corpus_param(extra_text: str | Path | None, corpus: list[str]) -> dict[str, Any]:
    return {"extra_text": {"path": str(extra_text), "sentences": len(corpus)}} if corpus else {}


def _ledger(ledger: Any) -> Ledger:
    from frugalml.ledger import Ledger

    return ledger if isinstance(ledger, Ledger) else Ledger(ledger)


def _load_base(model: str | Path | Model, device: str, threads: int | None) -> Model:
    base = load(model, device=device)
    if threads is None:
        return base
    from frugalml.search.evaluate import with_runtime

    return with_runtime(base, threads=threads)


def _params(
    model: str | Path | Model,
    task: Task,
    dataset: Dataset,
    max_quality_drop: float,
    device: str,
    seed: int,
    budget_minutes: float,
) -> dict[str, Any]:
    return {
        "model": str(model if not isinstance(model, Model) else model.base),
        "task": task.name,
        "data": str(dataset.source),
        "rows": len(dataset),
        "max_quality_drop": max_quality_drop,
        "device": device,
        "seed": seed,
        "budget_minutes": budget_minutes,
    }


def _meter(price: Price) -> Any:
    from frugalml.measure.hardware import hardware
    from frugalml.measure.track import UsageMeter

    meter = UsageMeter(price, hardware())
    meter.start()
    return meter


def _extra_sentences(path: str | Path | None) -> list[str]:
    """The ``extra_text`` file's sentences (``data.file_sentences``); ``BadInput`` if it
    cannot be read or holds no prose."""
    if path is None:
        return []
    from frugalml.data import file_sentences

    try:
        return file_sentences(Path(path).expanduser())
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read the extra text {path}: {e}") from e
    except ValueError as e:
        raise BadInput(str(e), hint="--extra-text takes a plain-text file of sentences") from e


def _pass_context(
    tune: Dataset, corpus: Sequence[str], work: Path, seed: int, device: str, emit: Listener
) -> PassContext:
    return PassContext(
        texts=tune.texts_all(),
        corpus=corpus,
        work_dir=work / "passes",
        seed=seed,
        device=device,
        log=lambda m: emit("log", {"text": m}),
    )


def _strategy(
    search: _Search,
    tiers: dict[str, list[Pipeline]] | None,
    passes: Sequence[str] | None,
    max_quality_drop: float,
    device: str,
    seed: int,
    runtime_variants: int,
) -> Strategy:
    base = search.base
    layers = getattr(getattr(base.module, "config", None), "num_hidden_layers", None)
    space = tiers or base_pipelines(
        engine=base.engine,
        device=device,
        layers=layers,
        has_tune_text=bool(search.splits["tune"].texts_all()),
    )
    return Strategy(
        restrict(space, passes),
        bound_max_drop=max_quality_drop,
        device=device,
        seed=seed,
        runtime_top=runtime_variants if passes is None or "runtime_settings" in passes else 0,
    )


def _loop(
    search: _Search,
    strategy: Strategy,
    records: list[CandidateRecord],
    deadline: float,
    max_drop: float,
    out_dir: Path,
) -> tuple[StopReason, int]:
    """Ask, run, tell until the space is exhausted, the budget is spent or Ctrl-C; the stop
    reason and how many candidates were left untried."""
    if search.engine.name != "local":  # concurrent evaluations, each where the engine puts it
        from types import SimpleNamespace

        from frugalml.search.engines.parallel import parallel_loop

        steps = SimpleNamespace(
            meter=_meter, new_record=_new_record, build=_build, record_run=_record_run,
            mark=_mark, write_candidates=_write_candidates,
        )  # fmt: skip
        return parallel_loop(search, strategy, records, deadline, max_drop, out_dir, steps)
    try:
        while (cand := strategy.ask()) is not None:
            if cand.tier != "baseline" and time.monotonic() > deadline:
                untried = 1 + strategy.untried()  # + the one just asked
                search.emit("budget", {"untried": untried, "done": len(records)})
                return "budget", untried
            search.emit("start", {"candidate": cand, "queued": strategy.estimate_remaining()})
            record = _run_candidate(search, cand)
            strategy.tell(cand, record)
            records.append(record)
            search.emit("done", {"record": record})
            _mark(records, max_drop)
            _write_candidates(out_dir, {"stop_reason": None, "candidates": records})
    except KeyboardInterrupt:  # keep what was found: report it, then stop
        if not any(r["tier"] == "baseline" and r["status"] == "ok" for r in records):
            raise
        return "interrupted", strategy.untried()
    return "completed", 0


def _run_candidate(search: _Search, cand: Candidate) -> CandidateRecord:
    """Build ``cand`` here, evaluate it on the select split in its own process, record it.

    Its usage is this process's over the span plus the evaluating process's CPU (``wait4``):
    the candidates' CPU adds up to what the search spent on them."""
    meter = _meter(search.price)
    record = _new_record(cand, search.run_id)
    used: list[Outcome] = []
    t0 = time.perf_counter()
    try:
        search.emit("phase", {"candidate": cand, "text": "applying passes"})
        model_ref = _build(search, cand, record)
        record["prepare_s"] = time.perf_counter() - t0
        search.emit("phase", {"candidate": cand, "text": "evaluating"})
        t1 = time.perf_counter()
        result = search.evaluate(model_ref, cand.id, "select", used)
        record["eval_s"] = time.perf_counter() - t1
        record.update(result.to_dict())
    except FrugalError as e:
        record["status"], record["error"] = "failed", str(e)
    except Exception as e:
        record["status"], record["error"] = "failed", f"{type(e).__name__}: {e}"[:500]
    usage = meter.stop(extra_cpu_s=sum(o.cpu_s for o in used))
    if used and used[-1].peak_rss_bytes > usage.peak_host_bytes:  # the candidate's own peak
        from dataclasses import replace

        usage = replace(usage, peak_host_bytes=used[-1].peak_rss_bytes)
    record["run_id"] = _record_run(search, record, usage)
    return record


def _new_record(cand: Candidate, parent_id: str) -> CandidateRecord:
    return {
        "id": cand.id,
        "label": cand.label,
        "tier": cand.tier,
        "passes": [{"name": info_of(c).name, "config": config_to_dict(c)} for c in cand.pipeline],
        "status": "ok",
        "error": None,
        "optimize_run_id": parent_id,
        "model_dir": None,
    }


def _build(search: _Search, cand: Candidate, record: CandidateRecord) -> str:
    """Apply ``cand``'s passes and save it; what to evaluate (a folder, or the original)."""
    model = search.builder.build(cand.pipeline)
    record["runtime"] = model.runtime.to_dict()
    if not cand.pipeline and search.original_spec is not None:
        ref = search.original_spec
    else:
        folder = search.work / "cands" / cand.id
        persist.save(model, folder, candidate_id=cand.id, optimize_run_id=search.run_id)
        ref = record["model_dir"] = str(folder)
    search.model_refs[cand.id] = ref
    return ref


def _record_run(search: _Search, record: CandidateRecord, usage: Usage) -> str:
    from frugalml.measure.hardware import environment, hardware
    from frugalml.records import Hardware

    ok = record["status"] == "ok"
    keep = record["model_dir"] and search.keep_candidates
    return search.book.record(
        f"{record['id']} {record['label']}"[:200],
        kind="candidate",
        status="finished" if ok else "failed",
        usage=usage,
        params={
            "passes": record["passes"],
            "runtime": record.get("runtime"),
            "eval": {k: record.get(k) for k in EVAL_KEYS if k in record},
        },
        quality={record["metric"]: float(record["quality"])} if ok else {},
        artifacts={"model": str(record["model_dir"])} if keep else {},
        error=record["error"],
        parent_id=search.run_id,
        hardware=Hardware.from_dict(hw) if (hw := record.get("hardware")) else hardware(),
        environment={**environment(), **_where(record)},
    )


def _where(record: CandidateRecord) -> dict[str, Any]:
    """Where a candidate ran when the engine says (Ray: node id and host)."""
    return {"node": {k: record.get(k) for k in ("node_id", "host")}} if "node_id" in record else {}


def _baseline(records: list[CandidateRecord]) -> CandidateRecord:
    baseline = next((r for r in records if r["tier"] == "baseline"), None)
    if baseline is None or baseline["status"] != "ok":
        why = baseline["error"] if baseline else "not evaluated"
        raise BadInput(f"the original model could not be evaluated: {why}")
    return baseline


def _bound(baseline: CandidateRecord, max_drop: float) -> QualityBound:
    return QualityBound(
        float(baseline["quality"]), max_drop, bool(baseline.get("higher_is_better", True))
    )


def _mark(records: list[CandidateRecord], max_drop: float) -> None:
    """Per-record figures against the baseline (selection split) and the Pareto flag."""
    baseline = _baseline(records)
    bound = _bound(baseline, max_drop)
    front_ids = {r["id"] for r in pareto_front(records)}
    for r in records:
        r["on_pareto"] = r["id"] in front_ids
        r.setdefault("chosen", False)
        if r["status"] != "ok":
            continue
        r["quality_drop"] = bound.drop(r)
        r["meets_bound"] = bound.allows(r)
        ref: Any = r.get("node_baseline") or baseline  # ray: the original timed on r's node
        cost = float(r["cost_usd_per_1m"])
        r["cost_ratio"] = float(ref["cost_usd_per_1m"]) / cost if cost > 0 else math.inf
        r["throughput_ratio"] = float(r["throughput_per_s"]) / float(ref["throughput_per_s"])


def _choose(
    search: _Search,
    records: list[CandidateRecord],
    max_drop: float,
    confidence: float,
    stop: StopReason,
) -> tuple[CandidateRecord | None, list[str]]:
    """``constraints.choose`` with final-split evaluations (none when interrupted)."""
    baseline = _baseline(records)
    _mark(records, max_drop)
    if stop == "interrupted":
        return None, ["interrupted: no final check ran, so no model was chosen"]
    return choose(
        [r for r in records if r["tier"] != "baseline"],
        baseline,
        max_drop,
        final_result=lambda r: _final_result(search, r),
        confidence=confidence,
    )


def _final_result(search: _Search, record: CandidateRecord) -> Any:
    """The evaluation on the final split (one timed pass, per-row items for the bootstrap);
    None when it fails (its error is kept on the record)."""
    used: list[Outcome] = []
    try:
        return search.evaluate(
            search.model_refs[record["id"]], f"{record['id']}-final", "final", used,
            repeats=FINAL_REPEATS,
        )  # fmt: skip
    except FrugalError as e:
        record["final_error"] = str(e)
        return None


def _production_cost(
    meter: Any,
    run_id: str,
    candidates: int,
    book: Ledger,
    model: str | Path | Model,
    remote_cpu_s: float = 0.0,
) -> ProductionCost:
    """The search's usage (this process + the reaped server and its processes, + the CPU of
    evaluations that ran on Ray workers), plus the fine-tune that produced the original when
    frugal trained it (its manifest's run)."""
    cost = ProductionCost.of(meter.stop(extra_cpu_s=remote_cpu_s), run_id, candidates)
    trained = _training_run(book, model)
    if trained is not None and trained.usage is not None:
        cost = cost.plus(trained.usage, trained.id)
    return cost


def _training_run(book: Ledger, model: str | Path | Model) -> Any:
    from frugalml.models.load import resolve_path

    if isinstance(model, Model):
        return None
    try:
        manifest = json.loads((resolve_path(model) / "frugal.json").read_text())
    except (OSError, ValueError, FrugalError):
        return None
    run_id = manifest.get("train_run_id") or manifest.get("run_id")
    if not run_id:
        return None
    try:
        run = book.get(str(run_id))
    except FrugalError:
        return None
    return run if run.kind in ("finetune", "tune", "trial", "train") else None


def _save(result: OptimizeResult, search: _Search, guard: OutputGuard) -> None:
    """``best/`` (the chosen model, its manifest naming the search) and ``candidates.json``."""
    best_dir = result.out / "best"
    guard.remove(best_dir)  # only what frugal wrote there
    best = result.best
    if best is not None and (folder := best.get("model_dir")):
        shutil.copytree(folder, best_dir, dirs_exist_ok=True)
        man_path = best_dir / "frugal.json"
        man = json.loads(man_path.read_text())
        man.update(
            optimize_run_id=result.run_id,
            candidate_id=best["id"],
            candidate_run_id=best.get("run_id"),
            quality={
                k: best.get(k)
                for k in (*EVAL_KEYS, "final_quality", "final_drop_bound", "final_confidence")
            },
            production_cost=result.production_cost.to_dict() if result.production_cost else None,
        )
        man_path.write_text(json.dumps(man, indent=2, default=str) + "\n")
        statement = persist.cost_statement(best, result.baseline, result.run_id)
        persist.set_card_statement(best_dir, statement)  # README.md: cost and quality
        best["best_dir"] = str(best_dir)
    if not search.keep_candidates:  # the folders are removed after this write
        for r in result.candidates:
            r["model_dir"] = r.get("best_dir")
    _write_candidates(result.out, result.candidates_file())


def _write_candidates(out_dir: Path, content: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "candidates.json").write_text(json.dumps(content, indent=2, default=str) + "\n")


def _log_result(run: Any, result: OptimizeResult, paths: list[Path]) -> None:
    run.log_artifacts(
        candidates=str(result.out / "candidates.json"),
        **{p.name.replace(".", "_"): str(p) for p in paths},
        **({"best": str(result.out / "best")} if result.best else {}),
    )
    run.log_params(
        stop_reason=result.stop_reason,
        untried=result.untried,
        production_cost=result.production_cost.to_dict() if result.production_cost else None,
    )
    if result.best:
        run.log_quality(
            **{
                result.metric: float(result.best["quality"]),
                "baseline_" + result.metric: float(result.baseline["quality"]),
            }
        )
