"""Ray engine: the same search on Ray and locally, Ray's overhead per candidate, ledger fan-in.

    python bench/scale_ray.py --json [--postgres URL] [--rows 200] [--tasks 64] [--runs 50]

1. ``optimize`` on the bundled MiniLM (fidelity, ``--rows`` sentences, ONNX and ONNX int8
   candidates, ``repeats=2``) with ``--engine local`` and then ``--engine ray --max-parallel 2``
   on a fresh single-node Ray cluster (``num_cpus=2``): the chosen pipeline of each, and each
   candidate's cost ratio (vs the original timed on its node) side by side.
2. Ray's overhead per candidate: the driver's wall time from submitting an evaluation to its
   result minus the time spent inside the Ray task (scheduling, argument and result transfer),
   against the candidate's evaluation time.
3. Ledger fan-in: ``--tasks`` Ray tasks, released together, each writing ``--runs`` runs
   (``Ledger.record``) into one fresh PostgreSQL database: rows expected vs found, writes/s.

The machine's load (1-minute load average, before and after) is in the JSON: on a shared
machine the timings move with it. Targets (issue 16): same chosen pipeline, figures within
noise; overhead <= 10% of a MiniLM candidate's evaluation; 3,200 rows, none lost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _texts(path: Path, rows: int) -> Path:
    from frugalml.data import stdlib_sentences

    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in stdlib_sentences(rows, seed=7)))
    return path


def search(engine: str, data: Path, work: Path, max_parallel: int) -> dict[str, Any]:
    import frugalml
    from frugalml.passes import OnnxExport, QuantizeDynamic

    tiers = {"convert": [(OnnxExport(),), (OnnxExport(), QuantizeDynamic(per_channel=True))]}
    t0 = time.perf_counter()
    res = frugalml.optimize(
        "minilm", "fidelity", data, out=work / engine, ledger=f"sqlite:///{work / 'l.db'}",
        tiers=tiers, repeats=2, runtime_variants=0, max_quality_drop=5.0, engine=engine,
        max_parallel=max_parallel, threads=1,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    cands = []
    for r in res.candidates:
        cands.append({k: r.get(k) for k in (
            "id", "label", "status", "quality", "throughput_per_s", "cost_usd_per_1m",
            "cost_ratio", "eval_s", "engine_overhead_s", "node_id", "host",
        )})  # fmt: skip
    return {
        "engine": engine,
        "max_parallel": max_parallel,
        "chosen": res.best["label"] if res.best else None,
        "wall_s": wall,
        "candidates": cands,
    }


def _fanin_task(url: str, n: int, gate: Any) -> dict[str, Any]:
    import ray

    from frugalml.ledger import Ledger

    book = Ledger(url)
    ray.get(gate.wait.remote())  # every task released together
    t0 = time.time()
    for i in range(n):
        book.record(f"fan-in {i}", kind="bench", status="finished", params={"i": i})
    t1 = time.time()
    book.close()
    return {"start": t0, "end": t1, "pid": os.getpid()}


class _Gate:
    """Holds every writer until all have arrived (an async actor: waiters don't block it)."""

    def __init__(self) -> None:
        import asyncio

        self.event = asyncio.Event()
        self.count = 0

    async def wait(self) -> None:
        self.count += 1
        await self.event.wait()

    async def arrived(self) -> int:
        return self.count

    async def open(self) -> None:
        self.event.set()


def fan_in(ray: Any, url: str, tasks: int, runs: int) -> dict[str, Any]:
    from frugalml.ledger import Ledger

    Ledger(url).close()  # create the schema once, before the writers
    gate = ray.remote(num_cpus=0, max_concurrency=tasks + 8)(_Gate).remote()
    task = ray.remote(num_cpus=0.01)(_fanin_task)  # all at once: writers wait on the database
    refs = [task.remote(url, runs, gate) for _ in range(tasks)]
    ready_deadline = time.monotonic() + 900
    while ray.get(gate.arrived.remote()) < tasks and time.monotonic() < ready_deadline:
        time.sleep(1.0)  # every writer's process started and connected, waiting at the gate
    arrived = ray.get(gate.arrived.remote())
    ray.get(gate.open.remote())
    spans = ray.get(refs)
    with Ledger(url) as book:
        found = len(book.runs(kind="bench"))
    start = min(s["start"] for s in spans)
    end = max(s["end"] for s in spans)
    expected = tasks * runs
    return {
        "tasks": tasks,
        "runs_per_task": runs,
        "expected_rows": expected,
        "rows_found": found,
        "lost": expected - found,
        "processes": len({s["pid"] for s in spans}),
        "arrived_before_release": arrived,
        "wall_s": end - start,
        "writes_per_s": expected / (end - start),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--postgres", default=os.environ.get("FRUGAL_TEST_POSTGRES_URL"))
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--out", type=Path, help="also write the JSON here (Ray's raylet may print "
                    "warnings on stdout)")  # fmt: skip
    args = ap.parse_args()
    import ray
    import sqlalchemy as sa

    out: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_1m_before": os.getloadavg()[0],
        },
    }
    with tempfile.TemporaryDirectory(prefix="frugal-scale-") as tmp:
        work = Path(tmp)
        data = _texts(work / "texts.jsonl", args.rows)
        if not args.skip_search:
            local = search("local", data, work, 1)
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            on_ray = search("ray", data, work, 2)
            ray.shutdown()
            pairs = []
            for a, b in zip(local["candidates"], on_ray["candidates"], strict=True):
                if a["status"] == b["status"] == "ok" and a["cost_ratio"] and b["cost_ratio"]:
                    pairs.append(
                        {
                            "id": a["id"],
                            "label": a["label"],
                            "cost_ratio_local": a["cost_ratio"],
                            "cost_ratio_ray": b["cost_ratio"],
                            "relative_difference": b["cost_ratio"] / a["cost_ratio"] - 1,
                        }
                    )
            over = [c["engine_overhead_s"] for c in on_ray["candidates"] if c["engine_overhead_s"]]
            evals = [c["eval_s"] for c in on_ray["candidates"] if c["eval_s"]]
            out["search"] = {
                "local": local,
                "ray": on_ray,
                "same_chosen": local["chosen"] == on_ray["chosen"],
                "cost_ratios": pairs,
            }
            out["overhead"] = {
                "per_candidate_s": over,
                "median_overhead_s": statistics.median(over),
                "median_eval_s": statistics.median(evals),
                "fraction_of_eval": statistics.median(over) / statistics.median(evals),
            }
        if args.postgres:
            name = f"frugal_bench_scale_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.engine.make_url(args.postgres).set(database=name)
            try:
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                out["fan_in"] = fan_in(
                    ray, url.render_as_string(hide_password=False), args.tasks, args.runs
                )
                ray.shutdown()
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    out["machine"]["load_1m_after"] = os.getloadavg()[0]
    if args.out:
        args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out, indent=2, default=str) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
