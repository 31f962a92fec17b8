"""time_calls: warm-up apart, percentiles per call, throughput in items per second."""

from __future__ import annotations

import time

import pytest

from frugalml.measure.timing import summarize, time_calls


def test_warmup_is_excluded_and_reported_apart() -> None:
    calls = []

    def fn(x: int) -> None:
        calls.append(x)
        time.sleep(0.2 if len(calls) == 1 else 0.01)  # first call is slow (compile, caches)

    stats = time_calls(fn, [1, 2, 3, 4], warmup=1, repeats=2, items=lambda x: 10)
    assert stats.warmup_s >= 0.2
    assert stats.calls == 8 and stats.items == 80 and stats.repeats == 2
    assert stats.p99_ms < 100  # the slow warm-up call is not among the timed ones
    assert stats.items_per_s == pytest.approx(10 / 0.01, rel=0.5)


def test_percentiles_are_ordered_and_match_numpy() -> None:
    lat = [0.001 * i for i in range(1, 101)]
    s = summarize(lat, items=100)
    assert s.p50_ms == pytest.approx(50.5) and s.p90_ms == pytest.approx(90.1)
    assert s.p99_ms == pytest.approx(99.01) and s.mean_ms == pytest.approx(50.5)
    assert s.items_per_s == pytest.approx(100 / sum(lat))


def test_empty_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        time_calls(lambda x: x, [])
