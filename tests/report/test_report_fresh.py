"""Combining alternating rounds of one model into one result (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from frugalml.report.fresh import combine
from frugalml.search.evaluate import EvalResult


def _round(tput: float, energy: float, peak: int, source: str = "estimate") -> EvalResult:
    return EvalResult(
        task="similarity", quality=80.0, metric="spearman", higher_is_better=True,
        throughput_per_s=tput, latency_ms_p50=1e3 / tput, latency_ms_p99=2e3 / tput,
        cost_usd_per_1m=0.0, energy_j_per_1k=energy, energy_source=source,
        peak_memory_bytes=peak, size_bytes=90, device="cpu", threads=2, batch_size=32,
        length_sort=True, rows=50, texts_timed=100, repeats=1, warmup_s=0.1, timed_s=1.0,
        cpu_s=2.0, usd_per_hour=0.36, instance="auto", region="world", co2_g_per_1m=0.0,
        model="m",
    )  # fmt: skip


def test_rounds_combine_to_medians_with_cost_recomputed() -> None:
    rounds = [_round(100.0, 30.0, 500), _round(300.0, 10.0, 700), _round(200.0, 20.0, 600)]
    hourly = combine(rounds, priced_by_hour=True, usd_per_kwh=0.2, g_co2_per_kwh=400.0)
    assert hourly.throughput_per_s == 200.0 and hourly.energy_j_per_1k == 20.0
    assert hourly.latency_ms_p50 == pytest.approx(5.0) and hourly.latency_ms_p99 == 10.0
    assert hourly.cost_usd_per_1m == pytest.approx(1e6 / 200.0 / 3600.0 * 0.36)
    assert hourly.co2_g_per_1m == pytest.approx(20.0 * 1000 / 3.6e6 * 400.0)
    assert hourly.peak_memory_bytes == 700
    assert (hourly.texts_timed, hourly.repeats, hourly.cpu_s) == (300, 3, 6.0)
    local = combine(rounds, priced_by_hour=False, usd_per_kwh=0.2, g_co2_per_kwh=400.0)
    assert local.cost_usd_per_1m == pytest.approx(20.0 * 1000 / 3.6e6 * 0.2)
    mixed = combine([rounds[0], dataclasses.replace(rounds[1], energy_source="rapl")],
                    priced_by_hour=True, usd_per_kwh=0.2, g_co2_per_kwh=400.0)  # fmt: skip
    assert mixed.energy_source == "estimate"  # a reading mixed with an estimate is not a reading
