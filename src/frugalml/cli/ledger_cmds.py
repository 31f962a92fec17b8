"""Commands over measurement and the ledger: measure, runs, show, prices."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from frugalml.cli import format as fmt
from frugalml.cli.app import (
    InstanceOpt,
    JsonOpt,
    LedgerOpt,
    RegionOpt,
    app,
    console,
    err,
    print_json,
)
from frugalml.cli.budget_cmds import AllowOverOpt, ProjectOpt, ReserveOpt, UserOpt
from frugalml.cli.guard_opts import (
    GraceOpt,
    IdleBelowOpt,
    IdleTimeoutOpt,
    MaxEnergyOpt,
    MaxMinutesOpt,
    MaxUsdOpt,
)
from frugalml.errors import LedgerError
from frugalml.outputs import OVERWRITE_HELP, OutputGuard
from frugalml.records import Hardware, RunRecord, Usage

if TYPE_CHECKING:
    from frugalml.ledger import Ledger


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    no_args_is_help=True,
)
def measure(
    command: Annotated[
        list[str],
        typer.Argument(
            help="The command to run and measure, after --: `frugal measure -- python train.py`.",
            show_default=False,
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Run name (default: the command).")] = None,
    instance: InstanceOpt = None,
    region: RegionOpt = None,
    ledger: LedgerOpt = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the run as JSON on stdout, after the command's own output (stdout "
            "belongs to the command: use --json-out FILE to keep the two apart).",
        ),
    ] = False,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json-out",
            help="Write the run as JSON to this file (like /usr/bin/time -o); stdout stays "
            "the command's alone. Replaces only a file frugal wrote (unless --overwrite).",
            dir_okay=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=OVERWRITE_HELP)] = False,
    project: ProjectOpt = None,
    user: UserOpt = None,
    reserve_usd: ReserveOpt = None,
    allow_over_budget: AllowOverOpt = False,
    max_usd: MaxUsdOpt = None,
    max_minutes: MaxMinutesOpt = None,
    max_energy_kwh: MaxEnergyOpt = None,
    idle_timeout: IdleTimeoutOpt = None,
    idle_below: IdleBelowOpt = 5.0,
    grace: GraceOpt = 10.0,
) -> None:
    """Run a command, measure its whole process tree, and record it as a run.

    Measures wall and CPU time (the command and all its children), peak memory (summed over
    the tree), energy (RAPL/NVML counters where readable, else an estimate, labelled so) and
    prices it: instance-hours and energy in $, and CO2. stdout and stdin belong to the
    command; frugal prints its summary on stderr and exits with the command's exit code
    (128+N if it died of signal N). SIGHUP, SIGINT and SIGTERM sent to frugal are passed to
    the command's whole process group, and the run ends as failed, naming the signal. If the
    ledger cannot be written when the command ends, that is a warning: the run is kept in a
    local spool and written by the next frugal command that reaches the ledger.
    """
    from frugalml.ledger import Ledger
    from frugalml.ledger.budgets import guard_for
    from frugalml.measure.guard import Limits, Stop
    from frugalml.measure.hardware import environment, hardware
    from frugalml.measure.track import price_here, ray_placement

    price = price_here(instance, region)  # from a Ray task: the node's declared instance
    limits = Limits(max_usd, max_minutes, max_energy_kwh, idle_timeout, idle_below, grace)
    limits.check()
    stopped: list[Stop] = []
    run_name = name or " ".join(command)[:200]
    hw = hardware()
    with Ledger(ledger) as book:
        guard = OutputGuard(ledger=book, overwrite=overwrite)
        if json_file is not None:  # refused before the command runs, not after
            json_file = guard.claim_file(json_file, option="--json-out")
        run_id = book.start_run(
            run_name,
            guard=guard_for(
                book,
                project,
                user,
                # a run with --max-usd holds that much of its budgets unless told otherwise
                reserve_usd=reserve_usd
                if reserve_usd is not None or not (project or user)
                else max_usd,
                allow_over=allow_over_budget,
            ),
            kind="command",
            params={"argv": command},
            hardware=hw,
            environment={**environment(), **ray_placement()},
        )
        code, usage, error = _run_measured(book, run_id, command, price, hw, limits, stopped)
        if stopped:  # a guardrail stopped it: the child's exit code still wins
            error = stopped[0].text(limits.grace_s) + (f"; {error}" if error else "")
        status = "stopped" if stopped else None
        record = _end(book, run_id, run_name, command, usage, error, hw, status=status)
    if json_file is not None:
        _write_json_file(guard, json_file, record.to_dict())
    if json_out:
        print_json(record.to_dict())
    else:
        _print_summary(record, code)
    raise typer.Exit(code)


def _run_measured(
    book: Any,
    run_id: str,
    command: list[str],
    price: Any,
    hw: Any,
    limits: Any,
    stopped: list[Any],
) -> tuple[int, Any, str | None]:
    """Run the command with a heartbeat; (exit code, usage, error). A crash here ends the
    run as failed before it propagates."""
    from frugalml.ledger.store import DEFAULT_HEARTBEAT_S
    from frugalml.measure.process import run_command
    from frugalml.measure.track import Heartbeat, UsageMeter

    meter = UsageMeter(price, hw)
    beat = Heartbeat(book, run_id, DEFAULT_HEARTBEAT_S, usage=meter.snapshot)
    beat.start()
    received: list[int] = []
    try:
        code, usage = run_command(command, meter, received=received, limits=limits, stopped=stopped)
    except BaseException as e:
        beat.stop()
        with contextlib.suppress(LedgerError):
            book.finish_run(run_id, status="failed", error=f"{type(e).__name__}: {e}")
        raise
    beat.stop()
    code, error = _outcome(code, received)
    return code, usage, error


def _outcome(code: int, received: list[int]) -> tuple[int, str | None]:
    """(exit code, error text): the command's code wins; a signal frugal passed on is named."""
    if received:
        names = ", ".join(dict.fromkeys(signal.Signals(s).name for s in received))
        code = code or 128 + received[0]
        return (
            code,
            f"interrupted: frugal received {names} and passed it to the command (exit {code})",
        )
    if code == 0:
        return 0, None
    if code > 128 and code - 128 in {s.value for s in signal.Signals}:
        return code, f"killed by {signal.Signals(code - 128).name} (exit {code})"
    return code, f"exit code {code}"


