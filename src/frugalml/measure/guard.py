"""Guardrails on running work: stop a job that crosses a limit of dollars, time, energy or idleness.

``Limits`` says what may not be crossed; ``Watchdog`` checks them on a thread every
``interval_s`` against the run's usage so far (``UsageMeter.snapshot``) and the job's CPU
seconds, and calls ``on_cross`` once with a ``Stop`` naming the reason:

- ``budget``: the run's ``cost_usd`` so far reached ``max_usd``;
- ``time``: wall time reached ``max_minutes``;
- ``energy``: ``energy_j`` reached ``max_energy_kwh`` (a reading or an estimate, as labelled);
- ``idle``: the job's CPU use stayed below ``idle_below_pct`` percent of one CPU for
  ``idle_timeout_s`` seconds in a row; for a job holding a GPU (``gpu_busy_pct``: NVML's
  utilization of the GPUs its processes hold), the GPU's SM utilization instead.

``stop_group`` is how a job is stopped: SIGTERM to its process group, a grace period for it to
end cleanly, then SIGKILL to the group. The run then ends ``stopped`` with the reason and its
usage so far.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from frugalml.errors import BadInput
from frugalml.records import Usage

REASONS = ("budget", "time", "energy", "idle")


@dataclass(frozen=True)
class Limits:
    """What a run may not cross (None: no limit). ``grace_s``: SIGTERM to SIGKILL."""

    max_usd: float | None = None
    max_minutes: float | None = None
    max_energy_kwh: float | None = None
    idle_timeout_s: float | None = None
    idle_below_pct: float = 5.0
    grace_s: float = 10.0

    def active(self) -> bool:
        return any(
            v is not None
            for v in (self.max_usd, self.max_minutes, self.max_energy_kwh, self.idle_timeout_s)
        )

    def check(self) -> None:
        """``BadInput`` for a limit that is not a positive number."""
        for flag, value in (
            ("--max-usd", self.max_usd),
            ("--max-minutes", self.max_minutes),
            ("--max-energy-kwh", self.max_energy_kwh),
            ("--idle-timeout", self.idle_timeout_s),
        ):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise BadInput(f"{flag} must be a positive number (got {value})")
        if not 0 < self.idle_below_pct <= 100:
            raise BadInput(
                f"--idle-below must be a percentage in (0, 100] (got {self.idle_below_pct})"
            )
        if not self.grace_s >= 0:
            raise BadInput(f"--grace must be 0 or more seconds (got {self.grace_s})")


@dataclass(frozen=True)
class Stop:
    """Why a run was stopped, and at what point."""

    reason: str  # one of REASONS
    detail: str
    at_s: float

    def text(self, grace_s: float) -> str:
        return (
            f"stopped ({self.reason}): {self.detail} after {self.at_s:.1f} s; SIGTERM to its "
            f"process group, SIGKILL after a {grace_s:g} s grace period if still running"
        )


class Watchdog:
    """Checks ``limits`` every ``interval_s`` on a daemon thread; calls ``on_cross`` once."""

    def __init__(
        self,
        limits: Limits,
        snapshot: Callable[[], Usage | None],
        cpu_seconds: Callable[[], float],
        on_cross: Callable[[Stop], None],
        *,
        interval_s: float = 0.2,
        gpu_busy_pct: Callable[[], float | None] | None = None,
    ) -> None:
        self.limits, self.snapshot, self.cpu_seconds = limits, snapshot, cpu_seconds
        self.gpu_busy_pct = gpu_busy_pct
        self.on_cross, self.interval_s = on_cross, interval_s
        self.stop_reason: Stop | None = None
        self.idle_unit = "CPU use (% of one CPU)"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="frugal-guard", daemon=True)

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.limits.grace_s + 5)

    def _crossed(self, elapsed: float, idle_since: float | None) -> Stop | None:
        lim = self.limits
        if lim.max_minutes is not None and elapsed >= lim.max_minutes * 60:
            return Stop("time", f"{lim.max_minutes:g} min time limit reached", elapsed)
        usage = self.snapshot() if (lim.max_usd or lim.max_energy_kwh) else None
        if usage is not None and lim.max_usd is not None and usage.cost_usd >= lim.max_usd:
            return Stop(
                "budget",
                f"cost ${usage.cost_usd:.4f} reached --max-usd ${lim.max_usd:g} "
                f"({usage.instance} at ${usage.usd_per_hour:g}/h)",
                elapsed,
            )
        if usage is not None and lim.max_energy_kwh is not None:
            kwh = usage.energy_j / 3.6e6
            if kwh >= lim.max_energy_kwh:
                return Stop(
                    "energy",
                    f"energy {kwh:.6f} kWh ({usage.energy_source}) reached "
                    f"--max-energy-kwh {lim.max_energy_kwh:g}",
                    elapsed,
                )
        if (
            lim.idle_timeout_s is not None
            and idle_since is not None
            and elapsed - idle_since >= lim.idle_timeout_s
        ):
            return Stop(
                "idle",
                f"{self.idle_unit} below {lim.idle_below_pct:g}% for {lim.idle_timeout_s:g} s",
                elapsed,
            )
        return None

    def _loop(self) -> None:
        last_t, last_cpu = 0.0, self.cpu_seconds()
        idle_since: float | None = 0.0
        while not self._done.wait(self.interval_s):
            elapsed = time.perf_counter() - self._t0
            cpu = self.cpu_seconds()
            busy_pct = (cpu - last_cpu) / max(elapsed - last_t, 1e-9) * 100.0
            gpu = self.gpu_busy_pct() if self.gpu_busy_pct is not None else None
            if gpu is not None:  # a job that holds a GPU is idle when its GPU is
                busy_pct = gpu
                self.idle_unit = "GPU (SM) utilization"
            if busy_pct >= self.limits.idle_below_pct:
                idle_since = None
            elif idle_since is None:
                idle_since = last_t
            last_t, last_cpu = elapsed, cpu
            stop = self._crossed(elapsed, idle_since)
            if stop is not None:
                self.stop_reason = stop
                self.on_cross(stop)
                return


def stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM to process group ``pgid``; SIGKILL to whatever of it is left after ``grace_s``
    (returns as soon as the group is empty)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass(frozen=True)
class IdleRun:
    """A run whose CPU use stayed low: what it cost, and the part of it that paid for idling."""

    run_id: str
    name: str
    kind: str
    status: str
    wall_s: float
    utilization_pct: float  # CPU seconds / (wall seconds x usable CPUs) x 100
    cost_usd: float
    idle_cost_usd: float  # cost x (1 - utilization): the instance paid for while idle
    instance: str


def idle_runs(records: list[Any], *, below_pct: float, min_wall_s: float) -> list[IdleRun]:
    """Runs (``RunRecord``) of at least ``min_wall_s`` whose CPU utilization stayed under
    ``below_pct`` percent of the machine's usable CPUs; most idle cost first."""
    out = []
    for r in records:
        u = r.usage
        if u is None or u.wall_s < min_wall_s or u.wall_s <= 0:
            continue
        cpus = r.hardware.cpu_logical_cores if r.hardware else 1
        util = min(100.0, u.cpu_s / (u.wall_s * max(cpus, 1)) * 100.0)
        if util >= below_pct:
            continue
        out.append(
            IdleRun(
                run_id=r.id,
                name=r.name,
                kind=r.kind,
                status=r.status,
                wall_s=u.wall_s,
                utilization_pct=util,
                cost_usd=u.cost_usd,
                idle_cost_usd=u.cost_usd * (1.0 - util / 100.0),
                instance=u.instance,
            )
        )
    return sorted(out, key=lambda x: -x.idle_cost_usd)


__all__ = ["REASONS", "IdleRun", "Limits", "Stop", "Watchdog", "idle_runs", "stop_group"]
