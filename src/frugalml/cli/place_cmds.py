"""``frugal place``: where a measured workload is cheapest to run (report/placement.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from frugalml.cli import format as fmt
from frugalml.cli.app import JsonOpt, LedgerOpt, app, console, print_json
from frugalml.errors import BadInput

if TYPE_CHECKING:
    from frugalml.ledger import Ledger
    from frugalml.records import RunRecord


def _latest_eval_of(book: Ledger, model: str) -> RunRecord | None:
    """The newest finished eval run of ``model`` (a folder or an alias, as given to eval)."""
    wanted = Path(model).expanduser().resolve() if Path(model).exists() else None
    for run in book.runs(kind="eval", status="finished"):
        spec = str(run.params.get("model") or "")
        if spec == model or (wanted is not None and Path(spec).expanduser().resolve() == wanted):
            return run
    return None


def _record(book: Ledger, target: str) -> RunRecord:
    """The run ``target`` names, else the newest finished eval run of the model it names."""
    from frugalml.errors import NotFound

    if not Path(target).exists():
        try:
            return book.get(target)
        except NotFound as e:
            if "ambiguous" in e.message:
                raise
    found = _latest_eval_of(book, target)
    if found is None:
        raise BadInput(
            f"'{target}' is neither a run id in the ledger nor a model with a finished eval run",
            hint="measure it first: `frugal eval MODEL --task ... --data ...`",
        )
    return found


@app.command()
def place(
    target: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID|MODEL_DIR",
            help="A measured run (eval or fine-tune), or a model whose newest eval run to use.",
        ),
    ],
    slo_p99_ms: Annotated[
        float | None, typer.Option("--slo-p99-ms", help="Largest p99 batch latency, in ms.")
    ] = None,
    min_throughput: Annotated[
        float | None,
        typer.Option("--min-throughput", help="Requests/s one instance must serve."),
    ] = None,
    instances: Annotated[
        str | None,
        typer.Option("--instances", help="Comma-separated names or globs, e.g. 'aws/*,gcp/*'."),
    ] = None,
    spot: Annotated[
        bool,
        typer.Option("--spot", help="Rank by spot price, including expected restarts."),
    ] = False,
    tokens: Annotated[
        int | None,
        typer.Option(
            "--tokens-per-request", min=1, help="Tokens per request for the FLOPs (default 64)."
        ),
    ] = None,
    checkpoint_minutes: Annotated[
        float | None,
        typer.Option(
            "--checkpoint-minutes",
            help="Training on spot: minutes between checkpoints (default: the catalog's, 30).",
        ),
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="State the move from this instance (default: the run's measured hardware).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="State the move to this instance, or to the cheapest of these names/globs "
            "that meets the SLO (default: the cheapest ranked).",
        ),
    ] = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rank the catalog's instances by $ per 1M requests (1M output tokens for a causal LM,
    or per training run) at an SLO.

    The run's own hardware is measured; every other row is a roofline prediction calibrated
    on it, shown with its inputs (docs/finops.md). Prices come from the catalog (`frugal
    prices`, your config file overrides it); its age is printed with the ranking and the
    statement. --from/--to state one placement change ("moving this workload from X to Y
    cuts $ per 1M requests by Z% at the same SLO"), each side labelled measured or predicted.
    """
    from frugalml.measure.prices import catalog
    from frugalml.report.placement import place as rank
    from frugalml.report.placement import placement_change

    cat = catalog()
    from frugalml.ledger import Ledger

    with Ledger(ledger) as book:
        record = _record(book, target)
    options: dict[str, Any] = {
        "slo_p99_ms": slo_p99_ms,
        "min_throughput": min_throughput,
        "spot": spot,
        "tokens_per_request": tokens,
        "checkpoint_minutes": checkpoint_minutes,
    }
    change = None
    if origin is not None or to is not None:
        result, change = placement_change(
            record, cat, origin=origin, target=to, instances=instances, **options
        )
    else:
        result = rank(record, cat, instances=instances, **options)
    if json_out:
        out = result.to_dict()
        if change is not None:
            out |= {"statement": change.statement(), "change": change.to_dict()}
        print_json(out)
        return
    _print_ranking(result, change)


def _predicted_note(inputs: dict[str, Any]) -> str:
    """A predicted row's inputs in a few words: bound, chip, overhead (measured or stated)."""
    source = str(inputs.get("sources", {}).get("overhead", "")).split(":", 1)[0]
    overhead = inputs.get("overhead_ms")
    tail = f", overhead {overhead:.3g} ms {source}".rstrip() if overhead is not None else ""
    return f"{inputs.get('bound', '')}-bound, {inputs.get('chip', '')}{tail}"


