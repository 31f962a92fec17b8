"""The ``Ledger`` contract: what any ledger implementation promises its callers.

``frugalml.ledger.store.Ledger`` (SQLite or PostgreSQL through SQLAlchemy) is the one
implementation today. Another one (a service, another database) subclasses ``BaseLedger`` and
passes the same conformance suite, ``tests/ledger/`` (every test there takes the
``ledger_url`` fixture, run once per backend, as optuna's ``STORAGE_MODES``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from frugalml.errors import LedgerError
from frugalml.records import Hardware, RunRecord, Usage


class LedgerSpooled(LedgerError):
    """A finish could not be written to the ledger and was kept in the local spool."""


class BaseLedger(abc.ABC):
    """Every run frugal measures, kept.

    Contract:

    - **Thread and process safety.** One handle may be shared by threads; any number of
      processes (on any number of hosts, for a server backend) may write at once. No write is
      lost under contention: a busy store is waited for (with a message after a while, and a
      ``LedgerError`` after a time-out), never reported as success without being written.
    - **Append-mostly.** A run is inserted once (``start_run`` or ``record``); afterwards only
      that run's own row changes (heartbeat, params, quality, artifacts, its final status and
      usage). Nothing is ever deleted.
    - **Crashed detection.** A ``running`` run beats (``heartbeat``, carrying its usage so
      far). When its process is gone (same host: the pid is dead or reused) or its beats are
      stale (``STALE_AFTER_BEATS`` intervals, other hosts), ``reap`` marks it ``crashed``,
      keeping the last beat's usage and using the last beat's time as its end. Reads reap
      first, so a killed run is reported as crashed.
    - **Reads change nothing they do not own.** Opening and reading never create a database,
      a folder or a table, and never migrate; a database that is not a frugal ledger is
      refused (``LedgerError``, "not a frugal ledger") and left byte-identical. A ledger that
      does not exist yet reads as empty. Readers do not wait for writers.
    - **A finish is never lost.** If ``finish_run`` cannot reach the store, the finished row
      is kept in the local spool and written by the next handle that reaches the store; the
      call raises ``LedgerSpooled`` (a ``LedgerError``) so the caller can warn.
    - **Errors** are ``frugalml.errors.LedgerError`` (or ``NotFound``) with one-line messages
      that never show a password.
    """

    url: str

    # ---- writes ------------------------------------------------------------------------
    @abc.abstractmethod
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
        heartbeat_s: float = 15.0,
    ) -> str:
        """Insert a ``running`` run owned by process ``pid`` (default: the caller); its id."""

    @abc.abstractmethod
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
        """Insert a run that is already over (``finished`` or ``failed``); its id."""

    @abc.abstractmethod
    def heartbeat(self, run_id: str, usage: Usage | None = None) -> None:
        """Say the run is alive, with its usage so far (kept if it later crashes)."""

    @abc.abstractmethod
    def log_params(self, run_id: str, **params: Any) -> None:
        """Merge parameters into the run's."""

    @abc.abstractmethod
    def log_quality(self, run_id: str, **metrics: float) -> None:
        """Merge quality figures into the run's."""

    @abc.abstractmethod
    def log_artifacts(self, run_id: str, **paths: str) -> None:
        """Merge named artifact paths into the run's."""

    @abc.abstractmethod
    def finish_run(
        self,
        run_id: str,
        *,
        status: str = "finished",
        usage: Usage | None = None,
        error: str | None = None,
    ) -> None:
        """Close a run as ``finished`` or ``failed`` (spooled if the store is unreachable)."""

    @abc.abstractmethod
    def reap(self) -> int:
        """Mark runs whose process is gone as ``crashed``; how many."""

    # ---- reads -------------------------------------------------------------------------
    @abc.abstractmethod
    def get(self, run_id: str) -> RunRecord:
        """The run with this id or unique prefix (4+ characters); ``NotFound`` otherwise."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    def count(self) -> int:
        """How many runs the ledger holds."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and locks; the handle is not used afterwards."""

    def __enter__(self) -> BaseLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
