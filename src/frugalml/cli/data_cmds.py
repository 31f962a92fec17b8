"""``frugal data audit | clean | select``: don't pay to train on duplicated or mislabelled rows.

Each command is recorded in the ledger as a run of kind ``data`` (its cost in seconds, $,
joules and CO2; its counts as quality figures), so the cost of cleaning is a number next to
the training it saves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from frugalml.cli import data_view as view
from frugalml.cli.app import (
    EncodingOpt,
    FormatOpt,
    InstanceOpt,
    JsonOpt,
    LabelColOpt,
    LedgerOpt,
    OverwriteOpt,
    RegionOpt,
    Text2ColOpt,
    TextColOpt,
    app,
    console,
    err,
    print_json,
)
from frugalml.outputs import OutputGuard

if TYPE_CHECKING:
    from frugalml.data import Dataset
    from frugalml.train.data import AuditConfig, AuditReport

data_app = typer.Typer(
    name="data",
    help="Audit, clean and subsample training data: exact and near duplicates, conflicting "
    "labels, label issues (cleanlab), informative subsets. Every command is a ledger run.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data")

DataArg = Annotated[
    Path,
    typer.Argument(
        help="Data file: `label text` lines (SST-2, TREC), STS-B TSV, CSV/TSV with a header, or "
        "JSONL.",
        show_default=False,
    ),
]
TaskOpt = Annotated[
    str,
    typer.Option(
        "--task",
        help="What the data is for: auto, classification (needs labels; enables "
        "label-issue detection), similarity (sentence pairs), text (unlabelled).",
    ),
]
NearOpt = Annotated[bool, typer.Option("--near/--no-near", help="Look for near duplicates too.")]
MethodOpt = Annotated[
    str,
    typer.Option(
        "--method",
        help="Near-duplicate method: minhash (MinHash LSH on word shingles) or "
        "embedding (cosine of --embedder vectors).",
    ),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        help="Near-duplicate similarity threshold: Jaccard for minhash (default "
        "0.8), cosine for embedding (default 0.95).",
        show_default=False,
    ),
]
NgramOpt = Annotated[
    int,
    typer.Option("--ngram", help="Words per MinHash shingle (1 suits sentences, 2-3 paragraphs)."),
]
IssuesOpt = Annotated[
    bool,
    typer.Option(
        "--label-issues/--no-label-issues",
        help="Find label issues: cleanlab on out-of-fold probabilities of a logistic-regression "
        "probe (classification data with 2+ classes).",
    ),
]
EmbedderOpt = Annotated[
    str,
    typer.Option(
        "--embedder",
        help="Features for the probe and embedding methods: minilm (bundled "
        "all-MiniLM-L6-v2; ~140 CPU-seconds for 7k sentences) or tfidf (seconds).",
    ),
]
FoldsOpt = Annotated[int, typer.Option("--folds", help="Folds for out-of-fold probabilities.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
ShowOpt = Annotated[
    int,
    typer.Option(
        "--show", help="Examples to print per finding (tables only; --json lists them all).", min=0
    ),
]


def _load(
    data: Path,
    format: str,
    text_col: str | None,
    text2_col: str | None,
    label_col: str | None,
    encoding: str | None,
) -> tuple[Dataset, dict[str, Any]]:
    opts: dict[str, Any] = {
        "format": format,
        "text_col": text_col,
        "text2_col": text2_col,
        "label_col": label_col,
        "encoding": encoding,
    }
    return view.read_data(data, "DATA", **opts), opts


def _config(
    task: str,
    near: bool,
    method: str,
    threshold: float | None,
    ngram: int,
    label_issues: bool,
    embedder: str,
    folds: int,
    seed: int,
) -> AuditConfig:
    from frugalml.train.data import AuditConfig

    return AuditConfig(
        task=task,
        near=near,
        near_method=method,
        threshold=threshold,
        ngram=ngram,
        label_issues=label_issues,
        embedder=embedder,
        folds=folds,
        seed=seed,
    )


def _params(data: Path, ds: Dataset, cfg: AuditConfig) -> dict[str, Any]:
    return {
        "data": str(data),
        "rows": len(ds),
        "format": ds.format,
        "task": cfg.task,
        "near": cfg.near,
        "near_method": cfg.near_method,
        "threshold": cfg.near_threshold,
        "ngram": cfg.ngram,
        "label_issues": cfg.label_issues,
        "embedder": cfg.embedder,
        "folds": cfg.folds,
        "seed": cfg.seed,
    }


def _quality(report: AuditReport) -> dict[str, float]:
    q: dict[str, float] = {k: float(v) for k, v in report.counts().items()}
    if report.probe_accuracy is not None:
        q["probe_accuracy"] = report.probe_accuracy
    return q


@data_app.command("audit")
def audit_cmd(
    data: DataArg,
    task: TaskOpt = "auto",
    near: NearOpt = True,
    method: MethodOpt = "minhash",
    threshold: ThresholdOpt = None,
    ngram: NgramOpt = 1,
    label_issues: IssuesOpt = True,
    embedder: EmbedderOpt = "minilm",
    folds: FoldsOpt = 5,
    seed: SeedOpt = 0,
    show: ShowOpt = 10,
    format: FormatOpt = "auto",
    text_col: TextColOpt = None,
    text2_col: Text2ColOpt = None,
    label_col: LabelColOpt = None,
    encoding: EncodingOpt = None,
    ledger: LedgerOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Report duplicates, conflicting labels, label issues and class balance; change nothing.

    Says what `frugal data clean` would remove and why, with counts. --json prints every
    finding: `removals` (0-based data row `index`, `reason`, `detail`, the `kept` row it
    duplicates) and `label_issues` (given vs suggested label with the probe's probabilities).
    """
    from frugalml.measure.track import track
    from frugalml.train.data import audit, resolve_task

    cfg = _config(task, near, method, threshold, ngram, label_issues, embedder, folds, seed)
    ds, _ = _load(data, format, text_col, text2_col, label_col, encoding)
    resolve_task(ds, cfg.task)
    with (
        track(
            f"data audit {data.name}",
            kind="data",
            ledger=ledger,
            instance=instance,
            region=region,
            params=_params(data, ds, cfg),
        ) as run,
        view.progress() as bar,
    ):
        report = audit(ds, cfg, progress=bar)
        run.log_quality(**_quality(report))
    if json_out:
        doc = {**report.to_dict(ds), "data": str(data), "encoding": ds.encoding}
        print_json({**doc, "run": view.run_summary(run)})
        return
    if report.label_issues_skipped and cfg.label_issues:
        err.print(f"[yellow]label-issue detection skipped:[/] {report.label_issues_skipped}")
    view.print_report(report, ds, show, "clean would remove")
    view.print_run(run)


