"""The ledger: every run frugal measures, kept in SQLite (default) or PostgreSQL.

Contract (what callers may rely on):

- **Append-mostly.** A run is inserted once (``start_run`` or ``record``) and then only its own
  row is updated (heartbeat, params, quality, artifacts, the final status and usage). Nothing
  is ever deleted.
- **Safe under concurrency.** Any number of processes and threads may write at once. SQLite
  runs in WAL mode and every transaction takes the write lock up front (``BEGIN IMMEDIATE``),
  so writers queue instead of failing; a busy database is retried, not reported as an error.
  PostgreSQL gives the same through row updates in short transactions.
- **Crashes are seen.** A running run beats (``heartbeat``). When its process is gone (same
  host: the pid is dead or reused) or its heartbeat is stale (other hosts), ``reap`` marks it
  ``crashed``; reads call ``reap`` first, so a killed run is reported as crashed.
- **Versioned schema.** Alembic migrations in ``ledger/migrations`` run on open, under a lock,
  only when the schema is behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine

from frugalml.errors import LedgerError, NotFound
from frugalml.ledger.tables import runs
from frugalml.records import RUN_STATUSES, Hardware, RunRecord, Usage
from frugalml.settings import ledger_url

SCHEMA_HEAD = "0001"  # newest migration; tests check it matches ledger/migrations/versions
DEFAULT_HEARTBEAT_S = 15.0
STALE_AFTER_BEATS = 4  # a run whose heartbeat is this many intervals old is crashed
_RETRIES = 40


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything the ledger stores is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=64)
def _own_start(pid: int) -> float | None:
    return _process_started_at(pid)


def _process_started_at(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def _is_locked(error: exc.DBAPIError) -> bool:
    text = str(error.orig).lower() if error.orig else str(error).lower()
    return (
        "database is locked" in text
        or "database is busy" in text
        or "deadlock detected" in text
        or "could not serialize" in text
    )


def _describe_url(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (exc.ArgumentError, ValueError):
        return url


class Ledger:
    """A handle on one ledger database. Cheap to create; safe to share between threads.

    ``Ledger()`` opens the default (``settings.ledger_url()``); ``Ledger("postgresql+psycopg://
    user@host/db")`` or ``Ledger("sqlite:///path.db")`` (or a bare path) open another.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = ledger_url(url)
        self._thread_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._engine = self._create_engine(self.url)
        self._engine_pid = os.getpid()
        self._ensure_schema()

    # ---- connection ---------------------------------------------------------------------
    def _create_engine(self, url: str) -> Engine:
        shown = _describe_url(url)
        try:
            parsed = sa.engine.make_url(url)
        except (exc.ArgumentError, ValueError) as e:
            raise LedgerError(
                f"malformed ledger URL '{url}'",
                hint="use sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/db",
            ) from e
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if not parsed.database or parsed.database == ":memory:":
                raise LedgerError(
                    "an in-memory SQLite ledger would lose every run",
                    hint="give a file: sqlite:///path/to/ledger.db",
                )
            self._check_sqlite_path(Path(parsed.database))
            self._lock_path = f"{Path(parsed.database).absolute()}.lock"
        try:
            if self.is_sqlite:
                engine = sa.create_engine(
                    url,
                    connect_args={"timeout": 60, "check_same_thread": False},
                    pool_size=2,
                    max_overflow=8,
                )
                event.listen(engine, "connect", _sqlite_on_connect)
                event.listen(engine, "begin", _sqlite_on_begin)
            else:
                engine = sa.create_engine(
                    url,
                    pool_pre_ping=True,
                    pool_size=2,
                    max_overflow=4,
                    connect_args=_pg_connect_args(parsed),
                )
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as e:
            raise LedgerError(
                f"cannot use ledger URL {shown}: {e}",
                hint="supported: sqlite:///FILE and postgresql+psycopg://...",
            ) from e
        return engine

    @staticmethod
    def _check_sqlite_path(path: Path) -> None:
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LedgerError(
                f"cannot create the ledger folder {folder}: {e.strerror}",
                hint="pass --ledger with a writable location or set FRUGAL_LEDGER",
            ) from e
        if path.exists():
            with path.open("rb") as fh:
                head = fh.read(16)
            if head and head != b"SQLite format 3\x00":
                raise LedgerError(
                    f"{path} is not a SQLite database (corrupted or another file)",
                    hint="move it aside and frugal starts a new ledger; nothing was changed",
                )
        if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise LedgerError(
                f"the ledger {path} is read-only",
                hint="pass --ledger with a writable location or set FRUGAL_LEDGER",
            )

    @contextlib.contextmanager
    def _writer_queue(self) -> Iterator[None]:
        """SQLite only: queue this process's transactions on an exclusive ``flock``.

        SQLite's own busy handler polls with sleeps of 1 to 100 ms, so under many writers most
        of the time is spent asleep. A file lock hands over at once (the kernel wakes the next
        waiter), so writers take turns at full speed; SQLite's locking still guarantees
        correctness where flock is unavailable.
        """
        if not self.is_sqlite:
            yield
            return
        with self._thread_lock:
            if self._lock_fd is None or self._lock_pid != os.getpid():
                self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                self._lock_pid = os.getpid()
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _tx(self, *, autocommit: bool = False) -> Iterator[Connection]:
        """One short transaction (or, with ``autocommit``, one statement on PostgreSQL, saving
        the BEGIN and COMMIT round trips). Taking the lock is retried while the database is
        busy."""
        if self._engine_pid != os.getpid():  # forked: never share pooled connections
            self._engine.dispose(close=False)
            self._engine_pid = os.getpid()
        with self._writer_queue():
            if autocommit and not self.is_sqlite:
                try:
                    with self._engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT"
                    ) as conn:
                        yield conn
                except exc.DBAPIError as e:
                    raise self._wrap(e) from e
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
                if _is_locked(e) and attempt < _RETRIES - 1:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise self._wrap(e) from e
            except exc.DBAPIError as e:
                raise self._wrap(e) from e
        try:
            with contextlib.ExitStack() as stack:
                stack.push(ctx)  # commits on success, rolls back on error
                yield conn
        except exc.DBAPIError as e:
            raise self._wrap(e) from e

    def _wrap(self, e: exc.DBAPIError) -> LedgerError:
        shown = _describe_url(self.url)
        msg = str(e.orig).strip().splitlines()[0] if e.orig else str(e).splitlines()[0]
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

    def _ensure_schema(self) -> None:
        try:
            version = self._schema_version()
        except LedgerError:
            raise
        if version == SCHEMA_HEAD:
            return
        if version is not None and version > SCHEMA_HEAD:
            raise LedgerError(
                f"the ledger's schema ({version}) is newer than this frugal "
                f"understands ({SCHEMA_HEAD})",
                hint="upgrade frugal",
            )
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", "frugalml.ledger:migrations")
        with self._tx() as conn:
            if not self.is_sqlite:  # one migrator at a time; SQLite's IMMEDIATE lock does this
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7210421)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _schema_version(self) -> str | None:
        try:
            with self._tx() as conn:
                if not sa.inspect(conn).has_table("alembic_version"):
                    return None
                return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except exc.DBAPIError as e:  # pragma: no cover - _tx wraps these
            raise self._wrap(e) from e

    def close(self) -> None:
        self._engine.dispose()
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({_describe_url(self.url)!r})"

    # ---- writes -------------------------------------------------------------------------
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
    ) -> str:
        """Insert a ``running`` run owned by process ``pid`` (default: this one); its id."""
        run_id = uuid.uuid4().hex
        pid = pid or os.getpid()
        now = _now()
        with self._tx(autocommit=True) as conn:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    name=name,
                    kind=kind,
                    status="running",
                    started_at=now,
                    heartbeat_at=now,
                    heartbeat_s=heartbeat_s,
                    parent_id=parent_id,
                    host=socket.gethostname(),
                    pid=pid,
                    pid_started_at=_own_start(pid)
                    if pid == os.getpid()
                    else _process_started_at(pid),
                    params=dict(params or {}),
                    usage=None,
                    quality={},
                    artifacts={},
                    error=None,
                    hardware=hardware.to_dict() if hardware else None,
                    environment=dict(environment or {}),
                )
            )
        return run_id

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
        run_id = uuid.uuid4().hex
        now = _now()
        started = started_at or (now - timedelta(seconds=usage.wall_s if usage else 0.0))
        with self._tx(autocommit=True) as conn:
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    name=name,
                    kind=kind,
                    status=status,
                    started_at=started,
                    ended_at=now,
                    heartbeat_at=now,
                    heartbeat_s=DEFAULT_HEARTBEAT_S,
                    parent_id=parent_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    pid_started_at=_own_start(os.getpid()),
                    params=dict(params or {}),
                    usage=usage.to_dict() if usage else None,
                    quality=dict(quality or {}),
                    artifacts=dict(artifacts or {}),
                    error=error,
                    hardware=hardware.to_dict() if hardware else None,
                    environment=dict(environment or {}),
                )
            )
        return run_id

    def heartbeat(self, run_id: str) -> None:
        with self._tx(autocommit=True) as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == "running")
                .values(heartbeat_at=_now())
            )

    def _merge(self, run_id: str, column: str, values: Mapping[str, Any]) -> None:
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
        """Close a run as ``finished`` or ``failed``, with its usage and error text."""
        if status not in ("finished", "failed"):
            raise ValueError(f"finish_run() takes finished or failed, not {status!r}")
        values: dict[str, Any] = {"status": status, "ended_at": _now(), "heartbeat_at": _now()}
        if usage is not None:
            values["usage"] = usage.to_dict()
        if error is not None:
            values["error"] = error
        with self._tx(autocommit=True) as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(values))

    def reap(self) -> int:
        """Mark runs whose process is gone as ``crashed``; how many were marked.

        Same host: the pid is dead, or alive but a different process (its start time differs).
        Other hosts: the last heartbeat is older than ``STALE_AFTER_BEATS`` intervals.
        """
        host = socket.gethostname()
        now = _now()
        dead: list[str] = []
        with self._tx() as conn:
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
        for row in rows:
            if row.host == host:
                started = _process_started_at(row.pid)
                alive = started is not None and (
                    row.pid_started_at is None or abs(started - row.pid_started_at) < 1.0
                )
                if not alive:
                    dead.append(row.id)
            else:
                beat = _aware(row.heartbeat_at)
                if beat is None or now - beat > timedelta(
                    seconds=STALE_AFTER_BEATS * row.heartbeat_s
                ):
                    dead.append(row.id)
        if dead:
            with self._tx(autocommit=True) as conn:
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(dead), runs.c.status == "running")
                    .values(
                        status="crashed",
                        ended_at=now,
                        error="the run's process ended without finishing it "
                        "(killed, out of memory, or machine lost)",
                    )
                )
        return len(dead)

    # ---- reads --------------------------------------------------------------------------
    def _reap_quietly(self) -> None:
        with contextlib.suppress(LedgerError):  # a read-only ledger is still readable
            self.reap()

    def get(self, run_id: str) -> RunRecord:
        """The run with this id or unique id prefix (at least 4 characters)."""
        self._reap_quietly()
        run_id = run_id.strip().lower()
        if len(run_id) < 4:
            raise NotFound(f"run id '{run_id}' is too short", hint="give at least 4 characters")
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(runs).where(runs.c.id.startswith(run_id, autoescape=True)).limit(2)
            ).all()
        if not rows:
            raise NotFound(
                f"no run '{run_id}' in the ledger {_describe_url(self.url)}",
                hint="`frugal runs` lists the runs",
            )
        if len(rows) > 1:
            raise NotFound(f"run id prefix '{run_id}' is ambiguous", hint="give more characters")
        return _to_record(rows[0]._mapping)

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
        with self._tx() as conn:
            return [_to_record(r._mapping) for r in conn.execute(query).all()]

    def count(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar() or 0)


def _to_record(row: Any) -> RunRecord:
    return RunRecord(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        status=row["status"],
        started_at=_aware(row["started_at"]),  # type: ignore[arg-type]
        ended_at=_aware(row["ended_at"]),
        heartbeat_at=_aware(row["heartbeat_at"]),
        parent_id=row["parent_id"],
        params=row["params"] or {},
        usage=Usage.from_dict(row["usage"]) if row["usage"] else None,
        quality=row["quality"] or {},
        artifacts=row["artifacts"] or {},
        error=row["error"],
        hardware=Hardware.from_dict(row["hardware"]) if row["hardware"] else None,
        environment=row["environment"] or {},
        host=row["host"],
        pid=row["pid"],
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
    # Take the write lock at the start: a deferred transaction that later writes can fail
    # with SQLITE_BUSY without waiting, which would lose the write under concurrency.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _pg_connect_args(url: sa.engine.URL) -> dict[str, Any]:
    return {"connect_timeout": 10} if url.get_backend_name() == "postgresql" else {}
