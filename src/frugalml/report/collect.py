"""Gather what an HTML report shows, from an optimize output folder or from the ledger.

- A **folder** (``frugal optimize --out DIR``): ``DIR/candidates.json`` lists every candidate
  with its evaluation figures, passes, status, ``on_pareto`` and ``chosen``; the ledger adds
  the hardware, the prices and the data of the optimize run when it holds it.
- A **run id**: an optimize run reads its folder when it still exists, else its candidate
  runs in the ledger (the front is then computed, the chosen one read from ``best/``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml.errors import BadInput, NotFound
from frugalml.records import RunRecord
from frugalml.report import sources as src
from frugalml.report.html import Point, ReportData
from frugalml.report.statement import Side, Statement, build_statement

if TYPE_CHECKING:
    from frugalml.ledger import Ledger

METHOD = (
    "Every candidate, the baseline included, is measured the same way (frugal eval): quality "
    "on the select third of the data, the chosen one checked again on a final third no pass "
    "and no selection touched (within the bound with 90% one-sided confidence by default, a "
    "paired bootstrap against the original: --final-confidence); warm-up batches untimed; "
    "throughput the median over "
    "timed passes; latency per batch (p50/p99); peak memory of the evaluating process; size "
    "of the weight files.",
    "$ per 1M requests (one request = one text) = 1e6 / throughput / 3600 × the instance's "
    "hourly price; on local hardware, the energy at the region's $/kWh.",
    "Quality difference of the chosen candidate: paired percentile bootstrap, 1000 "
    "resamples, 95% interval.",
)


def passes_text(passes: Any) -> str:
    """``onnx_export + quantize_dynamic(dtype=qint8)`` from a recorded pass list."""
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


_POINT_FIGURES = ("throughput_per_s", "latency_ms_p50", "latency_ms_p99", "energy_j_per_1k",
                  "energy_source", "peak_memory_bytes", "size_bytes", "co2_g_per_1k", "device",
                  "threads")  # fmt: skip


def _interval(entry: dict[str, Any], key: str) -> tuple[float, float] | None:
    """A measured interval an entry may carry: ``KEY_ci: [low, high]`` or ``KEY_low/_high``."""
    pair: Any = entry.get(f"{key}_ci")
    if isinstance(pair, dict):
        pair = (pair.get("low"), pair.get("high"))
    if pair is None:
        pair = (entry.get(f"{key}_low"), entry.get(f"{key}_high"))
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError):
        return None
    return (low, high) if low <= high else None


def point_of(side: Side, **flags: Any) -> Point:
    figures = {k: getattr(side, k) for k in _POINT_FIGURES}
    return Point(
        name=side.name,
        quality=side.quality,
        cost_usd_per_1m=side.cost_usd_per_1m,
        figures=figures,
        run_id=side.run_id,
        **flags,
    )


def price_of(record: RunRecord | None, side: Side | None) -> dict[str, Any]:
    """Prices the figures were computed at (the optimize run's, else the evaluation's)."""
    from frugalml.measure.prices import resolve

    instance = side.instance if side else None
    region = side.region if side else None
    if record is not None and record.usage is not None:
        instance, region = record.usage.instance, record.usage.region
    try:
        p = resolve(instance, region)
    except BadInput:  # a name the catalog no longer knows: say what was recorded
        return {"instance": instance, "region": region}
    return {
        "instance": p.instance, "usd_per_hour": p.usd_per_hour,
        "instance_source": p.instance_source, "region": p.region,
        "usd_per_kwh": p.usd_per_kwh, "g_co2_per_kwh": p.g_co2_per_kwh,
        "region_source": p.region_source, "priced_by_hour": p.priced_by_hour,
    }  # fmt: skip


def statement_of(baseline: Side | None, chosen: Side | None) -> Statement | None:
    if baseline is None or chosen is None or baseline is chosen:
        return None
    try:
        note = (
            "The search measured the candidates one after another, each in its own process; "
            "`frugal compare` measures two models alternating in one run.",
        )
        ci = src.ci_between(baseline, chosen)
        return build_statement(baseline, chosen, ci, paired=False, notes=note)
    except BadInput:
        return None


def _optimize_run(book: Ledger, entries: list[dict[str, Any]]) -> RunRecord | None:
    for entry in entries:
        for key in ("optimize_run_id", "run_id"):
            if not entry.get(key):
                continue
            try:
                record = book.get(str(entry[key]))
            except NotFound:
                continue
            if record.kind == "optimize":
                return record
            if record.parent_id:
                try:
                    return book.get(record.parent_id)
                except NotFound:
                    return None
    return None


def from_folder(
    book: Ledger | None,
    path: Path,
    run: RunRecord | None = None,
    hardware: dict[str, Any] | None = None,
) -> ReportData:
    """The report of an optimize folder; ``book`` (may be None) adds what the ledger knows."""
    entries, meta = src.read_search(path)
    if not entries:
        raise BadInput(
            f"{path / src.CANDIDATES_FILE} lists no candidates",
            hint="the search evaluated nothing; see `frugal runs --kind candidate`",
        )
    if run is None and book is not None:
        run = _optimize_run(book, entries)
    points: list[Point] = []
    baseline = chosen = None
    for entry in entries:
        side = src.side_from_entry(entry, source=str(path), folder=path)
        ok = entry.get("status", "ok") in ("ok", "finished")
        flags: dict[str, Any] = {
            "passes": passes_text(entry.get("passes")),
            "status": "finished" if ok else str(entry.get("status", "failed")),
            "error": entry.get("error"),
            "on_pareto": entry.get("on_pareto") if ok else None,
            "chosen": bool(entry.get("chosen")),
            "baseline": src.is_baseline(entry),
            "key": str(entry["id"]) if entry.get("id") else None,
            "cost_ci": _interval(entry, "cost_usd_per_1m") if ok else None,
            "quality_ci": _interval(entry, "quality") if ok else None,
        }
        if flags["key"] == side.name:  # no label: the id alone names it
            flags["key"] = None
        points.append(point_of(side, **flags))
        if flags["baseline"] and ok:
            baseline = side
        if flags["chosen"]:
            chosen = _with_training(book, side, entry) if book is not None else side
    first = next((s for s in (baseline, chosen) if s is not None), None) or next(
        (src.side_from_entry(e, source="") for e in entries if e.get("metric")), None
    )
    if first is None:
        raise BadInput(
            f"no candidate in {path / src.CANDIDATES_FILE} was evaluated",
            hint="every candidate failed; see the errors in the file",
        )
    return ReportData(
        title=f"frugal optimize: {Path(str(run.params.get('model'))).name if run else path.name}",
        task=first.task,
        metric=first.metric,
        higher_is_better=first.higher_is_better,
        points=tuple(points),
        data=str(run.params.get("data")) if run and run.params.get("data") else None,
        n_items=first.n_items,
        hardware=run.hardware.to_dict() if run and run.hardware else hardware,
        price=price_of(run, first),
        method=METHOD,
        run_id=run.id if run else None,
        statement=statement_of(baseline, chosen),
        constraint=_constraint(run),
        max_quality_drop=_number(meta.get("max_quality_drop"))
        if meta.get("max_quality_drop") is not None
        else _number(run.params.get("max_quality_drop") if run else None),
        stop_reason=str(meta["stop_reason"]) if meta.get("stop_reason") else None,
        untried=int(meta["untried"]) if meta.get("untried") is not None else None,
        quality_tolerance=_number(meta.get("quality_tolerance")),
    )


def _number(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _with_training(book: Ledger, side: Side, entry: dict[str, Any]) -> Side:
    """The chosen side with what producing it cost: the search's production cost from its
    best/ manifest (written before the reports), else what the ledger knows."""
    manifest = src.manifest_of(entry.get("best_dir"))
    if not side.run_id and manifest is None:
        return side
    try:
        record = book.get(side.run_id) if side.run_id else None
    except NotFound:
        record = None
    return replace(side, training=src.training_of(book, record, manifest))


def _constraint(run: RunRecord | None) -> str | None:
    if run is None or run.params.get("max_quality_drop") is None:
        return None
    return (
        f"the cheapest candidate at most {run.params['max_quality_drop']:g} points below the "
        "original's quality, and cheaper than it, is chosen"
    )


def from_run(book: Ledger, record: RunRecord) -> ReportData:
    """An optimize run (its folder if it still exists, else its candidate runs)."""
    file = record.artifacts.get("candidates")
    if file and Path(file).exists():
        return from_folder(book, Path(file).parent, record)
    children = [c for c in book.runs(parent_id=record.id) if c.kind == "candidate"]
    if not children:
        raise BadInput(
            f"run {record.id[:12]} ({record.kind}) has no candidate runs to report on",
            hint="give an optimize run id or output folder",
        )
    best = src.manifest_of(record.artifacts.get("best")) or {}
    points: list[Point] = []
    baseline = chosen = None
    for c in children[::-1]:  # oldest first: the baseline is evaluated first
        is_base = not c.params.get("passes")
        is_chosen = c.id == best.get("candidate_run_id")
        flags: dict[str, Any] = {
            "passes": passes_text(c.params.get("passes")),
            "status": c.status,
            "error": c.error,
            "chosen": is_chosen,
            "baseline": is_base,
            "key": c.name.split(" ", 1)[0] if " " in c.name else None,  # "c03 onnx+int8"
        }
        try:
            side = src.side_from_record(book, c)
        except BadInput:  # a failed candidate: listed, not plotted
            points.append(Point(name=src.display_name(c, None), quality=None,
                                cost_usd_per_1m=None, run_id=c.id, **flags))  # fmt: skip
            continue
        points.append(point_of(side, **flags))
        baseline = side if is_base else baseline
        chosen = side if is_chosen else chosen
    first = (
        baseline
        or chosen
        or next((src.side_from_record(book, c) for c in children if c.status == "finished"), None)
    )
    if first is None:
        raise BadInput(f"no candidate of run {record.id[:12]} finished", hint="see its errors")
    return ReportData(
        title=f"frugal optimize: {Path(str(record.params.get('model'))).name}",
        task=first.task,
        metric=first.metric,
        higher_is_better=first.higher_is_better,
        points=tuple(points),
        data=record.params.get("data"),
        n_items=first.n_items,
        hardware=record.hardware.to_dict() if record.hardware else None,
        price=price_of(record, first),
        method=METHOD,
        run_id=record.id,
        statement=statement_of(baseline, chosen),
        constraint=_constraint(record),
        max_quality_drop=_number(record.params.get("max_quality_drop")),
    )


def report_data(book: Ledger, source: str | None) -> ReportData:
    """What ``frugal report [SOURCE]`` shows (the newest optimize run when SOURCE is None)."""
    if source is None:
        newest = book.runs(kind="optimize", limit=1)
        if not newest:
            raise BadInput(
                "no optimize run in the ledger to report on",
                hint="run `frugal optimize` first, or give its output folder",
            )
        return from_run(book, newest[0])
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / src.CANDIDATES_FILE).exists():
            raise BadInput(
                f"{path} is not a `frugal optimize` output folder (no {src.CANDIDATES_FILE})",
                hint="give the folder optimize wrote (--out)",
            )
        return from_folder(book, path)
    if path.exists():
        raise BadInput(f"{path} is a file, not an optimize run or output folder")
    record = src.get_run(book, source)
    if record.kind == "candidate" and record.parent_id:
        record = book.get(record.parent_id)
    return from_run(book, record)


def write_for_optimize(result: Any) -> Path:
    """The ``report.html`` writer run at the end of ``frugal optimize`` (into ``result.out``).

    It reads only the folder the search just wrote; the hardware is this machine's (the
    search ran here), so no ledger needs to be opened.
    """
    from frugalml.measure.hardware import hardware
    from frugalml.report.html import write

    out = Path(result.out)
    data = from_folder(None, out, hardware=hardware().to_dict())
    bound = getattr(result, "max_quality_drop", None)
    data = replace(
        data,
        max_quality_drop=float(bound) if bound is not None else data.max_quality_drop,
        stop_reason=getattr(result, "stop_reason", None) or data.stop_reason,
        untried=getattr(result, "untried", None) or data.untried,
        run_id=str(getattr(result, "run_id", "") or "") or None,
        title=f"frugal optimize: {getattr(result, 'model', '') or out.name}",
        data=str(getattr(result, "data", "") or "") or None,
        constraint=(
            f"the cheapest candidate at most {result.max_quality_drop:g} points below the "
            "original's quality, and cheaper than it, is chosen"
            if getattr(result, "max_quality_drop", None) is not None
            else None
        ),
    )
    return write(data, out / "report.html")
