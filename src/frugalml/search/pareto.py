"""Pareto front of quality vs cost: pure functions over candidate records (plain dicts).

A record needs ``quality`` (points), ``cost_usd_per_1m`` and ``higher_is_better``; failed
records (``status != "ok"``) are ignored. ``a`` dominates ``b`` when it is at least as good on
both axes and strictly better on one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

Record = Mapping[str, Any]
R = TypeVar("R", bound=Mapping[str, Any])
QUALITY_EPS = 1e-6  # points: float noise (e.g. a fidelity of 99.9999996) is a tie, not a win


def usable(record: Record) -> bool:
    return (
        record.get("status", "ok") == "ok"
        and math.isfinite(float(record.get("quality", math.nan)))
        and math.isfinite(float(record.get("cost_usd_per_1m", math.nan)))
    )


def better_quality(a: float, b: float, higher_is_better: bool = True) -> bool:
    """``a`` is better than ``b`` by more than float noise."""
    return a > b + QUALITY_EPS if higher_is_better else a < b - QUALITY_EPS


def dominates(a: Record, b: Record) -> bool:
    hib = bool(a.get("higher_is_better", True))
    qa, qb = float(a["quality"]), float(b["quality"])
    ca, cb = float(a["cost_usd_per_1m"]), float(b["cost_usd_per_1m"])
    q_ok = not better_quality(qb, qa, hib)
    return q_ok and ca <= cb and (better_quality(qa, qb, hib) or ca < cb)


def pareto_front(records: Sequence[R]) -> list[R]:
    """The non-dominated usable records, cheapest first."""
    ok = [r for r in records if usable(r)]
    front = [r for r in ok if not any(dominates(o, r) for o in ok if o is not r)]
    return sorted(front, key=lambda r: (float(r["cost_usd_per_1m"]), -float(r["quality"])))


def quality_drop(quality: float, baseline: float, higher_is_better: bool = True) -> float:
    """Points lost against the baseline (negative when the candidate is better)."""
    return baseline - quality if higher_is_better else quality - baseline
