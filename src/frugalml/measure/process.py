"""Measure another program: run a command and meter its whole process tree."""

from __future__ import annotations

import contextlib
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from frugalml.errors import BadInput
from frugalml.measure.energy import _nvml
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

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="frugal-sampler", daemon=True)

    def _gpu_sample(self, pids: set[int]) -> None:
        nv = _nvml()
        if nv is None:
            return
        used_bytes, gpus = 0, 0
        try:
            for i in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                procs = nv.nvmlDeviceGetComputeRunningProcesses(handle)
                mine = [p for p in procs if p.pid in pids]
                if mine:
                    gpus += 1
                    used_bytes += sum(p.usedGpuMemory or 0 for p in mine)
        except Exception:
            return
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


def run_command(argv: Sequence[str], meter: UsageMeter) -> tuple[int, Usage]:
    """Run ``argv`` (no shell), measure its process tree, return (exit code, usage).

    The exit code follows the shell convention: 128 + N when the command died of signal N.
    SIGINT and SIGTERM sent to frugal are passed on to the command.
    """
    if not argv:
        raise BadInput("no command to measure", hint="put it after --: frugal measure -- CMD ARGS")
    meter.start()
    try:
        proc = subprocess.Popen(list(argv))
    except FileNotFoundError as e:
        raise BadInput(
            f"command not found: {argv[0]}", hint="check the spelling and that it is on PATH"
        ) from e
    except PermissionError as e:
        raise BadInput(
            f"cannot execute {argv[0]}: permission denied",
            hint="make it executable or run it through its interpreter",
        ) from e
    sampler = _TreeSampler(proc.pid)
    sampler.start()
    forwarded: dict[int, object] = {}

    def _forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            forwarded[sig] = signal.signal(sig, _forward)
    try:
        code = proc.wait()
    finally:
        sampler.stop()
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
