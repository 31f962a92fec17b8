"""Combining alternating rounds of one model into one result, and summing usage (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from frugalml.records import EnergyPart, Usage
from frugalml.report.fresh import combine, sum_usage
from frugalml.search.evaluate import EvalResult


def _round(tput: float, energy: float, peak: int, source: str = "estimate") -> EvalResult:
    return EvalResult(
        task="similarity", quality=80.0, metric="spearman", higher_is_better=True,
        throughput_per_s=tput, latency_ms_p50=1e3 / tput, latency_ms_p99=2e3 / tput,
        cost_usd_per_1m=100.0 / tput, energy_j_per_1k=energy, energy_source=source,
        peak_memory_bytes=peak, size_bytes=90, device="cpu", threads=2, batch_size=32,
        length_sort=True, rows=50, texts_timed=100, repeats=1, warmup_s=0.1, timed_s=1.0,
        cpu_s=2.0, usd_per_hour=0.36, instance="auto", region="world", co2_g_per_1m=energy / 10,
        model="m",
    )  # fmt: skip


def test_rounds_combine_to_medians_of_each_figure() -> None:
    rounds = [_round(100.0, 30.0, 500), _round(300.0, 10.0, 700), _round(200.0, 20.0, 600)]
    both = combine(rounds)
    assert both.throughput_per_s == 200.0 and both.energy_j_per_1k == 20.0
    assert both.latency_ms_p50 == pytest.approx(5.0) and both.latency_ms_p99 == 10.0
    assert both.cost_usd_per_1m == pytest.approx(0.5)  # the middle round's, as it priced it
    assert both.co2_g_per_1m == pytest.approx(2.0)
    assert both.peak_memory_bytes == 700
    assert (both.texts_timed, both.repeats, both.cpu_s) == (300, 3, 6.0)
    # one text alone, as each round timed it: the middle one, not the first round's
    singles = [
        dataclasses.replace(r, latency_ms_batch1=ms)
        for r, ms in zip(rounds, (9, 3, 5), strict=True)
    ]
    assert combine(singles).latency_ms_batch1 == 5
    assert combine(rounds).latency_ms_batch1 is None  # none recorded it
    mixed = combine([rounds[0], dataclasses.replace(rounds[1], energy_source="rapl")])
    assert mixed.energy_source == "estimate"  # a reading mixed with an estimate is not a reading


def _usage(wall: float, cpu: float, energy: float, peak: int, source: str) -> Usage:
    return Usage(
        wall_s=wall, cpu_s=cpu, device_s=0.0, peak_host_bytes=peak, peak_device_bytes=0,
        energy_j=energy, energy_source=source, instance_cost_usd=wall * 0.0001,
        energy_cost_usd=energy * 1e-7, cost_usd=wall * 0.0001, co2_g=energy * 1e-4,
        instance="aws/c7i.large", region="world", usd_per_hour=0.36, usd_per_kwh=0.36,
        g_co2_per_kwh=400.0, energy_parts=(EnergyPart("cpu", energy, source),),  # type: ignore[arg-type]
    )  # fmt: skip


def test_usage_of_spans_adds_up() -> None:
    total = sum_usage(
        [_usage(2.0, 3.0, 40.0, 100, "estimate"), _usage(1.0, 1.5, 20.0, 300, "estimate")]
    )
    assert (total.wall_s, total.cpu_s, total.energy_j) == pytest.approx((3.0, 4.5, 60.0))
    assert total.cost_usd == pytest.approx(0.0003) and total.co2_g == pytest.approx(0.006)
    assert total.peak_host_bytes == 300 and total.energy_source == "estimate"
    assert total.energy_parts == (EnergyPart("cpu", 60.0, "estimate"),)
    mixed = sum_usage([_usage(1.0, 1.0, 5.0, 1, "rapl"), _usage(1.0, 1.0, 5.0, 1, "estimate")])
    assert mixed.energy_source == "estimate" and len(mixed.energy_parts) == 2