def _print_ranking(result: Any, change: Any) -> None:
    """The ranking as a table (measured and predicted rows, those missing the SLO dimmed),
    then the statement: the placement change when --from/--to asked for one."""
    training = result.unit == "training run"
    table = Table(title=f"$ per {result.unit} — {result.catalog_age}", title_justify="left")
    cols = (
        ["instance", "label", "$/h"]
        + (["wall"] if training else ["tok/s" if "token" in result.unit else "req/s", "p99 ms"])
        + [f"$/{result.unit}", "note"]
    )
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in result.rows:
        label = r.label + (" (approx)" if r.approx else "")
        figures = (
            [fmt.seconds(r.wall_s) if r.wall_s is not None else "-"]
            if training
            else [
                f"{r.throughput_per_s:.1f}" if r.throughput_per_s is not None else "-",
                f"{r.latency_ms_p99:.1f}" if r.latency_ms_p99 is not None else "-",
            ]
        )
        note = r.reason or (_predicted_note(r.inputs) if r.label == "predicted" else "")
        table.add_row(
            r.instance,
            label,
            fmt.usd(r.usd_per_hour),
            *figures,
            fmt.usd(r.usd) if r.usd is not None else "-",
            note,
            style=None if r.meets else "dim",
        )
    console.print(table)
    console.print(change.statement() if change is not None else result.statement(), highlight=False)
    console.print(f"[dim]model: {result.model}[/]", highlight=False)


# ---- a placement statement for `frugal compare` and `frugal report` (prove_cmds.py) -----------
PlaceToOpt = Annotated[
    str | None,
    typer.Option(
        "--place-to",
        help="Also state moving the candidate's workload to this instance (or to the cheapest "
        "of these names/globs that meets the SLO), as `frugal place --to` does.",
    ),
]
PlaceFromOpt = Annotated[
    str | None,
    typer.Option(
        "--place-from",
        help="With --place-to: move from this instance (default: the run's measured hardware).",
    ),
]
PlaceSloOpt = Annotated[
    float | None,
    typer.Option("--slo-p99-ms", help="With --place-to: the SLO, largest p99 batch latency."),
]


def check_place_options(
    place_to: str | None, place_from: str | None, slo_p99_ms: float | None
) -> None:
    """Refuse bad placement options before any evaluation (unknown names: exit 2)."""
    if place_to is None:
        if place_from is not None or slo_p99_ms is not None:
            raise BadInput("--place-from and --slo-p99-ms go with --place-to")
        return
    from frugalml.measure.prices import catalog
    from frugalml.report.placement import select_instances

    select_instances(catalog(), place_to)
    if slo_p99_ms is not None and not slo_p99_ms > 0:
        raise BadInput("--slo-p99-ms must be positive")


def placement_of_run(
    ledger: str | None,
    run_id: str | None,
    what: str,
    place_to: str,
    place_from: str | None,
    slo_p99_ms: float | None,
) -> dict[str, Any]:
    """The placement change of run ``run_id`` (``what`` names it in errors), as a dict:
    :meth:`frugalml.report.placement.PlacementChange.to_dict`."""
    from frugalml.ledger import Ledger
    from frugalml.measure.prices import catalog
    from frugalml.report.placement import placement_change

    if not run_id:
        raise BadInput(
            f"{what} has no run in the ledger to place",
            hint="place a recorded eval or candidate run with `frugal place RUN --to ...`",
        )
    with Ledger(ledger) as book:
        record = book.get(run_id)
    _, change = placement_change(
        record, catalog(), origin=place_from, target=place_to, slo_p99_ms=slo_p99_ms
    )
    return change.to_dict()


def print_placement(change: dict[str, Any]) -> None:
    """The placement statement and its two rows, after a comparison."""
    console.print("\n[bold]Placement[/]", highlight=False)
    console.print(change["statement"], highlight=False, soft_wrap=True)
    for key in ("from", "to"):
        r = change[key]
        figures = (
            f"{r['throughput_per_s']:.1f}/s, p99 {r['latency_ms_p99']:.1f} ms"
            if r.get("throughput_per_s") is not None and r.get("latency_ms_p99") is not None
            else (fmt.seconds(r["wall_s"]) if r.get("wall_s") is not None else "-")
        )
        console.print(
            f"[dim]  {key:>4}: {r['instance']} — {r['label']}, {fmt.usd(r['usd_per_hour'])}/h, "
            f"{figures}[/]",
            highlight=False,
        )
