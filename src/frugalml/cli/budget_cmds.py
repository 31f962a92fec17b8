"""``frugal budget set|list|report``: caps in $ per day, week or month (ledger/budgets.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from frugalml.cli import format as fmt
from frugalml.cli.app import JsonOpt, LedgerOpt, app, console, print_json

budget_app = typer.Typer(
    help="Budgets: a cap in $ per day, week or month on a project's or a user's runs.",
    no_args_is_help=True,
)
app.add_typer(budget_app, name="budget")

# Options the commands that start runs share (measure): tags and budget checks.
ProjectOpt = Annotated[
    str | None,
    typer.Option("--project", help="Tag the run with a project; its budgets are checked."),
]
UserOpt = Annotated[
    str | None,
    typer.Option("--user", help="Tag the run with a user (default with --project: the OS user)."),
]
ReserveOpt = Annotated[
    float | None,
    typer.Option("--reserve-usd", help="Dollars the run holds against its budgets while running."),
]
AllowOverOpt = Annotated[
    bool,
    typer.Option(
        "--allow-over-budget", help="Start even if a budget that covers the run is spent."
    ),
]


@budget_app.command("set")
def budget_set(
    name: Annotated[str, typer.Argument(help="The budget's name (setting it again replaces it).")],
    usd: Annotated[float, typer.Option("--usd", help="The cap, in US dollars per period.")],
    per: Annotated[str, typer.Option("--per", help="day, week or month (UTC calendar periods).")],
    project: Annotated[str | None, typer.Option("--project", help="Runs of this project.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Runs of this user.")] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Set a budget: runs started under its project/user are refused once it is spent."""
    from frugalml.ledger import Ledger
    from frugalml.ledger.budgets import Budget, set_budget

    with Ledger(ledger) as book:
        set_budget(book, Budget(name=name, usd=usd, per=per, project=project, user=user))
    console.print(f"budget [bold]{name}[/]: {fmt.usd(usd)} per {per}")


@budget_app.command("list")
def budget_list(ledger: LedgerOpt = None, json_out: JsonOpt = False) -> None:
    """Every budget with what it has spent this period and when it resets."""
    from frugalml.ledger import Ledger
    from frugalml.ledger.budgets import budget_status

    with Ledger(ledger) as book:
        rows = budget_status(book)
    if json_out:
        print_json(rows)
        return
    table = Table(title="budgets", title_justify="left")
    for col in ("name", "covers", "cap", "spent", "left", "resets (UTC)"):
        table.add_column(col)
    for r in rows:
        covers = ", ".join(
            x
            for x in (r["project"] and f"project {r['project']}", r["user"] and f"user {r['user']}")
            if x
        )
        table.add_row(
            r["name"],
            covers,
            f"{fmt.usd(r['usd'])}/{r['per']}",
            fmt.usd(r["spent_usd"]),
            fmt.usd(r["left_usd"]),
            r["resets_at"][:16].replace("T", " "),
        )
    console.print(table)


@budget_app.command("report")
def budget_report(
    per: Annotated[str, typer.Option("--per", help="Group by day, week or month.")] = "day",
    days: Annotated[int, typer.Option("--days", min=1, help="How far back, in days.")] = 30,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Spend by period, project, user, kind and instance (top-level runs; `-`: untagged)."""
    from frugalml.ledger import Ledger
    from frugalml.ledger.budgets import spend_report

    since = datetime.now(UTC) - timedelta(days=days)
    with Ledger(ledger) as book:
        rows = spend_report(book, per, since)
    if json_out:
        print_json(rows)
        return
    table = Table(title=f"spend by {per}, last {days} days", title_justify="left")
    for col in ("period", "project", "user", "kind", "instance", "runs", "cost"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["period"],
            r["project"],
            r["user"],
            r["kind"],
            r["instance"],
            str(r["runs"]),
            fmt.usd(r["cost_usd"]),
        )
    console.print(table)
    console.print(f"total: {fmt.usd(sum(r['cost_usd'] for r in rows))}")


@app.command()
def idle(
    below: Annotated[
        float, typer.Option("--below", help="Idle: CPU use under this % of the usable CPUs.")
    ] = 10.0,
    min_wall_s: Annotated[
        float, typer.Option("--min-wall-s", help="Ignore runs shorter than this.")
    ] = 60.0,
    kind: Annotated[str | None, typer.Option("--kind", help="Only runs of this kind.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Runs to look at.")] = 500,
    ledger: LedgerOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Runs whose measured CPU use stayed low, with what they cost and what idling cost.

    Utilization = CPU seconds / (wall seconds x usable CPUs); idle cost = cost x (1 -
    utilization), the instance paid for while it waited (kept apart from the cost of work,
    as OpenCost does). GPU utilization is not read yet.
    """
    from dataclasses import asdict

    from frugalml.ledger import Ledger
    from frugalml.measure.guard import idle_runs

    if not 0 < below <= 100:
        from frugalml.errors import BadInput

        raise BadInput(f"--below must be a percentage in (0, 100] (got {below})")
    with Ledger(ledger) as book:
        records = book.runs(limit=limit, kind=kind)
    found = idle_runs(records, below_pct=below, min_wall_s=min_wall_s)
    if json_out:
        print_json([asdict(r) for r in found])
        return
    table = Table(title=f"runs under {below:g}% CPU", title_justify="left")
    for col in ("run", "name", "kind", "status", "wall", "CPU use", "cost", "idle cost"):
        table.add_column(col, overflow="fold")
    for r in found:
        table.add_row(
            r.run_id[:12], r.name, r.kind, r.status, fmt.seconds(r.wall_s),
            f"{r.utilization_pct:.1f}%", fmt.usd(r.cost_usd), fmt.usd(r.idle_cost_usd),
        )  # fmt: skip
    console.print(table)
    console.print(f"idle cost: {fmt.usd(sum(r.idle_cost_usd for r in found))}")
