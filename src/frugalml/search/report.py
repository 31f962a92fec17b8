"""Reports written at the end of ``optimize``: ``report.md`` (more formats plug in here).

``write_reports(result)`` calls every writer in ``REPORT_WRITERS`` with the result and returns
the paths written (``report.md`` and ``report.html``). To add a format, append
``writer(result) -> Path`` to ``REPORT_WRITERS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml import units

if TYPE_CHECKING:
    from frugalml.search.runner import OptimizeResult


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


_mb = units.nbytes  # one byte formatter (MiB) and one dollar formatter for every layer
_usd = units.usd


def write_markdown(result: OptimizeResult) -> Path:
    base = result.baseline
    best = result.best
    lines = [
        f"# frugal optimize: {result.model}",
        "",
        f"- task: **{result.task}** ({result.metric}, points; higher is better) on "
        f"`{result.data}` — quality scored on the held-out half, passes tuned on the other",
        f"- quality bound: at most **{result.max_quality_drop:g}** points below the original",
        f"- candidates: {len(result.candidates)} evaluated "
        f"({sum(c['status'] != 'ok' for c in result.candidates)} failed), "
        f"{result.skipped} skipped by the time budget ({result.budget_s / 60:.1f} min); "
        f"search took {result.elapsed_s / 60:.1f} min",
        f"- ledger: optimize run `{result.run_id}` (`frugal show {result.run_id[:12]}`)",
        f"- priced as `{base.get('instance')}` ({_usd(base.get('usd_per_hour'))}/h), "
        f"{base.get('threads')} threads on {base.get('device')}; energy "
        f"{base.get('energy_source')}",
        "",
        "## Result",
        "",
    ]
    if best:
        lines += [
            f"**Chosen: {best['label']}** (`{result.out / 'best'}`)",
            "",
            f"- {units.versus(best['throughput_ratio'], 'throughput')} of the original "
            f"({best['throughput_per_s']:.0f} vs {base['throughput_per_s']:.0f} texts/s)",
            f"- cost per 1M requests {_usd(best['cost_usd_per_1m'])} vs "
            f"{_usd(base['cost_usd_per_1m'])} ({units.versus(best['cost_ratio'])})",
            f"- {result.metric} {best['quality']:.2f} vs {base['quality']:.2f} "
            f"({-best['quality_drop']:+.2f} points)",
            f"- size {_mb(best['size_bytes'])} vs {_mb(base['size_bytes'])}",
            "",
        ]
    else:
        lines += ["**No candidate meets the bound.**", ""]
    lines += [f"> {note}" for note in result.notes] + ([""] if result.notes else [])
    lines += [
        "## Pareto front (quality vs $ per 1M requests)",
        "",
        "| id | candidate | quality | $/1M | texts/s | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.pareto:
        lines.append(
            f"| {r['id']} | {r['label']} | {_num(r['quality'])} | "
            f"{_usd(r['cost_usd_per_1m'])} | {_num(r['throughput_per_s'], '{:.0f}')} | "
            f"{_num(r['latency_ms_p50'], '{:.1f}')} | {_num(r['latency_ms_p99'], '{:.1f}')} |"
        )
    lines += [
        "",
        "## All candidates",
        "",
        "| id | candidate | status | quality | drop | $/1M | texts/s | x | batch | "
        "peak mem | size | J/1k | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.candidates:
        ok = r["status"] == "ok"
        mark = "chosen" if r.get("chosen") else ("pareto" if r.get("on_pareto") else "")
        note = mark if ok else (r.get("error") or "")[:120].replace("|", "/")
        lines.append(
            f"| {r['id']} | {r['label']} | {r['status']} | {_num(r.get('quality'))} | "
            f"{_num(r.get('quality_drop'), '{:+.2f}')} | {_usd(r.get('cost_usd_per_1m'))} | "
            f"{_num(r.get('throughput_per_s'), '{:.0f}')} | "
            f"{_num(r.get('throughput_ratio'), '{:.2f}')} | {r.get('batch_size', '-')} | "
            f"{_mb(r.get('peak_memory_bytes'))} | {_mb(r.get('size_bytes'))} | "
            f"{_num(r.get('energy_j_per_1k'), '{:.1f}')} | {note} |"
        )
    lines += [
        "",
        "## Method",
        "",
        "Every candidate is built, saved and evaluated in a fresh process with the same "
        "measurement as `frugal eval`: warm-up batches excluded, median texts/s over repeated "
        "passes, per-batch latency percentiles, peak RSS of the evaluating process, weights "
        "size on disk, energy of the timed passes. Cost per 1M requests (one request = one "
        "text) = 1e6 / throughput / 3600 x the instance's $/h (energy cost on `local` "
        "hardware). See docs/optimize.md.",
        "",
    ]
    path = result.out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_html(result: OptimizeResult) -> Path:
    """``report.html``: the self-contained HTML report (``frugalml.report``)."""
    from frugalml.report.collect import write_for_optimize

    return write_for_optimize(result)


REPORT_WRITERS: list[Callable[[OptimizeResult], Path]] = [write_markdown, write_html]


def write_reports(result: OptimizeResult) -> list[Path]:
    """Run every report writer; a writer that fails does not lose the others' reports."""
    paths = []
    for writer in REPORT_WRITERS:
        try:
            paths.append(writer(result))
        except Exception as e:
            result.notes.append(f"report writer {getattr(writer, '__name__', writer)} failed: {e}")
    return paths
