"""Timing repeated calls the honest way: device sync, warm-up apart, medians and percentiles."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def device_sync() -> None:
    """Wait for queued accelerator work, so a host clock reads finished work."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception:
        return


@dataclass(frozen=True)
class LatencyStats:
    """Timings of repeated calls. Warm-up calls are excluded from every figure but ``warmup_s``.

    Latencies are per call, in milliseconds; ``items_per_s`` is total items over total timed
    seconds, the median over the repeats.
    """

    calls: int
    items: int
    warmup_s: float
    total_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    items_per_s: float
    repeats: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    latencies_s: Sequence[float],
    items: int,
    *,
    warmup_s: float = 0.0,
    repeat_totals: Sequence[tuple[float, int]] = (),
) -> LatencyStats:
    """Stats from per-call latencies (seconds). ``repeat_totals``: (seconds, items) per pass."""
    if not latencies_s:
        raise ValueError("no timed calls")
    lat_ms = np.asarray(latencies_s, dtype=float) * 1e3
    total = float(sum(latencies_s))
    totals = list(repeat_totals) or [(total, items)]
    ips = statistics.median(n / s for s, n in totals if s > 0) if total > 0 else 0.0
    return LatencyStats(
        calls=len(latencies_s),
        items=items,
        warmup_s=warmup_s,
        total_s=total,
        mean_ms=float(lat_ms.mean()),
        p50_ms=float(np.percentile(lat_ms, 50)),
        p90_ms=float(np.percentile(lat_ms, 90)),
        p99_ms=float(np.percentile(lat_ms, 99)),
        items_per_s=float(ips),
        repeats=len(totals),
    )


def time_calls(
    fn: Callable[[T], Any],
    inputs: Sequence[T],
    *,
    items: Callable[[T], int] = lambda _x: 1,
    warmup: int = 1,
    repeats: int = 1,
) -> LatencyStats:
    """Call ``fn`` on each input, ``repeats`` times over, after ``warmup`` untimed calls.

    The device is synchronised around every timed call; ``items(x)`` says how many items
    (sentences, images, tokens) one call handles, for ``items_per_s``.
    """
    if not inputs:
        raise ValueError("time_calls needs at least one input")
    device_sync()
    t0 = time.perf_counter()
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    device_sync()
    warmup_s = time.perf_counter() - t0
    latencies: list[float] = []
    passes: list[tuple[float, int]] = []
    n_items = 0
    for _ in range(repeats):
        pass_s, pass_items = 0.0, 0
        for x in inputs:
            start = time.perf_counter()
            fn(x)
            device_sync()
            dt = time.perf_counter() - start
            latencies.append(dt)
            pass_s += dt
            pass_items += items(x)
        passes.append((pass_s, pass_items))
        n_items += pass_items
    return summarize(latencies, n_items, warmup_s=warmup_s, repeat_totals=passes)
