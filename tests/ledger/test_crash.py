"""A process killed with SIGKILL mid-run leaves a run later reported as crashed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

from frugalml.ledger import Ledger

SCRIPT = textwrap.dedent("""
    import sys, time, frugalml
    with frugalml.track("long-job", ledger=sys.argv[1], heartbeat_s=0.2) as run:
        run.log_params(step=1)
        print(run.id, flush=True)
        end = time.process_time() + 0.3  # some CPU work, for the heartbeats to carry
        while time.process_time() < end:
            pass
        time.sleep(600)
""")


def test_sigkill_mid_run_is_reported_crashed(ledger_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, ledger_url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert len(run_id) == 32
    time.sleep(0.5)  # a few heartbeats
    with Ledger(ledger_url) as book:
        assert book.get(run_id).status == "running"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out = cli("runs", "--json", "--ledger", ledger_url)
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    assert rows[run_id]["status"] == "crashed"
    assert rows[run_id]["params"] == {"step": 1}  # what it wrote before dying is kept
    with Ledger(ledger_url) as book:  # the database stays readable and writable
        book.record("after", kind="job", status="finished")
        assert book.count() == 2


def test_stale_heartbeat_from_another_host_is_crashed(ledger_url: str) -> None:
    import sqlalchemy as sa

    from frugalml.ledger.tables import runs

    with Ledger(ledger_url) as book:
        run_id = book.start_run("remote", heartbeat_s=0.1)
        with book._tx() as conn:  # as if written by a machine that has since vanished
            conn.execute(sa.update(runs).where(runs.c.id == run_id).values(host="gone-host"))
        time.sleep(0.6)  # > 4 heartbeat intervals of silence
        assert book.get(run_id).status == "crashed"


def test_sigkilled_run_keeps_last_heartbeat_usage_and_time(ledger_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, ledger_url], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    deadline = time.monotonic() + 60
    with Ledger(ledger_url) as book:  # wait for a beat that carries the CPU work
        while time.monotonic() < deadline:
            usage = book.get(run_id).usage
            if usage is not None and usage.cpu_s >= 0.25:
                break
            time.sleep(0.1)
        last_beat = book.get(run_id).heartbeat_at
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = datetime.now(UTC)
    time.sleep(0.5)  # the crash is noticed later than it happened
    with Ledger(ledger_url) as book:
        rec = book.get(run_id)
    assert rec.status == "crashed"
    assert rec.usage is not None and rec.usage.cpu_s >= 0.25 and rec.usage.wall_s > 0
    assert rec.usage.energy_j > 0 and rec.usage.cost_usd > 0
    assert last_beat is not None and rec.ended_at is not None
    assert last_beat <= rec.ended_at <= killed_at  # the last beat's time, not when noticed
    assert rec.ended_at == rec.heartbeat_at