def _empty_after_cleaning(data: Path, report: AuditReport) -> Exception:
    from frugalml.errors import BadInput

    c = report.counts()
    why = [
        f"{c[f'remove_{k}']} {k.replace('_', ' ')}"
        for k in ("exact_duplicate", "conflicting_labels", "near_duplicate", "label_issue")
        if c[f"remove_{k}"]
    ]
    fixes = {
        "conflicting_labels": "fix the conflicting labels",
        "near_duplicate": "raise --threshold or pass --no-near",
        "label_issue": "pass --no-label-issues",
    }
    hint = "; ".join(v for k, v in fixes.items() if c[f"remove_{k}"]) or "check the data"
    return BadInput(
        f"{data} would be empty after cleaning: all {c['rows']} rows removed "
        f"({', '.join(why)}); nothing was written",
        hint=hint,
    )


def _sidecar(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


CleanOutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        help="Write the cleaned data here (the input's format; never over the input).",
        show_default=False,
    ),
]
CleanReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Where to write the JSON report of removed rows (default: OUT.report.json).",
        show_default=False,
    ),
]


@data_app.command("clean")
def clean_cmd(
    data: DataArg,
    out: CleanOutOpt,
    report_path: CleanReportOpt = None,
    task: TaskOpt = "auto",
    near: NearOpt = True,
    method: MethodOpt = "minhash",
    threshold: ThresholdOpt = None,
    ngram: NgramOpt = 1,
    label_issues: IssuesOpt = True,
    embedder: EmbedderOpt = "minilm",
    folds: FoldsOpt = 5,
    seed: SeedOpt = 0,
    show: ShowOpt = 5,
    format: FormatOpt = "auto",
    text_col: TextColOpt = None,
    text2_col: Text2ColOpt = None,
    label_col: LabelColOpt = None,
    encoding: EncodingOpt = None,
    ledger: LedgerOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    json_out: JsonOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Remove duplicates, conflicting labels and label issues; write the rest to --out.

    The kept rows are copied verbatim in the input's format, so `frugal finetune` and friends
    read OUT as they read DATA. A JSON report (--report) lists every removed row: 0-based data
    row index, reason, detail and text. Exits 2, writing nothing, if no row would be left.
    """
    from frugalml.measure.track import track
    from frugalml.train.data import audit, resolve_task, write_rows
    from frugalml.train.data.write import check_out

    cfg = _config(task, near, method, threshold, ngram, label_issues, embedder, folds, seed)
    ds, opts = _load(data, format, text_col, text2_col, label_col, encoding)
    resolve_task(ds, cfg.task)
    check_out(ds, out)
    report_file = report_path or out.with_name(out.name + ".report.json")
    check_out(ds, report_file)
    guard = OutputGuard(ledger=ledger, inputs=[data], overwrite=overwrite)
    guard.claim_file(out)  # never the data, the ledger, or a file frugal did not write
    guard.claim_file(report_file, option="--report")
    params = {**_params(data, ds, cfg), "out": str(out)}
    where: dict[str, Any] = {"ledger": ledger, "instance": instance, "region": region}
    with (
        track(f"data clean {data.name}", kind="data", params=params, **where) as run,
        view.progress() as bar,
    ):
        report = audit(ds, cfg, progress=bar)
        run.log_quality(**_quality(report))
        kept = report.kept()
        if not kept:
            raise _empty_after_cleaning(data, report)
        written = write_rows(ds, kept, out, opts)
        run.log_artifacts(cleaned=str(out), report=str(report_file))
    doc: dict[str, Any] = {
        **report.to_dict(ds),
        "data": str(data),
        "encoding": ds.encoding,
        "out": str(out),
        "out_format": written,
        "report": str(report_file),
        "run": view.run_summary(run),
    }
    _sidecar(report_file, doc)
    guard.mark_written(out)
    guard.mark_written(report_file)
    if json_out:
        print_json(doc)
        return
    if report.label_issues_skipped and cfg.label_issues:
        err.print(f"[yellow]label-issue detection skipped:[/] {report.label_issues_skipped}")
    view.print_report(report, ds, show, "removed")
    console.print(
        f"wrote {len(kept)} rows to [bold]{out}[/] ({written}); removed rows and "
        f"reasons in {report_file}",
        highlight=False,
    )
    view.print_run(run)


FractionOpt = Annotated[
    float,
    typer.Option("--fraction", help="Share of rows to keep, in (0, 1].", show_default=False),
]
SubsetOutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        help="Write the subset here (the input's format; never over the input).",
        show_default=False,
    ),
]
StrategyOpt = Annotated[
    str,
    typer.Option(
        "--strategy",
        help="random (seeded, stratified by label), uncertainty (rows the "
        "out-of-fold probe is least sure of; label issues and duplicates left out first) or "
        "diversity (k-center greedy on --embedder vectors within each label).",
    ),
]
RandomShareOpt = Annotated[
    float,
    typer.Option(
        "--random-share",
        help="Share of each label's quota drawn at random in the "
        "uncertainty/diversity strategies, in [0, 1).",
    ),
]
SelectReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Where to write the JSON report (default: OUT.report.json).",
        show_default=False,
    ),
]


@data_app.command("select")
def select_cmd(
    data: DataArg,
    fraction: FractionOpt,
    out: SubsetOutOpt,
    strategy: StrategyOpt = "uncertainty",
    random_share: RandomShareOpt = 0.0,
    embedder: EmbedderOpt = "minilm",
    folds: FoldsOpt = 5,
    seed: SeedOpt = 0,
    report_path: SelectReportOpt = None,
    format: FormatOpt = "auto",
    text_col: TextColOpt = None,
    text2_col: Text2ColOpt = None,
    label_col: LabelColOpt = None,
    encoding: EncodingOpt = None,
    ledger: LedgerOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    json_out: JsonOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Keep an informative --fraction of the rows, class balance preserved, and write them.

    Every label keeps its share of the subset. The report (--report, and --json) lists the
    selected 0-based row indices and the rows the informative strategies held back (label
    issues, duplicates) with reasons.
    """
    from frugalml.measure.track import track
    from frugalml.train.data import SelectConfig, select_rows, write_rows
    from frugalml.train.data.embed import check_embedder
    from frugalml.train.data.write import check_out

    cfg = SelectConfig(fraction=fraction, strategy=strategy, seed=seed, random_share=random_share)
    check_embedder(embedder)
    ds, opts = _load(data, format, text_col, text2_col, label_col, encoding)
    check_out(ds, out)
    report_file = report_path or out.with_name(out.name + ".report.json")
    check_out(ds, report_file)
    guard = OutputGuard(ledger=ledger, inputs=[data], overwrite=overwrite)
    guard.claim_file(out)  # never the data, the ledger, or a file frugal did not write
    guard.claim_file(report_file, option="--report")
    params = {**_select_params(data, ds, cfg, embedder, folds), "out": str(out)}
    where: dict[str, Any] = {"ledger": ledger, "instance": instance, "region": region}
    with (
        track(f"data select {data.name}", kind="data", params=params, **where) as run,
        view.progress() as bar,
    ):
        sel = select_rows(ds, cfg, embedder=embedder, folds=folds, progress=bar)
        run.log_quality(**_select_quality(ds, sel))
        written = write_rows(ds, sel.indices, out, opts)
        run.log_artifacts(subset=str(out), report=str(report_file))
    doc: dict[str, Any] = {
        **_select_params(data, ds, cfg, embedder, folds),
        "embedder": embedder if strategy != "random" else None,
        "out": str(out),
        "out_format": written,
        **_selection(ds, sel),
        "report": str(report_file),
        "run": view.run_summary(run),
    }
    _sidecar(report_file, doc)
    guard.mark_written(out)
    guard.mark_written(report_file)
    if json_out:
        print_json(doc)
        return
    view.print_selection(doc, data, sel, out, written, report_file)
    view.print_run(run)


def _select_params(data: Path, ds: Dataset, cfg: Any, embedder: str, folds: int) -> dict[str, Any]:
    return {
        "data": str(data),
        "encoding": ds.encoding,
        "rows": len(ds),
        "format": ds.format,
        "fraction": cfg.fraction,
        "strategy": cfg.strategy,
        "random_share": cfg.random_share,
        "embedder": embedder,
        "folds": folds,
        "seed": cfg.seed,
    }


def _select_quality(ds: Dataset, sel: Any) -> dict[str, float]:
    quality = {
        "rows": float(len(ds)),
        "selected": float(len(sel.indices)),
        "held_back": float(len(sel.held_back)),
    }
    if sel.probe_accuracy is not None:
        quality["probe_accuracy"] = sel.probe_accuracy
    return quality


def _selection(ds: Dataset, sel: Any) -> dict[str, Any]:
    """What was selected, for the report and --json."""
    return {
        "selected": len(sel.indices),
        "class_balance_before": view.balance(ds.labels, range(len(ds))),
        "class_balance_after": view.balance(ds.labels, sel.indices),
        "probe_accuracy": sel.probe_accuracy,
        "seconds": {k: round(v, 3) for k, v in sel.seconds.items()},
        "held_back": [{"index": i, "reason": r} for i, r in sorted(sel.held_back.items())],
        "indices": sel.indices,
    }
