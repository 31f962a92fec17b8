"""A roofline model of a batch's time, calibrated on one measured run (``frugal place``).

One batch of ``b`` requests on a machine with peak compute ``F`` (FLOP/s in the workload's
precision) and memory bandwidth ``B`` (bytes/s) takes

    t(b) = overhead + max(b x flops_per_request / F, weight_bytes / B) / efficiency

compute-bound when the first term wins, memory-bandwidth-bound when the second does (the
weights are read once per batch; activations are assumed to stay in cache). ``efficiency``
(the fraction of peak the software reaches) is solved from one measured batch time on
the measured hardware and carried to every other machine; ``overhead`` is a fixed,
stated cost per batch (dispatch, tokenization, kernel launches) from the catalog.

Peaks come from the catalog's ``[chips]`` table (prices.toml): GPUs per board from
datasheets, CPUs per physical core (derived, marked approximate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput

PRECISIONS = ("fp32", "bf16", "int8")
_PEAK_KEY = {"fp32": "fp32_tflops", "bf16": "bf16_tflops", "int8": "int8_tops"}


@dataclass(frozen=True)
class Peak:
    """What one machine can do: peak FLOP/s (in one precision) and memory bytes/s.

    ``units`` is how many chips (GPUs) or physical cores the figures add up; ``approx`` is
    True when the chip's figures are derived rather than read from a datasheet.
    """

    chip: str
    kind: str  # "cpu" | "gpu"
    precision: str
    flops_per_s: float
    bytes_per_s: float
    units: float
    memory_bytes: float | None
    approx: bool
    source: str

    def describe(self) -> str:
        unit = "cores" if self.kind == "cpu" else "GPU"
        approx = ", approx" if self.approx else ""
        return (
            f"{self.chip} x{self.units:g} {unit}: {self.flops_per_s / 1e12:.3g} T{self.precision} "
            f"FLOP/s, {self.bytes_per_s / 1e9:.4g} GB/s{approx}"
        )


@dataclass(frozen=True)
class Workload:
    """One batch of work: FLOPs per request and the weight bytes read per batch."""

    flops_per_request: float
    weight_bytes: float
    batch_size: int
    precision: str

    def compute_s(self, peak: Peak) -> float:
        return self.batch_size * self.flops_per_request / peak.flops_per_s

    def memory_s(self, peak: Peak) -> float:
        return self.weight_bytes / peak.bytes_per_s

    def bound(self, peak: Peak) -> str:
        return "compute" if self.compute_s(peak) >= self.memory_s(peak) else "memory"


def chip_peak(
    name: str, chip: dict[str, Any], precision: str, units: float, memory_bytes: float | None
) -> Peak:
    """``units`` of catalog chip ``name`` in ``precision``."""
    if precision not in PRECISIONS:
        raise BadInput(f"unknown precision '{precision}'", hint=f"use {', '.join(PRECISIONS)}")
    try:
        flops = float(chip[_PEAK_KEY[precision]]) * 1e12
        bw = float(chip["mem_bw_gbs"]) * 1e9
    except (KeyError, TypeError, ValueError) as e:
        raise BadInput(
            f"chip '{name}' lacks {_PEAK_KEY[precision]} or mem_bw_gbs in the catalog",
            hint="set them under [chips] in your config file",
        ) from e
    if flops <= 0 or bw <= 0:
        raise BadInput(f"chip '{name}' has a non-positive peak in the catalog")
    return Peak(
        chip=name,
        kind=str(chip.get("kind", "gpu")),
        precision=precision,
        flops_per_s=flops * units,
        bytes_per_s=bw * units,
        units=units,
        memory_bytes=memory_bytes,
        approx=bool(chip.get("approx", False)),
        source=str(chip.get("source", "")),
    )


def instance_peak(cat: dict[str, Any], name: str, precision: str) -> Peak | None:
    """The peak of catalog instance ``name`` (None when it names no chip)."""
    entry = cat["instances"][name]
    chip_name = entry.get("chip")
    if not chip_name:
        return None
    chip = cat["chips"].get(chip_name)
    if chip is None:
        raise BadInput(
            f"instance '{name}' names chip '{chip_name}', which is not in the catalog",
            hint="add it under [chips] in your config file",
        )
    if chip.get("kind") == "cpu":
        cores = float(entry.get("vcpus", 1)) / float(entry.get("threads_per_core", 2))
        mem = float(entry["memory_gib"]) * 2**30 if "memory_gib" in entry else None
        return chip_peak(chip_name, chip, precision, max(cores, 1.0), mem)
    gpus = float(entry.get("gpus", 1))
    mem = float(chip["memory_gib"]) * 2**30 if "memory_gib" in chip else None
    return chip_peak(chip_name, chip, precision, gpus, mem)


def local_cpu_flags() -> set[str]:
    """This host's CPU flags (Linux), for ``match_chip``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def match_chip(
    cat: dict[str, Any],
    *,
    gpu_name: str | None = None,
    cpu_model: str | None = None,
    cpu_flags: set[str] | None = None,
) -> str | None:
    """The catalog chip a GPU name or CPU model is (longest matching pattern wins); a CPU
    whose model name is generic (a VM's "Intel Xeon Processor") is matched by its flags."""
    best: tuple[int, str] | None = None
    text = (gpu_name if gpu_name is not None else cpu_model) or ""
    key = "gpu_match" if gpu_name is not None else "cpu_match"
    for name, chip in cat["chips"].items():
        for pattern in chip.get(key, ()):
            if pattern.lower() in text.lower() and (best is None or len(pattern) > best[0]):
                best = (len(pattern), name)
    if best is not None:
        return best[1]
    if gpu_name is None and cpu_flags:  # a chip marked fallback only when no other fits
        fits = [
            (not chip.get("fallback", False), len(chip["cpu_flags"]), name)
            for name, chip in cat["chips"].items()
            if chip.get("cpu_flags") and set(chip["cpu_flags"]) <= cpu_flags
        ]
        if fits:
            return max(fits)[2]
    return None


def batch_time_s(work: Workload, peak: Peak, efficiency: float, overhead_s: float) -> float:
    """Seconds for one batch on ``peak`` (the module docstring's formula)."""
    return overhead_s + max(work.compute_s(peak), work.memory_s(peak)) / efficiency


def calibrate(
    work: Workload, peak: Peak, measured_batch_s: float, overhead_s: float
) -> tuple[float, float]:
    """``(efficiency, overhead_s)`` that make the model reproduce ``measured_batch_s`` on
    ``peak``. The fixed overhead is capped at half the measured time, so a fast measured batch
    still leaves the roofline part of it to calibrate (the overhead used is returned and
    stated with every prediction)."""
    if not measured_batch_s > 0 or not math.isfinite(measured_batch_s):
        raise BadInput("the measured run has no positive batch time to calibrate on")
    overhead = min(overhead_s, measured_batch_s / 2)
    return max(work.compute_s(peak), work.memory_s(peak)) / (measured_batch_s - overhead), overhead


__all__ = [
    "PRECISIONS",
    "Peak",
    "Workload",
    "batch_time_s",
    "calibrate",
    "chip_peak",
    "instance_peak",
    "local_cpu_flags",
    "match_chip",
]
