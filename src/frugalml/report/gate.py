"""The promotion gate: pass a candidate only when it is cheap enough and good enough.

Two conditions over a :class:`~frugalml.report.statement.Statement`:

- **cost ratio** = candidate / baseline on the chosen cost metric must be ``<= max_cost_ratio``.
  ``cost`` (default) divides $ per 1M requests, ``energy`` joules per 1k requests,
  ``latency`` the p50 latency. ``--max-cost-ratio 0.5`` asks for half the cost or less.
- **quality drop** in the metric's points = baseline − candidate when higher is better
  (accuracy, Spearman), candidate − baseline when lower is better (perplexity); it must be
  ``<= max_quality_drop``. With ``strict`` the worst end of the bootstrap 95% interval is
  used instead of the point estimate, so a drop the data cannot rule out fails the gate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from frugalml.errors import BadInput
from frugalml.report import units
from frugalml.report.statement import Statement

CostMetric = Literal["cost", "energy", "latency"]
COST_METRICS: dict[str, tuple[str, str, str]] = {
    # name -> (ratio key in Statement.ratios, Side figure it divides, words)
    "cost": ("cost", "cost_usd_per_1m", "$ per 1M requests"),
    "energy": ("energy", "energy_j_per_1k", "energy per 1k requests"),
    "latency": ("latency_p50", "latency_ms_p50", "p50 latency"),
}


@dataclass(frozen=True)
class Condition:
    """One gate condition: ``value <= limit`` passes; ``text`` says it with the figures."""

    name: str
    value: float | None
    limit: float
    passed: bool
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    conditions: tuple[Condition, ...]

    @property
    def failed(self) -> tuple[Condition, ...]:
        return tuple(c for c in self.conditions if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "conditions": [c.to_dict() for c in self.conditions]}


def check_limits(max_cost_ratio: float, max_quality_drop: float, cost_metric: str) -> None:
    if cost_metric not in COST_METRICS:
        raise BadInput(
            f"unknown cost metric '{cost_metric}'", hint=f"use one of {', '.join(COST_METRICS)}"
        )
    if not (math.isfinite(max_cost_ratio) and max_cost_ratio > 0):
        raise BadInput(
            f"--max-cost-ratio must be a positive number, not {max_cost_ratio}",
            hint="e.g. 0.5 for half the baseline's cost, 1.0 for no more than it",
        )
    if not math.isfinite(max_quality_drop):
        raise BadInput(
            f"--max-quality-drop must be a number of points, not {max_quality_drop}",
            hint="e.g. 1.0 to allow one point less than the baseline",
        )


def gate(
    statement: Statement,
    *,
    max_cost_ratio: float,
    max_quality_drop: float,
    cost_metric: str = "cost",
    strict: bool = False,
) -> Verdict:
    """Check a statement against the limits. A missing cost figure fails its condition."""
    check_limits(max_cost_ratio, max_quality_drop, cost_metric)
    key, figure, label = COST_METRICS[cost_metric]
    ratio = statement.ratios.get(key)
    if ratio is None:
        cost = Condition(
            f"{cost_metric} ratio",
            None,
            max_cost_ratio,
            False,
            f"{cost_metric} ratio unknown: {label} is missing for a side",
        )
    else:
        ok = ratio <= max_cost_ratio
        b = getattr(statement.baseline, figure)
        c = getattr(statement.candidate, figure)
        cost = Condition(
            f"{cost_metric} ratio",
            ratio,
            max_cost_ratio,
            ok,
            f"{cost_metric} ratio {ratio:.3f} {'<=' if ok else '>'} {max_cost_ratio:g} "
            f"({label}: candidate {_show(figure, c)} / baseline {_show(figure, b)})",
        )
    drop = statement.quality_drop
    basis = "point estimate" if not strict else "point estimate; no CI recorded"
    if strict and statement.ci is not None and statement.drop_ci is not None:
        drop = statement.drop_ci[1]  # the worst the data allows at the CI's level
        basis = f"worst end of the {round(statement.ci.confidence * 100)}% CI"
    ok = drop <= max_quality_drop
    metric = statement.baseline.metric
    quality = Condition(
        "quality drop",
        drop,
        max_quality_drop,
        ok,
        f"quality drop {units.points(drop)} {'<=' if ok else '>'} {max_quality_drop:g} points "
        f"({metric}: baseline {units.points(statement.baseline.quality)}, candidate "
        f"{units.points(statement.candidate.quality)}; {basis})",
    )
    conditions = (cost, quality)
    return Verdict(passed=all(c.passed for c in conditions), conditions=conditions)


def _show(figure: str, value: float | None) -> str:
    if figure == "cost_usd_per_1m":
        return units.usd(value)
    if figure == "energy_j_per_1k":
        return units.joules(value)
    return units.ms(value)
