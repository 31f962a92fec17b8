"""The ledger: every measured run, kept (SQLite by default, PostgreSQL by URL)."""

from frugalml.ledger.store import Ledger

__all__ = ["Ledger"]
