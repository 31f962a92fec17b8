"""A roofline model of a batch's time, calibrated on one measured run (``frugal place``).

One batch of ``b`` requests on a machine with peak compute ``F`` (FLOP/s in the workload's
precision) and memory bandwidth ``B`` (bytes/s) takes

    t(b) = overhead + max(b x flops_per_request / (F x efficiency),
                          weight_bytes / (B x bw_fraction))

compute-bound when the first term wins, memory-bandwidth-bound when the second does (the
weights are read once per batch; activations are assumed to stay in cache). ``overhead`` is
a cost per forward pass that does not grow with the batch (operator dispatch, thread
start-up, tokenization), carried unchanged to every instance. ``calibrate`` solves the
unknowns from one measured run, in one of three ways (``Calibration.method``):

- ``line``: the run measured its batch of ``B`` *and* single requests (an eval's
  ``latency_ms_batch1``). The straight line through the two times: its slope is the time per
  request (``efficiency`` = FLOPs per request / (F x slope)), its intercept the overhead
  (both measured). One request then read every weight within the slope's time: when the
  catalog's bandwidth says it could not have (the caches served them), ``bw_fraction`` is
  raised to what the run shows, so the model reproduces both measured times.
- ``decode``: a causal LM's decode step at batch 1 with the run's own copy-probe bandwidth
  (``measure.bandwidth``): memory-bound, so overhead = step time - bytes per token / probe
  bandwidth, and ``bw_fraction`` = probe / the catalog's bandwidth (measured); the compute
  efficiency is not measured by a memory-bound step (1.0 assumed, stated).
- ``one-point``: only the batch time: a stated overhead (the catalog's), and one efficiency
  solved from the rest, for both terms (``bw_fraction`` = ``efficiency``; the overhead capped
  at half the measured time).

An overhead solved below zero is set to zero (stated in ``Calibration.note``).

Peaks come from the catalog's ``[chips]`` table (prices.toml): GPUs per board from
datasheets, CPUs per physical core (derived, marked approximate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
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
        """Seconds of arithmetic at peak FLOP/s."""
        return self.batch_size * self.flops_per_request / peak.flops_per_s

    def memory_s(self, peak: Peak) -> float:
        """Seconds to read the weights at peak bandwidth."""
        return self.weight_bytes / peak.bytes_per_s

    def bound(self, peak: Peak, cal: Calibration | None = None) -> str:
        """``compute`` or ``memory``: the larger term (at the calibration's efficiencies)."""
        eff, frac = (cal.efficiency, cal.bw_fraction) if cal is not None else (1.0, 1.0)
        return "compute" if self.compute_s(peak) / eff >= self.memory_s(peak) / frac else "memory"

    def at(self, batch_size: int) -> Workload:
        return replace(self, batch_size=batch_size)


@dataclass(frozen=True)
class Calibration:
    """What one measured run fixes: the fraction of peak FLOP/s reached (``efficiency``), the
    fraction of the catalog's bandwidth reached (``bw_fraction``), the overhead per forward
    pass, how they were solved (``method``: ``line``, ``decode``, ``one-point``; see the
    module docstring) and which figures are measured or stated (``sources``)."""

    efficiency: float
    overhead_s: float
    bw_fraction: float
    method: str
    sources: dict[str, str]
    note: str = ""

    def inputs(self) -> dict[str, object]:
        """The calibration's figures as a predicted row states them."""
        out: dict[str, object] = {
            "efficiency": self.efficiency,
            "overhead_ms": self.overhead_s * 1e3,
            "bandwidth_fraction": self.bw_fraction,
            "calibration": self.method,
            "sources": dict(self.sources),
        }
        if self.note:
            out["note"] = self.note
        return out


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


def batch_time_s(work: Workload, peak: Peak, cal: Calibration) -> float:
    """Seconds for one batch on ``peak`` (the module docstring's formula)."""
    compute = work.compute_s(peak) / cal.efficiency
    return cal.overhead_s + max(compute, work.memory_s(peak) / cal.bw_fraction)


def calibrate(
    work: Workload,
    peak: Peak,
    measured_batch_s: float,
    *,
    overhead_s: float,
    single_s: float | None = None,
    bandwidth_bytes_per_s: float | None = None,
    decode: bool = False,
) -> Calibration:
    """The :class:`Calibration` that makes the model reproduce the run measured on ``peak``:
    ``measured_batch_s`` for a batch of ``work.batch_size``; ``single_s`` the same run's time
    for one request (or, with ``decode``, one decode step at batch 1); ``bandwidth_bytes_per_s``
    the run's copy probe; ``overhead_s`` the stated overhead for the one-point method."""
    for value in (measured_batch_s, single_s, bandwidth_bytes_per_s):
        if value is not None and (not value > 0 or not math.isfinite(value)):
            raise BadInput("the measured run has no positive batch time to calibrate on")
    b = work.batch_size
    if decode and single_s is not None and bandwidth_bytes_per_s is not None:
        return _decode(work, peak, single_s, bandwidth_bytes_per_s)
    if single_s is not None and b > 1 and measured_batch_s > single_s:
        per_request = (measured_batch_s - single_s) / (b - 1)
        overhead = single_s - per_request
        note = ""
        if overhead < 0:
            overhead, note = 0.0, "the line's intercept was below zero: overhead set to 0"
            per_request = measured_batch_s / b
        # one request read every weight in at most the line's time per request: a memory term
        # above that (weights the caches served) is bounded by it, so batch 1 is reproduced
        frac = max(1.0, work.memory_s(peak) / per_request)
        bandwidth = (
            "stated: the catalog's"
            if frac == 1.0
            else f"measured: at least {frac:.3g} x the catalog's (one request read the weights "
            f"in {per_request * 1e3:.3g} ms)"
        )
        return Calibration(
            efficiency=work.flops_per_request / (peak.flops_per_s * per_request),
            overhead_s=overhead,
            bw_fraction=frac,
            method="line",
            sources={
                "overhead": f"measured: intercept of {single_s * 1e3:.3g} ms at batch 1 and "
                f"{measured_batch_s * 1e3:.4g} ms at batch {b}",
                "efficiency": "measured: slope of the same line",
                "bandwidth": bandwidth,
            },
            note=note,
        )
    overhead = min(overhead_s, measured_batch_s / 2)
    roof = max(work.compute_s(peak), work.memory_s(peak))
    eff = roof / (measured_batch_s - overhead)
    return Calibration(  # one fraction of the roofline for both terms: the point is reproduced
        efficiency=eff,
        overhead_s=overhead,
        bw_fraction=eff,
        method="one-point",
        sources={
            "overhead": f"stated: the catalog's {overhead_s * 1e3:g} ms per batch"
            + (" (capped at half the batch)" if overhead < overhead_s else ""),
            "efficiency": f"measured: {measured_batch_s * 1e3:.4g} ms at batch {b}",
            "bandwidth": "stated: the catalog's, at the same efficiency",
        },
    )


def _decode(work: Workload, peak: Peak, step_s: float, probe: float) -> Calibration:
    """A memory-bound decode step at batch 1 (``calibrate``'s ``decode`` method)."""
    one = work.at(1)
    frac = probe / peak.bytes_per_s
    memory = one.memory_s(peak) / frac
    overhead, note = step_s - max(one.compute_s(peak), memory), ""
    if overhead < 0:  # faster than the probe allows: weights served from the caches
        overhead, note = 0.0, "the step was faster than the probe's bandwidth: overhead set to 0"
        frac = one.memory_s(peak) / step_s
    return Calibration(
        efficiency=1.0,
        overhead_s=overhead,
        bw_fraction=frac,
        method="decode",
        sources={
            "overhead": f"measured: {step_s * 1e3:.4g} ms per decode step minus "
            f"{one.weight_bytes / 1e6:.4g} MB / {probe / 1e9:.4g} GB/s",
            "efficiency": "stated: 1.0 (a memory-bound step does not measure it)",
            "bandwidth": f"measured: copy probe {probe / 1e9:.4g} GB/s",
        },
        note=note,
    )


__all__ = [
    "PRECISIONS",
    "Calibration",
    "Peak",
    "Workload",
    "batch_time_s",
    "calibrate",
    "chip_peak",
    "instance_peak",
    "local_cpu_flags",
    "match_chip",
]
