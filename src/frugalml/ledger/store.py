"""The ledger store: every run frugal measures, kept in SQLite (default) or PostgreSQL.

``Ledger`` implements the contract in ``ledger/base.py`` (read it first). How:

- SQLite runs in WAL mode; every write transaction takes the write lock up front
  (``BEGIN IMMEDIATE``) behind a file lock (``ledger/lock.py``), so writers queue instead of
  failing. Reads use deferred transactions and no lock: they never wait for a writer.
  PostgreSQL gives the same through row updates in short transactions.
- Opening only *looks* (``ledger/migrate.py``): the schema is created or migrated by the first
  write, so reading commands never create a file, a folder or a table.
- A finish that cannot be written goes to the spool (``ledger/spool.py``), flushed by the next
  handle that opens the ledger.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from frugalml.errors import LedgerError, NotFound
from frugalml.ledger import migrate, spool
from frugalml.ledger.base import BaseLedger, LedgerSpooled
from frugalml.ledger.engine import (
    READ_OPTION,
    check_sqlite_path,
    create_engine,
    describe_url,
    is_locked,
    make_sqlite_folder,
    parse_url,
    wrap,
)
from frugalml.ledger.lock import WriterLock
from frugalml.ledger.migrate import SCHEMA_HEAD
from frugalml.ledger.rows import (
    DEFAULT_HEARTBEAT_S,
    STALE_AFTER_BEATS,
    is_dead,
    new_row,
    own_start,
    process_started_at,
    to_record,
)
from frugalml.ledger.rows import now as utc_now
from frugalml.ledger.tables import runs
from frugalml.records import RUN_STATUSES, Hardware, RunRecord, Usage
from frugalml.settings import ledger_url

__all__ = ["DEFAULT_HEARTBEAT_S", "SCHEMA_HEAD", "STALE_AFTER_BEATS", "Ledger", "LedgerSpooled"]

_RETRIES = 40
_CRASHED = "the run's process ended without finishing it (killed, out of memory, or machine lost)"


class _Busy(LedgerError):
    """The writers' lock is held and the caller chose not to wait."""


