"""Budgets: set/list/report, a spent budget refuses a run (exit 5), racing runs on SQLite and
PostgreSQL: at most as many start as the dollars left allow."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from frugalml.ledger import Ledger
from frugalml.ledger.budgets import (
    OVER_BUDGET_EXIT,
    Budget,
    OverBudget,
    guard_for,
    period_bounds,
    set_budget,
)
from frugalml.records import Usage


def _usage(cost_usd: float) -> Usage:
    return Usage(
        wall_s=1.0, cpu_s=1.0, device_s=0.0, peak_host_bytes=1, peak_device_bytes=0,
        energy_j=1.0, energy_source="estimate", instance_cost_usd=cost_usd,
        energy_cost_usd=0.0, cost_usd=cost_usd, co2_g=0.0, instance="aws/c7i.large",
        region="us-east-1", usd_per_hour=0.08925, usd_per_kwh=0.1, g_co2_per_kwh=100.0,
    )  # fmt: skip


def _spend(book: Ledger, project: str, cost_usd: float, user: str = "ann") -> str:
    """A finished run of ``project`` that cost ``cost_usd`` (started through the guard)."""
    run_id = book.start_run("past", kind="job", guard=guard_for(book, project, user))
    book.finish_run(run_id, status="finished", usage=_usage(cost_usd))
    return run_id


def test_period_bounds() -> None:
    now = datetime(2026, 12, 31, 15, 0, tzinfo=UTC)  # a Thursday
    assert period_bounds("day", now) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert period_bounds("week", now)[0] == datetime(2026, 12, 28, tzinfo=UTC)
    assert period_bounds("month", now)[1] == datetime(2027, 1, 1, tzinfo=UTC)


def test_spent_budget_refuses_a_run_unless_allowed(ledger_url: str) -> None:
    with Ledger(ledger_url) as book:
        set_budget(book, Budget("team-a", 1.0, "day", "a", None))
        _spend(book, "a", 0.7)
        _spend(book, "b", 5.0)  # another project: not counted
        book.start_run("ok", guard=guard_for(book, "a", "ann"))  # 0.70 of 1.00: starts
        _spend(book, "a", 0.4)
        with pytest.raises(OverBudget, match=r"spent: \$1\.10 of \$1\.00 this day; it resets"):
            book.start_run("refused", guard=guard_for(book, "a", "bob"))
        assert not [r for r in book.runs() if r.name == "refused"]
        book.start_run("forced", guard=guard_for(book, "a", "bob", allow_over=True))
        assert [r.name for r in book.runs(name="forced")] == ["forced"]


@pytest.mark.parametrize("threads", [8])
def test_racing_runs_take_at_most_the_dollars_left(ledger_url: str, threads: int) -> None:
    """8 starters each reserve $0.30 against a $1.00 budget: exactly 3 start (0.90), in
    whatever order the backend serialises them."""
    with Ledger(ledger_url) as book:
        set_budget(book, Budget("race", 1.0, "month", "r", None))
    barrier = threading.Barrier(threads)
    started: list[str] = []
    refused: list[str] = []

    def start(i: int) -> None:
        with Ledger(ledger_url) as mine:
            g = guard_for(mine, "r", f"u{i}", reserve_usd=0.3)
            barrier.wait()
            try:
                started.append(mine.start_run(f"racer {i}", guard=g))
            except OverBudget as e:
                refused.append(e.message)

    workers = [threading.Thread(target=start, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert len(started) == 3 and len(refused) == threads - 3, (started, refused)
    with Ledger(ledger_url) as book:
        assert sum(1 for r in book.runs() if r.status == "running") == 3


def test_cli_budget_set_list_report_and_measure_refusal(
    cli: Callable[..., Any], sqlite_url: str
) -> None:
    proc = cli(
        "budget", "set", "ml", "--usd", "0.50", "--per", "week", "--project", "ml",
        "--ledger", sqlite_url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with Ledger(sqlite_url) as book:
        _spend(book, "ml", 0.75, user="ann")
    listed = json.loads(cli("budget", "list", "--json", "--ledger", sqlite_url).stdout)
    assert listed[0]["name"] == "ml" and listed[0]["spent_usd"] == pytest.approx(0.75)
    assert listed[0]["left_usd"] == 0.0
    proc = cli("measure", "--project", "ml", "--ledger", sqlite_url, "--", "true")
    assert proc.returncode == OVER_BUDGET_EXIT, proc.stderr
    assert "budget 'ml' (project ml) is spent: $0.75 of $0.50 this week" in proc.stderr
    assert "--allow-over-budget" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli(
        "measure", "--project", "ml", "--user", "bob", "--allow-over-budget",
        "--ledger", sqlite_url, "--", "true",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(cli("budget", "report", "--json", "--ledger", sqlite_url).stdout)
    by_user = {(r["project"], r["user"], r["kind"]): r for r in report}
    assert by_user[("ml", "ann", "job")]["cost_usd"] == pytest.approx(0.75)
    assert by_user[("ml", "bob", "command")]["runs"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["budget", "set", "x", "--usd", "1", "--per", "year", "--project", "p"], "period"),
        (["budget", "set", "x", "--usd", "1", "--per", "day"], "covers a project or a user"),
        (["budget", "set", "x", "--usd", "-1", "--per", "day", "--user", "u"], "--usd"),
        (["measure", "--reserve-usd", "1", "--", "true"], "need --project or --user"),
    ],
)
def test_bad_budget_input_is_one_line_and_exit_2(
    cli: Callable[..., Any], args: list[str], message: str
) -> None:
    proc = cli(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_max_usd_is_the_reservation_by_default(cli: Callable[..., Any], sqlite_url: str) -> None:
    with Ledger(sqlite_url) as book:
        set_budget(book, Budget("cap", 1.0, "month", "p", None))
        _spend(book, "p", 0.5)
    proc = cli(
        "measure", "--project", "p", "--max-usd", "0.6", "--ledger", sqlite_url, "--", "true"
    )
    assert proc.returncode == OVER_BUDGET_EXIT, proc.stderr
    assert (
        "has $0.50 of $1.00 left this month ($0.50 spent), less than the $0.60 this run "
        "reserves" in proc.stderr
    )
    proc = cli(
        "measure", "--project", "p", "--max-usd", "0.4", "--ledger", sqlite_url, "--", "true"
    )
    assert proc.returncode == 0, proc.stderr


def test_prices_json_names_its_age_and_chips(cli: Callable[..., Any]) -> None:
    data = json.loads(cli("prices", "--json").stdout)
    assert data["catalog_age"].startswith("prices checked ") and "H200-SXM" in data["chips"]