def _end(
    book: Ledger,
    run_id: str,
    run_name: str,
    command: list[str],
    usage: Usage,
    error: str | None,
    hw: Hardware,
    *,
    status: str | None = None,
) -> RunRecord:
    """Finish the run (spooled with a warning if the ledger is out of reach); its record."""
    from frugalml.measure.track import finish

    status = status or ("finished" if error is None else "failed")
    if finish(book, run_id, status=status, usage=usage, error=error):
        with contextlib.suppress(LedgerError):
            return book.get(run_id)
    now = datetime.now(UTC)
    return RunRecord(  # what the ledger will hold once the spool reaches it
        id=run_id,
        name=run_name,
        kind="command",
        status=status,  # type: ignore[arg-type]
        started_at=now - timedelta(seconds=usage.wall_s),
        ended_at=now,
        params={"argv": command},
        usage=usage,
        error=error,
        hardware=hw,
        host=socket.gethostname(),
        pid=os.getpid(),
    )


def _write_json_file(guard: OutputGuard, path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.frugal-tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    guard.mark_written(path)  # a later --json-out may replace it; nothing else is


def _print_summary(record: RunRecord, code: int) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    if record.usage:
        for label, value in fmt.usage_rows(record.usage):
            table.add_row(label, value)
    status = "[green]finished[/]" if code == 0 else f"[red]failed (exit {code})[/]"
    if record.status == "stopped":
        status = f"[red]{escape(record.error or 'stopped')}[/]"
    err.print(f"\n[bold]frugal[/] run [cyan]{record.id[:12]}[/] {status}: {record.name}")
    err.print(table)


@app.command()
def runs(
    ledger: LedgerOpt = None,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Show at most this many runs (default 20); with --export, export at most this "
            "many (default all).",
            min=1,
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Only runs with this name.")] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Only runs of this kind (command, job, optimize, candidate, eval, train...)."
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            help="Only runs with this status: running, finished, failed, crashed or stopped."
        ),
    ] = None,
    export: Annotated[
        str | None,
        typer.Option(
            help="Export the selected runs instead of listing them: 'mlflow' logs each run "
            "(params, usage and quality as metrics, parent/child) to --tracking-uri; exporting "
            "again updates, never duplicates."
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking store for --export mlflow: sqlite:///mlflow.db, "
            "http://host:5000, or file:///path/mlruns (MLflow 3 reads that one back only with "
            "MLFLOW_ALLOW_FILE_STORE=true)."
        ),
    ] = None,
    experiment: Annotated[
        str, typer.Option(help="MLflow experiment the runs go to (created if missing).")
    ] = "frugal",
    json_out: JsonOpt = False,
) -> None:
    """List runs in the ledger, newest first (or export them to MLflow with --export).

    A run whose process died without finishing it (killed, out of memory) is shown as
    crashed. --json prints an array of run objects (each with wall_s, cost_usd, energy_j,
    energy_source, quality...).
    """
    from frugalml.errors import BadInput
    from frugalml.ledger import Ledger
    from frugalml.ledger.engine import describe_url
    from frugalml.records import RUN_STATUSES

    if status is not None and status not in RUN_STATUSES:
        raise BadInput(f"unknown status '{status}'", hint=f"use one of {', '.join(RUN_STATUSES)}")
    if export is not None or tracking_uri is not None:
        _export(ledger, limit, name, kind, status, export, tracking_uri, experiment, json_out)
        return
    with Ledger(ledger) as book:
        records = book.runs(limit=limit or 20, name=name, kind=kind, status=status)
        book_shown = describe_url(book.url)
    if json_out:
        print_json([r.to_dict() for r in records])
        return
    if not records:
        console.print(
            f"No runs in the ledger yet ({book_shown}). "
            'Try `frugal measure -- python -c "sum(range(10**7))"`.',
            soft_wrap=True,
            highlight=False,
        )
        return
    _print_runs(records, book_shown)


