"""Paired bootstrap CI: checked against cases whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from frugalml.measure.bootstrap import (
    paired_bootstrap,
    paired_bootstrap_mean,
    paired_ratio_ci,
    resample_indices,
)


def test_identical_predictions_give_exactly_zero() -> None:
    rng = np.random.default_rng(3)
    correct = (rng.random(500) < 0.8).astype(float) * 100
    ci = paired_bootstrap_mean(correct, correct.copy())
    assert (ci.delta, ci.low, ci.high) == (0.0, 0.0, 0.0)
    pred, gold = rng.normal(size=300), rng.normal(size=300)

    def score(idx: np.ndarray) -> float:
        return float(100 * spearmanr(pred[idx], gold[idx]).statistic)

    ci = paired_bootstrap(score, score, 300, resamples=200)
    assert (ci.delta, ci.low, ci.high) == (0.0, 0.0, 0.0)


def test_mean_difference_matches_normal_theory() -> None:
    """Paired differences d ~ N(0.7, 2): the 95% CI of the mean is mean ± 1.96 sd / sqrt(n)."""
    rng = np.random.default_rng(0)
    n = 4000
    base = rng.normal(50, 5, n)
    cand = base + rng.normal(0.7, 2.0, n)  # correlated sides: pairing matters
    ci = paired_bootstrap_mean(base, cand, resamples=2000, seed=1)
    d = cand - base
    half = 1.959964 * d.std(ddof=1) / math.sqrt(n)
    assert ci.delta == pytest.approx(d.mean())
    assert ci.low == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(d.mean() + half, abs=0.1 * half)
    # an unpaired interval would be ~2.5x wider here (sd of each side is 5, of d is 2)
    assert ci.high - ci.low < 1.3 * 2 * half


def test_difference_of_paired_accuracies_matches_analytic_interval() -> None:
    """Accuracy (in %) of two classifiers on the same rows: Wald CI of a paired difference."""
    rng = np.random.default_rng(7)
    n = 3000
    a = rng.random(n) < 0.80
    flip = rng.random(n)
    b = np.where(flip < 0.06, ~a, a)  # the candidate changes 6% of answers...
    b[(~a) & (flip > 0.97)] = True  # ...and fixes some wrong ones
    sa, sb = a * 100.0, b * 100.0
    d = b.astype(float) - a.astype(float)
    half = 100 * 1.959964 * d.std(ddof=1) / math.sqrt(n)
    ci = paired_bootstrap_mean(sa, sb, resamples=2000, seed=2)
    assert ci.low == pytest.approx(ci.delta - half, abs=0.12 * half)
    assert ci.high == pytest.approx(ci.delta + half, abs=0.12 * half)


def test_generic_and_fast_path_agree_and_are_seeded() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.random(200) * 100, rng.random(200) * 100
    fast = paired_bootstrap_mean(a, b, resamples=300, seed=9)
    slow = paired_bootstrap(
        lambda i: float(a[i].mean()), lambda i: float(b[i].mean()), 200, resamples=300, seed=9
    )
    assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high))
    assert paired_bootstrap_mean(a, b, resamples=300, seed=9) == fast
    assert paired_bootstrap_mean(a, b, resamples=300, seed=10) != fast
    assert fast.low < fast.delta < fast.high


def test_undefined_replicates_are_left_out_and_bad_sizes_refused() -> None:
    calls = iter(range(10_000))

    def sometimes_nan(idx: np.ndarray) -> float:
        return float("nan") if next(calls) % 7 == 3 else float(len(idx))

    ci = paired_bootstrap(lambda i: 0.0, sometimes_nan, 10, resamples=50)
    assert ci.low == ci.high == 10.0
    with pytest.raises(ValueError):
        resample_indices(0, 10, 0)
    with pytest.raises(ValueError):
        paired_bootstrap_mean(np.zeros(3), np.zeros(4))


def _spearman(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman x 100 along ``axis`` (continuous data: no ties), for batches of resamples."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    return 100 * (rx * ry).sum(axis) / np.sqrt((rx**2).sum(axis) * (ry**2).sum(axis))


@pytest.mark.slow
@pytest.mark.parametrize(("rho_base", "rho_cand"), [(0.95, 0.90), (0.90, 0.90)])
def test_percentile_covers_a_spearman_difference_as_well_as_scipy_bca(
    rho_base: float, rho_cand: float
) -> None:
    """Why the module keeps its percentile interval rather than scipy's BCa.

    Simulated STS-like data with a known answer: gold ~ N(0, 1), each model's score =
    gold + noise, so its Pearson correlation with gold is rho and its population Spearman is
    (6/pi) asin(rho/2) (a skewed statistic near 1). Over 120 seeded data sets of 60 rows the
    paired percentile interval must hold the true difference at least as often as
    ``scipy.stats.bootstrap(paired=True, method="BCa")`` does, and be no wider.
    """
    from scipy.stats import bootstrap

    def truth(rho: float) -> float:
        return 100 * 6 / math.pi * math.asin(rho / 2)

    true = truth(rho_cand) - truth(rho_base)
    n, datasets, resamples = 60, 120, 499
    sd_base, sd_cand = math.sqrt(1 / rho_base**2 - 1), math.sqrt(1 / rho_cand**2 - 1)
    rng = np.random.default_rng(2024)
    hits = {"percentile": 0, "bca": 0}
    widths = {"percentile": 0.0, "bca": 0.0}
    for m in range(datasets):
        gold = rng.normal(size=n)
        base = gold + sd_base * rng.normal(size=n)
        cand = gold + sd_cand * rng.normal(size=n)
        ours = paired_bootstrap(
            lambda i, p=base, g=gold: float(_spearman(p[i], g[i])),
            lambda i, p=cand, g=gold: float(_spearman(p[i], g[i])),
            n,
            resamples=resamples,
            seed=m,
        )
        bca = bootstrap(
            (base, cand, gold),
            lambda b, c, g, axis=-1: _spearman(c, g, axis) - _spearman(b, g, axis),
            paired=True,
            vectorized=True,
            method="BCa",
            n_resamples=resamples,
            random_state=m,
        ).confidence_interval
        for name, (low, high) in (("percentile", (ours.low, ours.high)), ("bca", bca)):
            hits[name] += bool(low <= true <= high)
            widths[name] += (high - low) / datasets
    coverage = {k: v / datasets for k, v in hits.items()}
    assert coverage["percentile"] >= 0.93, coverage
    assert coverage["percentile"] >= coverage["bca"] - 0.02, coverage
    assert widths["percentile"] <= 1.02 * widths["bca"], widths


def test_ratio_interval_is_the_order_statistics_of_the_paired_rounds() -> None:
    """10 rounds: the 95% sign-test interval of a median is the 2nd to the 9th ratio."""
    base = np.array([10.0, 12.0, 9.0, 11.0, 10.0, 8.0, 13.0, 10.0, 9.5, 11.5])
    ratios = np.array([0.5, 0.45, 0.6, 0.52, 0.48, 0.7, 0.3, 0.55, 0.5, 0.49])
    ci = paired_ratio_ci(base, base * ratios)
    assert ci is not None and ci.rounds == 10
    assert (ci.low, ci.high) == pytest.approx((0.45, 0.6))  # sorted: .3 .45 ... .6 .7
    assert ci.ratio == pytest.approx(0.5)  # both middle ratios are 0.5
    inv = paired_ratio_ci(base * ratios, base)
    assert inv is not None and (inv.low, inv.high) == pytest.approx((1 / 0.6, 1 / 0.45))
    assert paired_ratio_ci(base[:5], base[:5] * 2) is None  # too few rounds for 95%
    assert paired_ratio_ci(base, np.zeros(10)) is None  # no positive figure
