"""Human formatting of figures (units always shown)."""

from __future__ import annotations

import math
from datetime import datetime

from frugalml.records import Usage


def usd(value: float | None) -> str:
    """Dollars with enough significant digits for tiny per-run costs: $0.000412."""
    if value is None:
        return "-"
    if value == 0:
        return "$0"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${_fixed(value)}"


def _fixed(value: float, digits: int = 3) -> str:
    """``0.00000425``: ``digits`` significant figures, never scientific notation."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def nbytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def joules(value: float | None, source: str | None = None) -> str:
    if value is None:
        return "-"
    text = f"{value / 1e3:.2f} kJ" if value >= 1e4 else f"{_fixed(value)} J"
    return f"{text} ({source})" if source else text


def grams(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e4:
        return f"{value / 1e3:.2f} kg"
    if value >= 1:
        return f"{value:.3g} g"
    return f"{_fixed(value * 1e3)} mg"


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def usage_rows(u: Usage) -> list[tuple[str, str]]:
    """(label, value) pairs describing a usage, every estimate labelled."""
    energy_detail = "; ".join(f"{p.domain} {joules(p.energy_j)} {p.source}" for p in u.energy_parts)
    return [
        ("wall time", seconds(u.wall_s)),
        ("CPU time", seconds(u.cpu_s)),
        ("device time", seconds(u.device_s)),
        ("peak host memory", nbytes(u.peak_host_bytes)),
        ("peak device memory", nbytes(u.peak_device_bytes)),
        (
            "energy",
            f"{joules(u.energy_j, u.energy_source)}"
            + (f" [{energy_detail}]" if energy_detail else ""),
        ),
        ("instance cost", f"{usd(u.instance_cost_usd)} ({u.instance} at {usd(u.usd_per_hour)}/h)"),
        ("energy cost", f"{usd(u.energy_cost_usd)} ({u.region} at {usd(u.usd_per_kwh)}/kWh)"),
        ("cost", usd(u.cost_usd)),
        ("CO2", f"{grams(u.co2_g)} ({u.region} at {u.g_co2_per_kwh:g} g/kWh)"),
    ]
