"""The search loop for an engine that runs candidates concurrently (``ray``).

Same ask/build/evaluate/tell as ``runner._loop``, with up to ``engine.max_parallel``
evaluations in flight. Building stays in this process (candidates share their pipelines'
prefixes); evaluations run where the engine puts them. The strategy is asked for a new
candidate only while its queue holds one or nothing is in flight, so the later tiers (runtime
variants of the best so far) are decided on the same results as in a sequential search.

Timing fairness: the original is evaluated first, alone; then it is timed once more on every
other node that may run candidates (pinned there). Each candidate's ratios are against the
baseline timed on its own node (``node_baseline``); one that ran on a node without its own
baseline (a node that joined later) says so in ``baseline_note``.

Prices: a candidate that ran on a node declaring its instance type (``FRUGAL_INSTANCE``) is
priced as that node, both its cost per 1M requests (in the task) and its ledger run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from frugalml.errors import FrugalError
from frugalml.search.engines import Resources
from frugalml.search.result import CandidateRecord, StopReason
from frugalml.search.space import Strategy
from frugalml.search.worker import Outcome

_NODE_KEYS = ("throughput_per_s", "cost_usd_per_1m", "latency_p50_ms", "quality")


@dataclass
class _Loop:
    """What the loop carries between steps: the search, its strategy and records, and the
    evaluations in flight (candidates, and baselines pinned to other nodes)."""

    search: Any
    strategy: Strategy
    records: list[CandidateRecord]
    max_drop: float
    out_dir: Path
    runner: Any
    inflight: dict[Any, tuple[Any, CandidateRecord, Any, list[Outcome], float]] = field(
        default_factory=dict
    )
    node_jobs: dict[Any, str] = field(default_factory=dict)  # baselines pinned to other nodes
    node_todo: list[str] = field(default_factory=list)  # nodes whose baseline waits for room
    baseline_done: bool = False

    def finish(self, job: Any) -> None:
        """Collect one candidate's evaluation, price it as its node, record and tell it."""
        search, runner = self.search, self.runner
        cand, record, meter, used, t1 = self.inflight.pop(job)
        try:
            result = job.collect(used)
            record["eval_s"] = time.perf_counter() - t1
            record.update(result.to_dict())
        except FrugalError as e:
            record["status"], record["error"] = "failed", str(e)
        except Exception as e:
            record["status"], record["error"] = "failed", f"{type(e).__name__}: {e}"[:500]
        _place(record, job)
        search.remote_cpu_s += sum(o.cpu_s for o in used)
        meter.price = _node_price(job) or meter.price
        usage = meter.stop(extra_cpu_s=sum(o.cpu_s for o in used))
        if used and used[-1].peak_rss_bytes > usage.peak_host_bytes:
            usage = replace(usage, peak_host_bytes=used[-1].peak_rss_bytes)
        record["run_id"] = runner.record_run(search, record, usage)
        self.strategy.tell(cand, record)
        self.records.append(record)
        search.emit("done", {"record": record})
        if cand.tier == "baseline":
            self.baseline_done = True
            if record["status"] == "ok":
                search.node_baselines[record.get("node_id")] = _figures(record)
                self.node_todo.extend(_other_nodes(search))
        attach_node_baselines(search, self.records)
        runner.mark(self.records, self.max_drop)
        runner.write_candidates(self.out_dir, {"stop_reason": None, "candidates": self.records})

    def pin_node_baselines(self) -> None:
        """Time the original on each other node that is free now."""
        engine = self.search.engine
        for nid in [n for n in self.node_todo if _is_free(engine, n)]:
            self.node_todo.remove(nid)
            base = next(r for r in self.records if r["tier"] == "baseline")
            name = f"{base['id']}-node-{nid[:8]}"
            ref = self.search.model_refs[base["id"]]
            self.node_jobs[self.search.submit(ref, name, "select", nid)] = nid

    def start(self, cand: Any) -> bool:
        """Build ``cand`` here and submit its evaluation; False when the original itself
        could not be built (the caller reports it)."""
        search, runner = self.search, self.runner
        search.emit("start", {"candidate": cand, "queued": self.strategy.estimate_remaining()})
        meter = runner.meter(search.price)
        record = runner.new_record(cand, search.run_id)
        t0 = time.perf_counter()
        try:
            search.emit("phase", {"candidate": cand, "text": "applying passes"})
            model_ref = runner.build(search, cand, record)
        except FrugalError as e:
            record["status"], record["error"] = "failed", str(e)
            record["run_id"] = runner.record_run(search, record, meter.stop())
            self.strategy.tell(cand, record)
            self.records.append(record)
            search.emit("done", {"record": record})
            if cand.tier == "baseline":
                return False
            runner.mark(self.records, self.max_drop)
            return True
        record["prepare_s"] = time.perf_counter() - t0
        search.emit("phase", {"candidate": cand, "text": "evaluating"})
        try:
            job = search.submit(model_ref, cand.id, "select")
        except FrugalError as e:  # e.g. no node has the GPU it needs
            job = _Refused(e)
        self.inflight[job] = (cand, record, meter, [], time.perf_counter())
        return True

    def may_start(self, need: Resources) -> bool:
        engine = self.search.engine
        return (
            len(self.inflight) < engine.max_parallel
            and (not self.inflight or (self.baseline_done and self.strategy.pending() > 0))
            and (_has_room(engine, need) or not (self.inflight or self.node_jobs))
        )

    def node_baseline_done(self, job: Any) -> None:
        _finish_node_baseline(self.search, job, self.node_jobs.pop(job))
        attach_node_baselines(self.search, self.records)
        if self.records:
            self.runner.mark(self.records, self.max_drop)