class Ledger(BaseLedger):
    """A handle on one ledger database. Cheap to create; safe to share between threads.

    ``Ledger()`` opens the default (``settings.ledger_url()``); ``Ledger("postgresql+psycopg://
    user@host/db")`` or ``Ledger("sqlite:///path.db")`` (or a bare path) open another.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = ledger_url(url)
        self._shown = describe_url(self.url)
        parsed = parse_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._path = Path(parsed.database or "") if self.is_sqlite else None
        self._lock: WriterLock | None = None
        if self._path is not None:
            check_sqlite_path(self._path)
            self._lock = WriterLock(f"{self._path.absolute()}.lock")
        self._engine = create_engine(self.url, parsed)
        self._engine_pid = os.getpid()
        self._schema_lock = threading.Lock()
        self._started: dict[str, dict[str, Any]] = {}  # rows started here, for the spool
        self._state = self._inspect()
        if self._state != "absent":
            self._flush_spool(wait=False)

    # ---- connection ---------------------------------------------------------------------
    def _inspect(self) -> migrate.SchemaState:
        if self._path is not None:
            return migrate.inspect_sqlite(self._path, self._shown)
        with self._read() as conn:
            return migrate.inspect_connection(conn, self._shown)

    def _fork_check(self) -> None:
        if self._engine_pid != os.getpid():  # forked: never share pooled connections
            self._engine.dispose(close=False)
            self._engine_pid = os.getpid()

    def _ready_to_write(self) -> None:
        """Create or migrate the schema, once, before the first write."""
        if self._state == "current":
            return
        with self._schema_lock:
            if self._state == "current":
                return
            if self._path is not None:
                make_sqlite_folder(self._path)
            with self._tx() as conn:
                migrate.upgrade(conn, postgres=not self.is_sqlite, shown=self._shown)
            self._state = "current"

    def create_schema(self) -> None:
        """Create or migrate the schema now (otherwise the first write does)."""
        self._ready_to_write()

    def _readable(self) -> bool:
        """False while no ledger exists there (reads then see an empty ledger)."""
        if self._state == "absent":
            self._state = self._inspect()  # another process may have created it since
        return self._state != "absent"

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """One read transaction: no writers' lock, never waits for a writer."""
        self._fork_check()
        try:
            with (
                self._engine.connect().execution_options(**{READ_OPTION: True}) as conn,
                conn.begin(),
            ):
                yield conn
        except exc.DBAPIError as e:
            raise wrap(self.url, e) from e

    @contextlib.contextmanager
    def _tx(self, *, autocommit: bool = False, wait: bool = True) -> Iterator[Connection]:
        """One short write transaction (or, with ``autocommit``, one statement on PostgreSQL,
        saving the BEGIN and COMMIT round trips). ``wait=False``: ``_Busy`` if locked."""
        self._fork_check()
        with contextlib.ExitStack() as stack:
            if self._lock is not None and not stack.enter_context(self._lock.held(wait=wait)):
                raise _Busy(f"the ledger {self._shown} is busy")
            if autocommit and not self.is_sqlite:
                try:
                    with self._engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT"
                    ) as conn:
                        yield conn
                except exc.DBAPIError as e:
                    raise wrap(self.url, e) from e
                return
            with self._begin() as conn:
                yield conn

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        delay = 0.005
        for attempt in range(_RETRIES):
            ctx = self._engine.begin()
            try:
                conn = ctx.__enter__()
                break
            except exc.OperationalError as e:
                if is_locked(e) and attempt < _RETRIES - 1:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise wrap(self.url, e) from e
            except exc.DBAPIError as e:
                raise wrap(self.url, e) from e
        try:
            with contextlib.ExitStack() as stack:
                stack.push(ctx)  # commits on success, rolls back on error
                yield conn
        except exc.DBAPIError as e:
            raise wrap(self.url, e) from e

    def schema_state(self) -> str:
        """``absent``, ``behind`` or ``current`` (as found now)."""
        return self._inspect()

    def close(self) -> None:
        self._engine.dispose()
        if self._lock is not None:
            self._lock.close()

    def __enter__(self) -> Ledger:
        return self

    def __repr__(self) -> str:
        return f"Ledger({self._shown!r})"

    # ---- the spool ----------------------------------------------------------------------
    def _flush_spool(self, *, wait: bool) -> int:
        """Write runs spooled for this ledger by earlier commands; how many were written."""
        written = 0
        for path, row in spool.pending(self.url):
            try:
                with self._tx(wait=wait) as conn:
                    status = conn.execute(
                        sa.select(runs.c.status).where(runs.c.id == row["id"])
                    ).scalar()
                    final = {k: row[k] for k in spool.FINAL if k in row}
                    if status in ("running", "crashed"):
                        conn.execute(runs.update().where(runs.c.id == row["id"]).values(final))
                    elif status is None and "name" in row:
                        conn.execute(runs.insert().values(row))
            except LedgerError:
                return written  # the ledger is still out of reach: keep the file
            with contextlib.suppress(OSError):
                path.unlink()
            written += 1
        return written

    # ---- writes -------------------------------------------------------------------------
    def _insert(self, row: dict[str, Any]) -> None:
        self._ready_to_write()
        with self._tx(autocommit=True) as conn:
            conn.execute(runs.insert().values(row))

    def start_run(
        self,
        name: str,
        *,
        kind: str = "job",
        params: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
        hardware: Hardware | None = None,
        environment: Mapping[str, Any] | None = None,
        pid: int | None = None,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        guard: Callable[[Connection, str], None] | None = None,
    ) -> str:
        """Insert a ``running`` run owned by process ``pid`` (default: this one); its id.

        ``guard(conn, run_id)`` runs first in the same write transaction (budgets: it may
        refuse the run by raising, or write the run's tags)."""
        pid = pid or os.getpid()
        now = utc_now()
        row = new_row(name, kind, "running", now, params, hardware, environment, parent_id)
        row.update(
            heartbeat_s=heartbeat_s,
            pid=pid,
            pid_started_at=own_start(pid) if pid == os.getpid() else process_started_at(pid),
        )
        if guard is None:
            self._insert(row)
        else:
            self._ready_to_write()
            with self._tx() as conn:
                guard(conn, str(row["id"]))
                conn.execute(runs.insert().values(row))
        self._started[row["id"]] = row
        return str(row["id"])

    def record(
        self,
        name: str,
        *,
        kind: str,
        status: str,
        usage: Usage | None = None,
        params: Mapping[str, Any] | None = None,
        quality: Mapping[str, float] | None = None,
        artifacts: Mapping[str, str] | None = None,
        error: str | None = None,
        parent_id: str | None = None,
        started_at: datetime | None = None,
        hardware: Hardware | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> str:
        """Insert a run that is already over (one write); its id."""
        if status not in ("finished", "failed"):
            raise ValueError(f"record() takes a final status, not {status!r}")
        now = utc_now()
        started = started_at or (now - timedelta(seconds=usage.wall_s if usage else 0.0))
        row = new_row(name, kind, status, started, params, hardware, environment, parent_id)
        row.update(
            ended_at=now,
            heartbeat_at=now,
            usage=usage.to_dict() if usage else None,
            quality=dict(quality or {}),
            artifacts=dict(artifacts or {}),
            error=error,
        )
        self._insert(row)
        return str(row["id"])

    def heartbeat(self, run_id: str, usage: Usage | None = None) -> None:
        values: dict[str, Any] = {"heartbeat_at": utc_now()}
        if usage is not None:
            values["usage"] = usage.to_dict()
        self._ready_to_write()
        with self._tx(autocommit=True) as conn:
            conn.execute(
                runs.update().where(runs.c.id == run_id, runs.c.status == "running").values(values)
            )

    def _merge(self, run_id: str, column: str, values: Mapping[str, Any]) -> None:
        self._ready_to_write()
        with self._tx() as conn:
            col = runs.c[column]
            current = conn.execute(
                sa.select(col).where(runs.c.id == run_id).with_for_update()
            ).scalar()
            if current is None:
                raise NotFound(f"no run {run_id} in the ledger")
            conn.execute(
                runs.update().where(runs.c.id == run_id).values({column: {**current, **values}})
            )

    def log_params(self, run_id: str, **params: Any) -> None:
        self._merge(run_id, "params", params)

    def log_quality(self, run_id: str, **metrics: float) -> None:
        self._merge(run_id, "quality", {k: float(v) for k, v in metrics.items()})

    def log_artifacts(self, run_id: str, **paths: str) -> None:
        self._merge(run_id, "artifacts", {k: str(v) for k, v in paths.items()})

    def finish_run(
        self,
        run_id: str,
        *,
        status: str = "finished",
        usage: Usage | None = None,
        error: str | None = None,
    ) -> None:
        """Close a run as ``finished`` or ``failed``, with its usage and error text.

        If the ledger cannot be written, the finished row goes to the spool and
        ``LedgerSpooled`` is raised: nothing is lost, the caller decides whether to warn.
        """
        if status not in ("finished", "failed", "stopped"):
            raise ValueError(f"finish_run() takes finished, failed or stopped, not {status!r}")
        now = utc_now()
        values: dict[str, Any] = {"status": status, "ended_at": now, "heartbeat_at": now}
        if usage is not None:
            values["usage"] = usage.to_dict()
        if error is not None:
            values["error"] = error
        try:
            self._ready_to_write()
            with self._tx(autocommit=True) as conn:
                conn.execute(runs.update().where(runs.c.id == run_id).values(values))
        except LedgerError as e:
            try:
                kept = spool.keep(self.url, {**self._started.get(run_id, {"id": run_id}), **values})
            except OSError as spool_error:
                raise LedgerError(
                    f"the run {run_id[:12]} could not be written to the ledger {self._shown} "
                    f"({e.message}) nor kept in the spool ({spool_error})"
                ) from e
            raise LedgerSpooled(
                f"the run {run_id[:12]} could not be written to the ledger {self._shown} "
                f"({e.message}); kept in {kept}, written by the next command that reaches it"
            ) from e
        self._started.pop(run_id, None)

    def reap(self) -> int:
        """Mark runs whose process is gone as ``crashed``; how many were marked.

        Same host: the pid is dead, or alive but a different process (its start time differs).
        Other hosts: the last heartbeat is older than ``STALE_AFTER_BEATS`` intervals. The run
        keeps the usage of its last heartbeat, and that heartbeat's time as its end.
        """
        return self._reap(wait=True)

    def _reap(self, *, wait: bool) -> int:
        if not self._readable():
            return 0
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    runs.c.id,
                    runs.c.host,
                    runs.c.pid,
                    runs.c.pid_started_at,
                    runs.c.heartbeat_at,
                    runs.c.heartbeat_s,
                ).where(runs.c.status == "running")
            ).all()
        dead = [row.id for row in rows if is_dead(row, socket.gethostname(), utc_now())]
        if dead:
            with self._tx(autocommit=True, wait=wait) as conn:
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(dead), runs.c.status == "running")
                    .values(
                        status="crashed",
                        ended_at=sa.func.coalesce(runs.c.heartbeat_at, runs.c.started_at),
                        error=_CRASHED,
                    )
                )
        return len(dead)

    # ---- reads --------------------------------------------------------------------------
    def _reap_quietly(self) -> None:
        # A read-only ledger is still readable; a busy one is reaped by the next reader.
        with contextlib.suppress(LedgerError):
            self._reap(wait=False)

    def get(self, run_id: str) -> RunRecord:
        """The run with this id or unique id prefix (at least 4 characters)."""
        run_id = run_id.strip().lower()
        if len(run_id) < 4:
            raise NotFound(f"run id '{run_id}' is too short", hint="give at least 4 characters")
        rows: list[Any] = []
        if self._readable():
            self._reap_quietly()
            with self._read() as conn:
                rows = list(
                    conn.execute(
                        sa.select(runs)
                        .where(runs.c.id.startswith(run_id, autoescape=True))
                        .limit(2)
                    ).all()
                )
        if not rows:
            raise NotFound(
                f"no run '{run_id}' in the ledger {self._shown}",
                hint="`frugal runs` lists the runs",
            )
        if len(rows) > 1:
            raise NotFound(f"run id prefix '{run_id}' is ambiguous", hint="give more characters")
        return to_record(rows[0]._mapping)

    def runs(
        self,
        *,
        limit: int | None = None,
        name: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        parent_id: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered."""
        if status is not None and status not in RUN_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if not self._readable():
            return []
        self._reap_quietly()
        query = sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.id)
        for column, value in (
            ("name", name),
            ("kind", kind),
            ("status", status),
            ("parent_id", parent_id),
        ):
            if value is not None:
                query = query.where(runs.c[column] == value)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [to_record(r._mapping) for r in conn.execute(query).all()]

    def count(self) -> int:
        if not self._readable():
            return 0
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() or 0)
