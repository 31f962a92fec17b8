"""Guardrails: real child processes stopped by --max-minutes, --max-usd, --idle-timeout, each
leaving a ``stopped`` run with its reason and its usage so far."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from frugalml.errors import BadInput
from frugalml.measure.guard import Limits

BUSY = [sys.executable, "-c", "while True: pass"]
DEAF = [  # ignores SIGTERM: only the SIGKILL after the grace period ends it
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
]


def _run(cli: Callable[..., Any], *args: str) -> tuple[Any, dict[str, Any]]:
    proc = cli("measure", "--json", *args)
    record = json.loads(proc.stdout[proc.stdout.index("{") :])
    return proc, record


def test_sleep_stopped_by_max_minutes(cli: Callable[..., Any]) -> None:
    proc, run = _run(cli, "--max-minutes", "0.02", "--grace", "2", "--", "sleep", "120")
    assert proc.returncode == 143  # the child's own end: killed by SIGTERM
    assert run["status"] == "stopped"
    assert run["error"].startswith("stopped (time): 0.02 min time limit reached")
    assert 1.0 <= run["wall_s"] < 100  # stopped, not left to sleep its 120 s
    assert run["usage"]["cost_usd"] > 0  # its usage so far is kept


def test_busy_child_stopped_by_max_usd(
    cli: Callable[..., Any], _isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _isolated_home / "config.toml"
    cfg.write_text('[instances."test/pricey"]\nusd_per_hour = 36000.0\n')  # $10 a second
    monkeypatch.setenv("FRUGAL_CONFIG", str(cfg))
    proc, run = _run(
        cli, "--instance", "test/pricey", "--max-usd", "5", "--grace", "2", "--", *BUSY
    )
    assert proc.returncode == 143
    assert run["status"] == "stopped" and "stopped (budget)" in run["error"]
    assert run["usage"]["cost_usd"] >= 5.0
    assert run["wall_s"] >= 0.5  # $5 at $10 a second


def test_idle_child_stopped_by_idle_timeout(cli: Callable[..., Any]) -> None:
    proc, run = _run(cli, "--idle-timeout", "1", "--grace", "2", "--", "sleep", "120")
    assert proc.returncode == 143
    assert run["status"] == "stopped" and "stopped (idle)" in run["error"]
    assert run["wall_s"] >= 1.0


def test_a_child_ignoring_sigterm_is_killed_after_the_grace(cli: Callable[..., Any]) -> None:
    proc, run = _run(cli, "--max-minutes", "0.01", "--grace", "1", "--", *DEAF)
    assert proc.returncode == 137  # SIGKILL to its process group
    assert run["status"] == "stopped" and "(time)" in run["error"]


def test_a_busy_child_is_not_idle(cli: Callable[..., Any]) -> None:
    code = "import time\nt = time.time()\nwhile time.time() - t < 2.5: pass"
    proc, run = _run(cli, "--idle-timeout", "1.5", "--", sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert run["status"] == "finished"


@pytest.mark.parametrize(
    "limits, message",
    [
        (Limits(max_minutes=0), "--max-minutes"),
        (Limits(max_usd=-1), "--max-usd"),
        (Limits(idle_timeout_s=1, idle_below_pct=0), "--idle-below"),
    ],
)
def test_bad_limits_are_refused(limits: Limits, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        limits.check()


def test_bad_limit_on_the_command_line_is_exit_2(cli: Callable[..., Any]) -> None:
    proc = cli("measure", "--max-minutes", "0", "--", "true")
    assert proc.returncode == 2 and "--max-minutes must be a positive number" in proc.stderr


def test_track_block_stopped_by_max_minutes(tmp_path: Path) -> None:
    """``frugalml.track(limits=...)``: the block gets GuardStop, the process exits 143 and the
    run is ``stopped`` (time) with its usage."""
    import os
    import subprocess

    from frugalml.ledger import Ledger

    script = tmp_path / "job.py"
    script.write_text(
        "import time, frugalml\n"
        "from frugalml.measure.guard import Limits\n"
        "with frugalml.track('job', limits=Limits(max_minutes=0.02, grace_s=2)):\n"
        "    time.sleep(120)\n"
        "print('not reached')\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120,
        env=os.environ.copy(),
    )  # fmt: skip
    assert proc.returncode == 143, proc.stderr
    assert "not reached" not in proc.stdout
    with Ledger() as book:
        (run,) = book.runs(name="job")
    assert run.status == "stopped" and run.error and "stopped (time)" in run.error
    assert run.usage is not None and run.usage.wall_s >= 1.0


def test_idle_lists_runs_that_stayed_low_with_their_idle_cost(cli: Callable[..., Any]) -> None:
    from frugalml.ledger import Ledger
    from frugalml.records import Hardware, Usage

    hw = Hardware(cpu_model="x", cpu_logical_cores=2, cpu_physical_cores=1, memory_bytes=1)

    def usage(wall_s: float, cpu_s: float) -> Usage:
        cost = wall_s / 3600 * 2.0
        return Usage(
            wall_s=wall_s, cpu_s=cpu_s, device_s=0.0, peak_host_bytes=1, peak_device_bytes=0,
            energy_j=1.0, energy_source="estimate", instance_cost_usd=cost, energy_cost_usd=0.0,
            cost_usd=cost, co2_g=0.0, instance="aws/g5.xlarge", region="us-east-1",
            usd_per_hour=2.0, usd_per_kwh=0.1, g_co2_per_kwh=100.0,
        )  # fmt: skip

    with Ledger() as book:
        idle_id = book.record(
            "notebook", kind="job", status="finished", usage=usage(3600, 36), hardware=hw
        )
        book.record("train", kind="job", status="finished", usage=usage(3600, 7000), hardware=hw)
        book.record("blip", kind="job", status="finished", usage=usage(5, 0), hardware=hw)
    proc = cli("idle", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [r["run_id"] for r in rows] == [idle_id]  # the busy run and the 5 s one are not
    # 36 CPU s over 3600 s x 2 CPUs = 0.5 %; $2.00 for the hour, 99.5 % of it idle
    assert rows[0]["utilization_pct"] == pytest.approx(0.5)
    assert rows[0]["idle_cost_usd"] == pytest.approx(2.0 * 0.995)


@pytest.mark.parametrize("gpu_pct, stops", [(0.0, True), (60.0, False)])
def test_a_job_holding_a_gpu_is_idle_when_its_gpu_is(gpu_pct: float, stops: bool) -> None:
    """NVML is not here: the GPU's utilization is given (the hardware fake); the CPU looks
    busy all along (1 CPU second per second), so only the GPU reading can make it idle."""
    import threading
    import time

    from frugalml.measure.guard import Stop, Watchdog

    t0 = time.perf_counter()
    crossed: list[Stop] = []
    done = threading.Event()

    def cross(stop: Stop) -> None:
        crossed.append(stop)
        done.set()

    dog = Watchdog(
        Limits(idle_timeout_s=0.5),
        lambda: None,
        lambda: time.perf_counter() - t0,
        cross,
        interval_s=0.05,
        gpu_busy_pct=lambda: gpu_pct,
    )
    dog.start()
    done.wait(3.0)
    dog.stop()
    assert bool(crossed) is stops
    if stops:
        assert crossed[0].reason == "idle" and "GPU (SM) utilization" in crossed[0].detail