_COLORS = {
    "finished": "green",
    "failed": "red",
    "crashed": "magenta",
    "running": "yellow",
    "stopped": "red",
}
_OPTIONAL = ("wall", "cost", "started", "kind", "energy", "quality", "where")  # dropped last first
_RIGHT = ("wall", "cost", "energy")
_NAME_MIN = 12


def _cells(r: RunRecord) -> dict[str, str]:
    u = r.usage
    return {
        "id": r.id[:12],
        "name": r.name[:48],
        "kind": r.kind,
        "status": r.status,
        "started": fmt.when(r.started_at),
        "wall": fmt.seconds(u.wall_s) if u else "-",
        "cost": fmt.usd(u.cost_usd) if u else "-",
        "energy": fmt.joules(u.energy_j, u.energy_source) if u else "-",
        "quality": ", ".join(f"{k}={v:.4g}" for k, v in list(r.quality.items())[:3]) or "-",
        "where": _where(r),
    }


def _where(r: RunRecord) -> str:
    """The Ray node a run ran on (host, node id's start), or "" for a run outside Ray."""
    node = (r.environment or {}).get("node")
    if not isinstance(node, dict):
        return ""
    return f"{node.get('host') or '?'} node {str(node.get('node_id') or '-')[:8]}"


def _fit(widths: dict[str, int], room: int) -> list[str]:
    """The columns that fit ``room`` characters: id, name and status always, then as many of
    the others as fit whole, in ``_OPTIONAL`` order (a bordered column takes 3 more)."""
    chosen = ["id", "name", "status"]
    used = 1 + sum(widths[c] + 3 for c in chosen) - widths["name"] + min(widths["name"], _NAME_MIN)
    for col in _OPTIONAL:
        if col in widths and used + widths[col] + 3 <= room:
            chosen.append(col)
            used += widths[col] + 3
    order = ("id", "name", "kind", "status", "started", "wall", "cost", "energy", "quality",
             "where")  # fmt: skip
    return [c for c in order if c in chosen]


