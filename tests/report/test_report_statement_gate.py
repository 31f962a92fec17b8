"""The cost-delta statement and the gate over hand-built sides (pure; no model needed)."""

from __future__ import annotations

import dataclasses

import pytest

from frugalml.errors import BadInput
from frugalml.measure.bootstrap import DeltaCI
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
    # the gate takes perplexity's drop as a relative increase in percent: 21 / 20 is +5%
    assert st.quality_drop_pct == pytest.approx(5.0)
    assert not gate(st, max_cost_ratio=1, max_quality_drop=4.9).passed
    assert gate(st, max_cost_ratio=1, max_quality_drop=5.1).passed
    # --strict: the top of the interval, 1.6 points of 20, is +8%
    strict = gate(st, max_cost_ratio=1, max_quality_drop=7.9, strict=True)
    (q,) = [c for c in strict.conditions if c.name == "quality drop"]
    assert q.value == pytest.approx(8.0) and not q.passed and "% (relative)" in q.text


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
    strict = gate(st, max_cost_ratio=1, max_quality_drop=0.6, strict=True)
    assert "quality drop" in [c.name for c in strict.failed]
    assert strict.conditions[1].value == pytest.approx(0.9)
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


def test_strict_gate_fails_when_an_interval_is_missing() -> None:
    """Under --strict a missing interval is a failure with its reason, not the point estimate."""
    no_ci = build_statement(BASE, CAND, None)
    assert gate(no_ci, max_cost_ratio=1, max_quality_drop=5).passed  # not strict: point estimates
    verdict = gate(no_ci, max_cost_ratio=1, max_quality_drop=5, strict=True)
    assert not verdict.passed
    quality = verdict.conditions[1]
    assert not quality.passed and quality.value is None
    assert "no confidence interval" in quality.text and "--strict" in quality.text
    # the sides were not measured together: the cost ratio has no interval either
    cost = gate(build_statement(BASE, CAND, CI), max_cost_ratio=1, max_quality_drop=5, strict=True)
    assert [c.name for c in cost.failed] == ["cost ratio"]
    assert "no confidence interval" in cost.failed[0].text
    assert "not measured side by side" in cost.failed[0].text


def test_latency_at_different_batch_sizes_is_named_not_compared() -> None:
    """One batch of 8 against one batch of 32 is not a latency ratio."""
    b = dataclasses.replace(BASE, batch_size=32)
    c = dataclasses.replace(CAND, batch_size=8)
    st = build_statement(b, c, CI)
    assert st.ratios["latency_p50"] is None and st.ratios["latency_p99"] is None
    assert st.ratios["throughput"] == pytest.approx(2.5)  # per request: still comparable
    text = st.paragraph()
    assert "60.0 ms at the median" in text and "served in batches of 8" in text
    assert "in batches of 32" in text and "not compared" in text
    assert "×" not in text.split("answers")[1].split(", uses")[0]  # no latency ratio
    rows = {r[0]: r for r in st.rows()}
    assert rows["batch size"][1:] == ("32", "8", "differs")
    assert rows["latency p50"][3] == "-"
    data = st.to_dict()
    assert (data["baseline"]["batch_size"], data["candidate"]["batch_size"]) == (32, 8)
    assert any("different batch sizes" in n for n in st.notes)
    latency = gate(st, max_cost_ratio=10, max_quality_drop=5, cost_metric="latency")
    assert not latency.passed and "different batch sizes" in latency.failed[0].text
    same = build_statement(b, dataclasses.replace(c, batch_size=32), CI)
    assert same.ratios["latency_p50"] == pytest.approx(0.4)
    assert "in batches of 32 (0.40×)" in same.paragraph()


# Throughput of 9 interleaved rounds; the candidate is 2x in the middle round and the
# sorted paired ratios are 1.5, 1.8, 1.9, 2.0, 2.0, 2.05, 2.1, 2.2, 2.6: median 2.0, and
# the 95% order-statistic interval of a median over 9 rounds is the 2nd to 8th: 1.8 to 2.2.
BASE_TPUT = (100.0, 90.0, 110.0, 95.0, 105.0, 100.0, 80.0, 120.0, 100.0)
FACTORS = (2.0, 2.2, 1.8, 2.1, 1.9, 2.05, 1.5, 2.6, 2.0)


