"""The cost-delta statement and the gate over hand-built sides (pure; no model needed)."""

from __future__ import annotations

import dataclasses

import pytest

from frugalml.errors import BadInput
from frugalml.report.bootstrap import DeltaCI
from frugalml.report.gate import gate
from frugalml.report.statement import Side, TrainingCost, build_statement

BASE = Side(
    name="minilm",
    source="model minilm",
    task="similarity",
    metric="spearman",
    higher_is_better=True,
    quality=82.0,
    n_items=750,
    throughput_per_s=200.0,
    latency_ms_p50=150.0,
    latency_ms_p99=210.0,
    cost_usd_per_1m=0.40,
    energy_j_per_1k=900.0,
    energy_source="estimate",
    co2_g_per_1k=0.12,
    peak_memory_bytes=500_000_000,
    size_bytes=90_000_000,
    device="cpu",
    threads=2,
)
CAND = dataclasses.replace(
    BASE,
    name="minilm-int8",
    source="model int8",
    quality=81.5,
    throughput_per_s=500.0,
    latency_ms_p50=60.0,
    latency_ms_p99=90.0,
    cost_usd_per_1m=0.16,
    energy_j_per_1k=360.0,
    co2_g_per_1k=0.048,
    size_bytes=23_000_000,
    training=TrainingCost("f" * 32, "optimize", 0.05, 0.0, 0.0048, 1200.0, "estimate"),
)
CI = DeltaCI(delta=-0.5, low=-0.9, high=-0.1, confidence=0.95, resamples=1000, n_items=750, seed=0)


def test_statement_figures_ratios_and_words() -> None:
    st = build_statement(BASE, CAND, CI, paired=True)
    assert st.quality_delta == pytest.approx(-0.5)
    assert st.quality_drop == pytest.approx(0.5)
    assert st.drop_ci == pytest.approx((0.1, 0.9))
    assert st.ratios["cost"] == pytest.approx(0.4)
    assert st.ratios["throughput"] == pytest.approx(2.5)
    assert st.ratios["size"] == pytest.approx(23 / 90)
    text = st.paragraph()
    for needle in (
        "81.50",
        "82.00",
        "−0.50 points",
        "95% CI −0.90 to −0.10",
        "a real loss",
        "$0.160 per 1M requests",
        "60% less",
        "an estimate, not a reading",
        "alternating",
        "optimize run",
        "machine-hours",
    ):
        assert needle in text, (needle, text)
    rows = {r[0]: r for r in st.rows()}
    assert rows["$ per 1M requests"][3] == "0.40×"
    assert "(estimate)" in rows["energy per 1k requests"][1]
    assert rows["training cost"][2].endswith("$0.00480")
    data = st.to_dict()
    assert data["quality_ci"]["low"] == -0.9 and data["candidate"]["training"]["kind"] == "optimize"
    assert Side.from_dict(data["candidate"]) == CAND  # round-trips through JSON-ready dicts


def test_ci_containing_zero_reads_as_no_change() -> None:
    ci = dataclasses.replace(CI, low=-0.9, high=0.3)
    assert "not distinguishable from no change" in build_statement(BASE, CAND, ci).paragraph()
    assert "no confidence interval" in build_statement(BASE, CAND, None).paragraph()


def test_lower_is_better_metric_flips_the_drop() -> None:
    b = dataclasses.replace(BASE, metric="perplexity", higher_is_better=False, quality=20.0)
    c = dataclasses.replace(CAND, metric="perplexity", higher_is_better=False, quality=21.0)
    st = build_statement(b, c, dataclasses.replace(CI, delta=1.0, low=0.4, high=1.6))
    assert st.quality_drop == pytest.approx(1.0)  # higher perplexity is worse
    assert st.drop_ci == pytest.approx((0.4, 1.6))
    assert not gate(st, max_cost_ratio=1, max_quality_drop=0.5).passed
    assert gate(st, max_cost_ratio=1, max_quality_drop=1.2).passed


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "classification"}, "task"),
        ({"metric": "pearson"}, "metric"),
        ({"quality": None}, "no quality recorded"),
        ({"n_items": 300}, "different data"),
    ],
)
def test_incomparable_sides_are_refused(change: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        build_statement(BASE, dataclasses.replace(CAND, **change))


def test_gate_conditions_and_figures() -> None:
    st = build_statement(BASE, CAND, CI)
    ok = gate(st, max_cost_ratio=0.5, max_quality_drop=1.0)
    assert ok.passed and not ok.failed
    bad = gate(st, max_cost_ratio=0.01, max_quality_drop=0.2)
    assert not bad.passed
    assert [c.name for c in bad.failed] == ["cost ratio", "quality drop"]
    assert "cost ratio 0.400 > 0.01" in bad.failed[0].text
    assert "$0.160" in bad.failed[0].text and "$0.400" in bad.failed[0].text
    assert "quality drop 0.50 > 0.2 points" in bad.failed[1].text
    # energy and latency as the cost metric
    assert gate(st, max_cost_ratio=0.41, max_quality_drop=1, cost_metric="energy").passed
    assert not gate(st, max_cost_ratio=0.39, max_quality_drop=1, cost_metric="latency").passed
    # strict: the CI's worst end (0.9 points) is what must pass
    assert gate(st, max_cost_ratio=1, max_quality_drop=0.6).passed
    assert not gate(st, max_cost_ratio=1, max_quality_drop=0.6, strict=True).passed
    # a missing cost figure fails its condition instead of passing silently
    no_cost = build_statement(BASE, dataclasses.replace(CAND, cost_usd_per_1m=None))
    assert not gate(no_cost, max_cost_ratio=10, max_quality_drop=10).passed


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_cost_ratio": 0, "max_quality_drop": 1},
        {"max_cost_ratio": float("nan"), "max_quality_drop": 1},
        {"max_cost_ratio": 1, "max_quality_drop": float("inf")},
        {"max_cost_ratio": 1, "max_quality_drop": 1, "cost_metric": "carbon"},
    ],
)
def test_gate_refuses_bad_limits(kwargs: dict) -> None:
    with pytest.raises(BadInput):
        gate(build_statement(BASE, CAND, CI), **kwargs)
