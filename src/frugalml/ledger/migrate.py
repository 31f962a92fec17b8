"""The ledger's schema: what a database holds (``inspect``) and bringing it to head (``upgrade``).

A database is one of:

- ``absent``: no ledger yet (a SQLite file that does not exist, an empty database);
- ``current`` / ``behind``: a frugal ledger at or before this frugal's newest migration;
- anything else is refused: a newer frugal's ledger ("upgrade frugal") or another program's
  database ("not a frugal ledger"), which frugal never writes into.

Only writers call ``upgrade``; reading commands never create or migrate anything.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from frugalml.errors import LedgerError

SCHEMA_HEAD = "0002"  # newest migration; tests check it matches ledger/migrations/versions
KNOWN_REVISIONS = ("0001", "0002")
SchemaState = Literal["absent", "current", "behind"]
_PG_MIGRATION_LOCK = 7210421


def _classify(
    url_shown: str, tables: set[str], version: str | None, *, shared: bool
) -> SchemaState:
    """``shared``: a server database may hold other programs' tables beside the ledger's."""
    if version is not None:
        if version == SCHEMA_HEAD:
            return "current"
        if version in KNOWN_REVISIONS:
            return "behind"
        if version.isdigit() and len(version) == len(SCHEMA_HEAD) and version > SCHEMA_HEAD:
            raise LedgerError(
                f"the ledger's schema ({version}) is newer than this frugal "
                f"understands ({SCHEMA_HEAD})",
                hint="upgrade frugal",
            )
        raise _foreign(url_shown, f"its alembic_version is {version!r}")
    if "runs" in tables:
        raise _foreign(url_shown, "it has a runs table but no frugal schema version")
    if tables and not shared:
        raise _foreign(url_shown, f"it holds other tables ({', '.join(sorted(tables)[:3])})")
    return "absent"


def _foreign(shown: str, why: str) -> LedgerError:
    return LedgerError(
        f"{shown} is not a frugal ledger ({why}); nothing was changed",
        hint="give --ledger a new file or a frugal ledger",
    )


def inspect_sqlite(path: Path, shown: str) -> SchemaState:
    """Read a SQLite file's tables without writing a byte (``mode=ro``)."""
    if not path.exists():
        return "absent"
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    try:
        try:
            con = sqlite3.connect(uri, uri=True, timeout=60)
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            # A WAL ledger in a read-only place cannot get its -shm file: read it as it is.
            con = sqlite3.connect(uri + "&immutable=1", uri=True, timeout=60)
        try:
            tables = {
                r[0]
                for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if not str(r[0]).startswith("sqlite_")
            }
            version = None
            if "alembic_version" in tables:
                row = con.execute("SELECT version_num FROM alembic_version").fetchone()
                version = str(row[0]) if row else None
                tables.discard("alembic_version")
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "not a database" in first or "malformed" in first:
            raise LedgerError(
                f"the ledger {shown} is corrupted ({first})",
                hint="move the file aside; frugal will start a new one",
            ) from e
        raise LedgerError(f"cannot read the ledger {shown}: {first}") from e
    return _classify(shown, tables, version, shared=False)


def inspect_connection(conn: Connection, shown: str, *, shared: bool = True) -> SchemaState:
    insp = sa.inspect(conn)
    tables = set(insp.get_table_names())
    version = None
    if "alembic_version" in tables:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        tables.discard("alembic_version")
    return _classify(shown, tables, None if version is None else str(version), shared=shared)


def upgrade(conn: Connection, *, postgres: bool, shown: str) -> None:
    """Bring the schema to head inside the caller's transaction (one migrator at a time)."""
    from alembic import command
    from alembic.config import Config

    if postgres:  # SQLite's BEGIN IMMEDIATE already serialises migrators
        conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
    if inspect_connection(conn, shown, shared=postgres) == "current":
        return  # another process migrated while this one waited
    cfg = Config()
    cfg.set_main_option("script_location", "frugalml.ledger:migrations")
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
