"""Fixtures for the data-tool tests (helpers live in ``planted_text.py``)."""

from __future__ import annotations

import pytest
from planted_text import Planted, plant


@pytest.fixture(scope="session")
def planted() -> Planted:
    """300 real sentences (balanced topic labels) plus 10 exact and 10 near copies, 12 flips."""
    return plant()
