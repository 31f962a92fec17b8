"""The roofline's calibration (``measure/roofline.py``) on round figures worked out by hand.

A chip of 0.1 TFLOP/s fp32 and 10 GB/s per core, 2 cores: 2e11 FLOP/s and 2e10 bytes/s.
"""

from __future__ import annotations

import pytest

from frugalml.errors import BadInput
from frugalml.measure import roofline as rl

CHIP = {"kind": "cpu", "fp32_tflops": 0.1, "mem_bw_gbs": 10.0}


@pytest.fixture
def peak() -> rl.Peak:
    return rl.chip_peak("c", CHIP, "fp32", 2.0, None)


def test_line_through_batch1_and_batch_b(peak: rl.Peak) -> None:
    # 0.028 s alone, 0.1 s per batch of 10: slope 0.008 s, intercept 0.020 s,
    # efficiency 1e9 / (2e11 x 0.008) = 0.625; batch 4: 0.020 + 4 x 0.008 = 0.052 s
    work = rl.Workload(1e9, 4e7, 10, "fp32")
    cal = rl.calibrate(work, peak, 0.1, overhead_s=0.01, single_s=0.028)
    assert cal.method == "line" and not cal.note
    assert cal.overhead_s == pytest.approx(0.020)
    assert cal.efficiency == pytest.approx(0.625)
    assert rl.batch_time_s(work.at(4), peak, cal) == pytest.approx(0.052)


def test_a_line_faster_than_the_catalog_bandwidth_raises_its_fraction(peak: rl.Peak) -> None:
    # the same line with 400 MB of weights: 0.02 s to read them at 20 GB/s, but one request
    # took 0.008 s beyond the overhead: bandwidth fraction 0.02 / 0.008 = 2.5, and batch 1 is
    # reproduced: 0.020 + max(0.008, 0.02 / 2.5) = 0.028 s
    work = rl.Workload(1e9, 4e8, 10, "fp32")
    cal = rl.calibrate(work, peak, 0.1, overhead_s=0.01, single_s=0.028)
    assert cal.bw_fraction == pytest.approx(2.5)
    assert cal.sources["bandwidth"].startswith("measured: at least 2.5 x")
    assert rl.batch_time_s(work.at(1), peak, cal) == pytest.approx(0.028)
    assert rl.batch_time_s(work, peak, cal) == pytest.approx(0.1)


def test_a_line_crossing_below_zero_keeps_no_overhead(peak: rl.Peak) -> None:
    # 0.005 s alone but 0.1 s per batch of 10: the intercept is negative; overhead 0 and
    # 0.01 s per request, efficiency 1e9 / (2e11 x 0.01) = 0.5
    cal = rl.calibrate(rl.Workload(1e9, 4e7, 10, "fp32"), peak, 0.1, overhead_s=0.01,
                       single_s=0.005)  # fmt: skip
    assert cal.overhead_s == 0.0 and "overhead set to 0" in cal.note
    assert cal.efficiency == pytest.approx(0.5)


def test_one_point_uses_the_stated_overhead(peak: rl.Peak) -> None:
    # 0.1 s per batch of 10, stated 0.01 s: compute 10 x 1e9 / 2e11 = 0.05 s, eff 0.05 / 0.09
    cal = rl.calibrate(rl.Workload(1e9, 4e7, 10, "fp32"), peak, 0.1, overhead_s=0.01)
    assert cal.method == "one-point" and cal.sources["overhead"].startswith("stated")
    assert cal.efficiency == pytest.approx(0.05 / 0.09)


def test_one_point_reproduces_a_memory_bound_batch(peak: rl.Peak) -> None:
    # 1 GB of weights: memory 1e9 / 2e10 = 0.05 s > compute 10 x 1e8 / 2e11 = 0.005 s; 0.1 s
    # measured, 0.01 s stated: one fraction 0.05 / 0.09 for both terms, and 0.1 s back
    work = rl.Workload(1e8, 1e9, 10, "fp32")
    cal = rl.calibrate(work, peak, 0.1, overhead_s=0.01)
    assert cal.efficiency == pytest.approx(0.05 / 0.09) == cal.bw_fraction
    assert work.bound(peak, cal) == "memory"
    assert rl.batch_time_s(work, peak, cal) == pytest.approx(0.1)


def test_decode_step_splits_memory_and_overhead(peak: rl.Peak) -> None:
    # 410 MB per token at a 41 GB/s probe = 0.010 s of a 0.020 s step: overhead 0.010 s,
    # bandwidth fraction 41 / 20 = 2.05
    work = rl.Workload(2e8, 4.1e8, 1, "fp32")
    cal = rl.calibrate(work, peak, 0.02, overhead_s=0.001, single_s=0.02,
                       bandwidth_bytes_per_s=41e9, decode=True)  # fmt: skip
    assert cal.method == "decode" and cal.efficiency == 1.0
    assert cal.overhead_s == pytest.approx(0.010)
    assert cal.bw_fraction == pytest.approx(2.05)
    assert work.bound(peak, cal) == "memory"
    assert rl.batch_time_s(work, peak, cal) == pytest.approx(0.020)


def test_decode_faster_than_the_probe_is_read_from_cache(peak: rl.Peak) -> None:
    # 0.005 s per step but 0.010 s to read 410 MB at the probe: overhead 0, and the step's own
    # bandwidth 410e6 / 0.005 = 82 GB/s, a fraction 4.1 of the catalog's 20 GB/s
    work = rl.Workload(2e8, 4.1e8, 1, "fp32")
    cal = rl.calibrate(work, peak, 0.005, overhead_s=0.001, single_s=0.005,
                       bandwidth_bytes_per_s=41e9, decode=True)  # fmt: skip
    assert cal.overhead_s == 0.0 and "faster than the probe" in cal.note
    assert cal.bw_fraction == pytest.approx(4.1)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_non_positive_times_are_refused(peak: rl.Peak, bad: float) -> None:
    with pytest.raises(BadInput, match="no positive batch time"):
        rl.calibrate(rl.Workload(1e9, 4e7, 10, "fp32"), peak, 0.1, overhead_s=0.01, single_s=bad)