def _rounds(tput: tuple[float, ...]) -> dict[str, tuple[float, ...]]:
    return {
        "throughput_per_s": tput,
        "cost_usd_per_1m": tuple(72.0 / t for t in tput),  # hourly price: cost per request ~ 1/t
        "latency_ms_p50": tuple(3200.0 / t for t in tput),
    }


def test_timing_ratios_get_an_interval_from_paired_rounds() -> None:
    cand_tput = tuple(t * f for t, f in zip(BASE_TPUT, FACTORS, strict=True))
    b = dataclasses.replace(BASE, group="g1", per_round=_rounds(BASE_TPUT))
    c = dataclasses.replace(CAND, group="g1", per_round=_rounds(cand_tput))
    st = build_statement(b, c, CI, paired=True)
    tput = st.ratio_cis["throughput"]
    assert st.ratios["throughput"] == pytest.approx(2.0)
    assert (tput.low, tput.high, tput.rounds) == pytest.approx((1.8, 2.2, 9))
    cost = st.ratio_cis["cost"]
    assert st.ratios["cost"] == pytest.approx(0.5)
    assert (cost.low, cost.high) == pytest.approx((1 / 2.2, 1 / 1.8))
    assert "latency_p50" in st.ratio_cis and "energy" not in st.ratio_cis  # no rounds recorded
    text = st.paragraph()
    assert "(0.50×, 50% less; 95% CI 0.45× to 0.56×)" in text, text
    assert "(2.00×; 95% CI 1.80× to 2.20×)" in text, text
    rows = {r[0]: r for r in st.rows()}
    assert rows["throughput"][3] == "2.00× [1.8, 2.2]"
    assert st.to_dict()["ratio_cis"]["cost"]["high"] == pytest.approx(1 / 1.8)
    assert Side.from_dict(st.to_dict()["candidate"]) == c
    # --strict judges the dearest end: 0.556 fails a 0.55 limit the median (0.5) passes
    assert gate(st, max_cost_ratio=0.55, max_quality_drop=1).passed
    strict = gate(st, max_cost_ratio=0.55, max_quality_drop=1, strict=True)
    assert [x.name for x in strict.failed] == ["cost ratio"]
    assert strict.failed[0].value == pytest.approx(1 / 1.8)
    assert gate(st, max_cost_ratio=0.6, max_quality_drop=1, strict=True).passed


def test_too_few_rounds_give_no_timing_interval_and_say_so() -> None:
    few_b, few_c = BASE_TPUT[:5], tuple(t * 2 for t in BASE_TPUT[:5])
    b = dataclasses.replace(BASE, group="g2", per_round=_rounds(few_b))
    c = dataclasses.replace(CAND, group="g2", per_round=_rounds(few_c))
    st = build_statement(b, c, CI, paired=True)
    assert st.ratio_cis == {} and st.ratios["throughput"] == pytest.approx(2.0)
    assert st.timing_gap is not None and "5 rounds are too few" in st.timing_gap
    assert any("5 rounds are too few" in n for n in st.notes)
    strict = gate(st, max_cost_ratio=1, max_quality_drop=1, strict=True)
    assert "5 rounds are too few" in strict.failed[0].text


def test_a_tiny_real_difference_reads_as_no_change_in_practice() -> None:
    """An fp16 copy agrees 99.99999 vs 100: the interval excludes zero but the whole of it is
    inside the 0.05-point tolerance; the demo of 2026-12-01 called that "a real loss"."""
    b = dataclasses.replace(BASE, metric="agreement", quality=100.0)
    c = dataclasses.replace(CAND, metric="agreement", quality=99.99999)
    ci = dataclasses.replace(CI, delta=-0.00001, low=-0.00002, high=-0.000005)
    text = build_statement(b, c, ci).paragraph()
    assert "a real loss" not in text and "no change in practice" in text, text
    # just outside the tolerance it is a loss again
    ci = dataclasses.replace(CI, delta=-0.06, low=-0.08, high=-0.051)
    assert "a real loss" in build_statement(b, c, ci).paragraph()
