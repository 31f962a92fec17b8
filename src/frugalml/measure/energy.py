"""Energy meters: NVML (GPU), RAPL (CPU package), or an estimate — always labelled which.

A meter reads a cumulative counter in joules. ``EnergySession`` takes one reading at the start
of a run and one at the end (plus periodic samples so a wrapping RAPL counter is not missed)
and reports the energy of each domain with its source. An estimate is used only where no
counter can be read: CPU energy = busy CPU-seconds x watts per busy logical CPU (from the
catalog, by CPU model), GPU energy = device-seconds x board power (catalog).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from frugalml.records import EnergyPart

RAPL_ROOT = Path("/sys/class/powercap")


class EnergyMeter(Protocol):
    """A cumulative energy counter. ``read_j`` must be cheap and monotonic within a session."""

    domain: str
    source: str

    def read_j(self) -> float:
        """Joules consumed since some fixed origin."""
        ...


@dataclass(frozen=True)
class GpuInventory:
    names: tuple[str, ...]
    driver: str | None


@functools.cache
def _nvml() -> Any:
    """The initialised pynvml module, or None when there is no NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def nvml_devices() -> GpuInventory:
    nv = _nvml()
    if nv is None:
        return GpuInventory((), None)
    try:
        count = nv.nvmlDeviceGetCount()
        names = []
        for i in range(count):
            name = nv.nvmlDeviceGetName(nv.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        driver = nv.nvmlSystemGetDriverVersion()
        return GpuInventory(tuple(names), driver.decode() if isinstance(driver, bytes) else driver)
    except Exception:
        return GpuInventory((), None)


class NvmlMeter:
    """Sum of NVML total-energy counters (millijoules since driver load) over the given GPUs."""

    domain = "gpu"
    source = "nvml"

    def __init__(self, indices: list[int] | None = None) -> None:
        nv = _nvml()
        if nv is None:
            raise RuntimeError("NVML is not available")
        self._nv = nv
        count = nv.nvmlDeviceGetCount()
        self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in (indices or range(count))]
        if not self._handles:
            raise RuntimeError("no GPU")
        self.read_j()  # fails here on GPUs without the counter (pre-Volta)

    def read_j(self) -> float:
        return sum(self._nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles) / 1e3


class RaplMeter:
    """Intel/AMD RAPL package counters under /sys/class/powercap (microjoules, wrapping)."""

    domain = "cpu"
    source = "rapl"

    def __init__(self, root: Path = RAPL_ROOT) -> None:
        self._zones: list[tuple[Path, float]] = []
        for zone in sorted(root.glob("*-rapl:*")) if root.exists() else []:
            if zone.name.count(":") != 1:  # top-level packages only; subzones double count
                continue
            try:
                name = (zone / "name").read_text().strip()
                if not name.startswith("package"):
                    continue
                max_uj = float((zone / "max_energy_range_uj").read_text())
                float((zone / "energy_uj").read_text())  # readable? (often root-only)
            except (OSError, ValueError):
                continue
            self._zones.append((zone / "energy_uj", max_uj))
        if not self._zones:
            raise RuntimeError("RAPL not readable")
        self._last = [self._raw(p) for p, _ in self._zones]
        self._total_uj = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def _raw(path: Path) -> float:
        return float(path.read_text())

    def read_j(self) -> float:
        with self._lock:
            for i, (path, max_uj) in enumerate(self._zones):
                now = self._raw(path)
                delta = now - self._last[i]
                if delta < 0:  # the counter wrapped
                    delta += max_uj
                self._total_uj += delta
                self._last[i] = now
            return self._total_uj / 1e6


def cpu_meter() -> RaplMeter | None:
    try:
        return RaplMeter()
    except (RuntimeError, OSError):
        return None


def gpu_meter(indices: list[int] | None = None) -> NvmlMeter | None:
    try:
        return NvmlMeter(indices)
    except Exception:
        return None


@dataclass
class EnergySession:
    """Energy between ``start()`` and ``stop()``, by domain, read where possible.

    ``cpu_w_per_busy_core`` and ``gpu_w`` are the estimate's power figures (catalog values);
    they are used only for domains with no counter.
    """

    cpu_w_per_busy_core: float
    gpu_w: float
    use_gpu_meter: bool = True
    _cpu: RaplMeter | None = None
    _gpu: NvmlMeter | None = None
    _start: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._cpu = cpu_meter()
        self._gpu = gpu_meter() if self.use_gpu_meter else None
        if self._cpu:
            self._start["cpu"] = self._cpu.read_j()
        if self._gpu:
            self._start["gpu"] = self._gpu.read_j()

    def sample(self) -> None:
        """Call now and then on long runs so a wrapping RAPL counter is caught."""
        if self._cpu:
            self._cpu.read_j()

    def stop(self, cpu_s: float, device_s: float) -> tuple[EnergyPart, ...]:
        parts: list[EnergyPart] = []
        if self._cpu:
            parts.append(EnergyPart("cpu", self._cpu.read_j() - self._start["cpu"], "rapl"))
        else:
            parts.append(EnergyPart("cpu", cpu_s * self.cpu_w_per_busy_core, "estimate"))
        if self._gpu and device_s > 0:
            parts.append(EnergyPart("gpu", self._gpu.read_j() - self._start["gpu"], "nvml"))
        elif device_s > 0:
            parts.append(EnergyPart("gpu", device_s * self.gpu_w, "estimate"))
        return tuple(parts)


def overall_source(parts: tuple[EnergyPart, ...]) -> str:
    """The label of a total: the GPU's source when a GPU was used, else the CPU's."""
    by_domain = {p.domain: p.source for p in parts}
    return by_domain.get("gpu") or by_domain.get("cpu") or "estimate"
