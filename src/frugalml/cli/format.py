"""Human formatting for the CLI: the figures come from :mod:`frugalml.units` (one formatter
per unit for every layer); what is CLI-only (timestamps, a usage as rows) lives here."""

from __future__ import annotations

from datetime import datetime

from frugalml.records import Usage
from frugalml.units import grams, joules, nbytes, seconds, usd

__all__ = ["grams", "joules", "nbytes", "seconds", "usage_rows", "usd", "when"]


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
