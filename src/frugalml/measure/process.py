"""Measure another program: run a command and meter its whole process tree."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil

from frugalml.errors import BadInput
from frugalml.measure.energy import _nvml
from frugalml.measure.guard import Limits, Stop, Watchdog, stop_group
from frugalml.measure.memory import tree_rss_bytes
from frugalml.measure.track import UsageMeter
from frugalml.records import Usage


@dataclass
class _TreeSampler:
    """Polls a process tree: peak summed RSS, and which GPUs its processes hold (NVML)."""

    pid: int
    interval_s: float = 0.05
    peak_rss: int = 0
    peak_gpu_bytes: int = 0
    gpus_seen: int = 0
    gpu_util_pct: float | None = None  # NVML utilization of the GPUs the tree holds, now

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="frugal-sampler", daemon=True)

    def _gpu_sample(self, pids: set[int]) -> None:
        nv = _nvml()
        if nv is None:
            return
        used_bytes, gpus, util = 0, 0, None
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
                mine = [p for p in procs if p.pid in pids]
                if mine:
                    gpus += 1
                    used_bytes += sum(p.usedGpuMemory or 0 for p in mine)
                    with contextlib.suppress(Exception):  # a reading missing: no idle by GPU
                        rate = float(nv.nvmlDeviceGetUtilizationRates(handle).gpu)
                        util = rate if util is None else max(util, rate)
        except Exception:
            return
        self.gpu_util_pct = util
        self.gpus_seen = max(self.gpus_seen, gpus)
        self.peak_gpu_bytes = max(self.peak_gpu_bytes, used_bytes)

    def _loop(self) -> None:
        while True:
            self.peak_rss = max(self.peak_rss, tree_rss_bytes(self.pid))
            try:
                root = psutil.Process(self.pid)
                pids = {self.pid, *(c.pid for c in root.children(recursive=True))}
            except psutil.Error:
                pids = {self.pid}
            self._gpu_sample(pids)
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by the live process tree under ``pid`` (and what it reaped)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _give_terminal(pgid: int) -> Callable[[], None] | None:
    """Make ``pgid`` the terminal's foreground group (as a shell does), so the command can
    read the terminal and gets Ctrl-C itself; the returned call gives the terminal back."""
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
            return None
    except (OSError, ValueError):
        return None

    def _set(group: int) -> None:
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background write would stop us
        try:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(fd, group)
        finally:
            signal.signal(signal.SIGTTOU, old)

    _set(pgid)
    mine = os.getpgrp()
    return lambda: _set(mine)


def _start(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    try:
        # Its own process group: a signal for the command reaches every process it started.
        return subprocess.Popen(list(argv), process_group=0)
    except FileNotFoundError as e:
        raise BadInput(
            f"command not found: {argv[0]}", hint="check the spelling and that it is on PATH"
        ) from e
    except PermissionError as e:
        raise BadInput(
            f"cannot execute {argv[0]}: permission denied",
            hint="make it executable or run it through its interpreter",
        ) from e


def run_command(
    argv: Sequence[str],
    meter: UsageMeter,
    *,
    received: list[int] | None = None,
    limits: Limits | None = None,
    stopped: list[Stop] | None = None,
) -> tuple[int, Usage]:
    """Run ``argv`` (no shell), measure its process tree, return (exit code, usage).

    The exit code follows the shell convention: 128 + N when the command died of signal N.
    The command runs in its own process group; SIGHUP, SIGINT and SIGTERM sent to frugal are
    passed on to that whole group (no process is orphaned), and appended to ``received``.
    With ``limits`` (measure/guard.py), a crossed limit stops the group (SIGTERM, grace,
    SIGKILL) and its ``Stop`` is appended to ``stopped``.
    """
    if not argv:
        raise BadInput("no command to measure", hint="put it after --: frugal measure -- CMD ARGS")
    meter.start()
    proc = _start(argv)
    sampler = _TreeSampler(proc.pid)
    meter.live = lambda: (
        tree_cpu_seconds(proc.pid),
        sampler.peak_rss,
        sampler.gpus_seen,
        sampler.peak_gpu_bytes,
    )
    sampler.start()
    got = received if received is not None else []

    def _forward(signum: int, _frame: object) -> None:
        got.append(signum)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signum)

    forwarded: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in FORWARDED:
            forwarded[sig] = signal.signal(sig, _forward)
    give_back = _give_terminal(proc.pid)
    dog = None
    if limits is not None and limits.active():
        halts = stopped if stopped is not None else []

        def _halt(stop: Stop) -> None:
            halts.append(stop)
            stop_group(proc.pid, limits.grace_s)

        dog = Watchdog(
            limits,
            meter.snapshot,
            lambda: tree_cpu_seconds(proc.pid),
            _halt,
            gpu_busy_pct=lambda: sampler.gpu_util_pct,
        )
        dog.start()
    try:
        code = proc.wait()
    finally:
        if dog is not None:
            dog.stop()  # waits for a stop in progress: SIGKILL reaches what is left
        if give_back:
            give_back()
        sampler.stop()
        meter.live = None
        for signum, handler in forwarded.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
    child_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    child_max = child_max if sys.platform == "darwin" else child_max * 1024
    usage = meter.stop(
        peak_host_bytes=max(sampler.peak_rss, child_max),
        device_count=sampler.gpus_seen,
        peak_device_bytes=sampler.peak_gpu_bytes,
    )
    return (128 - code if code < 0 else code), usage
