"""``track``: measure a block of Python (or a function) and keep it in the ledger.

    with frugalml.track("train", instance="aws/g5.xlarge") as run:
        run.log_params(lr=3e-4)
        ...
        run.log_quality(accuracy=91.2)
    print(run.usage.cost_usd)

On entry a ``running`` run is inserted and a heartbeat thread starts; on exit the run's
``Usage`` (wall and CPU seconds, peak memory, energy with its source, cost, CO2) is written
with status ``finished`` or ``failed`` (the exception is re-raised, never swallowed).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import psutil

from frugalml.errors import BadInput, LedgerError
from frugalml.ledger import Ledger
from frugalml.ledger.store import DEFAULT_HEARTBEAT_S
from frugalml.measure import memory
from frugalml.measure.energy import EnergySession, overall_source
from frugalml.measure.guard import Limits, Stop, Watchdog
from frugalml.measure.hardware import environment, hardware
from frugalml.measure.prices import Price, cpu_watts, gpu_watts, resolve
from frugalml.records import Hardware, Usage

F = TypeVar("F", bound=Callable[..., Any])


def ray_placement() -> dict[str, Any]:
    """``{"node": {node_id, host, job_id, actor_id}}`` when this runs in a process where Ray is
    already imported and initialised (a Ray task or actor, or its driver); else ``{}``. Never
    imports Ray: the core does not depend on it. A process started by a Ray task (``frugal
    measure`` run from one) has no Ray of its own: its host, job and raylet, from Ray's
    environment variables (the node id is not among them)."""
    ray = sys.modules.get("ray")
    if ray is None:
        if "RAY_RAYLET_PID" not in os.environ:
            return {}
        return {
            "node": {
                "node_id": None,
                "host": socket.gethostname(),
                "job_id": os.environ.get("RAY_JOB_ID"),
                "raylet_pid": os.environ["RAY_RAYLET_PID"],
            }
        }
    try:
        if not ray.is_initialized():
            return {}
        ctx = ray.get_runtime_context()
        return {
            "node": {
                "node_id": ctx.get_node_id(),
                "host": socket.gethostname(),
                "job_id": ctx.get_job_id(),
                "actor_id": ctx.get_actor_id(),
                "pid": os.getpid(),
            }
        }
    except Exception:  # an odd Ray state must never fail the run it describes
        return {}


def ray_address(address: str | None) -> str:
    """What ``ray.init`` is given for ``--address``: None is ``$RAY_ADDRESS`` (set for a
    ``ray job submit`` entrypoint) or else a new single-machine Ray, never whatever cluster
    happens to run on this machine (Ray's own default for None); ``auto`` joins that one."""
    return address or os.environ.get("RAY_ADDRESS") or "local"


def node_instance() -> str | None:
    """The instance type the Ray node this process runs on declares: ``FRUGAL_INSTANCE`` in
    the environment ``ray start`` ran with on that node (Ray passes it to the node's workers and
    they to their children; a ``runtime_env`` ``env_vars`` entry sets it too). None outside Ray
    or when the node declares none. Runs on that node are priced at it (``price_here``)."""
    if not ray_placement():
        return None
    return os.environ.get("FRUGAL_INSTANCE") or None


def price_here(instance: str | None, region: str | None) -> Price:
    """The price of a run in this process: ``instance`` when given, else the instance the Ray
    node declares (``node_instance``), else the config's or ``auto``. ``BadInput`` names the
    node's variable when that is the unknown instance."""
    declared = None if instance else node_instance()
    try:
        return resolve(instance or declared, region)
    except BadInput as e:
        if declared is None:
            raise
        raise BadInput(
            f"FRUGAL_INSTANCE={declared} on this Ray node: {e.message}", hint=e.hint
        ) from None


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class UsageMeter:
    """Measures one span of work and turns it into a ``Usage``.

    ``start()`` then ``stop()``; CPU time counts this process and the children it waited for.
    Callers measuring another process tree pass what they observed to ``stop`` instead.
    """

    price: Price
    hw: Hardware
    _t0: float = 0.0
    _cpu0: float = 0.0
    _energy: EnergySession | None = None
    _rss_reset: bool = False
    elapsed_override_s: float | None = field(default=None)
    live: Callable[[], tuple[float, int, int, int]] | None = field(default=None)

    def start(self) -> None:
        self._energy = EnergySession(
            cpu_w_per_busy_core=cpu_watts(self.hw.cpu_model), gpu_w=gpu_watts(self.hw.gpu_name)
        )
        self._energy.start()
        self._rss_reset = memory.reset_peak_rss()
        memory.reset_peak_device()
        self._cpu0 = _cpu_seconds()
        self._t0 = time.perf_counter()

    def sample(self) -> None:
        if self._energy:
            self._energy.sample()

    def _usage(
        self, wall_s: float, cpu_s: float, peak_host: int, devices: int, peak_device: int
    ) -> Usage:
        assert self._energy is not None, "the meter was not started"
        device_s = wall_s * devices
        parts = self._energy.stop(cpu_s=cpu_s, device_s=device_s)  # reads; does not stop
        energy_j = sum(p.energy_j for p in parts)
        instance_cost, energy_cost, cost, co2 = self.price.cost(wall_s, energy_j)
        return Usage(
            wall_s=wall_s,
            cpu_s=cpu_s,
            device_s=device_s,
            peak_host_bytes=int(peak_host),
            peak_device_bytes=int(peak_device),
            energy_j=energy_j,
            energy_source=overall_source(parts),  # type: ignore[arg-type]
            instance_cost_usd=instance_cost,
            energy_cost_usd=energy_cost,
            cost_usd=cost,
            co2_g=co2,
            instance=self.price.instance,
            region=self.price.region,
            usd_per_hour=self.price.usd_per_hour,
            usd_per_kwh=self.price.usd_per_kwh,
            g_co2_per_kwh=self.price.g_co2_per_kwh,
            energy_parts=parts,
        )

    def snapshot(self) -> Usage | None:
        """The usage so far, without stopping (what a heartbeat carries); None before start.

        ``live`` (set by whoever runs another process tree) gives that tree's
        (CPU seconds, peak host bytes, devices, peak device bytes) so far.
        """
        if self._energy is None:
            return None
        self.sample()
        wall_s = time.perf_counter() - self._t0
        cpu_s = max(0.0, _cpu_seconds() - self._cpu0)
        if self.live is not None:
            tree_cpu_s, peak_host, devices, peak_device = self.live()
            return self._usage(wall_s, cpu_s + tree_cpu_s, peak_host, devices, peak_device)
        return self._usage(
            wall_s,
            cpu_s,
            memory.peak_rss_bytes(),
            memory.devices_in_use(),
            memory.peak_device_bytes(),
        )

    def stop(
        self,
        *,
        peak_host_bytes: int | None = None,
        device_count: int | None = None,
        peak_device_bytes: int | None = None,
        extra_cpu_s: float = 0.0,
    ) -> Usage:
        """``extra_cpu_s``: CPU seconds of processes outside this tree that worked for the span
        (e.g. an evaluation forked by a server), added to the CPU and energy estimate."""
        from frugalml.measure.timing import device_sync

        device_sync()
        wall_s = time.perf_counter() - self._t0
        cpu_s = max(0.0, _cpu_seconds() - self._cpu0) + extra_cpu_s
        if peak_host_bytes is None:
            peak_host_bytes = memory.peak_rss_bytes()
        devices = memory.devices_in_use() if device_count is None else device_count
        if peak_device_bytes is None:
            peak_device_bytes = memory.peak_device_bytes()
        return self._usage(wall_s, cpu_s, peak_host_bytes, devices, peak_device_bytes)


class Heartbeat:
    """A daemon thread that beats a run every ``interval_s``.

    Each beat carries ``usage()`` (the usage so far), so a run killed with SIGKILL keeps what
    it had cost until its last beat; ``on_beat`` runs after each beat.
    """

    def __init__(
        self,
        ledger: Ledger,
        run_id: str,
        interval_s: float,
        on_beat: Callable[[], None] | None = None,
        usage: Callable[[], Usage | None] | None = None,
    ) -> None:
        self._ledger, self._run_id, self._interval = ledger, run_id, interval_s
        self._on_beat, self._usage = on_beat, usage
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"frugal-heartbeat-{run_id[:8]}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._ledger.heartbeat(self._run_id, usage=self._usage() if self._usage else None)
                if self._on_beat:
                    self._on_beat()
            except Exception:  # a missed beat is not worth killing the user's job for
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Run:
    """The handle a tracked block receives. ``usage`` is set when the block ends."""

    def __init__(self, ledger: Ledger, run_id: str, name: str) -> None:
        self.ledger, self.id, self.name = ledger, run_id, name
        self.usage: Usage | None = None
        self.quality: dict[str, float] = {}
        self.params: dict[str, Any] = {}

    def log_quality(self, **metrics: float) -> None:
        """Record quality metrics (e.g. ``accuracy=91.2``); merged with earlier ones."""
        self.quality.update({k: float(v) for k, v in metrics.items()})
        self.ledger.log_quality(self.id, **metrics)

    def log_params(self, **params: Any) -> None:
        """Record parameters (JSON-serialisable values); merged with earlier ones."""
        self.params.update(params)
        self.ledger.log_params(self.id, **params)

    def log_artifacts(self, **paths: str) -> None:
        """Record files the run produced, by name: ``run.log_artifacts(model="out/best")``."""
        self.ledger.log_artifacts(self.id, **{k: str(v) for k, v in paths.items()})

    def __repr__(self) -> str:
        return f"Run(id={self.id[:12]!r}, name={self.name!r})"


def _error_text(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> str:
    if isinstance(exc, Terminated):
        return str(exc)
    if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    return "".join(traceback.format_exception(exc_type, exc, tb)[-12:]).strip()


def finish(
    ledger: Ledger, run_id: str, *, status: str, usage: Usage | None, error: str | None
) -> bool:
    """End a run; if the ledger cannot be written, warn on stderr (the run is spooled and
    written by the next command that reaches the ledger) and go on. True when written now."""
    try:
        ledger.finish_run(run_id, status=status, usage=usage, error=error)
    except LedgerError as e:  # spooled (LedgerSpooled), or not even that: never hide the work
        sys.stderr.write(f"frugal: warning: {e.message}\n")
        sys.stderr.flush()
        return False
    return True


class Terminated(SystemExit):
    """Raised in the main thread when frugal receives SIGTERM or SIGHUP (``exit_on_signals``).

    A ``SystemExit`` with code 128+N, so ``track`` ends its run as ``failed`` with the signal
    named, the process exits 128+N, and ``except Exception`` blocks do not swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(128 + signum)

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name} (exit {128 + self.signum})"


TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def install_exit_on_signals(signums: tuple[int, ...] = TERMINATING) -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into ``Terminated`` from now on (main thread only); the
    previous handlers, to restore. A command that runs tracked work calls this first.

    By default those signals kill Python at once: a tracked run would be left ``running`` and
    later reaped as ``crashed`` with no word of why. Raised as an exception instead, every
    ``track`` block on the way out records a clean ``failed`` end naming the signal, and the
    process exits 128+N with one line on stderr. A second signal while unwinding is ignored,
    so the ending is written.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    seen: list[int] = []

    def _raise(signum: int, _frame: object) -> None:
        if seen:
            return
        seen.append(signum)
        stop = Terminated(signum)
        sys.stderr.write(f"frugal: {stop}; ending the run\n")
        sys.stderr.flush()
        raise stop

    return {sig: signal.signal(sig, _raise) for sig in signums}


@contextlib.contextmanager
def exit_on_signals(signums: tuple[int, ...] = TERMINATING) -> Iterator[None]:
    """``install_exit_on_signals`` for the block only (library callers)."""
    previous = install_exit_on_signals(signums)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class GuardStop(Terminated):
    """Raised in the main thread when a guardrail of ``track(limits=...)`` is crossed."""

    def __init__(self) -> None:
        super().__init__(signal.SIGTERM)

    def __str__(self) -> str:
        return "stopped by a guardrail (SIGTERM, exit 143)"


class _InProcessGuard:
    """``track``'s guardrails: a watchdog on this process; SIGTERM to itself raises
    ``GuardStop`` in the main thread; after the grace period, the run is written as
    ``stopped`` and this process and its children are killed."""

    def __init__(self, limits: Limits, run: Run, meter: UsageMeter) -> None:
        from frugalml.errors import BadInput

        if threading.current_thread() is not threading.main_thread():
            raise BadInput("track(limits=...) works in the main thread only (it uses SIGTERM)")
        self.limits, self.run, self.meter = limits, run, meter
        self.stop: Stop | None = None
        self._ended = threading.Event()
        self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        me = psutil.Process()

        def cpu_seconds() -> float:
            times = me.cpu_times()
            return times.user + times.system + times.children_user + times.children_system

        self.dog = Watchdog(limits, meter.snapshot, cpu_seconds, self._cross)
        self.dog.start()

    def _on_sigterm(self, signum: int, _frame: object) -> None:
        raise GuardStop() if self.stop is not None else Terminated(signum)

    def _cross(self, stop: Stop) -> None:  # on the watchdog thread
        self.stop = stop
        os.kill(os.getpid(), signal.SIGTERM)
        if self._ended.wait(self.limits.grace_s):
            return
        finish(
            self.run.ledger,
            self.run.id,
            status="stopped",
            usage=self.meter.snapshot(),
            error=stop.text(self.limits.grace_s) + "; the block did not end: killed",
        )
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        os.kill(os.getpid(), signal.SIGKILL)

    def close(self) -> Stop | None:
        self._ended.set()
        self.dog.stop()
        signal.signal(signal.SIGTERM, self._previous)
        return self.stop


class track:  # used like a function: `with track(...)` / `@track(...)`
    """Measure a block or a function as one run in the ledger.

    Args:
        name: the run's name (a decorated function's qualified name by default).
        ledger: a ``Ledger``, a URL, or None for the default ledger.
        instance: price the run as this instance type (``frugal prices`` lists them; a
            ``:spot`` suffix uses the spot price); default: the config's or ``auto``.
        region: electricity price and grid carbon region; default: the instance's region.
        kind: what sort of run (``job``, ``train``, ``eval``, ``candidate``...).
        params: parameters to record up front.
        parent: the parent run (``Run`` or id), e.g. an optimize run over its candidates.
        heartbeat_s: seconds between heartbeats; a run silent for 4 beats is ``crashed``.
        project, user: tag the run; a budget that covers it and is spent refuses it with
            ``OverBudget`` (ledger/budgets.py), unless ``allow_over_budget``.
        reserve_usd: dollars the run holds against its budgets while it runs.
        limits: guardrails (``measure.guard.Limits``: max_usd, max_minutes, max_energy_kwh,
            idle_timeout_s): when one is crossed the block gets ``GuardStop`` (a SIGTERM to
            this process, raised in the main thread; exit 143 if uncaught) and the run ends
            ``stopped`` with the reason; if the block has not ended after ``grace_s``, the
            run is written and this process and its children are killed (SIGKILL).
    """

    def __init__(
        self,
        name: str | Callable[..., Any] | None = None,
        *,
        ledger: Ledger | str | None = None,
        instance: str | None = None,
        region: str | None = None,
        kind: str = "job",
        params: dict[str, Any] | None = None,
        parent: Run | str | None = None,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        project: str | None = None,
        user: str | None = None,
        reserve_usd: float | None = None,
        allow_over_budget: bool = False,
        limits: Limits | None = None,
    ) -> None:
        self._fn: Callable[..., Any] | None = None
        self.limits = limits if limits is not None and limits.active() else None
        if self.limits is not None:
            self.limits.check()
        self._budget = (project, user, reserve_usd, allow_over_budget)
        if callable(name):  # bare @track
            self._fn, name = name, getattr(name, "__qualname__", "job")
        self.name = name or "job"
        self._ledger_arg = ledger
        self.price = price_here(instance, region)  # unknown names fail before any work
        self.kind, self.params, self.heartbeat_s = kind, dict(params or {}), heartbeat_s
        self.parent_id = parent.id if isinstance(parent, Run) else parent
        self._state: list[tuple[Run, UsageMeter, Heartbeat, bool]] = []
        self._guards: list[_InProcessGuard | None] = []
        if self._fn is not None:
            functools.update_wrapper(self, self._fn)

    def _open_ledger(self) -> tuple[Ledger, bool]:
        if isinstance(self._ledger_arg, Ledger):
            return self._ledger_arg, False
        return Ledger(self._ledger_arg), True

    def __enter__(self) -> Run:
        ledger, owned = self._open_ledger()
        hw = hardware()
        from frugalml.ledger.budgets import guard_for

        project, user, reserve, allow = self._budget
        try:
            run_id = ledger.start_run(
                self.name,
                guard=guard_for(
                    ledger,
                    project,
                    user,
                    reserve_usd=reserve
                    if reserve is not None or self.limits is None or not (project or user)
                    else self.limits.max_usd,
                    allow_over=allow,
                ),
                kind=self.kind,
                params=self.params,
                parent_id=self.parent_id,
                hardware=hw,
                environment={**environment(), **ray_placement()},
                heartbeat_s=self.heartbeat_s,
            )
        except BaseException:  # refused (over budget) or unreachable: nothing was started
            if owned:
                ledger.close()
            raise
        run = Run(ledger, run_id, self.name)
        run.params.update(self.params)
        meter = UsageMeter(self.price, hw)
        beat = Heartbeat(ledger, run_id, self.heartbeat_s, usage=meter.snapshot)
        meter.start()
        beat.start()
        self._state.append((run, meter, beat, owned))
        guard = _InProcessGuard(self.limits, run, meter) if self.limits is not None else None
        self._guards.append(guard)
        return run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run, meter, beat, owned = self._state.pop()
        guard = self._guards.pop()
        stop = guard.close() if guard is not None else None
        usage = meter.stop()
        beat.stop()
        run.usage = usage
        failed = exc_type is not None and not (
            isinstance(exc, SystemExit) and exc.code in (0, None)
        )
        error = _error_text(exc_type, exc, tb) if failed else None
        status = "failed" if failed else "finished"
        if stop is not None and guard is not None:
            status, error = "stopped", stop.text(guard.limits.grace_s)
        finish(run.ledger, run.id, status=status, usage=usage, error=error)
        if owned:
            run.ledger.close()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._fn is not None:  # bare @track: this *is* the wrapped function
            with self:
                return self._fn(*args, **kwargs)
        fn = args[0]
        if len(args) != 1 or kwargs or not callable(fn):
            raise TypeError("track(...) decorates one function: @track('name')")
        tracker = self

        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with tracker:
                return fn(*a, **kw)

        return wrapper
