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
