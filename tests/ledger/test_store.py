"""Ledger conformance: every backend (SQLite file, PostgreSQL server) through the same tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from frugalml.errors import NotFound
from frugalml.ledger import BaseLedger, Ledger
from frugalml.ledger.migrate import KNOWN_REVISIONS, SCHEMA_HEAD
from frugalml.records import Usage


def _usage(wall_s: float = 1.5) -> Usage:
    return Usage(
        wall_s=wall_s,
        cpu_s=1.0,
        device_s=0.0,
        peak_host_bytes=10,
        peak_device_bytes=0,
        energy_j=3.5,
        energy_source="estimate",
        instance_cost_usd=0.01,
        energy_cost_usd=0.0001,
        cost_usd=0.01,
        co2_g=0.4,
        instance="auto",
        region="world",
        usd_per_hour=0.1,
        usd_per_kwh=0.15,
        g_co2_per_kwh=480,
    )


def test_implementations_follow_the_contract() -> None:
    assert issubclass(Ledger, BaseLedger)
    assert "Thread and process safety" in (BaseLedger.__doc__ or "")
    assert not getattr(Ledger, "__abstractmethods__", set())


def test_run_lifecycle_roundtrips(open_ledger: Callable[[], BaseLedger]) -> None:
    with open_ledger() as book:
        run_id = book.start_run("train", kind="job", params={"lr": 0.1})
        assert book.get(run_id).status == "running"
        book.log_params(run_id, batch=32)
        book.log_quality(run_id, accuracy=91.5)
        book.log_quality(run_id, f1=0.9)
        book.log_artifacts(run_id, model="out/best")
        book.finish_run(run_id, usage=_usage())
        rec = book.get(run_id[:8])
    assert rec.status == "finished"
    assert rec.params == {"lr": 0.1, "batch": 32}
    assert rec.quality == {"accuracy": 91.5, "f1": 0.9}
    assert rec.artifacts == {"model": "out/best"}
    assert rec.usage == _usage()
    assert rec.ended_at is not None and rec.ended_at >= rec.started_at
    assert rec.to_dict()["wall_s"] == 1.5 and rec.to_dict()["cost_usd"] == 0.01


def test_a_figure_that_is_not_a_number_is_kept_as_null(
    open_ledger: Callable[[], BaseLedger],
) -> None:
    """NaN/inf figures (an LM eval's cost band, an empty split's score) are stored as null on
    every backend; PostgreSQL refused the whole row before, so the run was lost there."""
    with open_ledger() as book:
        run_id = book.record(
            "eval",
            kind="eval",
            status="finished",
            params={"cost_band": [1.0, float("nan")], "nested": {"x": float("inf")}},
            quality={"perplexity": 21.5, "final": float("nan")},
        )
        book.log_quality(run_id, late=float("-inf"))
        rec = book.get(run_id)
    assert rec.quality == {"perplexity": 21.5, "final": None, "late": None}
    assert rec.params == {"cost_band": [1.0, None], "nested": {"x": None}}


def test_runs_newest_first_and_filters(open_ledger: Callable[[], BaseLedger]) -> None:
    with open_ledger() as book:
        parent = book.start_run("optimize", kind="optimize")
        ids = [
            book.record(
                f"c{i}", kind="candidate", status="finished", usage=_usage(), parent_id=parent
            )
            for i in range(3)
        ]
        failed = book.record(
            "bad", kind="candidate", status="failed", error="boom", parent_id=parent
        )
        book.finish_run(parent)
        assert [r.id for r in book.runs(parent_id=parent)] == [failed, *reversed(ids)]
        assert [r.id for r in book.runs(status="failed")] == [failed]
        assert len(book.runs(limit=2)) == 2
        assert {r.name for r in book.runs(kind="candidate")} == {"c0", "c1", "c2", "bad"}
        assert book.count() == 5


def test_failed_run_keeps_error_text(open_ledger: Callable[[], BaseLedger]) -> None:
    with open_ledger() as book:
        run_id = book.start_run("x")
        book.finish_run(run_id, status="failed", error="ValueError: nope")
        rec = book.get(run_id)
    assert rec.status == "failed" and rec.error == "ValueError: nope"


def test_unknown_and_ambiguous_ids(open_ledger: Callable[[], BaseLedger]) -> None:
    with open_ledger() as book:
        with pytest.raises(NotFound, match="no run"):
            book.get("deadbeef")
        with pytest.raises(NotFound, match="too short"):
            book.get("ab")


def test_dead_process_is_reaped_as_crashed(open_ledger: Callable[[], BaseLedger]) -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer exists on this host
    with open_ledger() as book:
        run_id = book.start_run("doomed", pid=child.pid)
        alive = book.start_run("alive")  # this process: must stay running
        assert book.get(run_id).status == "crashed"
        assert book.get(alive).status == "running"
        assert "ended without finishing" in (book.get(run_id).error or "")


def test_schema_is_migrated_once_and_head_matches_migrations(ledger_url: str) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", "frugalml.ledger:migrations")
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD
    assert KNOWN_REVISIONS[-1] == SCHEMA_HEAD
    with Ledger(ledger_url) as book:
        assert book.schema_state() == "absent"  # opening alone creates nothing
        book.record("first", kind="job", status="finished")  # the first write migrates
    with Ledger(ledger_url) as again:  # reopening finds the schema current
        assert again.schema_state() == "current"


def test_default_ledger_lives_in_frugal_home(_isolated_home: Path) -> None:
    with Ledger() as book:
        book.record("x", kind="job", status="finished")
    assert (_isolated_home / "ledger.db").exists()


def test_env_var_overrides_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "elsewhere.db"
    monkeypatch.setenv("FRUGAL_LEDGER", str(target))
    with Ledger() as book:
        book.record("x", kind="job", status="finished")
    assert target.exists() and os.path.getsize(target) > 0


def test_a_new_ledger_reads_empty_and_a_second_handle_sees_writes(
    open_ledger: Callable[[], BaseLedger],
) -> None:
    first, second = open_ledger(), open_ledger()
    assert first.count() == 0 and first.runs() == []  # reading creates nothing
    with pytest.raises(NotFound):
        first.get("abcd")
    run_id = first.start_run("shared")
    second.heartbeat(run_id, usage=_usage(0.5))
    assert second.get(run_id).usage == _usage(0.5)  # the usage so far rides the heartbeat
    first.finish_run(run_id, usage=_usage(2.0))
    rec = second.get(run_id)
    assert rec.status == "finished" and rec.usage == _usage(2.0)
    second.heartbeat(run_id, usage=_usage(9.0))  # a late beat never reopens a finished run
    assert first.get(run_id).usage == _usage(2.0)