def _terminal_columns() -> int:
    """The terminal's width; off a terminal, $COLUMNS if set (else the console's 160)."""
    text = os.environ.get("COLUMNS", "")
    if not sys.stdout.isatty() and text.isdigit() and int(text) > 0:
        return int(text)
    return console.width


def _print_runs(records: list[RunRecord], shown: str) -> None:
    rows = [_cells(r) for r in records]
    names: tuple[str, ...] = ("id", "name", "kind", "status", "started", "wall", "cost",
                              "energy", "quality")  # fmt: skip
    if any(row["where"] for row in rows):  # some ran on a Ray node: say where each ran
        names = (*names, "where")
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in names}
    room = _terminal_columns()
    columns = _fit(widths, room)
    hidden = [c for c in names if c not in columns]
    title = f"runs ({len(records)} newest) in {shown}"
    table = Table(
        title=title if len(title) <= room else f"runs ({len(records)} newest)",
        title_justify="left",
        caption=f"hidden to fit {room} columns: {', '.join(hidden)} (frugal runs --json has all)"
        if hidden
        else None,
        caption_justify="left",
    )
    for col in columns:
        table.add_column(
            col,
            no_wrap=True,
            overflow="ellipsis",
            min_width=min(widths[col], _NAME_MIN) if col == "name" else widths[col],
            justify="right" if col in _RIGHT else "left",
        )
    for row in rows:
        status = row["status"]
        row["status"] = f"[{_COLORS.get(status, 'white')}]{status}[/]"
        table.add_row(*(row[c] for c in columns))
    console.print(table, width=room)


def _export(
    ledger: str | None,
    limit: int | None,
    name: str | None,
    kind: str | None,
    status: str | None,
    export: str | None,
    tracking_uri: str | None,
    experiment: str,
    json_out: bool,
) -> None:
    """``frugal runs --export mlflow --tracking-uri URI``."""
    from frugalml.errors import BadInput
    from frugalml.ledger import Ledger

    if export != "mlflow":
        raise BadInput(
            f"unknown export target '{export}'"
            if export
            else "--tracking-uri needs --export mlflow",
            hint="use --export mlflow",
        )
    if not tracking_uri:
        raise BadInput(
            "--export mlflow needs --tracking-uri",
            hint="e.g. --tracking-uri sqlite:///mlflow.db",
        )
    from frugalml.report.mlflow_export import export_runs

    with Ledger(ledger) as book:
        records = book.runs(limit=limit, name=name, kind=kind, status=status)
    summary = export_runs(records, tracking_uri, experiment=experiment)
    if json_out:
        print_json(summary.to_dict())
        return
    console.print(
        f"Exported {len(records)} runs to {tracking_uri} (experiment '{experiment}'): "
        f"{len(summary.created)} created, {len(summary.updated)} updated, "
        f"{len(summary.unchanged)} unchanged."
    )


