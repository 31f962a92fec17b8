"""Ledger write throughput and tracker overhead.

    python bench/ledger_throughput.py --json [--postgres URL] [--runs-per-writer 200]

1. Writes per second with 1 and 8 writer processes, each writing ``--runs-per-writer`` runs
   through ``Ledger.record`` (one write each) and then full ``track`` runs (a start insert and
   a finish update: two writes each), all writers released together; rows lost = expected
   minus rows found afterwards. SQLite always; PostgreSQL when ``--postgres`` is given (each
   case in a fresh database).
2. Tracker overhead on a loop of 1 ms busy steps: the same loop bare and inside ``track``
   (heartbeat every 0.5 s so beats happen during the loop), interleaved, median of repeats.

Targets (issue 2): >= 500 writes/s with 8 writers and 0 lost; overhead <= 1%.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from frugalml.ledger import Ledger


def _writer(url: str, n: int, mode: str, start: Any, done: Any) -> None:
    import frugalml

    book = Ledger(url)
    start.wait()
    t0 = time.perf_counter()
    for i in range(n):
        if mode == "record":
            book.record(f"r{i}", kind="bench", status="finished", params={"i": i})
        else:
            with frugalml.track(f"t{i}", ledger=book, kind="bench", instance="local"):
                pass
    done.put(time.perf_counter() - t0)
    book.close()


def writes_per_second(url: str, writers: int, n: int, mode: str) -> dict[str, Any]:
    with Ledger(url) as book:
        book.create_schema()  # schema in place before timing
    ctx = mp.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, n, mode, start, done)) for _ in range(writers)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let every writer import and connect before the start gun
    t0 = time.perf_counter()
    start.set()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    with Ledger(url) as book:
        found = book.count()
    expected = writers * n
    writes = expected * (1 if mode == "record" else 2)
    return {
        "writers": writers,
        "mode": mode,
        "runs_expected": expected,
        "runs_found": found,
        "lost": expected - found,
        "wall_s": round(wall, 3),
        "writes_per_s": round(writes / wall, 1),
        "runs_per_s": round(expected / wall, 1),
        "failed_writers": sum(1 for p in procs if p.exitcode != 0),
    }


def _busy_ms(n_steps: int) -> None:
    for _ in range(n_steps):
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass


def tracker_overhead(url: str, steps: int, repeats: int) -> dict[str, Any]:
    import frugalml

    book = Ledger(url)
    bare, tracked = [], []
    _busy_ms(100)  # warm-up
    with frugalml.track("warmup", ledger=book, instance="local"):
        pass
    for _ in range(repeats):  # interleaved: a drifting machine hits both sides alike
        t0 = time.perf_counter()
        _busy_ms(steps)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with frugalml.track("loop", ledger=book, instance="local", heartbeat_s=0.5):
            _busy_ms(steps)
        tracked.append(time.perf_counter() - t0)
    book.close()
    b, t = statistics.median(bare), statistics.median(tracked)
    return {
        "steps": steps,
        "step_ms": 1.0,
        "repeats": repeats,
        "bare_s_median": round(b, 4),
        "tracked_s_median": round(t, 4),
        "overhead_pct": round((t - b) / b * 100, 3),
    }


def _fresh_pg(admin_url: str) -> tuple[str, Any]:
    import sqlalchemy as sa

    name = f"frugal_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return url, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("FRUGAL_TEST_POSTGRES_URL"),
        help="PostgreSQL URL to benchmark too (default $FRUGAL_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--runs-per-writer", type=int, default=200)
    parser.add_argument("--steps", type=int, default=2000, help="1 ms steps per overhead loop")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "writes": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        backends: list[tuple[str, Any]] = []
        for writers in (1, 8):
            for mode in ("record", "track"):
                url = f"sqlite:///{Path(tmp) / f'{writers}-{mode}.db'}"
                backends.append(("sqlite", (url, writers, mode, None)))
                if args.postgres:
                    pg_url, drop = _fresh_pg(args.postgres)
                    backends.append(("postgresql", (pg_url, writers, mode, drop)))
        for backend, (url, writers, mode, drop) in backends:
            row = writes_per_second(url, writers, args.runs_per_writer, mode)
            row["backend"] = backend
            results["writes"].append(row)
            if drop:
                drop()
            if not args.json:
                print(row, file=sys.stderr)
        results["tracker_overhead"] = tracker_overhead(
            f"sqlite:///{Path(tmp) / 'overhead.db'}", args.steps, args.repeats
        )
    eight = [r for r in results["writes"] if r["writers"] == 8]
    results["targets"] = {
        "writes_per_s_8_writers_min": min(r["writes_per_s"] for r in eight),
        "writes_per_s_target": 500,
        "lost_total": sum(r["lost"] for r in results["writes"]),
        "overhead_pct": results["tracker_overhead"]["overhead_pct"],
        "overhead_target_pct": 1.0,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
