"""``report.md`` of an optimize result, and the reports written after a search.

``write_reports(result)`` calls every writer in ``REPORT_WRITERS`` (``report.md``, then
``report.html``) and returns the paths written; a writer that fails adds a note and does not
lose the others. ``optimize(...)`` is ``frugalml.optimize``: the search
(``frugalml.search.runner.optimize``) with these reports written at its end. search never
imports report: the caller hands it the writer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frugalml import units
from frugalml.search.pareto import COST_NOISE_FLOOR, QUALITY_TOLERANCE
from frugalml.search.result import STOP_REASONS, OptimizeResult


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return fmt.format(value)


_usd = units.usd  # the one dollar formatter


def write_markdown(result: OptimizeResult) -> Path:
    """``OUT/report.md``: the verdict, the chosen model, the front, every candidate, the method."""
    lines = [
        *_header(result),
        "## Result",
        "",
        *_verdict(result),
        *[f"> {note}" for note in result.notes],
        *([""] if result.notes else []),
        *_front(result),
        *_table(result),
        *_method(),
    ]
    path = result.out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _header(result: OptimizeResult) -> list[str]:
    base = result.baseline
    rows = result.rows
    failed = sum(c["status"] != "ok" for c in result.candidates)
    split = (
        f"passes learn from the **tune** split ({rows.get('tune', '?')} rows), candidates are "
        f"scored and selected on **select** ({rows.get('select', '?')} rows), and the chosen "
        f"one is checked on **final** ({rows.get('final', '?')} rows), which no pass and no "
        "selection touched"
    )
    return [
        f"# frugal optimize: {result.model}",
        "",
        f"- task: **{result.task}** ({result.metric}, points; higher is better) on "
        f"`{result.data}`: {split}",
        f"- quality bound: at most **{result.max_quality_drop:g}** points below the original, "
        "on the select split and again on the final split",
        f"- search: {len(result.candidates)} candidates evaluated ({failed} failed), "
        f"{result.untried} not tried; stopped because {STOP_REASONS[result.stop_reason]} "
        f"(budget {result.budget_s / 60:.1f} min, took {result.elapsed_s / 60:.1f} min)",
        f"- ledger: optimize run `{result.run_id}` (`frugal show {result.run_id[:12]}`)",
        f"- priced as `{base.get('instance')}` ({_usd(base.get('usd_per_hour'))}/h), "
        f"{base.get('threads')} threads on {base.get('device')}; energy "
        f"{base.get('energy_source')}",
        "",
    ]


def _verdict(result: OptimizeResult) -> list[str]:
    base, best = result.baseline, result.best
    if not best:
        why = {
            "budget": f"**No candidate chosen: the time budget ran out** with {result.untried} "
            "candidate(s) not tried; none of those tried is cheaper within the bound (raise "
            "--budget-minutes).",
            "interrupted": "**No candidate chosen: the search was interrupted.**",
        }.get(result.stop_reason, "**No candidate meets the bound.**")
        return [why, ""]
    cost = result.production_cost
    lines = [
        f"**Chosen: {best['label']}** (`{result.out / 'best'}`)",
        "",
        f"- {units.versus(best['throughput_ratio'], 'throughput')} of the original "
        f"({best['throughput_per_s']:.0f} vs {base['throughput_per_s']:.0f} texts/s)",
        f"- cost per 1M requests {_usd(best['cost_usd_per_1m'])} vs "
        f"{_usd(base['cost_usd_per_1m'])} "
        f"({units.versus(best['cost_usd_per_1m'] / base['cost_usd_per_1m'])})",
        f"- {result.metric} on the select split {best['quality']:.2f} vs "
        f"{base['quality']:.2f} ({-best['quality_drop']:+.2f} points); on the final split "
        f"{_num(best.get('final_quality'))} vs {_num(base.get('final_quality'))} "
        f"({_num(-best.get('final_quality_drop', math.nan), '{:+.2f}')} points; "
        f"{_num(best.get('final_confidence', math.nan) * 100, '{:.0f}')}% one-sided bound "
        f"{_num(-best.get('final_drop_bound', math.nan), '{:+.2f}')}, paired bootstrap)",
        f"- size {units.nbytes(best['size_bytes'])} vs {units.nbytes(base['size_bytes'])}",
    ]
    if cost:
        lines.append(
            f"- cost to produce it: {_usd(cost.cost_usd)}, {cost.wall_s / 60:.1f} min, "
            f"{cost.cpu_s:.0f} CPU-s, {units.joules(cost.energy_j)} ({cost.energy_source}): "
            f"the whole search ({cost.candidates} candidates"
            + (", and the fine-tune of the original" if len(cost.runs) > 1 else "")
            + ")"
        )
    return [*lines, ""]


def _front(result: OptimizeResult) -> list[str]:
    lines = [
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
    return [*lines, ""]


def _table(result: OptimizeResult) -> list[str]:
    lines = [
        "## All candidates",
        "",
        "| id | candidate | status | quality | drop | final drop | $/1M | texts/s | x | batch | "
        "peak mem | size | J/1k | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.candidates:
        ok = r["status"] == "ok"
        mark = "chosen" if r.get("chosen") else ("pareto" if r.get("on_pareto") else "")
        if r.get("final_check") == "failed":
            mark = "failed the final check"
        note = mark if ok else (r.get("error") or "")[:120].replace("|", "/")
        lines.append(
            f"| {r['id']} | {r['label']} | {r['status']} | {_num(r.get('quality'))} | "
            f"{_num(r.get('quality_drop'), '{:+.2f}')} | "
            f"{_num(r.get('final_quality_drop'), '{:+.2f}')} | {_usd(r.get('cost_usd_per_1m'))} | "
            f"{_num(r.get('throughput_per_s'), '{:.0f}')} | "
            f"{_num(r.get('throughput_ratio'), '{:.2f}')} | {r.get('batch_size', '-')} | "
            f"{units.nbytes(r.get('peak_memory_bytes'))} | {units.nbytes(r.get('size_bytes'))} | "
            f"{_num(r.get('energy_j_per_1k'), '{:.1f}')} | {note} |"
        )
    return [*lines, ""]


def _method() -> list[str]:
    return [
        "## Method",
        "",
        "Every candidate is built, saved and evaluated in a fresh process with the same "
        "measurement as `frugal eval`, on the select split: warm-up batches excluded, median "
        "texts/s over repeated passes, per-batch latency percentiles, peak RSS of the "
        "evaluating process, weights size on disk, energy of the timed passes. Cost per 1M "
        "requests (one request = one text) = 1e6 / throughput / 3600 x the instance's $/h "
        "(energy cost on `local` hardware). Ties: costs whose bands (slowest to fastest timed "
        f"pass, at least ±{COST_NOISE_FLOOR:.0%}) overlap, and qualities within "
        f"{QUALITY_TOLERANCE:g} points, are ties, decided by quality, then by the simpler "
        "pipeline. See docs/optimize.md.",
        "",
    ]


def write_html(result: OptimizeResult) -> Path:
    """``report.html``: the self-contained HTML report (``frugalml.report.collect``)."""
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


def optimize(*args: Any, **kwargs: Any) -> OptimizeResult:
    """``frugalml.optimize``: ``search.runner.optimize`` (same arguments) with the reports
    (``report.md``, ``report.html``) written into its output folder at the end; a causal LM's
    search is ``search.optimize_lm`` (``search.api`` routes it)."""
    from frugalml.search.api import optimize as search

    kwargs.setdefault("reporter", write_reports)
    return search(*args, **kwargs)
