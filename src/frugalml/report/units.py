"""Formatting of figures for statements and reports: a re-export of :mod:`frugalml.units`.

The one units module lives at the bottom of the package (``frugalml.units``) so the search,
the CLI and the report format dollars, bytes and ratios the same way.
"""

from __future__ import annotations

from frugalml.units import (
    change,
    grams,
    joules,
    ms,
    nbytes,
    per_s,
    points,
    ratio,
    seconds,
    sig,
    usd,
    versus,
)

__all__ = [
    "change",
    "grams",
    "joules",
    "ms",
    "nbytes",
    "per_s",
    "points",
    "ratio",
    "seconds",
    "sig",
    "usd",
    "versus",
]
