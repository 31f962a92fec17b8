"""Connecting to a ledger database: URL checks, the SQLAlchemy engine, error wording.

Nothing here creates a file or a folder: a SQLite path is only *checked* (``check_sqlite_path``)
until the first write asks for it to be made (``make_sqlite_folder``).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from frugalml.errors import LedgerError

URL_HINT = "use sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/db"
READ_OPTION = "frugal_read"  # execution option: a read transaction, no write lock taken
_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")


def mask_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; works on malformed URLs."""
    return _PASSWORD.sub(r"\1***\3", url)


def describe_url(url: str) -> str:
    """The URL as it may be shown to the user: never with its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (exc.ArgumentError, ValueError):
        return mask_password(url)


def parse_url(url: str) -> sa.engine.URL:
    try:
        parsed = sa.engine.make_url(url)
        parsed.port  # noqa: B018 - a bad port only raises when read
    except (exc.ArgumentError, ValueError) as e:
        raise LedgerError(f"malformed ledger URL '{mask_password(url)}'", hint=URL_HINT) from e
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise LedgerError(
            "an in-memory SQLite ledger would lose every run",
            hint="give a file: sqlite:///path/to/ledger.db",
        )
    return parsed


def is_locked(error: exc.DBAPIError) -> bool:
    text = str(error.orig).lower() if error.orig else str(error).lower()
    return (
        "database is locked" in text
        or "database is busy" in text
        or "deadlock detected" in text
        or "could not serialize" in text
    )


def _virtual_fs(folder: Path) -> bool:
    """/proc, /sys and the like report no blocks at all: no ledger can live there."""
    try:
        return os.statvfs(folder).f_blocks == 0
    except OSError:
        return False


def check_sqlite_path(path: Path) -> bool:
    """Refuse a path no ledger can be at; True when the file exists. Creates nothing."""
    hint = "pass --ledger with a file path (sqlite:///path/to/ledger.db) or set FRUGAL_LEDGER"
    if str(path) in ("", "/") or path.is_dir():
        raise LedgerError(f"the ledger {path} is a directory, not a file", hint=hint)
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise LedgerError(
            f"cannot create the ledger folder {folder}: {existing} is not a directory", hint=hint
        )
    if folder.is_dir() and _virtual_fs(folder):
        raise LedgerError(f"the ledger {path} is on a virtual file system ({folder})", hint=hint)
    if not path.exists():
        return False
    if not stat.S_ISREG(path.stat().st_mode):
        raise LedgerError(f"the ledger {path} is not a regular file", hint=hint)
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as e:
        raise LedgerError(f"cannot read the ledger {path}: {e.strerror}", hint=hint) from e
    if head and head != b"SQLite format 3\x00":
        raise LedgerError(
            f"{path} is not a SQLite database (corrupted or another file)",
            hint="move it aside and frugal starts a new ledger; nothing was changed",
        )
    return True


def make_sqlite_folder(path: Path) -> None:
    """Before the first write: make the folder and check the file can be written."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LedgerError(
            f"cannot create the ledger folder {folder}: {e.strerror}",
            hint="pass --ledger with a writable location or set FRUGAL_LEDGER",
        ) from e
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise LedgerError(
            f"the ledger {path} is read-only",
            hint="pass --ledger with a writable location or set FRUGAL_LEDGER",
        )


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (at any depth) as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dump_json(value: Any) -> str:
    """JSON for the ledger's JSON columns: a figure that is not a number is stored as null.

    Python writes NaN as the bare word ``NaN``, which is not JSON: PostgreSQL refuses the row
    ("invalid input syntax for type json") while SQLite keeps it, so the same run would be
    lost on one backend and kept on the other. Both now store null ("no figure").
    """
    return json.dumps(_finite(value), allow_nan=False)


def create_engine(url: str, parsed: sa.engine.URL) -> Engine:
    """A pooled engine; SQLite connections run in WAL mode with ``BEGIN IMMEDIATE`` writes."""
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = sa.create_engine(
                url,
                connect_args={"timeout": 60, "check_same_thread": False},
                pool_size=2,
                max_overflow=8,
                json_serializer=dump_json,
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            pool_size=2,
            max_overflow=4,
            connect_args=args,
            json_serializer=dump_json,
        )
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as e:
        raise LedgerError(
            f"cannot use ledger URL {describe_url(url)}: {e}",
            hint="supported: sqlite:///FILE and postgresql+psycopg://...",
        ) from e


def wrap(url: str, e: exc.DBAPIError) -> LedgerError:
    """A database error as one line for the user (the URL without its password)."""
    shown = describe_url(url)
    msg = str(e.orig).strip().splitlines()[0] if e.orig else str(e).splitlines()[0]
    msg = mask_password(msg)
    if "not a database" in msg or "malformed" in msg:
        return LedgerError(
            f"the ledger {shown} is corrupted ({msg})",
            hint="move the file aside; frugal will start a new one",
        )
    if "readonly" in msg or "read-only" in msg:
        return LedgerError(
            f"the ledger {shown} is read-only ({msg})",
            hint="pass --ledger with a writable location",
        )
    return LedgerError(
        f"cannot use the ledger {shown}: {msg}",
        hint="check the URL, that the server is up and reachable, and the credentials",
    )


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout = 60000")
    cur.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(READ_OPTION):
        # A read: a deferred transaction sees one WAL snapshot and never waits for writers.
        conn.exec_driver_sql("BEGIN")
        return
    # Take the write lock at the start: a deferred transaction that later writes can fail
    # with SQLITE_BUSY without waiting, which would lose the write under concurrency.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