@app.command()
def show(
    run_id: Annotated[
        str | None,
        typer.Argument(help="Run id or a unique prefix (4+ characters); default: the newest run."),
    ] = None,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one run: status, parameters, usage (every estimate labelled), quality, hardware."""
    from frugalml.errors import BadInput
    from frugalml.ledger import Ledger

    with Ledger(ledger) as book:
        newest = book.runs(limit=1) if run_id is None else []
        if run_id is None and not newest:
            raise BadInput(f"the ledger {book.url} has no runs", hint="run `frugal measure` first")
        record = newest[0] if run_id is None else book.get(run_id)
        children = book.runs(parent_id=record.id)
    if json_out:
        data = record.to_dict()
        data["children"] = [c.id for c in children]
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("id", record.id),
        ("name", record.name),
        ("kind", record.kind),
        ("status", record.status),
        ("started", fmt.when(record.started_at)),
        ("ended", fmt.when(record.ended_at)),
        ("parent", record.parent_id or "-"),
        ("children", str(len(children))),
    ]
    if record.usage:
        rows += fmt.usage_rows(record.usage)
    rows += [(f"quality: {k}", f"{v:.6g}") for k, v in record.quality.items()]
    rows += [(f"param: {k}", str(v)) for k, v in record.params.items()]
    rows += [(f"artifact: {k}", v) for k, v in record.artifacts.items()]
    if record.hardware:
        hw = record.hardware
        gpu = f"{hw.gpu_count} x {hw.gpu_name} (driver {hw.gpu_driver})" if hw.gpu_count else "none"
        rows += [
            ("CPU", f"{hw.cpu_model}, {hw.cpu_logical_cores} logical cores"),
            ("memory", fmt.nbytes(hw.memory_bytes)),
            ("GPU", gpu),
            ("host", hw.hostname),
        ]
    env = record.environment
    rows += [
        ("python / torch", f"{env.get('python')} / {env.get('torch')}"),
        ("git commit", str(env.get("git_commit") or "-")),
    ]
    if isinstance(env.get("node"), dict):  # it ran on a Ray node
        node = env["node"]
        rows.append(("Ray node", f"{node.get('node_id') or '-'} on {node.get('host')}"))
    if record.error:
        rows.append(("error", record.error))
    for label, value in rows:
        table.add_row(label, value)
    console.print(table)


@app.command()
def prices(
    instance: Annotated[
        str | None, typer.Option(help="Show how this instance (and --region) would be priced.")
    ] = None,
    region: RegionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List the price catalog: instances ($/h) and regions ($/kWh, gCO2/kWh), with sources.

    Instances have on-demand and spot prices; regions an electricity price and grid carbon
    intensity; every entry names its source and the month it was read. Your config file
    overrides or adds entries (docs/prices.md).
    """
    from frugalml.measure.prices import catalog, catalog_age, resolve

    cat = catalog()
    if instance or region:
        price = resolve(instance, region)
        if json_out:
            print_json(price.__dict__)
        else:
            console.print(
                f"[bold]{price.instance}[/]: {fmt.usd(price.usd_per_hour)}/h "
                f"({price.instance_source}); region [bold]{price.region}[/]: "
                f"{fmt.usd(price.usd_per_kwh)}/kWh, {price.g_co2_per_kwh:g} gCO2/kWh "
                f"({price.region_source})"
            )
        return
    if json_out:
        keys = ("meta", "defaults", "instances", "regions", "gpus", "cpus", "chips", "spot")
        print_json({**{k: cat[k] for k in keys}, "catalog_age": catalog_age()})
        return
    table = Table(title=f"instances — {catalog_age()}", title_justify="left")
    for col in ("name", "$/h", "spot $/h", "vCPUs", "GPUs", "region", "source", "checked"):
        table.add_column(col, overflow="fold")
    for key, e in sorted(cat["instances"].items()):
        gpus = f"{e.get('gpus', 0)} x {e['gpu_model']}" if e.get("gpus") else "-"
        table.add_row(
            key,
            fmt.usd(e["usd_per_hour"]),
            fmt.usd(e.get("spot_usd_per_hour")),
            str(e.get("vcpus", "-")),
            gpus,
            e.get("region", "-"),
            e.get("source", ""),
            e.get("checked", ""),
        )
    console.print(table)
    regions = Table(title="regions", title_justify="left")
    for col in ("name", "$/kWh", "gCO2/kWh", "source", "checked"):
        regions.add_column(col, overflow="fold")
    for key, e in sorted(cat["regions"].items()):
        regions.add_row(
            key,
            fmt.usd(e["usd_per_kwh"]),
            f"{e['g_co2_per_kwh']:g}",
            e.get("source", ""),
            e.get("checked", ""),
        )
    console.print(regions)
    d = cat["defaults"]
    console.print(
        f"Default instance 'auto': usable vCPUs x {fmt.usd(d['cpu_usd_per_vcpu_hour'])}"
        f"/h ({d['cpu_usd_per_vcpu_hour_source']}) + each GPU at its cloud rate; "
        f"default region '{d['region']}'. CPU energy estimates use "
        f"{d['cpu_w_per_busy_core']} W per busy logical CPU unless the CPU model is "
        "in the catalog."
    )
