"""The ledger conformance suite: the contract of ``frugalml.ledger.base.BaseLedger``, run once per
implementation, as optuna's storage tests run once per ``STORAGE_MODES`` entry.

``LEDGER_MODES`` names each implementation; ``open_ledger`` (a fixture) opens a fresh, empty
ledger of the mode under test, and opens the *same* ledger again when called again (a second
handle, as a second process would have). A new implementation adds one entry to
``LEDGER_MODES`` and one branch to ``_url_for``; every test in tests/ledger then runs on it.
Tests that need a URL (the command line, other processes) take ``ledger_url`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from frugalml.ledger import BaseLedger, Ledger

LEDGER_MODES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=LEDGER_MODES)
def ledger_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The URL of an empty ledger of each mode (overrides the suite-wide fixture)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_ledger(ledger_url: str) -> Iterator[Callable[[], BaseLedger]]:
    """``open_ledger()`` -> a new handle on this test's ledger; all closed afterwards."""
    handles: list[BaseLedger] = []

    def _open() -> BaseLedger:
        handles.append(Ledger(ledger_url))
        return handles[-1]

    yield _open
    for handle in handles:
        handle.close()
