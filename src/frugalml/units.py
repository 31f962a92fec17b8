"""THE formatting of figures for people: one formatter per unit, used by every layer.

Dollars (``usd``), bytes (``nbytes``: binary units, MiB everywhere), seconds, milliseconds,
joules, grams CO2, rates, quality points, and one wording for a ratio against a baseline
(``versus``: "0.46× the cost, 54% less"). Pure functions of numbers; ``None`` (or a non-finite
value where a number is expected) prints as ``-``. Nothing here imports the rest of frugal, so
the CLI, the search and the report all share it.
"""

from __future__ import annotations

import math

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


def _missing(value: float | None) -> bool:
    return value is None or not math.isfinite(float(value))


def sig(value: float, digits: int = 3) -> str:
    """``digits`` significant figures, never scientific notation: 0.000412, 12.3, 1,234."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def usd(value: float | None) -> str:
    """Dollars, with enough significant figures for tiny per-request costs: ``$0.000412``,
    ``$0.0358``, ``$12.30``, ``$1,234``."""
    if value is None or _missing(value):
        return "-"
    value = float(value)
    if value == 0:
        return "$0"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${sig(value)}"


def nbytes(value: float | None) -> str:
    """Bytes in binary units (``86.6 MiB``): the one byte formatter, so MB never mixes in."""
    if value is None or _missing(value):
        return "-"
    value = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def seconds(value: float | None) -> str:
    """A duration: ``12.5 ms``, ``3.20 s``, ``4.5 min``, ``2.10 h``."""
    if value is None or _missing(value):
        return "-"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def ms(value: float | None) -> str:
    """Milliseconds (latency): ``8.92 ms``."""
    return "-" if value is None or _missing(value) else f"{sig(value)} ms"


def joules(value: float | None, source: str | None = None) -> str:
    """Energy: ``21.3 J``, ``12.40 kJ``; with its source when given: ``21.3 J (estimate)``."""
    if value is None or _missing(value):
        return "-"
    text = f"{value / 1e3:.2f} kJ" if value >= 1e4 else f"{sig(value)} J"
    return f"{text} ({source})" if source else text


def grams(value: float | None) -> str:
    """CO2 mass: ``340 mg``, ``2.84 g``, ``12.50 kg``."""
    if value is None or _missing(value):
        return "-"
    if value >= 1e4:
        return f"{value / 1e3:.2f} kg"
    if value >= 1:
        return f"{sig(value)} g"
    return f"{sig(value * 1e3)} mg"


def per_s(value: float | None) -> str:
    """A rate: ``336/s``."""
    return "-" if value is None or _missing(value) else f"{sig(value)}/s"


def points(value: float | None, signed: bool = False) -> str:
    """Quality points with two decimals (a true minus sign): ``99.27``, ``−0.73``."""
    if value is None or _missing(value):
        return "-"
    value = round(float(value), 2) + 0.0  # no "−0.00": a change that rounds to nothing is +0.00
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    return text.replace("-", "−")


def ratio(value: float | None) -> str:
    """``0.46×``; ``-`` when unknown."""
    if value is None or _missing(value):
        return "-"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def change(value: float | None) -> str:
    """A ratio as a change in plain words: ``54% less``, ``30% more``, ``the same``."""
    if value is None or _missing(value):
        return "-"
    if abs(value - 1) < 0.005:
        return "the same"
    if value < 1:
        return f"{(1 - value) * 100:.0f}% less"
    return f"{(value - 1) * 100:.0f}% more"


def versus(value: float | None, what: str = "cost") -> str:
    """The one wording of a candidate/baseline ratio: ``0.46× the cost, 54% less``."""
    if value is None or _missing(value):
        return "-"
    return f"{ratio(value)} the {what}, {change(value)}"
