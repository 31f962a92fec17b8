"""Pareto front of quality vs cost, with ties inside the measured noise: pure functions over
candidate records (mappings: ``candidates.json`` entries).

A record needs ``quality`` (points), ``cost_usd_per_1m`` and ``higher_is_better``; optional
``cost_usd_per_1m_low`` / ``_high`` (the cost at its fastest / slowest timed pass) and
``passes`` (its pipeline). Failed records (``status != "ok"``) are ignored.

The tie rule (docs/optimize.md, "Ties"):

- **cost**: each record's cost is a band, its measured interval widened to at least
  ±``COST_NOISE_FLOOR`` (one process measured after another drifts by that much on a shared
  machine even when its own passes agree); two costs whose bands overlap are a tie, and
  the records that may be the cheapest are those no other record beats beyond the noise;
- **quality**: two qualities within ``QUALITY_TOLERANCE`` points are a tie;
- a tie goes to quality, then to the simpler pipeline (fewer passes that change the model;
  ``runtime_settings`` is not one), then to the lower cost.

``a`` dominates ``b`` when it is no worse on either axis and better on one beyond the noise, or
tied on both and simpler. ``pick`` and ``ranked`` choose among records with the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

Record = Mapping[str, Any]
R = TypeVar("R", bound=Mapping[str, Any])
QUALITY_TOLERANCE = 0.05  # points: differences below this are ties (1e-5 is float noise)
COST_NOISE_FLOOR = 0.02  # relative: a cost band is at least ±2% of the cost


def usable(record: Record) -> bool:
    return (
        record.get("status", "ok") == "ok"
        and math.isfinite(float(record.get("quality", math.nan)))
        and math.isfinite(float(record.get("cost_usd_per_1m", math.nan)))
    )


def cost_band(record: Record) -> tuple[float, float]:
    """(low, high) $ per 1M requests: the measured interval, at least ±COST_NOISE_FLOOR."""
    cost = float(record["cost_usd_per_1m"])
    low = _finite(record.get("cost_usd_per_1m_low"), cost)
    high = _finite(record.get("cost_usd_per_1m_high"), cost)
    return min(low, cost * (1 - COST_NOISE_FLOOR)), max(high, cost * (1 + COST_NOISE_FLOOR))


def noise_band(record: Record) -> dict[str, float]:
    """What a chart draws around a point: the cost band and the quality tolerance."""
    low, high = cost_band(record)
    q = float(record["quality"])
    return {
        "cost_usd_per_1m_low": low,
        "cost_usd_per_1m_high": high,
        "quality_low": q - QUALITY_TOLERANCE,
        "quality_high": q + QUALITY_TOLERANCE,
    }


def cheaper(a: Record, b: Record) -> bool:
    """``a`` costs less than ``b`` beyond the noise (their bands do not overlap)."""
    return cost_band(a)[1] < cost_band(b)[0]


def better_quality(a: float, b: float, higher_is_better: bool = True) -> bool:
    """``a`` is better than ``b`` by more than the quality tolerance."""
    return a > b + QUALITY_TOLERANCE if higher_is_better else a < b - QUALITY_TOLERANCE


def complexity(record: Record) -> int:
    """Passes in the pipeline that change the model (0: the original). ``runtime_settings``
    (batch size, maximum length) runs the same model another way: not a more complex
    pipeline, so it cannot lose a tie to its own model at the default settings."""
    return sum(1 for p in record.get("passes") or () if p.get("name") != "runtime_settings")


def dominates(a: Record, b: Record) -> bool:
    hib = bool(a.get("higher_is_better", True))
    qa, qb = float(a["quality"]), float(b["quality"])
    if better_quality(qb, qa, hib) or cheaper(b, a):
        return False
    if better_quality(qa, qb, hib) or cheaper(a, b):
        return True
    return complexity(a) < complexity(b)  # a tie on both axes: the simpler pipeline


def pareto_front(records: Sequence[R]) -> list[R]:
    """The non-dominated usable records, cheapest first."""
    ok = [r for r in records if usable(r)]
    front = [r for r in ok if not any(dominates(o, r) for o in ok if o is not r)]
    return sorted(front, key=lambda r: (float(r["cost_usd_per_1m"]), -float(r["quality"])))


def pick(records: Sequence[R], objective: str = "cost_usd_per_1m") -> R | None:
    """The preferred record: among those that may be the cheapest (no other record costs less
    beyond the noise), the best quality; among qualities tied with that, the simplest
    pipeline, then the cheapest.

    "May be the cheapest" is asked of every record, not only of the cheapest median: one
    noisy candidate with a wide band must not make a tie of a record that a third one beats
    beyond the noise (the wide band ties with both; the dear one is still beaten)."""
    ok = [r for r in records if usable(r)]
    if not ok:
        return None
    cheapest = min(ok, key=lambda r: float(r[objective]))
    # the cheapest median is always in: a record below its band would have a lower median
    tied = [r for r in ok if not any(cheaper(o, r) for o in ok if o is not r)]
    hib = bool(cheapest.get("higher_is_better", True))
    sign = 1.0 if hib else -1.0
    top = max(tied, key=lambda r: sign * float(r["quality"]))
    level = [r for r in tied if not better_quality(float(top["quality"]), float(r["quality"]), hib)]
    return min(level, key=lambda r: (complexity(r), float(r[objective])))


def ranked(records: Sequence[R]) -> list[R]:
    """Usable records in order of preference (``pick``, then ``pick`` of the rest, ...)."""
    rest = [r for r in records if usable(r)]
    order: list[R] = []
    while (best := pick(rest)) is not None:
        order.append(best)
        rest = [r for r in rest if r is not best]
    return order


def quality_drop(quality: float, baseline: float, higher_is_better: bool = True) -> float:
    """Points lost against the baseline (negative when the candidate is better)."""
    return baseline - quality if higher_is_better else quality - baseline


def _finite(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default
