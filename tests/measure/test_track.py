"""track(): context manager and decorator record usage, quality and failures in the ledger."""

from __future__ import annotations

import time

import numpy as np
import pytest

import frugalml
from frugalml.errors import BadInput
from frugalml.ledger import Ledger


def _busy(cpu_seconds: float) -> int:
    """Spin for this much CPU time (not wall time: the test machine may be loaded)."""
    end, n = time.process_time() + cpu_seconds, 0
    while time.process_time() < end:
        n += 1
    return n


def test_context_manager_records_usage_params_quality(sqlite_url: str) -> None:
    with frugalml.track(
        "job", ledger=sqlite_url, params={"lr": 0.1}, instance="aws/c7i.large"
    ) as run:
        run.log_params(batch=8)
        _busy(0.3)
        block = np.ones(64 * 1024 * 1024 // 8)  # 64 MiB held during the run
        run.log_quality(accuracy=90.0)
        del block
    u = run.usage
    assert u is not None
    assert 0.3 <= u.wall_s < 60 and u.cpu_s >= 0.25
    assert u.peak_host_bytes >= 64 * 1024 * 1024
    assert u.energy_j > 0 and u.energy_source in ("rapl", "estimate")
    assert u.instance_cost_usd == pytest.approx(u.wall_s / 3600 * 0.08925)
    assert u.cost_usd == u.instance_cost_usd and u.co2_g > 0
    with Ledger(sqlite_url) as book:
        rec = book.get(run.id)
    assert rec.status == "finished" and rec.kind == "job"
    assert rec.params == {"lr": 0.1, "batch": 8} and rec.quality == {"accuracy": 90.0}
    assert rec.usage == u
    assert rec.hardware is not None and rec.hardware.cpu_logical_cores >= 1
    assert rec.environment["python"] and rec.environment["frugal"] == frugalml.__version__


def test_peak_memory_is_per_run_not_per_process(sqlite_url: str) -> None:
    import psutil

    from frugalml.measure.memory import reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("no /proc/self/clear_refs: peak RSS cannot be reset on this OS")
    big = np.ones(300 * 1024 * 1024 // 8)  # a peak before the run: must not count
    del big
    rss_before = psutil.Process().memory_info().rss
    with frugalml.track("small", ledger=sqlite_url) as run:
        _busy(0.05)
    assert run.usage is not None
    assert run.usage.peak_host_bytes < rss_before + 150 * 1024 * 1024


def test_exception_marks_failed_and_propagates(sqlite_url: str) -> None:
    with pytest.raises(ZeroDivisionError), frugalml.track("boom", ledger=sqlite_url) as run:
        _ = 1 / 0
    with Ledger(sqlite_url) as book:
        rec = book.get(run.id)
    assert rec.status == "failed" and "ZeroDivisionError" in (rec.error or "")
    assert rec.usage is not None  # what it cost until it failed is kept


def test_system_exit_zero_is_success(sqlite_url: str) -> None:
    with pytest.raises(SystemExit), frugalml.track("exit0", ledger=sqlite_url) as run:
        raise SystemExit(0)
    with Ledger(sqlite_url) as book:
        assert book.get(run.id).status == "finished"


def test_decorator_forms_record_one_run_per_call(sqlite_url: str) -> None:
    @frugalml.track("named", ledger=sqlite_url, kind="train")
    def train(x: int) -> int:
        return x * 2

    assert train(2) == 4 and train(3) == 6
    with Ledger(sqlite_url) as book:
        runs = book.runs(name="named")
    assert len(runs) == 2 and {r.kind for r in runs} == {"train"}


def test_nested_runs_link_parent(sqlite_url: str) -> None:
    with frugalml.track("parent", ledger=sqlite_url) as parent:  # noqa: SIM117 - needs parent
        with frugalml.track("child", ledger=sqlite_url, parent=parent) as child:
            pass
    with Ledger(sqlite_url) as book:
        assert [r.id for r in book.runs(parent_id=parent.id)] == [child.id]


def test_heartbeat_moves_while_running(sqlite_url: str) -> None:
    with frugalml.track("beat", ledger=sqlite_url, heartbeat_s=0.1) as run:
        first = Ledger(sqlite_url).get(run.id).heartbeat_at
        time.sleep(0.5)
        later = Ledger(sqlite_url).get(run.id).heartbeat_at
    assert first is not None and later is not None and later > first


def test_unknown_instance_fails_before_the_job_runs(sqlite_url: str) -> None:
    ran = []
    with (
        pytest.raises(BadInput, match="unknown instance"),
        frugalml.track("x", ledger=sqlite_url, instance="nope/nope"),
    ):
        ran.append(1)
    assert ran == []
    assert Ledger(sqlite_url).count() == 0


def test_import_is_lean() -> None:
    import subprocess
    import sys

    code = (
        "import sys, frugalml; frugalml.track; frugalml.Ledger; "
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'sentence_transformers')"
        " if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


TERMINATED = """
import sys, time, frugalml
from frugalml.measure.track import install_exit_on_signals
install_exit_on_signals()
with frugalml.track("long", ledger=sys.argv[1]) as run:
    print(run.id, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("signum", [15, 1])  # SIGTERM, SIGHUP
def test_sigterm_and_sighup_end_the_run_failed_naming_the_signal(
    sqlite_url: str, signum: int
) -> None:
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", TERMINATED, sqlite_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum
    assert f"terminated by {name}" in err and "Traceback" not in err
    with Ledger(sqlite_url) as book:
        rec = book.get(run_id)
    assert rec.status == "failed" and name in (rec.error or "")
    assert rec.usage is not None  # what it cost until then is kept


def test_heartbeat_carries_usage_so_far(sqlite_url: str) -> None:
    with frugalml.track("beat-usage", ledger=sqlite_url, heartbeat_s=0.1) as run:
        _busy(0.3)
        deadline = time.monotonic() + 30
        seen = None
        while time.monotonic() < deadline:
            seen = Ledger(sqlite_url).get(run.id).usage
            if seen is not None and seen.cpu_s >= 0.25:
                break
            time.sleep(0.05)
        assert Ledger(sqlite_url).get(run.id).status == "running"
    assert seen is not None and seen.cpu_s >= 0.25 and seen.energy_j > 0
