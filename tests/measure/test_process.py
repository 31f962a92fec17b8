"""run_command: a whole process tree is measured; exit codes pass through."""

from __future__ import annotations

import sys
import textwrap

import pytest

from frugalml.errors import BadInput
from frugalml.measure.hardware import hardware
from frugalml.measure.prices import resolve
from frugalml.measure.process import run_command
from frugalml.measure.track import UsageMeter

TREE = textwrap.dedent("""
    import subprocess, sys, time
    child = '''
    import time
    block = bytearray(150 * 1024 * 1024)   # 150 MiB in a grandchild
    end = time.process_time() + 0.6   # CPU seconds: holds on a loaded machine
    while time.process_time() < end: pass
    '''
    p = subprocess.Popen([sys.executable, '-c', child])
    end = time.process_time() + 0.4
    while time.process_time() < end: pass
    p.wait()
    sys.exit(7)
""")


def _meter() -> UsageMeter:
    return UsageMeter(resolve("local", "fr"), hardware())


def test_tree_cpu_memory_and_exit_code() -> None:
    code, usage = run_command([sys.executable, "-c", TREE], _meter())
    assert code == 7
    assert usage.wall_s >= 0.6
    assert usage.cpu_s >= 0.8  # parent 0.4 s + grandchild 0.6 s, both busy
    assert usage.peak_host_bytes >= 150 * 1024 * 1024
    assert usage.cost_usd == usage.energy_cost_usd > 0  # local: priced by energy
    assert usage.energy_source in ("estimate", "rapl")


def test_signal_death_maps_to_128_plus_signal() -> None:
    code, _ = run_command(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"], _meter()
    )
    assert code == 128 + 15


def test_missing_command_is_bad_input() -> None:
    with pytest.raises(BadInput, match="command not found"):
        run_command(["definitely-not-a-command-xyz"], _meter())
    with pytest.raises(BadInput, match="no command"):
        run_command([], _meter())


def test_snapshot_during_the_run_counts_the_command_tree() -> None:
    """What a heartbeat of `frugal measure` carries: the command's CPU and memory so far."""
    import threading
    import time

    child = (
        "import time\n"
        "block = bytearray(100 * 1024 * 1024)\n"
        "end = time.process_time() + 0.5\n"
        "while time.process_time() < end: pass\n"
        "time.sleep(1.5)\n"
    )
    meter = _meter()
    seen: list[float] = []
    peaks: list[int] = []
    done = threading.Event()

    def _poll() -> None:
        while not done.is_set():
            usage = meter.snapshot()
            if usage is not None:
                seen.append(usage.cpu_s)
                peaks.append(usage.peak_host_bytes)
            time.sleep(0.05)

    poller = threading.Thread(target=_poll)
    poller.start()
    try:
        code, final = run_command([sys.executable, "-c", child], meter)
    finally:
        done.set()
        poller.join()
    assert code == 0
    assert max(seen) >= 0.45  # the child's CPU, seen while it was still running
    assert max(peaks) >= 100 * 1024 * 1024
    assert max(seen) <= final.cpu_s + 0.05
