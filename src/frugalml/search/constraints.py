"""The quality bound and the selection goal, as tiny classes over candidate records, and
``choose``: selection on one split, the bound checked again on a held-out one (with a paired
bootstrap, so an edge model does not pass on a point estimate)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from frugalml.errors import BadInput
from frugalml.measure.bootstrap import paired_bootstrap
from frugalml.search.pareto import R, Record, cheaper, pick, quality_drop, ranked, usable
from frugalml.search.result import CandidateRecord


@dataclass(frozen=True)
class QualityBound:
    """A candidate may lose at most ``max_drop`` points against the baseline."""

    baseline: float
    max_drop: float = 1.0
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if self.max_drop < 0:
            raise BadInput(f"--max-quality-drop must be >= 0, not {self.max_drop}")

    def drop(self, record: Record) -> float:
        return quality_drop(float(record["quality"]), self.baseline, self.higher_is_better)

    def allows(self, record: Record) -> bool:
        return usable(record) and self.drop(record) <= self.max_drop + 1e-9


@dataclass(frozen=True)
class Cheapest:
    """Pick the lowest ``objective`` among allowed records, with ``pareto``'s tie rule: costs
    inside each other's noise are ties, which go to quality, then to the simpler pipeline."""

    objective: str = "cost_usd_per_1m"

    def pick(self, records: Sequence[R], bound: QualityBound) -> R | None:
        return pick([r for r in records if bound.allows(r)], self.objective)


class Scored(Protocol):
    """One model's evaluation on the final split: its quality and per-row re-scoring."""

    quality: float
    rows_scored: int

    def quality_on(self, indices: np.ndarray) -> float: ...


FINAL_CONFIDENCE = 0.9  # one-sided: the final split must hold the bound with this confidence


def check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1:
        raise BadInput(
            f"--final-confidence must be at least 0.5 and below 1, not {confidence:g}",
            hint="0.9: the bound holds on the final split with 90% one-sided confidence; "
            "0.5: on its point estimate",
        )


def drop_bound(
    base: Scored | None, cand: Scored | None, higher_is_better: bool, confidence: float
) -> tuple[float, float]:
    """``(drop, bound)`` on the final split: the point drop (candidate against baseline, in
    points, positive = worse) and the upper end of its one-sided ``confidence`` interval from
    a paired bootstrap of the rows (``confidence`` 0.5: the point drop itself). NaN for both
    when either evaluation failed (None)."""
    if base is None or cand is None:
        return math.nan, math.nan
    drop = quality_drop(float(cand.quality), float(base.quality), higher_is_better)
    if confidence <= 0.5:
        return drop, drop
    ci = paired_bootstrap(
        base.quality_on, cand.quality_on, int(cand.rows_scored), confidence=2 * confidence - 1
    )
    return drop, (-ci.low if higher_is_better else ci.high)


def choose(
    records: Sequence[CandidateRecord],
    baseline: CandidateRecord,
    max_drop: float,
    final_result: Callable[[CandidateRecord], Scored | None],
    confidence: float = FINAL_CONFIDENCE,
) -> tuple[CandidateRecord | None, list[str]]:
    """The chosen record and notes on what was passed over.

    Contenders: records cheaper than ``baseline`` beyond the noise and within ``max_drop``
    on the selection split (``quality``). In order of preference (``pareto.ranked``), each is
    evaluated on the final split (``final_result(record)``, the baseline's too, asked once;
    None: that evaluation failed) and the first whose drop there stays within ``max_drop``
    with one-sided ``confidence`` (paired bootstrap; 0.5: the point estimate) is chosen. A
    point estimate on a few hundred rows would pass an edge model that more data fails.
    Sets ``final_quality``, ``final_quality_drop``, ``final_drop_bound``,
    ``final_confidence``, ``final_check`` on the checked records and ``chosen``.
    """
    check_confidence(confidence)
    hib = bool(baseline.get("higher_is_better", True))
    bound = QualityBound(float(baseline["quality"]), max_drop, hib)
    contenders = [
        r for r in records if r is not baseline and bound.allows(r) and cheaper(r, baseline)
    ]
    notes: list[str] = []

    @functools.cache
    def base_final() -> Scored | None:  # asked once, and only if a contender is checked
        result = final_result(baseline)
        baseline["final_quality"] = _quality(result)
        return result

    for r in ranked(contenders):
        base = base_final()  # the baseline first, so its figures are there for every record
        cand = final_result(r)
        r["final_quality"] = _quality(cand)
        r["final_confidence"] = confidence
        drop, high = drop_bound(base, cand, hib, confidence)
        r["final_quality_drop"], r["final_drop_bound"] = drop, high
        passed = high <= max_drop + 1e-9  # NaN (failed check) never passes
        r["final_check"] = "passed" if passed else "failed"
        if passed:
            r["chosen"] = True
            return r, notes
        notes.append(
            f"{r.get('id')} ({r.get('label')}) is within the bound on the select split "
            f"({-bound.drop(r):+.2f} points) but not on the final split "
            f"({-drop:+.2f}; {confidence:.0%} one-sided bound {-high:+.2f}): not chosen"
        )
    if not contenders:
        notes.append(
            f"no candidate within {max_drop:g} points of the original "
            f"({float(baseline['quality']):.2f}) is cheaper than it beyond the timing noise"
        )
    return None, notes


def _quality(result: Scored | None) -> float:
    return math.nan if result is None else float(result.quality)
