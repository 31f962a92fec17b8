"""The HTML report: one self-contained file that opens with no network.

It shows a chart of quality against $ per 1M requests with the Pareto front, the baseline and
the chosen candidate marked; the candidate table (click a header to sort); the cost breakdown
(instance time against energy); and notes on the hardware, the method and which figures are
estimates rather than readings. Charts are inline SVG, the style is a small embedded sheet, the
only script is a few inline lines for sorting: nothing is loaded from anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput
from frugalml.report import svg, units
from frugalml.report.statement import Statement


@dataclass(frozen=True)
class Point:
    """One candidate of a search (or one evaluated model), as the report shows it.

    ``figures`` holds the evaluation's keys (throughput_per_s, latency_ms_p50, ...,
    energy_j_per_1k, energy_source, peak_memory_bytes, size_bytes). ``on_pareto`` may be None
    when the source did not say; the report then computes the front itself.
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


@dataclass(frozen=True)
class ReportData:
    """Everything one report shows. ``price`` has instance, usd_per_hour, region, usd_per_kwh,
    g_co2_per_kwh (and their sources where known); ``hardware`` a ``Hardware.to_dict()``."""

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


def pareto_front(
    points: Sequence[tuple[float, float]], higher_is_better: bool = True
) -> list[bool]:
    """For each (cost, quality): is it on the front (no other point is at least as cheap and
    at least as good, and strictly better in one)?"""
    sign = 1.0 if higher_is_better else -1.0
    flags = []
    for i, (c, q) in enumerate(points):
        dominated = any(
            c2 <= c and sign * q2 >= sign * q and (c2 < c or sign * q2 > sign * q)
            for j, (c2, q2) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags


def _plotted(data: ReportData) -> list[tuple[Point, bool]]:
    """Points with both figures, with their Pareto flag (given, else computed)."""
    pts = [
        p
        for p in data.points
        if p.quality is not None
        and p.cost_usd_per_1m is not None
        and math.isfinite(p.quality)
        and math.isfinite(p.cost_usd_per_1m)
        and p.cost_usd_per_1m > 0
    ]
    computed = pareto_front(
        [(p.cost_usd_per_1m, p.quality) for p in pts],  # type: ignore[misc]
        data.higher_is_better,
    )
    return [
        (p, p.on_pareto if p.on_pareto is not None else flag)
        for p, flag in zip(pts, computed, strict=True)
    ]


def _tooltip(p: Point, metric: str) -> str:
    f = p.figures
    return (
        f"{p.name}\n{metric} {units.points(p.quality)} · {units.usd(p.cost_usd_per_1m)} "
        f"per 1M requests\np50 {units.ms(f.get('latency_ms_p50'))} · "
        f"{units.per_s(f.get('throughput_per_s'))} · size {units.nbytes(f.get('size_bytes'))}"
        + (f"\npasses: {p.passes}" if p.passes else "")
    )


def chart(data: ReportData) -> str:
    dots = []
    for p, front in _plotted(data):
        kind = "chosen" if p.chosen else "baseline" if p.baseline else "candidate"
        cost, quality = p.cost_usd_per_1m, p.quality
        assert cost is not None and quality is not None  # _plotted keeps only these
        dots.append(svg.Dot(p.name, cost, quality, kind, front, _tooltip(p, data.metric)))
    better = "higher" if data.higher_is_better else "lower"
    return svg.scatter(
        dots,
        x_label="$ per 1M requests",
        y_label=f"{data.metric} ({better} is better)",
        higher_is_better=data.higher_is_better,
    )


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


def _pass_names(passes: str) -> str:
    """``onnx_export + quantize_dynamic`` from ``onnx_export(opset=17) + quantize_dynamic(...)``
    (the full configs stay in the cell's tooltip)."""
    return re.sub(r"\([^()]*\)", "", passes)


def _row(p: Point, front: bool | None) -> str:
    f = p.figures
    mark = "★ chosen" if p.chosen else "◆ baseline" if p.baseline else ""
    if mark and mark.split()[-1] in p.name:
        mark = mark.split()[0]

    def cell(value: Any, text: str, cls: str = "num") -> str:
        sort = "" if value is None else f' data-sort="{escape(str(value))}"'
        return f'<td class="{cls}"{sort}>{escape(text)}</td>'

    status = p.status if not p.error else f"{p.status}: {p.error[:80]}"
    cls = "candidate-row" + (" chosen" if p.chosen else "") + (" baseline" if p.baseline else "")
    energy_text = units.joules(f.get("energy_j_per_1k"))
    if f.get("energy_source"):
        energy_text += f" ({f['energy_source']})"
    return "".join(
        [
            f'<tr class="{cls}">',
            cell(p.name, p.name + (f"  {mark}" if mark else ""), "name"),
            f'<td class="passes" data-sort="{escape(p.passes)}" title="{escape(p.passes)}">'
            f"{escape(_pass_names(p.passes)) or '—'}</td>",
            cell(p.status, status, "status " + ("ok" if p.status == "finished" else "bad")),
            cell(p.quality, units.points(p.quality)),
            cell(p.cost_usd_per_1m, units.usd(p.cost_usd_per_1m)),
            cell(f.get("throughput_per_s"), units.per_s(f.get("throughput_per_s"))),
            cell(f.get("latency_ms_p50"), units.ms(f.get("latency_ms_p50"))),
            cell(f.get("latency_ms_p99"), units.ms(f.get("latency_ms_p99"))),
            cell(f.get("energy_j_per_1k"), energy_text),
            cell(f.get("peak_memory_bytes"), units.nbytes(f.get("peak_memory_bytes"))),
            cell(f.get("size_bytes"), units.nbytes(f.get("size_bytes"))),
            cell(int(bool(front)), "yes" if front else "—" if front is None else "no", "front"),
            cell(p.run_id, (p.run_id or "—")[:12], "run"),
            "</tr>",
        ]
    )


def table(data: ReportData) -> str:
    fronts = {id(p): flag for p, flag in _plotted(data)}
    heads = [
        "candidate",
        "passes",
        "status",
        data.metric,
        "$ / 1M req",
        "throughput",
        "p50",
        "p99",
        "energy / 1k req",
        "peak memory",
        "size",
        "Pareto",
        "run",
    ]
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in heads)
    rows = "\n".join(_row(p, fronts.get(id(p))) for p in data.points)
    return (
        f'<table id="candidates" class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{rows}\n</tbody></table>"
    )


