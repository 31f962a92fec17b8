"""The writers' queue of a SQLite ledger: an exclusive ``flock`` on ``ledger.db.lock``.

SQLite's own busy handler polls with sleeps of 1 to 100 ms, so under many writers most of the
time is spent asleep. A file lock hands over at once, so writers take turns at full speed;
SQLite's locking still guarantees correctness where flock is unavailable. Only writers take it:
readers in WAL mode read a snapshot and never wait.

A lock held for long (another process stuck, or a program holding the file) is waited for
with one message on stderr, then given up on with a ``LedgerError`` after
``$FRUGAL_LEDGER_LOCK_TIMEOUT_S`` seconds (default 120).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator

from frugalml.errors import LedgerError

DEFAULT_TIMEOUT_S = 120.0
SAY_AFTER_S = 2.0  # stay quiet for short waits: a busy ledger is normal


def timeout_s() -> float:
    text = os.environ.get("FRUGAL_LEDGER_LOCK_TIMEOUT_S", "")
    try:
        return max(0.0, float(text)) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S


class WriterLock:
    """A process-wide, fork-aware exclusive lock on ``path`` (one per ledger handle)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                where = "read-only" if e.errno in (errno.EROFS, errno.EACCES) else "unusable"
                raise LedgerError(
                    f"the ledger's folder is {where}: cannot open its lock file {self.path} "
                    f"({e.strerror})",
                    hint="pass --ledger with a writable location",
                ) from e
            self._pid = os.getpid()
        return self._fd

    def _acquire(self, fd: int, wait: bool) -> bool:
        start, delay, said = time.monotonic(), 0.0005, False
        limit = timeout_s()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            waited = time.monotonic() - start
            if not wait:
                return False
            if waited >= limit:
                raise LedgerError(
                    f"gave up after {waited:.0f} s waiting for the ledger's lock {self.path} "
                    "(another process holds it)",
                    hint="find it with `fuser " + self.path + "`; set "
                    "FRUGAL_LEDGER_LOCK_TIMEOUT_S to wait longer",
                )
            if not said and waited >= SAY_AFTER_S:
                sys.stderr.write(
                    f"frugal: waiting for the ledger's lock {self.path} (held by another "
                    f"process; giving up after {limit:.0f} s)\n"
                )
                sys.stderr.flush()
                said = True
            time.sleep(delay)
            delay = min(delay * 2, 0.01 if waited < 1.0 else 0.05)

    @contextlib.contextmanager
    def held(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold the lock for the block; with ``wait=False`` yield False at once if busy."""
        with self._thread_lock:
            fd = self._open()
            got = self._acquire(fd, wait)
            try:
                yield got
            finally:
                if got:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
