"""The HTML report: one self-contained file that opens with no network.

Read top to bottom it answers, in this order: how much cheaper is the chosen model, at what
quality loss, with what uncertainty (the verdict and four cards); why (the cost-delta
statement); where it sits among the others (quality against $ per 1M requests, with the
Pareto front, the quality bound and the noise band); every candidate (a sortable table that
fits its column); where the money goes (instance time against electricity); and how it was
measured (hardware, prices, method, estimate vs reading).

The page is a Jinja2 template (``templates/report.html.j2``) rendered with autoescape on:
every value from a model, a file or the ledger is escaped by the template engine, never by
hand. The charts are inline SVG from :mod:`frugalml.report.svg`; the style is a small embedded
sheet; the only script is a few inline lines for sorting: nothing is loaded from anywhere.
The Pareto front and the quality drop come from :mod:`frugalml.search.pareto`, so the report
and the search agree on ties.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from frugalml import units
from frugalml.errors import BadInput
from frugalml.report import svg
from frugalml.report.figures import (
    Point,
    ReportData,
    baseline_of,
    bound_quality,
    chosen_of,
    cost_parts,
    drop_of,
    front_flags,
    pass_names,
    plotted,
    record_of,
    usable,
)
from frugalml.report.jinja import environment
from frugalml.search import pareto
from frugalml.search.result import STOP_REASONS

__all__ = ["Point", "ReportData", "chart", "cost_parts", "front_flags", "render", "write"]


# ---- the parts of the page ------------------------------------------------------------------
def _tooltip(p: Point, metric: str) -> str:
    f = p.figures
    return (
        f"{p.key + ' ' if p.key else ''}{p.name}\n{metric} {units.points(p.quality)} · "
        f"{units.usd(p.cost_usd_per_1m)} per 1M requests\np50 {units.ms(f.get('latency_ms_p50'))}"
        f" · {units.per_s(f.get('throughput_per_s'))} · size {units.nbytes(f.get('size_bytes'))}"
        + (f"\npasses: {p.passes}" if p.passes else "")
    )


def chart(data: ReportData) -> str:
    """The quality-vs-cost scatter (SVG text)."""
    dots = []
    for p, front in plotted(data):
        p = _with_statement_ci(p, data)
        kind = "chosen" if p.chosen else "baseline" if p.baseline else "candidate"
        cost, quality = p.cost_usd_per_1m, p.quality
        assert cost is not None and quality is not None  # _plotted keeps only these
        dots.append(
            svg.Dot(
                p.key or p.name,
                cost,
                quality,
                kind,
                front,
                _tooltip(p, data.metric),
                x_ci=p.cost_ci,
                y_ci=p.quality_ci,
            )
        )
    better = "higher" if data.higher_is_better else "lower"
    chosen = chosen_of(data)
    band = None
    if chosen is not None and usable(chosen):
        band = _noise_band(_with_statement_ci(chosen, data), data)
    bound = bound_quality(data)
    return svg.scatter(
        dots,
        x_label="$ per 1M requests",
        y_label=f"{data.metric} ({better} is better)",
        higher_is_better=data.higher_is_better,
        bound=None
        if bound is None
        else (
            bound,
            f"quality bound: {units.points(data.max_quality_drop)} points below the original",
        ),
        band=band,
    )


def _with_statement_ci(p: Point, data: ReportData) -> Point:
    """The chosen point with its quality interval from the statement's paired bootstrap
    (baseline quality + the CI of the difference), when the point has none of its own."""
    st, base = data.statement, baseline_of(data)
    if not p.chosen or p.quality_ci is not None or st is None or st.ci is None:
        return p
    if base is None or base.quality is None:
        return p
    return replace(p, quality_ci=(base.quality + st.ci.low, base.quality + st.ci.high))


def _noise_band(p: Point, data: ReportData) -> svg.Band:
    """The region around the chosen point inside which differences are noise (ties), by the
    search's own rule (:func:`frugalml.search.pareto.noise_band`): its cost band (the
    measured interval, at least the noise floor) by the quality tolerance, widened to the
    quality interval of the statement where that is wider."""
    band = pareto.noise_band(record_of(p, data.higher_is_better))
    tol = data.quality_tolerance
    assert p.quality is not None
    q_lo, q_hi = band["quality_low"], band["quality_high"]
    if tol is not None:
        q_lo, q_hi = p.quality - tol, p.quality + tol
    if p.quality_ci is not None:
        q_lo, q_hi = min(q_lo, p.quality_ci[0]), max(q_hi, p.quality_ci[1])
    return svg.Band((band["cost_usd_per_1m_low"], band["cost_usd_per_1m_high"]), (q_lo, q_hi))


@dataclass(frozen=True)
class _Card:
    value: str
    label: str
    detail: str = ""
    tone: str = ""


def _ci_text(ci: tuple[float, float] | None, fmt: Any, sep: str = " to ") -> str:
    return "" if ci is None else f"95% CI {fmt(ci[0])}{sep}{fmt(ci[1])}"


def _cards(data: ReportData) -> tuple[str, list[_Card]]:
    """The verdict sentence and the cards: cost, quality lost, chosen, the search."""
    chosen, base = chosen_of(data), baseline_of(data)
    n_ok = sum(p.quality is not None for p in data.points)
    n_failed = sum(p.status != "finished" for p in data.points)
    search = _Card(
        f"{len(data.points)} candidates",
        "tried",
        f"{n_ok} evaluated, {n_failed} failed"
        + (f"; {data.untried} not tried" if data.untried else ""),
    )
    if chosen is None or base is None or chosen is base:
        verdict = (
            "No candidate is cheaper than the original within the quality bound."
            if base is not None
            else "No baseline was evaluated, so nothing can be compared."
        )
        return verdict, [_Card("none", "chosen", "no candidate meets the bound", "bad"), search]
    st = data.statement
    ratio = (
        chosen.cost_usd_per_1m / base.cost_usd_per_1m
        if chosen.cost_usd_per_1m is not None and base.cost_usd_per_1m
        else None
    )
    drop = drop_of(chosen, base, data.higher_is_better)
    drop_ci = st.drop_ci if st is not None else None
    cost_ci = None
    if chosen.cost_ci is not None and base.cost_usd_per_1m:
        cost_ci = (
            chosen.cost_ci[0] / base.cost_usd_per_1m,
            chosen.cost_ci[1] / base.cost_usd_per_1m,
        )
    lost = "-" if drop is None else units.points(-drop, signed=True)
    bound = (
        f"bound {units.points(-data.max_quality_drop, signed=True)}"
        if data.max_quality_drop is not None
        else ""
    )
    cost_card = _Card(
        units.ratio(ratio),
        f"the cost, {units.change(ratio)}",
        " · ".join(
            t
            for t in (
                f"{units.usd(chosen.cost_usd_per_1m)} vs {units.usd(base.cost_usd_per_1m)} "
                "per 1M requests",
                _ci_text(cost_ci, units.ratio, "–"),
            )
            if t
        ),
        "good" if ratio is not None and ratio < 1 else "",
    )
    quality_card = _Card(
        f"{lost} points",
        f"{data.metric}: quality lost",
        " · ".join(
            t
            for t in (
                f"{units.points(chosen.quality)} vs {units.points(base.quality)}",
                _ci_text(
                    None if drop_ci is None else (-drop_ci[1], -drop_ci[0]),
                    lambda v: units.points(v, signed=True),
                ),
                bound,
            )
            if t
        ),
        # red only for a loss the interval tells apart from no change, and above the tolerance
        # within which qualities are ties (float noise of an fp16 copy is not a loss)
        "bad"
        if drop is not None
        and drop >= pareto.QUALITY_TOLERANCE
        and not (drop_ci and drop_ci[0] <= 0)
        else "",
    )
    chosen_card = _Card(chosen.key or chosen.name, "chosen", chosen.name if chosen.key else "")
    ci = _ci_text(
        None if drop_ci is None else (-drop_ci[1], -drop_ci[0]),
        lambda v: units.points(v, signed=True),
    )
    verdict = (
        f"{chosen.key or chosen.name} serves at "
        f"{units.versus(ratio)}, for {lost} {data.metric} points"
        + (f" ({ci})" if ci else " (no confidence interval: per-row outputs missing)")
        + "."
    )
    return verdict, [cost_card, quality_card, chosen_card, search]


def _stopped(data: ReportData) -> str:
    """Why the search stopped, in words, when it did not try every candidate."""
    if not data.untried and data.stop_reason in (None, "completed"):
        return ""
    reason = STOP_REASONS.get(str(data.stop_reason), str(data.stop_reason or "")).strip()
    text = "The search stopped" + (f": {reason}" if reason else "")
    if data.untried:
        text += f"; {data.untried} candidate{'s' if data.untried != 1 else ''} not tried"
    return text + "."


def _rows(data: ReportData) -> list[dict[str, Any]]:
    fronts = {id(p): flag for p, flag in plotted(data)}
    base = baseline_of(data)
    rows = []
    for p in data.points:
        f = p.figures
        front = fronts.get(id(p))
        drop = drop_of(p, base, data.higher_is_better)
        ratio = (
            p.cost_usd_per_1m / base.cost_usd_per_1m
            if base is not None and base.cost_usd_per_1m and p.cost_usd_per_1m is not None
            else None
        )
        rows.append(
            {
                "p": p,
                "cls": " ".join(
                    c
                    for c in ("candidate-row", p.chosen and "chosen", p.baseline and "baseline")
                    if c
                ),
                "mark": "★ chosen" if p.chosen else "◆ baseline" if p.baseline else "",
                "passes_short": pass_names(p.passes),
                "status": p.status if not p.error else f"{p.status}: {p.error[:80]}",
                "quality": units.points(p.quality),
                "drop": "" if drop is None or p.baseline else units.points(-drop, signed=True),
                "cost": units.usd(p.cost_usd_per_1m),
                "ratio": "" if ratio is None or p.baseline else units.ratio(ratio),
                "throughput": units.per_s(f.get("throughput_per_s")),
                "p50": units.ms(f.get("latency_ms_p50")),
                "p99": units.ms(f.get("latency_ms_p99")),
                "energy": units.joules(f.get("energy_j_per_1k")),
                "energy_source": f.get("energy_source") or "",
                "memory": units.nbytes(f.get("peak_memory_bytes")),
                "size": units.nbytes(f.get("size_bytes")),
                "front": front,
            }
        )
    return rows


def _breakdown(data: ReportData) -> list[dict[str, Any]]:
    """One row per candidate with serving figures: instance and electricity $ per 1M, as a
    share of the largest bar (the page draws them as CSS bars, labels wrap, nothing clips)."""
    parts = [
        (p, cost_parts(p, data.price))
        for p in data.points
        if p.quality is not None or p.cost_usd_per_1m is not None
    ]
    top = max((v for _, vs in parts for v in vs if v is not None and v > 0), default=1.0)
    return [
        {
            "p": p,
            "bars": [
                None if v is None else {"pct": max(100.0 * v / top, 0.3), "text": units.usd(v)}
                for v in vs
            ],
        }
        for p, vs in parts
    ]


def _price_age(price: dict[str, Any]) -> str:
    """How old the catalog's prices behind the report's dollars are."""
    from frugalml.measure.prices import price_age

    age = price_age([price.get("instance")], [price.get("region")])
    return f"The catalog's {age[0].lower()}{age[1:]}."


def _notes(data: ReportData) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    hw = data.hardware or {}
    if hw:
        gpu = f"{hw.get('gpu_count')} × {hw.get('gpu_name')}" if hw.get("gpu_count") else "no GPU"
        items.append(
            (
                "Hardware.",
                f"{hw.get('cpu_model', '?')}, {hw.get('cpu_logical_cores', '?')} logical cores, "
                f"{units.nbytes(hw.get('memory_bytes'))} memory, {gpu}.",
            )
        )
    pr = data.price
    if pr:
        items.append(
            (
                "Prices.",
                f"Instance {pr.get('instance', '?')} at {units.usd(pr.get('usd_per_hour'))}/h"
                + (f" ({pr['instance_source']})" if pr.get("instance_source") else "")
                + f"; region {pr.get('region', '?')} at {units.usd(pr.get('usd_per_kwh'))}/kWh "
                f"and {pr.get('g_co2_per_kwh', '?')} gCO2/kWh"
                + (f" ({pr['region_source']})" if pr.get("region_source") else "")
                + ". $ per 1M requests is instance time per request × the hourly price; for a "
                "cloud instance that price already includes its electricity, so the electricity "
                "bar shows the energy's share, not an extra charge. " + _price_age(pr),
            )
        )
    sources = sorted(
        {str(p.figures.get("energy_source")) for p in data.points if p.figures.get("energy_source")}
    )
    if sources == ["estimate"]:
        items.append(
            (
                "Estimate, not reading.",
                "Energy (and CO2 from it) is an estimate: CPU time × watts per busy core from "
                "the price catalog. No RAPL or NVML counter was readable.",
            )
        )
    elif sources:
        items.append(
            (
                "Estimate vs reading.",
                f"Energy sources: {', '.join(sources)} (nvml and rapl are meter readings; "
                "estimate is CPU time × watts).",
            )
        )
    items += [("Method.", line) for line in data.method]
    if data.constraint:
        items.append(("Constraint.", data.constraint))
    tol = pareto.QUALITY_TOLERANCE if data.quality_tolerance is None else data.quality_tolerance
    items.append(
        (
            "Ties.",
            f"Quality differences within {units.points(tol)} points, and costs whose measured "
            f"intervals (at least ±{pareto.COST_NOISE_FLOOR:.0%}) overlap, are noise: such "
            "candidates tie, and a tie goes to quality, then to the simpler pipeline.",
        )
    )
    return items


def _spend(data: ReportData) -> dict[str, Any] | None:
    """The spend-over-time section (:mod:`frugalml.report.spend`), when the ledger had runs."""
    spend = data.spend
    if spend is None:
        return None
    from frugalml.report import spend as spend_mod

    return {
        "chart": Markup(spend_mod.chart(spend)),  # built from escaped parts in its template
        "summary": f"{units.usd(spend.total)} over the last {spend.days} days, "
        f"{spend.runs} top-level run{'s' if spend.runs != 1 else ''}, by {spend.per} (UTC), "
        "split by project and kind (untagged runs: kind alone). Each run counts on the "
        "day it started, at the cost the ledger recorded (frugal budget report prints "
        "the figures).",
    }


def _placement(data: ReportData) -> dict[str, Any] | None:
    """The placement section: the statement and its two rows (measured or predicted), where
    a placement was computed (``frugal report --place-to``)."""
    change = data.placement
    if not change:
        return None
    rows = []
    for key, head in (("from", "from"), ("to", "to")):
        r = change[key]
        rows.append(
            {
                "head": head,
                "instance": r["instance"],
                "label": r["label"] + (" (approx)" if r.get("approx") else ""),
                "usd_per_hour": units.usd(r.get("usd_per_hour")),
                "throughput": units.per_s(r.get("throughput_per_s")),
                "p99": units.ms(r.get("latency_ms_p99")),
                "usd": units.usd(r.get("usd")),
                "meets": "yes" if r.get("meets") else f"no: {r.get('reason') or '-'}",
            }
        )
    return {
        "statement": change["statement"],
        "unit": change["unit"],
        "catalog_age": change["catalog_age"],
        "rows": rows,
    }


# ---- rendering ------------------------------------------------------------------------------
def _env() -> jinja2.Environment:
    return environment(keep_trailing_newline=True)


def render(data: ReportData) -> str:
    """The report as one HTML document (a string)."""
    sub = [f"task {data.task}", f"metric {data.metric}"]
    if data.data:
        sub.append(f"data {data.data}" + (f" ({data.n_items:,} rows)" if data.n_items else ""))
    if data.run_id:
        sub.append(f"run {data.run_id[:12]}")
    verdict, cards = _cards(data)
    st = data.statement
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            data=data,
            subtitle=" · ".join(sub),
            verdict=verdict,
            stopped=_stopped(data),
            cards=cards,
            statement=None
            if st is None
            else {"paragraph": st.paragraph(), "rows": st.rows(), "notes": st.notes},
            chart=Markup(chart(data)),  # built from escaped parts in report.svg
            rows=_rows(data),
            breakdown=_breakdown(data),
            notes=_notes(data),
            spend=_spend(data),
            placement=_placement(data),
        )
    )


def write(data: ReportData, out: str | Path) -> Path:
    """Render and write the report to ``out``; the path written."""
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(data), encoding="utf-8")
    except OSError as e:
        raise BadInput(
            f"cannot write the report to {path}: {e.strerror}",
            hint="pass --out with a writable path",
        ) from e
    return path