def parallel_loop(
    search: Any,
    strategy: Strategy,
    records: list[CandidateRecord],
    deadline: float,
    max_drop: float,
    out_dir: Path,
    runner: Any,
) -> tuple[StopReason, int]:
    """``runner``: the search's steps (``meter``, ``new_record``, ``build``, ``record_run``,
    ``mark``, ``write_candidates``), handed in by ``runner`` so this module does not import it."""
    loop = _Loop(search, strategy, records, max_drop, out_dir, runner)
    stop: StopReason = "completed"
    untried = 0
    try:
        while True:
            loop.pin_node_baselines()
            need = Resources.for_spec(search.spec, None)
            while loop.may_start(need):
                cand = strategy.ask()
                if cand is None:
                    break
                if cand.tier != "baseline" and time.monotonic() > deadline:
                    untried = 1 + strategy.untried()
                    search.emit("budget", {"untried": untried, "done": len(records)})
                    stop = "budget"
                    break
                if not loop.start(cand):
                    return "completed", 0  # the caller reports the unusable original
            if stop == "budget" and not loop.inflight:
                break
            jobs = list(loop.inflight) + list(loop.node_jobs)
            if not jobs:
                if loop.node_todo:  # nothing runs, so each of those nodes is free: go round
                    continue
                break
            refused = [j for j in loop.inflight if isinstance(j, _Refused)]
            job = refused[0] if refused else search.engine.wait(jobs)
            if job in loop.node_jobs:
                loop.node_baseline_done(job)
            else:
                loop.finish(job)
        for job in list(loop.node_jobs):  # a node's baseline still running: wait for it
            _finish_node_baseline(search, job, loop.node_jobs.pop(job))
        attach_node_baselines(search, records)
    except KeyboardInterrupt:
        if not any(r["tier"] == "baseline" and r["status"] == "ok" for r in records):
            raise
        return "interrupted", strategy.untried() + len(loop.inflight)
    return stop, untried


class _Refused:
    """A submission the engine refused: collected as that error, at once."""

    def __init__(self, error: FrugalError) -> None:
        self.error = error
        self.placement: dict[str, Any] = {}
        self.ref = None

    def collect(self, used: list[Outcome] | None = None) -> Any:
        raise self.error


def _place(record: CandidateRecord, job: Any) -> None:
    p = getattr(job, "placement", {}) or {}
    record["node_id"] = p.get("node_id")
    record["host"] = p.get("host")
    record["hardware"] = p.get("hardware")
    record["worker_pid"] = p.get("pid")
    if "started_at" in p:
        record["eval_window"] = [p["started_at"], p.get("ended_at")]
    if getattr(job, "overhead_s", None) is not None:
        record["engine_overhead_s"] = job.overhead_s


def _node_price(job: Any) -> Any:
    """The price of the node the job ran on when that node declares its instance type (as the
    node priced it, with its own catalog): the candidate's run, whose hardware is that node's,
    is priced as that machine."""
    price = (getattr(job, "placement", {}) or {}).get("price")
    if not price:
        return None
    from frugalml.measure.prices import Price

    return Price(**price)


def _figures(record: CandidateRecord) -> dict[str, Any]:
    return {
        "node_id": record.get("node_id"),
        "host": record.get("host"),
        **{k: record.get(k) for k in _NODE_KEYS},
    }


def _other_nodes(search: Any) -> list[str]:
    """The other nodes that can run candidates: the original is timed once more on each."""
    need = Resources.for_spec(search.spec, None)
    out = []
    for node in search.engine.nodes():
        res = node.get("resources", {})
        if node["node_id"] in search.node_baselines or res.get("CPU", 0) < need.num_cpus:
            continue
        if need.num_gpus and res.get("GPU", 0) < need.num_gpus:
            continue
        out.append(str(node["node_id"]))
    return out


def _is_free(engine: Any, node_id: str) -> bool:
    return bool(getattr(engine, "is_free", lambda _n: True)(node_id))


def _has_room(engine: Any, need: Resources) -> bool:
    return bool(getattr(engine, "has_room", lambda _r: True)(need))


def _finish_node_baseline(search: Any, job: Any, node_id: str) -> None:
    used: list[Outcome] = []
    try:
        result = job.collect(used)
    except FrugalError as e:
        search.emit("log", {"text": f"baseline on node {node_id[:8]} failed: {e}"})
        return
    finally:
        search.remote_cpu_s += sum(o.cpu_s for o in used)
    rec: dict[str, Any] = result.to_dict()
    _place(rec, job)  # type: ignore[arg-type]
    search.node_baselines[node_id] = _figures(rec)  # type: ignore[arg-type]


def attach_node_baselines(search: Any, records: list[CandidateRecord]) -> None:
    """Each candidate's baseline: the original timed on the candidate's node, or (a node
    without one) the first baseline, said in ``baseline_note``."""
    main = next((r for r in records if r["tier"] == "baseline"), None)
    for r in records:
        if r["tier"] == "baseline" or r["status"] != "ok":
            continue
        nb = search.node_baselines.get(r.get("node_id"))
        if nb is not None:
            r["node_baseline"] = nb
            r.pop("baseline_note", None)
        elif main is not None:
            r.pop("node_baseline", None)
            r["baseline_note"] = (
                f"ran on node {str(r.get('node_id'))[:8]} where the original was not timed; "
                f"ratios are against the original on node {str(main.get('node_id'))[:8]}"
            )
