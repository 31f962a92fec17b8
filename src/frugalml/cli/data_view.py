"""How ``frugal data`` shows its results: progress bars, run costs, summaries, tables."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from frugalml.cli import format as fmt
from frugalml.cli.app import console, err

if TYPE_CHECKING:
    from frugalml.data import Dataset
    from frugalml.measure.track import Run
    from frugalml.train.data import AuditReport, Selection


def read_data(path: Path, option: str, **options: Any) -> Dataset:
    """``load_data`` for a command: errors about the path name ``option`` (``--eval``,
    ``DATA``), and reading a non-UTF-8 file as ISO-8859-1 is one warning line on stderr."""
    import warnings

    from frugalml.data import load_data
    from frugalml.data.formats import EncodingFallback

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EncodingFallback)
        ds = load_data(path, option=option, **options)
    for w in caught:
        if issubclass(w.category, EncodingFallback):
            err.print(f"[yellow]frugal: warning:[/] {w.message}", highlight=False, soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return ds


def data_info(ds: Dataset) -> dict[str, Any]:
    """Where a dataset came from and how it was read, for --json."""
    return {"path": ds.source, "format": ds.format, "encoding": ds.encoding, "rows": len(ds)}


@contextmanager
def progress(enabled: bool = True) -> Iterator[Any]:
    """A Rich progress bar on stderr; yields the ``(step, done, total)`` callback."""
    from frugalml.progress import progress_bar

    bar = progress_bar(transient=True, disable=not enabled, console=err)
    tasks: dict[str, Any] = {}

    def update(step: str, done: int, total: int) -> None:
        if step not in tasks:
            tasks[step] = bar.add_task(step, total=total)
        bar.update(tasks[step], completed=done, total=total)

    with bar:
        yield update


def run_summary(run: Run) -> dict[str, Any]:
    """The ledger run's id and cost, for --json and the report files."""
    u = run.usage
    out: dict[str, Any] = {"id": run.id}
    if u is not None:
        out.update(
            wall_s=round(u.wall_s, 3),
            cpu_s=round(u.cpu_s, 3),
            cost_usd=u.cost_usd,
            energy_j=u.energy_j,
            energy_source=u.energy_source,
            co2_g=u.co2_g,
            instance=u.instance,
        )
    return out


def print_run(run: Run) -> None:
    """One dim line: the ledger run and what it cost."""
    u = run.usage
    if u is None:
        return
    console.print(
        f"[dim]ledger run {run.id[:12]} (kind data): {fmt.seconds(u.wall_s)}, "
        f"{fmt.usd(u.cost_usd)}, {fmt.joules(u.energy_j, u.energy_source)}, "
        f"{fmt.grams(u.co2_g)} CO2[/]",
        highlight=False,
    )


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_report(report: AuditReport, ds: Dataset, show: int, verb: str) -> None:
    """Counts, what would be (or was) removed, and the worst examples of each finding."""
    n = report.rows
    balance = ", ".join(f"{k}: {v} ({100 * v / n:.1f}%)" for k, v in report.class_balance.items())
    console.print(
        f"[bold]{ds.source}[/]: {n} rows, {ds.format}, task {report.task}"
        + (f"; labels {balance}" if balance else ""),
        highlight=False,
    )
    console.print(_findings(report))
    console.print(_removed_line(report, verb), highlight=False)
    if show and report.label_issues:
        console.print(_issues_table(report, ds, show))
    dups = [r for r in report.removals if r.reason != "label-issue"]
    if show and dups:
        t = Table(title=f"duplicates ({min(show, len(dups))} of {len(dups)})", title_justify="left")
        for col in ("row", "reason", "detail", "text"):
            t.add_column(col, overflow="fold")
        for r in dups[:show]:
            t.add_row(str(r.index), r.reason, r.detail, _short(ds.texts[r.index], 70))
        console.print(t)


