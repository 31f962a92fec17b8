"""The ledger: every measured run, kept (SQLite by default, PostgreSQL by URL).

- ``base.py``: the ``BaseLedger`` contract (what every implementation promises);
- ``store.py``: ``Ledger``, the SQLAlchemy implementation (the run API);
- ``engine.py`` (URLs, engine, errors), ``lock.py`` (the writers' queue), ``migrate.py``
  (schema state and Alembic upgrades), ``spool.py`` (finishes kept while the ledger is away),
  ``rows.py`` (a run's row: built, judged dead or alive, read back).
"""

from frugalml.ledger.base import BaseLedger, LedgerSpooled
from frugalml.ledger.store import Ledger

__all__ = ["BaseLedger", "Ledger", "LedgerSpooled"]
