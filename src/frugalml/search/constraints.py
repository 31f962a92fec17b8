"""The quality bound and the selection goal, as tiny classes over candidate records, and
``choose``: selection on one split, the bound checked again on a held-out one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from frugalml.errors import BadInput
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


def choose(
    records: Sequence[CandidateRecord],
    baseline: CandidateRecord,
    max_drop: float,
    final_quality: Callable[[CandidateRecord], float],
) -> tuple[CandidateRecord | None, list[str]]:
    """The chosen record and notes on what was passed over.

    Contenders: records cheaper than ``baseline`` beyond the noise and within ``max_drop``
    on the selection split (``quality``). In order of preference (``pareto.ranked``), each is
    checked on the final split (``final_quality(record)``, the baseline's too, asked once):
    the first still within ``max_drop`` there is chosen. Sets ``final_quality``,
    ``final_quality_drop``, ``final_check`` on the checked records and ``chosen``.
    """
    hib = bool(baseline.get("higher_is_better", True))
    bound = QualityBound(float(baseline["quality"]), max_drop, hib)
    contenders = [
        r for r in records if r is not baseline and bound.allows(r) and cheaper(r, baseline)
    ]
    notes: list[str] = []
    for r in ranked(contenders):
        if "final_quality" not in baseline:
            baseline["final_quality"] = final_quality(baseline)
        r["final_quality"] = final_quality(r)
        r["final_quality_drop"] = quality_drop(r["final_quality"], baseline["final_quality"], hib)
        passed = r["final_quality_drop"] <= max_drop + 1e-9  # NaN (failed check) never passes
        r["final_check"] = "passed" if passed else "failed"
        if passed:
            r["chosen"] = True
            return r, notes
        notes.append(
            f"{r.get('id')} ({r.get('label')}) is within the bound on the select split "
            f"({-bound.drop(r):+.2f} points) but not on the final split "
            f"({-r['final_quality_drop']:+.2f}): not chosen"
        )
    if not contenders:
        notes.append(
            f"no candidate within {max_drop:g} points of the original "
            f"({float(baseline['quality']):.2f}) is cheaper than it beyond the timing noise"
        )
    return None, notes
