"""Spend over time for the HTML report: what the ledger's runs cost, by day (or week), split
by project and kind (the showback view of ``frugal budget report``, drawn as stacked bars).

:func:`spend_over_time` reads the ledger (:func:`frugalml.ledger.budgets.spend_report`: top
level runs only, so an optimize search is not counted twice through its candidates);
:func:`chart` computes the geometry and ``templates/spend.svg.j2`` draws it (autoescape on,
no script). Every period of the window gets a slot, an empty one included, so the x axis is
time, not a list of busy days. A series is ``PROJECT · KIND`` for a tagged run and
``KIND`` for an untagged one; the largest ``top`` series are drawn, the rest as ``other``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jinja2

from frugalml import units
from frugalml.report.jinja import template

if TYPE_CHECKING:
    from frugalml.ledger import Ledger
    from frugalml.report.figures import ReportData

PALETTE = ("#3b6fb6", "#2a9d8f", "#edae49", "#d1495b", "#7b5ea7", "#5c946e", "#8d6346")
OTHER_COLOR = "#a3acb9"
OTHER = "other"


@dataclass(frozen=True)
class Spend:
    """Spend by period (oldest first) and series: ``cells[(period, series)]`` in dollars."""

    per: str
    days: int
    periods: tuple[str, ...]
    series: tuple[str, ...]  # largest first; OTHER last when present
    cells: dict[tuple[str, str], float]
    runs: int

    def period_total(self, period: str) -> float:
        return sum(self.cells.get((period, s), 0.0) for s in self.series)

    def series_total(self, series: str) -> float:
        return sum(self.cells.get((p, series), 0.0) for p in self.periods)

    @property
    def total(self) -> float:
        return sum(self.cells.values())


def series_of(project: str, kind: str) -> str:
    return kind if project in ("-", "", None) else f"{project} · {kind}"


def _periods(per: str, since: datetime, now: datetime) -> list[str]:
    from frugalml.ledger.budgets import period_bounds

    out: list[str] = []
    start, _ = period_bounds(per, since)
    while start <= now:
        out.append(start.date().isoformat())
        _, start = period_bounds(per, start)
    return out


def build(
    rows: Sequence[dict[str, Any]],
    per: str,
    since: datetime,
    now: datetime,
    *,
    days: int,
    top: int = 6,
) -> Spend | None:
    """``Spend`` from :func:`frugalml.ledger.budgets.report` rows (None: no run in them)."""
    if not rows:
        return None
    totals: dict[str, float] = {}
    for r in rows:
        key = series_of(r["project"], r["kind"])
        totals[key] = totals.get(key, 0.0) + float(r["cost_usd"])
    ranked = sorted(totals, key=lambda s: (-totals[s], s))
    keep = ranked if len(ranked) <= top + 1 else ranked[:top]
    cells: dict[tuple[str, str], float] = {}
    for r in rows:
        key = series_of(r["project"], r["kind"])
        key = key if key in keep else OTHER
        cell = (r["period"], key)
        cells[cell] = cells.get(cell, 0.0) + float(r["cost_usd"])
    series = tuple(keep) + ((OTHER,) if len(keep) < len(ranked) else ())
    periods = _periods(per, since, now)
    periods += sorted({p for p, _ in cells} - set(periods))  # a clock skew: keep every run
    return Spend(
        per=per,
        days=days,
        periods=tuple(sorted(periods)),
        series=series,
        cells=cells,
        runs=sum(int(r["runs"]) for r in rows),
    )


def spend_over_time(
    book: Ledger, *, days: int = 30, per: str = "day", now: datetime | None = None
) -> Spend | None:
    """The ledger's spend over the last ``days`` days by ``per`` (None: no run in them)."""
    from frugalml.ledger.budgets import spend_report

    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    return build(spend_report(book, per, since), per, since, now, days=days)


def with_spend(book: Ledger, data: ReportData, days: int = 30) -> ReportData:
    """``data`` with the ledger's spend over time (unchanged when the ledger has no runs)."""
    spend = spend_over_time(book, days=days)
    return data if spend is None else replace(data, spend=spend)


# ---- the chart ------------------------------------------------------------------------------
def _template() -> jinja2.Template:
    return template("spend.svg.j2")


def color_of(spend: Spend, series: str) -> str:
    if series == OTHER:
        return OTHER_COLOR
    return PALETTE[spend.series.index(series) % len(PALETTE)]


def _short(text: str, n: int = 20) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def chart(spend: Spend, width: int = 960, height: int = 300) -> str:
    """Stacked bars, one slot per period, one colour per series; a legend on the right."""
    from frugalml.report.svg import nice_ticks

    ml, mr, mt, mb = 72, 210, 16, 58
    plot_w, plot_h = width - ml - mr, height - mt - mb
    top = max((spend.period_total(p) for p in spend.periods), default=0.0)
    ticks = nice_ticks(0.0, top) if top > 0 else [0.0]
    y_max = max(ticks[-1], top) or 1.0
    slot = plot_w / max(len(spend.periods), 1)
    bar_w = max(min(slot * 0.72, 48.0), 1.0)

    def y(v: float) -> float:
        return mt + plot_h - v / y_max * plot_h

    bars = []
    for i, period in enumerate(spend.periods):
        base = 0.0
        x = ml + i * slot + (slot - bar_w) / 2
        for s in reversed(spend.series):  # "other" at the bottom, the largest on top
            usd = spend.cells.get((period, s), 0.0)
            if usd <= 0:
                continue
            y0, y1 = y(base), y(base + usd)
            bars.append(
                {
                    "x": f"{x:.1f}", "y": f"{y1:.1f}", "w": f"{bar_w:.1f}",
                    "h": f"{max(y0 - y1, 0.5):.2f}", "color": color_of(spend, s),
                    "period": period, "series": s, "usd": f"{usd:.6g}",
                    "title": f"{period} · {s}: {units.usd(usd)}",
                }
            )  # fmt: skip
            base += usd
    step = max(1, round(len(spend.periods) / 8))  # about eight date labels, never crowded
    xlabels = [
        (f"{ml + i * slot + slot / 2:.1f}", p[5:] if spend.per != "month" else p[:7])
        for i, p in enumerate(spend.periods)
        if i % step == 0
    ]
    view = {
        "width": width, "height": height, "ml": ml, "mr": mr, "mt": mt, "mb": mb,
        "yticks": [(f"{y(t):.1f}", units.usd(t)) for t in ticks],
        "xlabels": xlabels, "bars": bars,
        "x_label": f"{spend.per} (UTC), last {spend.days} days",
        "legend": [
            {"color": color_of(spend, s), "cy": 6 + i * 18, "title": s,
             "text": f"{_short(s)}: {units.usd(spend.series_total(s))}"}
            for i, s in enumerate(spend.series)
        ],
    }  # fmt: skip
    return str(_template().render(v=view))


__all__ = ["OTHER", "Spend", "build", "chart", "series_of", "spend_over_time", "with_spend"]
