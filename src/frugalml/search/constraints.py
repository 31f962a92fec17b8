"""The quality bound and the selection goal, as tiny classes over candidate records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from frugalml.errors import BadInput
from frugalml.search.pareto import R, Record, quality_drop, usable


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
    """Pick the lowest ``objective`` among allowed records; ties go to higher quality."""

    objective: str = "cost_usd_per_1m"

    def pick(self, records: Sequence[R], bound: QualityBound) -> R | None:
        allowed = [r for r in records if bound.allows(r)]
        if not allowed:
            return None
        sign = -1.0 if bound.higher_is_better else 1.0
        return min(allowed, key=lambda r: (float(r[self.objective]), sign * float(r["quality"])))
