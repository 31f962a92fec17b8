"""Paired bootstrap confidence intervals for a quality difference (pure functions, numpy).

Both models were scored on the same rows, so the rows are resampled *once* per replicate and
both sides are re-scored on the same indices: the interval is for the difference measured on
one data set, and the per-row correlation between the two models narrows it (an unpaired
bootstrap would not see it). The interval is the percentile interval of the replicate
differences; replicates use a seeded generator, so the same inputs give the same interval.

    ci = paired_bootstrap(lambda idx: quality(base, idx), lambda idx: quality(cand, idx), n)
    ci.delta, ci.low, ci.high          # candidate - baseline, in the metric's points
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0

# A score of one side on a resample: the rows' indices (int array, repeats allowed) -> points.
ScoreOn = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class DeltaCI:
    """``delta`` (candidate − baseline on all rows) with its bootstrap interval ``[low, high]``.

    All three are in the metric's own points (e.g. accuracy in %, Spearman x 100).
    ``resamples`` replicates of ``n_items`` rows each, drawn with ``seed``.
    """

    delta: float
    low: float
    high: float
    confidence: float
    resamples: int
    n_items: int
    seed: int
    method: str = "paired percentile bootstrap"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def resample_indices(n_items: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n_items)`` row indices drawn with replacement from a seeded generator."""
    if n_items < 1:
        raise ValueError("a bootstrap needs at least one row")
    if resamples < 1:
        raise ValueError("a bootstrap needs at least one resample")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_items, size=(resamples, n_items))


def _interval(deltas: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    tail = (1.0 - confidence) / 2.0 * 100.0
    finite = deltas[np.isfinite(deltas)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def paired_bootstrap(
    score_baseline: ScoreOn,
    score_candidate: ScoreOn,
    n_items: int,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> DeltaCI:
    """The interval of ``score_candidate(idx) - score_baseline(idx)`` over paired resamples.

    Works for any metric that can be recomputed on a subset of rows (accuracy, Spearman,
    perplexity...). Replicates where a score is undefined (NaN: e.g. a correlation on a
    resample with one distinct value) are left out of the percentiles.
    """
    everything = np.arange(n_items)
    delta = float(score_candidate(everything) - score_baseline(everything))
    indices = resample_indices(n_items, resamples, seed)
    deltas = np.fromiter(
        (score_candidate(idx) - score_baseline(idx) for idx in indices),
        dtype=float,
        count=resamples,
    )
    low, high = _interval(deltas, confidence)
    return DeltaCI(
        delta=delta,
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
        n_items=n_items,
        seed=seed,
    )


def paired_bootstrap_mean(
    scores_baseline: np.ndarray,
    scores_candidate: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> DeltaCI:
    """Fast path for metrics that are a mean of per-row scores (accuracy: 0/100 per row).

    Same replicates as :func:`paired_bootstrap` with the same seed, vectorised.
    """
    a = np.asarray(scores_baseline, dtype=float)
    b = np.asarray(scores_candidate, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("paired scores must be two 1-d arrays of the same length")
    diff = b - a
    indices = resample_indices(diff.size, resamples, seed)
    deltas = diff[indices].mean(axis=1)
    low, high = _interval(deltas, confidence)
    return DeltaCI(
        delta=float(diff.mean()),
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
        n_items=int(diff.size),
        seed=seed,
    )
