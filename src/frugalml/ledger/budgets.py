"""Budgets: a cap in dollars per day, week or month on a project's and/or a user's runs.

A run started with a project or a user (``frugal measure --project P``,
``track(..., project=P)``) is checked against every budget that covers it, in the same write
transaction that inserts its row (``Ledger.start_run(guard=...)``): SQLite's writers queue
behind one lock, and on PostgreSQL the budgets' rows are locked ``FOR UPDATE``, so two runs
racing for the last dollar are decided one after the other and at most one starts.

What a budget has spent in its period (UTC calendar day, ISO week from Monday, month):
the ``cost_usd`` of its runs that ended, plus, for runs still running, the larger of the
dollars they reserved (``--reserve-usd``) and what their last heartbeat says they cost.
A run that would take the spend past the cap (its reservation included) is refused with
``OverBudget`` (exit 5) unless ``allow_over`` is set; it then starts and is tagged all the
same. Runs started with neither a project nor a user are not checked (nor counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from frugalml.errors import BadInput, FrugalError
from frugalml.ledger.rows import aware
from frugalml.ledger.tables import budgets, run_tags, runs

if TYPE_CHECKING:
    from frugalml.ledger.store import Ledger

PERIODS = ("day", "week", "month")
OVER_BUDGET_EXIT = 5


class OverBudget(FrugalError):
    """A run was refused: a budget that covers it is spent."""

    exit_code = OVER_BUDGET_EXIT


@dataclass(frozen=True)
class Budget:
    name: str
    usd: float
    per: str
    project: str | None
    user: str | None

    def covers(self, project: str | None, user: str | None) -> bool:
        if self.project is None and self.user is None:
            return False
        return (self.project is None or self.project == project) and (
            self.user is None or self.user == user
        )

    def scope(self) -> str:
        parts = [
            f"project {self.project}" if self.project else "",
            f"user {self.user}" if self.user else "",
        ]
        return ", ".join(p for p in parts if p)


def period_bounds(per: str, now: datetime) -> tuple[datetime, datetime]:
    """(start, reset) of the UTC calendar period ``per`` that holds ``now``."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if per == "day":
        return day, day + timedelta(days=1)
    if per == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if per == "month":
        start = day.replace(day=1)
        reset = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
        return start, reset
    raise BadInput(f"unknown budget period '{per}'", hint="use day, week or month")


def check_budget(name: str, usd: float, per: str, project: str | None, user: str | None) -> None:
    if not name.strip() or len(name) > 100:
        raise BadInput("a budget needs a name of 1 to 100 characters")
    if not (usd >= 0 and math.isfinite(usd)):
        raise BadInput(f"--usd must be a number of dollars, 0 or more (got {usd})")
    if per not in PERIODS:
        raise BadInput(f"unknown budget period '{per}'", hint="use day, week or month")
    if not project and not user:
        raise BadInput("a budget covers a project or a user", hint="give --project or --user")


def _row_budget(r: Any) -> Budget:
    return Budget(name=r.name, usd=float(r.usd), per=r.per, project=r.project, user=r.user_name)


def list_budgets(conn: Connection) -> list[Budget]:
    return [_row_budget(r) for r in conn.execute(sa.select(budgets).order_by(budgets.c.name))]


def spent(conn: Connection, budget: Budget, now: datetime) -> float:
    """Dollars ``budget`` has spent in its current period (module docstring)."""
    start, _ = period_bounds(budget.per, now)
    query = (
        sa.select(runs.c.status, runs.c.usage, run_tags.c.reserved_usd)
        .select_from(runs.join(run_tags, run_tags.c.run_id == runs.c.id))
        .where(runs.c.started_at >= start)
    )
    if budget.project is not None:
        query = query.where(run_tags.c.project == budget.project)
    if budget.user is not None:
        query = query.where(run_tags.c.user_name == budget.user)
    total = 0.0
    for status, usage, reserved in conn.execute(query):
        cost = float((usage or {}).get("cost_usd") or 0.0)
        total += max(cost, float(reserved or 0.0)) if status == "running" else cost
    return total


def guard(
    project: str | None,
    user: str | None,
    *,
    reserve_usd: float = 0.0,
    allow_over: bool = False,
    postgres: bool,
) -> Any:
    """A ``Ledger.start_run`` guard: refuse the run if a covering budget is spent; tag it."""
    if reserve_usd < 0 or not math.isfinite(reserve_usd):
        raise BadInput("--reserve-usd must be 0 or more")

    def _check(conn: Connection, run_id: str) -> None:
        query = sa.select(budgets).order_by(budgets.c.name)
        if postgres:  # racing starters queue here, one at a time
            query = query.with_for_update()
        now = datetime.now(UTC)
        for budget in (_row_budget(r) for r in conn.execute(query)):
            if not budget.covers(project, user) or allow_over:
                continue
            used = spent(conn, budget, now)
            if used + reserve_usd > budget.usd or (reserve_usd == 0 and used >= budget.usd):
                _, reset = period_bounds(budget.per, now)
                state = (
                    f"is spent: ${used:.2f} of ${budget.usd:.2f} this {budget.per}"
                    if used >= budget.usd
                    else f"has ${budget.usd - used:.2f} of ${budget.usd:.2f} left this "
                    f"{budget.per} (${used:.2f} spent), less than the ${reserve_usd:.2f} this "
                    "run reserves"
                )
                raise OverBudget(
                    f"budget '{budget.name}' ({budget.scope()}) {state}; it resets "
                    f"{reset:%Y-%m-%d %H:%M} UTC",
                    hint="raise it with `frugal budget set`, or start anyway with "
                    "--allow-over-budget",
                )
        conn.execute(
            run_tags.insert().values(
                run_id=run_id, project=project, user_name=user, reserved_usd=reserve_usd
            )
        )

    return _check


