"""User-facing errors.

Every error frugal raises on purpose is a :class:`FrugalError`: its message says what went
wrong *and what to do*, in one line, so the CLI can print it without a traceback and exit
non-zero. Anything else escaping is a bug.
"""

from __future__ import annotations


class FrugalError(Exception):
    """Base class: a one-line message for the user and a process exit code."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class BadInput(FrugalError):
    """Input the user gave cannot be used: unknown name, unreadable file, bad option value."""


class LedgerError(FrugalError):
    """The ledger cannot be opened, read or written."""


class NotFound(BadInput):
    """A run, model or file the user named does not exist."""


class CandidateFailed(FrugalError):
    """One optimization candidate failed; the search records it and goes on."""
