"""A ledger that goes away while a command runs: the command's exit code wins, the finished run
is spooled locally and written by the next command that reaches the ledger (nothing lost).

The PostgreSQL server here is a throwaway one of this test's own (own port, own data folder,
started with scripts/start_postgres.sh), which the test stops and starts; the shared test
server is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from frugalml.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "start_postgres.sh"


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, port: int, data: Path) -> None:
        self.port, self.data = port, data
        self.env = {**os.environ, "FRUGAL_PG_PORT": str(port), "FRUGAL_PG_DATA": str(data)}

    def start(self) -> str:
        out = subprocess.run(
            ["bash", str(SCRIPT)], capture_output=True, text=True, env=self.env, timeout=120
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().split("=", 1)[1]

    def stop(self) -> None:
        bin_dir = _pg_bin()
        cmd = [str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, capture_output=True, timeout=60, check=False)


@pytest.fixture
def own_postgres() -> Iterator[tuple[_Server, str]]:
    """A private PostgreSQL server for one test (stopped and deleted afterwards)."""
    if _pg_bin() is None or (os.geteuid() == 0 and not shutil.which("runuser")):
        if os.environ.get("FRUGAL_REQUIRE_POSTGRES", "") not in ("", "0"):
            pytest.fail("FRUGAL_REQUIRE_POSTGRES is set but PostgreSQL binaries are absent")
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    data = Path(tempfile.mkdtemp(prefix="frugal-pg-spool-"))
    data.rmdir()  # start_postgres.sh makes it, owned by the server's user
    server = _Server(_free_port(), data)
    try:
        url = server.start()
        yield server, url
    finally:
        server.stop()
        shutil.rmtree(data, ignore_errors=True)


def test_ledger_down_at_the_end_keeps_exit_code_and_loses_nothing(
    own_postgres: tuple[_Server, str], _isolated_home: Path
) -> None:
    server, url = own_postgres
    Ledger(url).record("before", kind="job", status="finished")  # a ledger with a schema
    cmd = [sys.executable, "-m", "frugalml", "measure", "--name", "slept", "--ledger", url]
    proc = subprocess.Popen(
        [*cmd, "--", "sh", "-c", "sleep 4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    with Ledger(url) as book:  # wait until the command's run is in the ledger
        while not book.runs(name="slept") and time.monotonic() < deadline:
            time.sleep(0.1)
        run_id = book.runs(name="slept")[0].id
    server.stop()  # the ledger goes away while the command sleeps
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err  # the command's exit code, not the ledger's trouble
    assert "Traceback" not in err
    assert "warning" in err and "spool" in err
    spooled = list((_isolated_home / "spool").glob("*.json"))
    assert [p.stem for p in spooled] == [run_id]

    server.start()
    listed = subprocess.run(
        [sys.executable, "-m", "frugalml", "runs", "--json", "--ledger", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    run = {r["id"]: r for r in json.loads(listed.stdout)}[run_id]
    assert run["status"] == "finished" and run["error"] is None
    assert run["usage"] is not None and run["wall_s"] >= 4.0
    assert list((_isolated_home / "spool").glob("*.json")) == []  # written, then removed


def test_spooled_finish_for_a_vanished_row_is_inserted(
    ledger_url: str, _isolated_home: Path
) -> None:
    """The spool keeps the whole row: even a ledger that lost the start gets the run."""
    from frugalml.ledger import spool

    with Ledger(ledger_url) as book:
        book.record("other", kind="job", status="finished")
    row = {
        "id": "ab" * 16,
        "name": "kept",
        "kind": "command",
        "status": "finished",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": "2026-01-01T00:00:05+00:00",
        "heartbeat_at": "2026-01-01T00:00:05+00:00",
        "heartbeat_s": 15.0,
        "parent_id": None,
        "host": "h",
        "pid": 1,
        "pid_started_at": None,
        "params": {"argv": ["true"]},
        "usage": None,
        "quality": {},
        "artifacts": {},
        "error": None,
        "hardware": None,
        "environment": {},
    }
    spool.keep(ledger_url, row)
    spool.keep("sqlite:////elsewhere.db", {**row, "id": "cd" * 16})  # another ledger's
    with Ledger(ledger_url) as book:
        assert book.get("abab").name == "kept"
        assert book.count() == 2
    assert [p.stem for p in (_isolated_home / "spool").glob("*.json")] == ["cd" * 16]


def test_a_tracked_block_ending_on_a_locked_ledger_is_spooled_then_written(
    sqlite_url: str,
    _isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import frugalml

    monkeypatch.setenv("FRUGAL_LEDGER_LOCK_TIMEOUT_S", "0.5")
    lock = sqlite_url.removeprefix("sqlite:///") + ".lock"
    code = (
        "import fcntl, sys, time\n"
        "fd = open(sys.argv[1], 'a')\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    with frugalml.track("locked-out", ledger=sqlite_url) as run:
        holder = subprocess.Popen([sys.executable, "-c", code, lock], stdout=subprocess.PIPE)
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    try:
        assert "warning" in capsys.readouterr().err  # the block ended; the user was told
        assert run.usage is not None
        assert [p.stem for p in (_isolated_home / "spool").glob("*.json")] == [run.id]
        with Ledger(sqlite_url) as book:  # still locked: reads work, the run is not lost
            assert book.get(run.id).status == "running"
    finally:
        holder.kill()
        holder.wait()
    with Ledger(sqlite_url) as book:  # the next handle that reaches the ledger writes it
        rec = book.get(run.id)
    assert rec.status == "finished" and rec.usage == run.usage
    assert list((_isolated_home / "spool").glob("*.json")) == []
