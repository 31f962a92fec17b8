"""Commands that prove a cut: compare (the cost-delta statement), gate (CI), report (HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from frugalml.cli.app import (
    InstanceOpt,
    JsonOpt,
    LedgerOpt,
    OverwriteOpt,
    RegionOpt,
    app,
    console,
    err,
)
from frugalml.cli.app import print_json as _print_json
from frugalml.cli.lm_view import NewTokensOpt, StrideOpt, WindowOpt, WindowsOpt, lm_task_options
from frugalml.cli.place_cmds import (
    PlaceFromOpt,
    PlaceSloOpt,
    PlaceToOpt,
    check_place_options,
    placement_of_run,
    print_placement,
)

if TYPE_CHECKING:
    from frugalml.report.loadtest import LoadStatement
    from frugalml.report.statement import Statement

SideArg = Annotated[
    str,
    typer.Argument(
        help="A run id (or unique prefix) from the ledger, a `frugal optimize` output folder, or a "
        "model (a path, an .onnx file, or 'minilm') to evaluate now with --task/--data.",
        show_default=False,
    ),
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        help="Task to evaluate models with: similarity, classification or fidelity; for two "
        "causal LMs perplexity, fidelity or generation (costs per 1M output tokens)."
    ),
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        help="Data file to evaluate models on (STS-B TSV, label-text, CSV, TSV, JSONL; plain "
        "text or JSONL prompts for causal LMs)."
    ),
]
RoundsOpt = Annotated[
    int,
    typer.Option(
        help="Timed rounds per model when evaluating; models alternate A B B A... Each figure "
        "is its median over the rounds; timing ratios are the median of the rounds' paired "
        "ratios, with a 95% interval from 6 rounds on.",
        min=1,
    ),
]
ResamplesOpt = Annotated[
    int,
    typer.Option(
        help="Bootstrap resamples for the quality CI (paired, percentile, seeded).", min=100
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="Device to evaluate on: cpu, cuda, cuda:N.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(help="Intra-op threads for evaluation (default: every usable core).", min=1),
]
BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size", help="Texts per call when evaluating (default: the model's).", min=1
    ),
]


DEFAULT_ROUNDS = 9  # = frugalml.report.fresh.DEFAULT_ROUNDS (not imported: the CLI starts fast)


def _progress() -> Any:
    from frugalml.progress import progress_bar

    return progress_bar(remaining=False, transient=True, console=err)


def _statement(
    baseline: str, candidate: str, *, quiet: bool, **options: Any
) -> Statement | LoadStatement:
    """``frugalml.compare`` with a progress bar on stderr while models are evaluated."""
    from frugalml.report.compare import compare

    if quiet or options.get("task") is None:
        return compare(baseline, candidate, **options)
    with _progress() as bar:
        job = bar.add_task("evaluating", total=None)

        def step(done: int, total: int, name: str) -> None:
            bar.update(job, completed=done, total=total, description=f"evaluating {name}")

        return compare(baseline, candidate, on_step=step, **options)


def _print_statement(st: Statement | LoadStatement) -> None:
    console.print(f"\n[bold]Cost-delta statement[/]: {st.candidate.name} vs {st.baseline.name}\n")
    console.print(st.paragraph(), highlight=False, soft_wrap=False)
    table = Table(box=None, pad_edge=False, show_edge=False)
    for col, justify in (
        ("figure", "left"),
        ("baseline", "right"),
        ("candidate", "right"),
        ("change", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in st.rows():
        table.add_row(*row)
    console.print()
    console.print(table)
    for note in st.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    b, c = st.baseline, st.candidate
    if b.run_id and c.run_id:
        console.print(
            f"[dim]from the ledger alone: frugal compare {b.run_id[:12]} {c.run_id[:12]}[/]",
            highlight=False,
        )


@app.command()
def compare(
    baseline: SideArg,
    candidate: SideArg,
    task: TaskOpt = None,
    data: DataOpt = None,
    rounds: RoundsOpt = DEFAULT_ROUNDS,
    resamples: ResamplesOpt = 1000,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    batch_size: BatchOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    window: WindowOpt = None,
    stride: StrideOpt = None,
    windows: WindowsOpt = None,
    new_tokens: NewTokensOpt = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    place_to: PlaceToOpt = None,
    place_from: PlaceFromOpt = None,
    slo_p99_ms: PlaceSloOpt = None,
) -> None:
    """Print the cost-delta statement of CANDIDATE against BASELINE.

    Quality delta with a paired bootstrap 95% CI, latency p50/p99 (per batch, batch sizes
    named), throughput, $ per 1M requests, energy per 1k requests (with its source), CO2,
    peak memory, size on disk and training cost where the ledger knows it: a short paragraph
    plus a table (--json for machines). Models are evaluated now with --task/--data over
    interleaved rounds (timing ratios get a 95% interval from the paired rounds) and
    recorded as eval runs (their ids in --json: recorded_run_ids), so `frugal compare RUN_A
    RUN_B` later rebuilds the same statement from the ledger. Two causal LMs are measured as
    `frugal eval` measures one (--window/--stride/--windows/--new-tokens), per 1M output
    tokens, with the candidate's fidelity to the baseline (KL, top-1, flips) in the notes.
    --place-to adds a placement statement for CANDIDATE's workload (docs/finops.md).
    """
    check_place_options(place_to, place_from, slo_p99_ms)
    st = _statement(
        baseline,
        candidate,
        task=task,
        data=data,
        ledger=ledger,
        rounds=rounds,
        resamples=resamples,
        device=device,
        threads=threads,
        batch_size=batch_size,
        instance=instance,
        region=region,
        task_options=lm_task_options(window, stride, windows, new_tokens),
        quiet=json_out,
    )
    placed = None
    if place_to is not None:
        what = f"the candidate ({st.candidate.name})"
        run_id = st.candidate.run_id
        placed = placement_of_run(ledger, run_id, what, place_to, place_from, slo_p99_ms)
    if json_out:
        _print_json(st.to_dict() | ({"placement": placed} if placed else {}))
    else:
        _print_statement(st)
        if placed:
            print_placement(placed)


@app.command()
def gate(
    baseline: SideArg,
    candidate: SideArg,
    max_cost_ratio: Annotated[
        float,
        typer.Option(
            help="Largest allowed candidate/baseline cost ratio (0.5: at most half the cost).",
            show_default=False,
        ),
    ],
    max_quality_drop: Annotated[
        float | None,
        typer.Option(
            help="Largest allowed quality drop, in the metric's points (baseline − candidate when "
            "higher is better); for perplexity (lower is better) a relative increase in percent "
            "(2: at most 2% above the baseline's). Needed for evaluations; loadtest runs are "
            "gated on cost alone.",
            show_default=False,
        ),
    ] = None,
    cost_metric: Annotated[
        str,
        typer.Option(
            help="What the cost ratio divides: cost ($ per 1M requests), energy (J per 1k "
            "requests) or latency (p50)."
        ),
    ] = "cost",
    strict: Annotated[
        bool,
        typer.Option(
            help="Judge the worst end of each 95% CI (quality drop, and cost ratio over the "
            "rounds), not the point estimate; a missing interval fails the gate."
        ),
    ] = False,
    task: TaskOpt = None,
    data: DataOpt = None,
    rounds: RoundsOpt = DEFAULT_ROUNDS,
    resamples: ResamplesOpt = 1000,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    batch_size: BatchOpt = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    window: WindowOpt = None,
    stride: StrideOpt = None,
    windows: WindowsOpt = None,
    new_tokens: NewTokensOpt = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Promotion gate for CI: exit 0 if CANDIDATE passes, 1 if it fails, 2 on bad input.

    Passes when cost ratio (candidate / baseline) <= --max-cost-ratio and quality drop <=
    --max-quality-drop points, or percent for perplexity (--strict: the worst end of each 95%
    interval, and a missing interval fails). Causal LMs as in `frugal compare`. A failure
    prints each failed condition with its figures. Bad input (missing model, unreadable data,
    unknown run, different tasks, no quality) exits 2.
    """
    from frugalml.report.gate import check_limits
    from frugalml.report.gate import gate as judge

    check_limits(max_cost_ratio, max_quality_drop, cost_metric)  # before any evaluation
    if max_quality_drop is None and task is not None:
        from frugalml.errors import BadInput

        raise BadInput("--max-quality-drop is needed to gate evaluations", hint="e.g. 1.0")
    st = _statement(
        baseline,
        candidate,
        task=task,
        data=data,
        ledger=ledger,
        rounds=rounds,
        resamples=resamples,
        device=device,
        threads=threads,
        batch_size=batch_size,
        instance=instance,
        region=region,
        task_options=lm_task_options(window, stride, windows, new_tokens),
        quiet=json_out,
    )
    verdict = judge(
        st,
        max_cost_ratio=max_cost_ratio,
        max_quality_drop=max_quality_drop,
        cost_metric=cost_metric,
        strict=strict,
    )
    if json_out:
        _print_json({**verdict.to_dict(), "statement": st.to_dict()})
    else:
        _print_verdict(st, verdict)
    raise typer.Exit(0 if verdict.passed else 1)


