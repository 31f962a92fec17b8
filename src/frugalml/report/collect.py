"""Gather what an HTML report shows, from an optimize output folder or from the ledger.

- A **folder** (``frugal optimize --out DIR``): ``DIR/candidates.json`` lists the candidates
  with their evaluation figures, passes, status, ``on_pareto`` and ``chosen``; the ledger adds
  the hardware and prices of the optimize run when it holds it.
- A **run id**: an optimize run and its candidate children; any other run with children is
  shown the same way, and a run without children as a single point.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml.errors import BadInput, NotFound
from frugalml.records import RunRecord
from frugalml.report import sources as src
from frugalml.report.html import Point, ReportData
from frugalml.report.statement import Side, build_statement

if TYPE_CHECKING:
    from frugalml.ledger import Ledger

METHOD = (
    "Every candidate, the baseline included, was measured the same way: quality on the "
    "held-out half of the data; warm-up batches untimed; throughput the median over timed "
    "passes; latency per batch (p50/p99).",
    "$ per 1M requests = 1e6 / throughput / 3600 × the instance's hourly price (on local "
    "hardware: the energy at the region's $/kWh).",
)


def _passes_text(passes: Any) -> str:
    if not passes:
        return ""
    if isinstance(passes, str):
        return passes
    names = []
    for p in passes:
        if isinstance(p, dict):
            cfg = p.get("config") or {}
            detail = ", ".join(f"{k}={v}" for k, v in cfg.items() if v is not None)
            names.append(f"{p.get('name', '?')}({detail})" if detail else str(p.get("name")))
        else:
            names.append(str(p))
    return " + ".join(names)


def _point(
    name: str,
    ev: dict[str, Any],
    *,
    passes: Any,
    status: str,
    run_id: str | None,
    error: str | None,
    on_pareto: bool | None,
    chosen: bool,
    baseline: bool,
) -> Point:
    figures = {
        k: ev.get(k)
        for k in (
            "throughput_per_s",
            "latency_ms_p50",
            "latency_ms_p99",
            "energy_j_per_1k",
            "energy_source",
            "peak_memory_bytes",
            "size_bytes",
            "co2_g_per_1m",
            "device",
            "threads",
        )
    }
    quality = ev.get("quality")
    cost = ev.get("cost_usd_per_1m")
    return Point(
        name=name,
        quality=None if quality is None else float(quality),
        cost_usd_per_1m=None if cost is None else float(cost),
        passes=_passes_text(passes),
        status=status,
        figures=figures,
        on_pareto=on_pareto,
        chosen=chosen,
        baseline=baseline,
        run_id=run_id,
        error=error,
    )


def _is_baseline(entry: dict[str, Any]) -> bool:
    if "baseline" in entry:
        return bool(entry["baseline"])
    return not entry.get("passes")


def _price(usage_source: RunRecord | None, ev: dict[str, Any]) -> dict[str, Any]:
    from frugalml.measure.prices import resolve

    instance: str | None = ev.get("instance")
    region: str | None = ev.get("region")
    if usage_source is not None and usage_source.usage is not None:
        instance, region = usage_source.usage.instance, usage_source.usage.region
    try:
        p = resolve(instance, region)
    except BadInput:
        p = resolve(None, None)
    return {
        "instance": p.instance,
        "usd_per_hour": p.usd_per_hour,
        "instance_source": p.instance_source,
        "region": p.region,
        "usd_per_kwh": p.usd_per_kwh,
        "g_co2_per_kwh": p.g_co2_per_kwh,
        "region_source": p.region_source,
        "priced_by_hour": p.priced_by_hour,
    }


def _statement_for(points: list[tuple[Point, Side]]) -> Any:
    base = next((s for p, s in points if p.baseline), None)
    chosen = next((s for p, s in points if p.chosen), None)
    if base is None or chosen is None or base is chosen:
        return None
    try:
        ci = None
        if base.items_path and chosen.items_path:
            a, b = src.load_items(base.items_path), src.load_items(chosen.items_path)
            if a is not None and b is not None:
                ci = src.paired_ci(base.task, a, b)
        return build_statement(base, chosen, ci, paired=True)
    except BadInput:
        return None


def from_folder(book: Ledger, path: Path) -> ReportData:
    entries = src.read_candidates(path)
    if not entries:
        raise BadInput(
            f"{path / src.CANDIDATES_FILE} lists no candidates",
            hint="the search evaluated nothing; see `frugal runs --kind candidate`",
        )
    pairs: list[tuple[Point, Side]] = []
    parent: RunRecord | None = None
    for i, entry in enumerate(entries):
        record = None
        if entry.get("run_id"):
            try:
                record = book.get(str(entry["run_id"]))
            except NotFound:
                record = None
        if record is not None and parent is None and record.parent_id:
            try:
                parent = book.get(record.parent_id)
            except NotFound:
                parent = None
        ev = entry.get("eval") if isinstance(entry.get("eval"), dict) else entry
        assert isinstance(ev, dict)
        name = str(entry.get("name") or entry.get("id") or f"candidate {i}")
        point = _point(
            name,
            ev,
            passes=entry.get("passes"),
            status=str(entry.get("status", "finished")),
            run_id=entry.get("run_id"),
            error=entry.get("error"),
            on_pareto=entry.get("on_pareto"),
            chosen=bool(entry.get("chosen")),
            baseline=_is_baseline(entry),
        )
        side = (
            src.side_from_record(book, record)
            if record is not None and record.status == "finished" and ev.get("quality") is not None
            else src.side_from_entry(entry, source=name)
        )
        pairs.append((point, side))
    first: dict[str, Any] = next(
        (e.get("eval", e) for e in entries if e.get("eval", e).get("metric")), {}
    )
    return ReportData(
        title=f"frugal optimize: {path.name}",
        task=str(first.get("task", "?")),
        metric=str(first.get("metric", "quality")),
        higher_is_better=bool(first.get("higher_is_better", True)),
        points=tuple(p for p, _ in pairs),
        data=parent.params.get("data") if parent else None,
        n_items=first.get("rows"),
        hardware=parent.hardware.to_dict() if parent and parent.hardware else None,
        price=_price(parent, first),
        method=METHOD,
        run_id=parent.id if parent else None,
        statement=_statement_for(pairs),
        constraint=str(parent.params.get("constraint"))
        if parent and parent.params.get("constraint")
        else None,
    )


def from_run(book: Ledger, record: RunRecord) -> ReportData:
    children = [c for c in book.runs(parent_id=record.id) if c.kind != "optimize"]
    members = children or [record]
    pairs: list[tuple[Point, Side]] = []
    for c in members:
        ev = src._eval_dict(c)
        quality = ev.get("quality")
        if quality is None and ev.get("metric"):
            quality = c.quality.get(str(ev["metric"]))
        side = None
        if c.status == "finished":
            try:
                side = src.side_from_record(book, c)
            except BadInput:
                side = None
        point = _point(
            str(c.params.get("name") or c.name),
            {**ev, "quality": quality},
            passes=c.params.get("passes"),
            status=c.status,
            run_id=c.id,
            error=c.error,
            on_pareto=c.params.get("on_pareto"),
            chosen=bool(c.params.get("chosen")),
            baseline=bool(c.params.get("baseline", not c.params.get("passes"))),
        )
        pairs.append((point, side))  # type: ignore[arg-type]
    first = next((src._eval_dict(c) for c in members if src._eval_dict(c).get("metric")), {})
    if not first:
        raise BadInput(
            f"run {record.id[:12]} ({record.kind}) has no evaluated candidates",
            hint="report on an optimize run or folder",
        )
    return ReportData(
        title=f"frugal {record.kind}: {record.name}",
        task=str(first.get("task", "?")),
        metric=str(first.get("metric", "quality")),
        higher_is_better=bool(first.get("higher_is_better", True)),
        points=tuple(p for p, _ in pairs),
        data=record.params.get("data"),
        n_items=first.get("rows"),
        hardware=record.hardware.to_dict() if record.hardware else None,
        price=_price(record, first),
        method=METHOD,
        run_id=record.id,
        statement=_statement_for([(p, s) for p, s in pairs if s is not None]),
        constraint=str(record.params["constraint"]) if record.params.get("constraint") else None,
    )


def report_data(book: Ledger, source: str | None) -> ReportData:
    """What ``frugal report [SOURCE]`` shows (newest optimize run when SOURCE is None)."""
    if source is None:
        newest = book.runs(kind="optimize", limit=1)
        if not newest:
            raise BadInput(
                "no optimize run in the ledger to report on",
                hint="run `frugal optimize` first, or give an output folder",
            )
        return from_run(book, newest[0])
    spec = Path(source).expanduser()
    if spec.is_dir():
        if not (spec / src.CANDIDATES_FILE).exists():
            raise BadInput(
                f"{spec} is not a `frugal optimize` output folder (no {src.CANDIDATES_FILE})",
                hint="give the folder optimize wrote",
            )
        return from_folder(book, spec)
    return from_run(book, src.get_run(book, source))
