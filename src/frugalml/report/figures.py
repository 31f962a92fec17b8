"""What one report shows (``ReportData`` of ``Point``s) and the figures derived from it: the
Pareto front (:mod:`frugalml.search.pareto`'s rule, ties included), the baseline and the
chosen point, the quality lost, the lowest quality the bound allows, and the split of a cost
into instance time and electricity. Pure data and arithmetic; :mod:`frugalml.report.html`
draws it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from frugalml.report.statement import Statement
from frugalml.search import pareto


@dataclass(frozen=True)
class Point:
    """One candidate of a search (or one evaluated model), as the report shows it.

    ``figures`` holds the evaluation's keys (throughput_per_s, latency_ms_p50, ...,
    energy_j_per_1k, energy_source, peak_memory_bytes, size_bytes). ``on_pareto`` may be None
    when the source did not say; the report then computes the front itself
    (:mod:`frugalml.search.pareto`). ``cost_ci`` / ``quality_ci`` are (low, high) intervals in
    $ per 1M requests and in points, where the source measured them: the chart draws them as
    the noise band. ``key`` is the candidate's short id (``c03``), unique within a report.
    """

    name: str
    quality: float | None
    cost_usd_per_1m: float | None
    passes: str = ""
    status: str = "finished"
    figures: dict[str, Any] = field(default_factory=dict)
    on_pareto: bool | None = None
    chosen: bool = False
    baseline: bool = False
    run_id: str | None = None
    error: str | None = None
    key: str | None = None
    cost_ci: tuple[float, float] | None = None
    quality_ci: tuple[float, float] | None = None


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows. ``price`` has instance, usd_per_hour, region, usd_per_kwh,
    g_co2_per_kwh (and their sources where known); ``hardware`` a ``Hardware.to_dict()``.

    ``max_quality_drop`` is the search's bound in points (the chart draws it); ``stop_reason``
    and ``untried`` say why the search stopped and how many candidates it did not try;
    ``quality_tolerance`` is the quality difference (points) the search counts as a tie.
    """

    title: str
    task: str
    metric: str
    higher_is_better: bool
    points: tuple[Point, ...]
    data: str | None = None
    n_items: int | None = None
    hardware: dict[str, Any] | None = None
    price: dict[str, Any] = field(default_factory=dict)
    method: tuple[str, ...] = ()
    run_id: str | None = None
    constraint: str | None = None
    statement: Statement | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    max_quality_drop: float | None = None
    stop_reason: str | None = None
    untried: int | None = None
    quality_tolerance: float | None = None
    spend: Any = None  # frugalml.report.spend.Spend: the ledger's spend over time, if any
    placement: dict[str, Any] | None = None  # a PlacementChange.to_dict(), where computed


def usable(p: Point) -> bool:
    return (
        p.quality is not None
        and p.cost_usd_per_1m is not None
        and math.isfinite(p.quality)
        and math.isfinite(p.cost_usd_per_1m)
        and p.cost_usd_per_1m > 0
    )


def record_of(p: Point, higher_is_better: bool = True) -> dict[str, Any]:
    """A point as :mod:`frugalml.search.pareto` reads a candidate: quality, cost, its
    measured cost interval and its pipeline (ties go to the simpler one)."""
    assert p.quality is not None and p.cost_usd_per_1m is not None
    record: dict[str, Any] = {
        "quality": p.quality,
        "cost_usd_per_1m": p.cost_usd_per_1m,
        "higher_is_better": higher_is_better,
        "passes": [{"name": n.strip()} for n in pass_names(p.passes).split(" + ") if n.strip()],
    }
    if p.cost_ci is not None:
        record["cost_usd_per_1m_low"], record["cost_usd_per_1m_high"] = p.cost_ci
    return record


def front_flags(points: Sequence[tuple[float, float]], higher_is_better: bool = True) -> list[bool]:
    """For each (cost, quality): is it on the Pareto front? The search's rule
    (:func:`frugalml.search.pareto.pareto_front`), ties included, so both always agree."""
    return _front(
        [{"quality": q, "cost_usd_per_1m": c, "higher_is_better": higher_is_better}
         for c, q in points]
    )  # fmt: skip


def _front(records: list[dict[str, Any]]) -> list[bool]:
    front = {id(r) for r in pareto.pareto_front(records)}
    return [id(r) in front for r in records]


def plotted(data: ReportData) -> list[tuple[Point, bool]]:
    """Points with both figures, with their Pareto flag (given, else computed)."""
    pts = [p for p in data.points if usable(p)]
    computed = _front([record_of(p, data.higher_is_better) for p in pts])
    return [
        (p, p.on_pareto if p.on_pareto is not None else flag)
        for p, flag in zip(pts, computed, strict=True)
    ]


def baseline_of(data: ReportData) -> Point | None:
    return next((p for p in data.points if p.baseline and p.quality is not None), None)


def chosen_of(data: ReportData) -> Point | None:
    return next((p for p in data.points if p.chosen), None)


def drop_of(p: Point, base: Point | None, higher_is_better: bool) -> float | None:
    if base is None or p.quality is None or base.quality is None:
        return None
    return pareto.quality_drop(p.quality, base.quality, higher_is_better)


def bound_quality(data: ReportData) -> float | None:
    """The lowest quality the bound allows (the highest when lower is better)."""
    base = baseline_of(data)
    if base is None or base.quality is None or data.max_quality_drop is None:
        return None
    sign = -1.0 if data.higher_is_better else 1.0
    return base.quality + sign * data.max_quality_drop


def cost_parts(p: Point, price: dict[str, Any]) -> tuple[float | None, float | None]:
    """($ per 1M of instance time, $ per 1M of electricity) for one point."""
    f = p.figures
    per_hour, per_kwh = price.get("usd_per_hour"), price.get("usd_per_kwh")
    tput = f.get("throughput_per_s")
    instance = None
    if tput and per_hour is not None:
        instance = 1e6 / float(tput) / 3600.0 * float(per_hour)
    elif price.get("priced_by_hour", True):
        instance = p.cost_usd_per_1m
    energy = None
    if f.get("energy_j_per_1k") is not None and per_kwh is not None:
        energy = float(f["energy_j_per_1k"]) * 1000.0 / 3.6e6 * float(per_kwh)
    return instance, energy


def pass_names(passes: str) -> str:
    """``onnx_export + quantize_dynamic`` from ``onnx_export(opset=17) + quantize_dynamic(...)``
    (the full configs stay in the cell's tooltip)."""
    return re.sub(r"\([^()]*\)", "", passes)
