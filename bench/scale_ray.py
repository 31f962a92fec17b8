"""Ray engine: the same search on Ray and locally, Ray's overhead per candidate, ledger fan-in.

    python bench/scale_ray.py --json [--postgres URL] [--rows 200] [--tasks 64] [--runs 50]

1. ``optimize`` on the bundled MiniLM (fidelity, ``--rows`` sentences, ONNX and ONNX int8
   candidates, ``repeats=2``) with ``--engine local`` and then ``--engine ray --max-parallel 2``
   on a fresh single-node Ray cluster (``num_cpus=2``): the chosen pipeline of each, and each
   candidate's cost ratio (vs the original timed on its node) side by side.
1b. Noise: the local search's original and candidates (the same saved folders) are timed again
   ``--rounds`` times on both engines, interleaved (round r: each model on one engine then the
   other, the order alternating by round), and each round's cost ratios computed per engine.
   The spread of those ratios (min..max) is the noise; "within noise" is then a check: the two
   engines' ranges of repeated ratios overlap, and the searches' difference is no larger than
   the repeated ratios' spread.
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
import contextlib
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
        max_parallel=max_parallel, threads=1, keep_candidates=True,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    cands = []
    for r in res.candidates:
        cands.append({k: r.get(k) for k in (
            "id", "label", "status", "quality", "throughput_per_s", "cost_usd_per_1m",
            "cost_ratio", "eval_s", "engine_overhead_s", "node_id", "host",
        )})  # fmt: skip
    refs = {r["id"]: (r["model_dir"] or "minilm") for r in res.candidates if r["status"] == "ok"}
    return {
        "engine": engine,
        "max_parallel": max_parallel,
        "metric": res.metric,
        "refs": refs,
        "chosen": res.best["label"] if res.best else None,
        "wall_s": wall,
        "candidates": cands,
    }


def _timed(engine: Any, ref: str, work: Path, name: str, metric: str) -> dict[str, Any]:
    """One timed evaluation of ``ref`` on the select split, as the search's own (same spec)."""
    from frugalml.search.engines import Resources

    spec = {"task": "fidelity", "metric": metric, "seed": 0,
            "data": {"path": str(work / "data.jsonl"), "options": {}}, "device": "cpu",
            "threads": 1, "instance": None, "region": None, "repeats": 2, "model": ref,
            "split": "select", "reference": str(work / "reference-select.npy"),
            "out": str(work / name)}  # fmt: skip
    job = engine.submit(spec, work, Resources.for_spec(spec, None), tag=name)
    engine.wait([job])
    r = job.collect([])
    return {"cost_usd_per_1m": r.cost_usd_per_1m, "throughput_per_s": r.throughput_per_s}


def noise(local: dict[str, Any], work: Path, rounds: int) -> dict[str, Any]:
    """The local search's models timed ``rounds`` times on each engine, interleaved; each
    round's cost ratios (original / candidate, same engine, same round) and their spread."""
    from frugalml.search.engines import get_engine

    engines = {"local": get_engine("local").start(), "ray": get_engine("ray").start()}
    refs = local["refs"]
    base = "c00"
    timings: dict[str, dict[str, list[dict[str, Any]]]] = {e: {} for e in engines}
    try:
        for e, eng in engines.items():  # warm-up, not counted: each engine's first evaluation
            _timed(eng, refs[base], work, f"noise-{e}-warmup", local["metric"])
        for r in range(rounds):
            for cid, ref in refs.items():
                order = ["local", "ray"] if (r + int(cid[1:])) % 2 == 0 else ["ray", "local"]
                for e in order:
                    got = _timed(engines[e], ref, work, f"noise-{e}-{cid}-{r}", local["metric"])
                    timings[e].setdefault(cid, []).append(got)
    finally:
        for eng in engines.values():
            eng.close()
    out: dict[str, Any] = {"rounds": rounds, "per_candidate": []}
    for cid in refs:
        if cid == base:
            continue
        row: dict[str, Any] = {"id": cid}
        for e in engines:
            ratios = [
                b["cost_usd_per_1m"] / c["cost_usd_per_1m"]
                for b, c in zip(timings[e][base], timings[e][cid], strict=True)
            ]
            row[f"ratios_{e}"] = ratios
            row[f"median_{e}"] = statistics.median(ratios)
            row[f"spread_{e}"] = (max(ratios) - min(ratios)) / statistics.median(ratios)
        row["ranges_overlap"] = min(row["ratios_local"]) <= max(row["ratios_ray"]) and min(
            row["ratios_ray"]
        ) <= max(row["ratios_local"])
        row["median_difference"] = row["median_ray"] / row["median_local"] - 1
        out["per_candidate"].append(row)
    out["timings"] = timings
    return out


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


