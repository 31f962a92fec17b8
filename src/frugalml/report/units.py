"""Plain-text formatting of figures for statements and reports (units always shown).

Kept apart from ``frugalml.cli.format`` so the report package never imports the CLI.
"""

from __future__ import annotations

import math


def sig(value: float, digits: int = 3) -> str:
    """``digits`` significant figures, never scientific notation: 0.000412, 12.3, 1,234."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10 ** (digits - 1):
        return f"{value:,.0f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def usd(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${sig(value)}"


def nbytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{sig(value)} ms"


def joules(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e3:.2f} kJ" if value >= 1e4 else f"{sig(value)} J"


def grams(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e4:
        return f"{value / 1e3:.2f} kg"
    if value >= 1:
        return f"{sig(value)} g"
    return f"{sig(value * 1e3)} mg"


def per_s(value: float | None) -> str:
    return "-" if value is None else f"{sig(value)}/s"


def points(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    return text.replace("-", "−")


def ratio(value: float | None) -> str:
    """``0.43×``; ``-`` when unknown."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def change(value: float | None) -> str:
    """A ratio as a change in plain words: ``57% less``, ``2.3× more``, ``the same``."""
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value - 1) < 0.005:
        return "the same"
    if value < 1:
        return f"{(1 - value) * 100:.0f}% less"
    if value < 2:
        return f"{(value - 1) * 100:.0f}% more"
    return f"{value:.1f}× as much"