def _print_verdict(st: Any, verdict: Any) -> None:
    """The statement, PASS or FAIL, and each condition with its figures."""
    console.print(st.paragraph(), highlight=False)
    if verdict.passed:
        console.print(f"\n[bold green]PASS[/]: {st.candidate.name} may be promoted.")
    else:
        console.print(f"\n[bold red]FAIL[/]: {st.candidate.name} does not pass the gate.")
    for c in verdict.conditions:
        console.print(f"  {'ok   ' if c.passed else 'FAIL '} {c.text}", highlight=False)


@app.command()
def report(
    source: Annotated[
        str | None,
        typer.Argument(
            help="An optimize run id or a `frugal optimize` output folder (default: the newest "
            "optimize run in the ledger), or a loadtest run id (its rates, latency and $ per 1k "
            "requests).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the HTML file.")] = Path("report.html"),
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
    overwrite: OverwriteOpt = False,
    place_to: PlaceToOpt = None,
    place_from: PlaceFromOpt = None,
    slo_p99_ms: PlaceSloOpt = None,
) -> None:
    """Write one self-contained HTML report (opens with no network).

    A chart of quality against $ per 1M requests with the Pareto front, the baseline and the
    chosen candidate marked; the candidate table; the cost breakdown (instance time against
    electricity); the ledger's spend over time by project and kind (when it has runs);
    hardware, method and estimate-vs-reading notes. --place-to adds a placement statement
    for the chosen candidate's workload (docs/finops.md).
    """
    check_place_options(place_to, place_from, slo_p99_ms)
    from frugalml.ledger import Ledger
    from frugalml.outputs import OutputGuard
    from frugalml.report import collect
    from frugalml.report.html import write
    from frugalml.report.loadtest import loadtest_record
    from frugalml.report.loadtest import write_report as write_loadtest

    guard = OutputGuard(
        ledger=ledger,
        inputs=[source, f"{source}/candidates.json"] if source else [],
        overwrite=overwrite,
    )
    guard.claim_file(out)  # never the ledger, the source, or a file frugal did not write
    from dataclasses import replace

    from frugalml.report.spend import with_spend

    with Ledger(ledger) as book:
        if (served := loadtest_record(book, source)) is not None:  # a loadtest run's page
            path = write_loadtest(book, served, out)
            guard.mark_written(path)
            if json_out:
                _print_json({"out": str(path), "run_id": served.id, "kind": served.kind})
            else:
                console.print(f"Wrote {path} (loadtest run {served.id[:12]}).")
            return
        data = with_spend(book, collect.report_data(book, source))  # + spend over time
    if place_to is not None:
        chosen = next((p for p in data.points if p.chosen), None)
        what = f"the chosen candidate ({chosen.name})" if chosen else "the report (no chosen one)"
        placed = placement_of_run(
            ledger, chosen.run_id if chosen else None, what, place_to, place_from, slo_p99_ms
        )
        data = replace(data, placement=placed)
    path = write(data, out)
    guard.mark_written(path)
    if json_out:
        _print_json({"out": str(path), "points": len(data.points), "title": data.title})
    else:
        console.print(f"Wrote {path} ({len(data.points)} candidates).")
