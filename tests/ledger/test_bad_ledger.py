"""Bad ledgers give a one-line message, a non-zero exit, and never lose existing rows."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from frugalml.ledger import Ledger


def _no_traceback(out) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("frugal: error:")
    assert len(out.stderr.strip().splitlines()) <= 2


def test_corrupted_sqlite_file_is_refused_and_left_alone(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "ledger.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    before = bad.read_bytes()
    out = cli("runs", "--ledger", str(bad))
    assert out.returncode != 0
    _no_traceback(out)
    assert "not a SQLite database" in out.stderr
    assert bad.read_bytes() == before


def test_damaged_sqlite_pages_are_reported(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ledger.db"
    with Ledger(str(path)) as book:
        for i in range(50):
            book.record(f"r{i}", kind="job", status="finished", params={"pad": "x" * 500})
    con = sqlite3.connect(path)  # checkpoint the WAL into the main file
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 4] = os.urandom(4096 * 2)  # wreck some b-tree pages
    path.write_bytes(bytes(data))
    damaged = path.read_bytes()
    out = cli("runs", "--ledger", str(path), "--limit", "100")
    assert out.returncode == 2
    _no_traceback(out)
    assert "is corrupted" in out.stderr and "move the file aside" in out.stderr
    assert path.read_bytes() == damaged  # frugal never "repairs" a ledger by rewriting it


def _run_read_only(folder: Path, *args: str):  # type: ignore[no-untyped-def]
    """Run the CLI with ``folder`` truly read-only: permissions for a normal user; for root
    (which ignores permissions) a read-only bind mount in a private mount namespace."""
    import shutil
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "frugalml", *args]
    if os.geteuid() != 0:
        folder.chmod(0o500)
        for f in folder.iterdir():
            f.chmod(0o400)
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        finally:
            folder.chmod(0o700)
    if not shutil.which("unshare"):
        pytest.skip("running as root without unshare(1): cannot make a read-only location")
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
    )
    out = subprocess.run(
        ["unshare", "-m", "sh", "-c", script, "sh", *cmd],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "mount:" in out.stderr or "unshare:" in out.stderr:
        pytest.skip(f"cannot make a read-only mount here: {out.stderr.strip()[:120]}")
    return out


def test_read_only_location(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    with Ledger(str(folder / "ledger.db")) as book:
        book.record("kept", kind="job", status="finished")
    out = _run_read_only(
        folder,
        "measure",
        "--ledger",
        str(folder / "ledger.db"),
        "--",
        sys_executable(),
        "-c",
        "pass",
    )
    assert out.returncode == 2, out.stderr
    _no_traceback(out)
    assert "read-only" in out.stderr
    with Ledger(str(folder / "ledger.db")) as book:
        assert [r.name for r in book.runs()] == ["kept"]


def sys_executable() -> str:
    import sys

    return sys.executable


def test_folder_that_cannot_be_created(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = cli("runs", "--ledger", str(blocker / "sub" / "ledger.db"))
    assert out.returncode != 0
    _no_traceback(out)
    assert "cannot create the ledger folder" in out.stderr


@pytest.mark.parametrize(
    "url, expect",
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/nodb", "cannot use the ledger"),
        ("notadriver://x/y", "cannot use ledger URL"),
        ("sqlite:///:memory:", "in-memory"),
        ("postgresql+psycopg://user@host:notaport/db", "ledger URL"),
    ],
)
def test_unusable_urls(url: str, expect: str, cli) -> None:  # type: ignore[no-untyped-def]
    out = cli("runs", "--ledger", url)
    assert out.returncode == 2
    _no_traceback(out)
    assert expect in out.stderr


def test_existing_rows_survive_a_failed_open_elsewhere(sqlite_url: str, cli) -> None:  # type: ignore[no-untyped-def]
    with Ledger(sqlite_url) as book:
        book.record("precious", kind="job", status="finished")
    cli("runs", "--ledger", "postgresql+psycopg://nobody@127.0.0.1:1/nodb")
    out = cli("runs", "--json", "--ledger", sqlite_url)
    assert [r["name"] for r in json.loads(out.stdout)] == ["precious"]


@pytest.mark.parametrize(
    "where, expect",
    [
        ("/proc/x.db", "virtual file system"),
        ("/tmp", "is a directory"),
        ("sqlite:////", "is a directory"),
    ],
)
def test_paths_no_ledger_can_be_at(where: str, expect: str, cli) -> None:  # type: ignore[no-untyped-def]
    for args in (["runs"], ["measure", "--", "true"]):
        out = cli(args[0], "--ledger", where, *args[1:])
        assert out.returncode == 2, out.stderr
        _no_traceback(out)
        assert expect in out.stderr
    assert not Path("/proc/x.db.lock").exists()


def _foreign_db(path: Path) -> bytes:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('ada')")
    con.commit()
    con.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["runs", "--json"],
        ["show", "abcdef"],
        ["measure", "--", "true"],
        ["runs", "--export", "mlflow", "--tracking-uri", "sqlite:///never.db"],
    ],
)
def test_another_programs_database_is_refused_and_left_byte_identical(
    tmp_path: Path, cli, args: list[str]
) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "app.db"
    before = _foreign_db(other)
    (tmp_path / "elsewhere").mkdir()  # the command's folder: a wrong export lands there
    out = cli(args[0], "--ledger", str(other), *args[1:], cwd=tmp_path / "elsewhere")
    assert out.returncode == 2, out.stderr
    _no_traceback(out)
    assert "not a frugal ledger" in out.stderr
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "elsewhere"]  # no -wal...
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_reading_a_missing_ledger_creates_nothing(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    for args in (["runs"], ["runs", "--json"], ["show", "abcdef"]):
        cli(*args, "--ledger", str(missing))
    out = cli("runs", "--json", "--ledger", str(missing))
    assert out.returncode == 0 and json.loads(out.stdout) == []
    assert list(tmp_path.iterdir()) == []  # no folder, no file
    empty = tmp_path / "empty.db"
    assert cli("runs", "--ledger", str(empty)).returncode == 0
    assert not empty.exists()
    with Ledger(str(empty)) as book:  # the first write creates it
        book.record("first", kind="job", status="finished")
    assert json.loads(cli("runs", "--json", "--ledger", str(empty)).stdout)[0]["name"] == "first"


def test_a_newer_schema_is_refused(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ledger.db"
    with Ledger(str(path)) as book:
        book.record("x", kind="job", status="finished")
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    out = cli("runs", "--ledger", str(path))
    assert out.returncode == 2 and "upgrade frugal" in out.stderr


def test_malformed_postgres_url_never_shows_the_password(cli) -> None:  # type: ignore[no-untyped-def]
    for url in (
        "postgresql+psycopg://user:s3cr3t-pw@host:notaport/db",
        "postgresql+psycopg://user:s3cr3t-pw@127.0.0.1:1/db",
    ):
        out = cli("runs", "--ledger", url)
        assert out.returncode == 2
        _no_traceback(out)
        assert "s3cr3t-pw" not in out.stderr and "***" in out.stderr


def _hold_lock(path: Path):  # type: ignore[no-untyped-def]
    """Another process holding the writers' lock of the ledger at ``path``."""
    import subprocess
    import sys

    code = (
        "import fcntl, sys, time\n"
        "fd = open(sys.argv[1], 'a')\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, f"{path}.lock"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_lock_does_not_block_reads_and_writes_give_up_with_one_line(
    tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    import time

    path = tmp_path / "ledger.db"
    with Ledger(str(path)) as book:
        book.record("kept", kind="job", status="finished")
        book.start_run("orphan", pid=2**22 + 12345)  # a dead pid: reads would reap it
    holder = _hold_lock(path)
    try:
        started = time.monotonic()
        out = cli("runs", "--json", "--ledger", str(path), timeout=60)
        assert out.returncode == 0, out.stderr  # reads take no writers' lock
        assert {r["name"] for r in json.loads(out.stdout)} == {"kept", "orphan"}
        assert time.monotonic() - started < 30
        with Ledger(str(path)) as book:
            assert book.count() == 2
        out = cli(
            "measure",
            "--ledger",
            str(path),
            "--",
            "true",
            env={"FRUGAL_LEDGER_LOCK_TIMEOUT_S": "3"},
            timeout=60,
        )
        assert out.returncode == 2
        assert "waiting for the ledger's lock" in out.stderr
        assert "gave up after" in out.stderr and "Traceback" not in out.stderr
    finally:
        holder.kill()
        holder.wait()