def _summary(out: dict[str, Any]) -> list[str]:
    """The figures in words (computed from this JSON, nothing typed by hand)."""
    m = out["machine"]
    lines = [f"{m['cpus']} CPUs; 1-minute load average {m['load_1m_before']:.1f} before, "
             f"{m['load_1m_after']:.1f} after"]  # fmt: skip
    if "search" in out:
        s = out["search"]
        lines.append(f"chosen: local {s['local']['chosen']!r}, ray {s['ray']['chosen']!r}")
        for p in s["cost_ratios"]:
            if "repeat_spread" not in p:
                continue
            lines.append(
                f"{p['label']}: cost ratio local {p['cost_ratio_local']:.2f}, ray "
                f"{p['cost_ratio_ray']:.2f} ({p['relative_difference']:+.1%}); repeated "
                f"timings' spread {p['repeat_spread']:.1%}: "
                + ("within noise" if p["within_noise"] else "NOT within noise")
            )
        for n in s["noise"]["per_candidate"]:
            lo = ", ".join(f"{x:.2f}" for x in n["ratios_local"])
            ra = ", ".join(f"{x:.2f}" for x in n["ratios_ray"])
            lines.append(f"{n['id']} repeated ratios ({s['noise']['rounds']} rounds, "
                         f"interleaved): local {lo}; ray {ra}")  # fmt: skip
        o = out["overhead"]
        lines.append(f"Ray overhead per candidate: median {o['median_overhead_s']:.3f} s vs "
                     f"median evaluation {o['median_eval_s']:.2f} s = "
                     f"{o['fraction_of_eval']:.2%}")  # fmt: skip
    if "fan_in" in out:
        f = out["fan_in"]
        lines.append(f"fan-in: {f['tasks']} tasks x {f['runs_per_task']} runs: "
                     f"{f['rows_found']} of {f['expected_rows']} rows, {f['lost']} lost, "
                     f"{f['writes_per_s']:.0f} writes/s")  # fmt: skip
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--postgres", default=os.environ.get("FRUGAL_TEST_POSTGRES_URL"))
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3, help="repeated timings per engine (noise)")
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
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            on_ray = search("ray", data, work, 2)
            ray.shutdown()
            out["machine"]["load_1m_before_noise"] = os.getloadavg()[0]
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
            rep = noise(local, work / "local" / ".work", args.rounds)
            ray.shutdown()
            spread = {r["id"]: r for r in rep["per_candidate"]}
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
                    if a["id"] in spread:  # the difference vs the noise of repeated timings
                        n = spread[a["id"]]
                        noise_frac = max(n["spread_local"], n["spread_ray"])
                        pairs[-1]["repeat_spread"] = noise_frac
                        pairs[-1]["within_noise"] = bool(
                            n["ranges_overlap"]
                            and abs(pairs[-1]["relative_difference"]) <= noise_frac
                        )
            over = [c["engine_overhead_s"] for c in on_ray["candidates"] if c["engine_overhead_s"]]
            evals = [c["eval_s"] for c in on_ray["candidates"] if c["eval_s"]]
            out["search"] = {
                "local": local,
                "ray": on_ray,
                "same_chosen": local["chosen"] == on_ray["chosen"],
                "cost_ratios": pairs,
                "noise": rep,
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
                ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
                out["fan_in"] = fan_in(
                    ray, url.render_as_string(hide_password=False), args.tasks, args.runs
                )
                ray.shutdown()
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    out["machine"]["load_1m_after"] = os.getloadavg()[0]
    out["summary"] = _summary(out)
    if args.out and args.out.exists():  # an earlier run's record the docs cite, kept
        with contextlib.suppress(ValueError, OSError):
            old = json.loads(args.out.read_text())
            if "first_run_concurrent_timing" in old:
                out["first_run_concurrent_timing"] = old["first_run_concurrent_timing"]
    if args.out:
        args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(json.dumps(out, indent=2, default=str) if args.json else out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