def _findings(report: AuditReport) -> Table:
    """One row per detector: its count and how it looked."""
    c, cfg = report.counts(), report.config
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="dim")
    table.add_row("exact duplicates", str(c["exact_duplicates"]), "case and whitespace ignored")
    if report.task == "classification":
        table.add_row(
            "conflicting labels",
            str(c["conflicting_label_groups"]),
            f"groups of identical texts with different labels "
            f"({c['conflicting_label_rows']} rows removed)",
        )
    if cfg.near:
        how = (
            f"MinHash LSH, Jaccard ≥ {cfg.near_threshold:g} on {cfg.ngram}-word shingles"
            if cfg.near_method == "minhash"
            else f"{cfg.embedder} cosine ≥ {cfg.near_threshold:g}"
        )
        extra = (
            f", {c['near_duplicates_with_other_label']} with another label"
            if report.task == "classification"
            else ""
        )
        table.add_row("near duplicates", str(c["near_duplicates"]), how + extra)
    if report.label_issues_skipped:
        table.add_row("label issues", "-", f"skipped: {report.label_issues_skipped}")
    elif cfg.label_issues:
        acc = report.probe_accuracy or 0.0
        table.add_row(
            "label issues",
            str(c["label_issues"]),
            f"cleanlab on {cfg.embedder} + logistic "
            f"regression, {cfg.folds}-fold out-of-fold accuracy {100 * acc:.1f}%",
        )
    return table


def _removed_line(report: AuditReport, verb: str) -> str:
    c = report.counts()
    names = {
        "exact_duplicate": "exact duplicates",
        "conflicting_labels": "conflicting labels",
        "near_duplicate": "near duplicates",
        "label_issue": "label issues",
    }
    parts = [f"{c[f'remove_{k}']} {name}" for k, name in names.items() if c[f"remove_{k}"]]
    pct = 100 * c["removed"] / report.rows
    return (
        f"[bold]{verb}[/] {c['removed']} rows ({pct:.1f}%)"
        + (f": {', '.join(parts)}" if parts else "")
        + f"; {c['kept']} rows kept."
    )


def _issues_table(report: AuditReport, ds: Dataset, show: int) -> Table:
    issues = report.label_issues
    t = Table(
        title=f"worst label issues ({min(show, len(issues))} of {len(issues)})",
        title_justify="left",
    )
    for col in ("row", "given", "suggested", "p(given)", "text"):
        t.add_column(col, overflow="fold")
    for x in issues[:show]:
        t.add_row(
            str(x.index), x.given, x.suggested, f"{x.given_prob:.2f}", _short(ds.texts[x.index])
        )
    return t


def print_selection(
    doc: dict[str, Any], data: Path, sel: Selection, out: Path, written: str, report_file: Path
) -> None:
    """The human summary of ``frugal data select``."""
    before, after = doc["class_balance_before"], doc["class_balance_after"]
    console.print(
        f"[bold]{data}[/]: selected {len(sel.indices)} of {doc['rows']} rows "
        f"({100 * len(sel.indices) / doc['rows']:.1f}%) by {doc['strategy']}",
        highlight=False,
    )
    if before:
        t = Table(box=None)
        for col in ("label", "rows", "selected"):
            t.add_column(col, justify="right")
        for k in before:
            t.add_row(k, str(before[k]), str(after.get(k, 0)))
        console.print(t)
    if sel.held_back:
        console.print(
            f"{len(sel.held_back)} rows held back first (label issues, duplicates)"
            + (
                f"; probe out-of-fold accuracy {100 * sel.probe_accuracy:.1f}%"
                if sel.probe_accuracy is not None
                else ""
            ),
            highlight=False,
        )
    console.print(
        f"wrote {len(sel.indices)} rows to [bold]{out}[/] ({written}); report in {report_file}",
        highlight=False,
    )


def balance(labels: Any, indices: Any) -> dict[str, int]:
    """Rows per label among ``indices`` (numeric-looking labels in numeric order)."""
    if labels is None:
        return {}
    counts = Counter(labels[i] for i in indices)
    return dict(sorted(counts.items(), key=lambda kv: (len(kv[0]), kv[0])))