def set_budget(book: Ledger, budget: Budget) -> None:
    """Create or replace budget ``budget.name`` (migrates the ledger if needed)."""
    check_budget(budget.name, budget.usd, budget.per, budget.project, budget.user)
    book.create_schema()
    with book._tx() as conn:
        conn.execute(budgets.delete().where(budgets.c.name == budget.name))
        conn.execute(
            budgets.insert().values(
                name=budget.name,
                usd=budget.usd,
                per=budget.per,
                project=budget.project,
                user_name=budget.user,
                created_at=datetime.now(UTC),
            )
        )


def budget_status(book: Ledger, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every budget with what it has spent this period and when it resets."""
    now = now or datetime.now(UTC)
    if book.schema_state() != "current":
        return []  # no ledger, or one from before budgets: nothing set (reads never migrate)
    out = []
    with book._read() as conn:
        for b in list_budgets(conn):
            start, reset = period_bounds(b.per, now)
            used = spent(conn, b, now)
            out.append(
                {
                    "name": b.name,
                    "usd": b.usd,
                    "per": b.per,
                    "project": b.project,
                    "user": b.user,
                    "spent_usd": used,
                    "left_usd": max(0.0, b.usd - used),
                    "period_start": start.isoformat(),
                    "resets_at": reset.isoformat(),
                }
            )
    return out


def spend_report(book: Ledger, per: str, since: datetime) -> list[dict[str, Any]]:
    """``report`` over ``book`` (a ledger from before budgets: every run untagged)."""
    state = book.schema_state()
    if state == "absent":
        return []
    with book._read() as conn:
        return report(conn, per, since, tagged=state == "current")


def guard_for(
    book: Ledger,
    project: str | None,
    user: str | None,
    *,
    reserve_usd: float | None = None,
    allow_over: bool = False,
) -> Any:
    """The start guard for a run under ``project``/``user`` (None: neither given, no check).
    With a project and no user, the run is tagged with the OS user (showback by user)."""
    if not project and not user:
        if reserve_usd or allow_over:
            raise BadInput(
                "--reserve-usd and --allow-over-budget need --project or --user",
                hint="budgets cover a project or a user",
            )
        return None
    if user is None:
        import getpass

        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = None
    book.create_schema()  # a ledger from before budgets gains the tables
    return guard(
        project,
        user,
        reserve_usd=reserve_usd or 0.0,
        allow_over=allow_over,
        postgres=not book.is_sqlite,
    )


def report(
    conn: Connection, per: str, since: datetime, *, tagged: bool = True
) -> list[dict[str, Any]]:
    """Spend of every run that ended since ``since``, by period, project, user, kind and
    instance (untagged runs under project/user ``-``); newest period first."""
    if per not in PERIODS:
        raise BadInput(f"unknown period '{per}'", hint="use day, week or month")
    base = [runs.c.started_at, runs.c.kind, runs.c.usage]
    query: Any = (
        sa.select(*base, run_tags.c.project, run_tags.c.user_name).select_from(
            runs.outerjoin(run_tags, run_tags.c.run_id == runs.c.id)
        )
        if tagged
        else sa.select(*base, sa.null(), sa.null())
    )
    query = query.where(runs.c.started_at >= since, runs.c.parent_id.is_(None))
    groups: dict[tuple[str, str, str, str, str], list[float]] = {}
    for row in conn.execute(query):
        started, kind, usage, project, user = tuple(row)
        start, _ = period_bounds(per, aware(started) or since)
        inst = str((usage or {}).get("instance") or "-")
        key = (start.date().isoformat(), project or "-", user or "-", kind, inst)
        cell = groups.setdefault(key, [0.0, 0.0])
        cell[0] += float((usage or {}).get("cost_usd") or 0.0)
        cell[1] += 1
    rows = [
        {
            "period": k[0],
            "project": k[1],
            "user": k[2],
            "kind": k[3],
            "instance": k[4],
            "runs": int(v[1]),
            "cost_usd": v[0],
        }
        for k, v in groups.items()
    ]
    return sorted(rows, key=lambda r: (r["period"], r["cost_usd"]), reverse=True)


__all__ = [
    "OVER_BUDGET_EXIT",
    "PERIODS",
    "Budget",
    "OverBudget",
    "check_budget",
    "guard",
    "guard_for",
    "list_budgets",
    "period_bounds",
    "report",
    "spent",
]