def breakdown(data: ReportData) -> str:
    groups = []
    for p in data.points:
        if p.quality is None and p.cost_usd_per_1m is None:
            continue
        label = p.name + (" ★" if p.chosen else " ◆" if p.baseline else "")
        groups.append((label, list(cost_parts(p, data.price))))
    if not groups:
        return "<p>No candidate has serving figures.</p>"
    return svg.bars(groups[:24], ["instance time", "electricity"])


def _notes(data: ReportData) -> str:
    items: list[str] = []
    hw = data.hardware or {}
    if hw:
        gpu = f"{hw.get('gpu_count')} × {hw.get('gpu_name')}" if hw.get("gpu_count") else "no GPU"
        items.append(
            f"<b>Hardware.</b> {escape(str(hw.get('cpu_model', '?')))}, "
            f"{hw.get('cpu_logical_cores', '?')} logical cores, "
            f"{units.nbytes(hw.get('memory_bytes'))} memory, {escape(gpu)}."
        )
    pr = data.price
    if pr:
        items.append(
            f"<b>Prices.</b> Instance {escape(str(pr.get('instance', '?')))} at "
            f"{units.usd(pr.get('usd_per_hour'))}/h"
            + (f" ({escape(str(pr['instance_source']))})" if pr.get("instance_source") else "")
            + f"; region {escape(str(pr.get('region', '?')))} at "
            f"{units.usd(pr.get('usd_per_kwh'))}/kWh and {pr.get('g_co2_per_kwh', '?')} gCO2/kWh"
            + (f" ({escape(str(pr['region_source']))})" if pr.get("region_source") else "")
            + ". $ per 1M requests is instance time per request × the hourly price; for a "
            "cloud instance that price already includes its electricity, so the electricity "
            "bar shows the energy's share, not an extra charge."
        )
    sources = sorted(
        {str(p.figures.get("energy_source")) for p in data.points if p.figures.get("energy_source")}
    )
    if sources == ["estimate"]:
        items.append(
            "<b>Estimate, not reading.</b> Energy (and CO2 from it) is an "
            "<em>estimate</em>: CPU time × watts per busy core from the price "
            "catalog. No RAPL or NVML counter was readable."
        )
    elif sources:
        items.append(
            f"<b>Estimate vs reading.</b> Energy sources: {escape(', '.join(sources))}"
            " (nvml and rapl are meter readings; estimate is CPU time × watts)."
        )
    for line in data.method:
        items.append(f"<b>Method.</b> {escape(line)}")
    if data.constraint:
        items.append(f"<b>Constraint.</b> {escape(data.constraint)}")
    return '<ul class="notes">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _statement_block(st: Statement | None) -> str:
    if st is None:
        return ""
    rows = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in st.rows()
    )
    return (
        f'<section><h2>Cost-delta statement</h2><p class="statement">'
        f"{escape(st.paragraph())}</p>"
        f'<table class="delta"><thead><tr><th>figure</th><th>baseline</th>'
        f"<th>candidate</th><th>change</th></tr></thead><tbody>{rows}</tbody></table>"
        "</section>"
    )


_CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#d8dde3;--bg:#f5f7fa;--accent:#3b6fb6}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
 font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
main{max-width:1080px;margin:0 auto;padding:28px 24px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}
.sub{color:var(--muted);margin:0 0 20px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 20px;
 margin:0 0 18px;overflow-x:auto}
.kpis{display:flex;gap:14px;flex-wrap:wrap;margin:0 0 18px}
.kpi{flex:1 1 180px;background:#fff;border:1px solid var(--line);border-radius:10px;
 padding:12px 16px}.kpi b{display:block;font-size:20px}.kpi span{color:var(--muted);font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:6px 8px;border-bottom:1px solid #edf0f3;text-align:left;white-space:nowrap}
th{background:#f0f3f7;position:sticky;top:0;cursor:pointer;user-select:none}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.passes,td.status,td.name{white-space:normal;min-width:140px}
tr.chosen td{background:#fff6e0}tr.baseline td{background:#fdecee}
td.status.bad{color:#b42318}
svg text{font:12px system-ui,"DejaVu Sans",sans-serif;fill:#3e4c59}
svg .axis-label{font-size:13px;fill:#1f2933}svg .na{fill:#9aa5b1}
.statement{font-size:15px}.notes li{margin:0 0 6px}
footer{color:var(--muted);font-size:12px;text-align:center}
"""

# Sort the candidate table by a clicked column (numbers by data-sort). Inline, tiny, optional.
_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0], asc = th.dataset.dir !== 'asc';
    th.dataset.dir = asc ? 'asc' : 'desc';
    Array.from(body.rows).sort(function(a, b){
      var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
      var nx = parseFloat(x), ny = parseFloat(y);
      var r = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? r : -r;
    }).forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _kpis(data: ReportData) -> str:
    chosen = next((p for p in data.points if p.chosen), None)
    base = next((p for p in data.points if p.baseline), None)
    n_ok = sum(p.quality is not None for p in data.points)
    cards = [(f"{len(data.points)}", f"candidates ({n_ok} evaluated)")]
    if chosen is not None:
        cards.append((escape(chosen.name), "chosen"))
        cards.append((units.points(chosen.quality), f"{escape(data.metric)} of the chosen"))
        cards.append((units.usd(chosen.cost_usd_per_1m), "chosen: $ per 1M requests"))
    if (
        chosen is not None
        and base is not None
        and base.cost_usd_per_1m
        and chosen.cost_usd_per_1m is not None
    ):
        cards.append(
            (units.ratio(chosen.cost_usd_per_1m / base.cost_usd_per_1m), "cost vs baseline")
        )
    return (
        '<div class="kpis">'
        + "".join(f'<div class="kpi"><b>{v}</b><span>{t}</span></div>' for v, t in cards)
        + "</div>"
    )


def render(data: ReportData) -> str:
    """The report as one HTML document (a string)."""
    sub = [f"task {escape(data.task)}", f"metric {escape(data.metric)}"]
    if data.data:
        sub.append(
            f"data {escape(data.data)}" + (f" ({data.n_items:,} rows)" if data.n_items else "")
        )
    if data.run_id:
        sub.append(f"run {escape(data.run_id[:12])}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="frugal">
<title>{escape(data.title)}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>{escape(data.title)}</h1>
<p class="sub">{" · ".join(sub)}</p>
{_kpis(data)}
{_statement_block(data.statement)}
<section id="chart"><h2>Quality against cost</h2>
{chart(data)}
</section>
<section id="table"><h2>Candidates</h2>
{table(data)}
</section>
<section id="breakdown"><h2>Cost breakdown per 1M requests: instance time and electricity</h2>
{breakdown(data)}
</section>
<section id="notes"><h2>Hardware, method, estimate vs reading</h2>
{_notes(data)}
</section>
<footer>Generated by frugal on {escape(data.created_at)}. Self-contained: no network needed.
</footer>
</main>
<script>{_JS}</script>
</body></html>
"""


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
