"""The promotion gate: pass a candidate only when it is cheap enough and good enough.

Two conditions over a :class:`~frugalml.report.statement.Statement`:

- **cost ratio** = candidate / baseline on the chosen cost metric must be ``<= max_cost_ratio``.
  ``cost`` (default) divides $ per 1M requests, ``energy`` joules per 1k requests,
  ``latency`` the p50 latency. ``--max-cost-ratio 0.5`` asks for half the cost or less.
- **quality drop** in the metric's points = baseline − candidate when higher is better
  (accuracy, Spearman); when lower is better (perplexity) the relative increase in percent,
  100 x (candidate − baseline) / baseline, as ``optimize``'s bound; it must be
  ``<= max_quality_drop``.

With ``strict`` the worst end of each 95% interval is judged instead of the point estimate:
the bootstrap interval of the quality drop, and the interval of the cost ratio over the
paired rounds (a cost the rounds cannot rule out fails the gate). Under ``strict`` a missing
interval fails its condition, with the reason; it never falls back to the point estimate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from frugalml import units
from frugalml.errors import BadInput
from frugalml.report.loadtest import LoadStatement, cost_condition
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


def check_limits(max_cost_ratio: float, max_quality_drop: float | None, cost_metric: str) -> None:
    if cost_metric not in COST_METRICS:
        raise BadInput(
            f"unknown cost metric '{cost_metric}'", hint=f"use one of {', '.join(COST_METRICS)}"
        )
    if not (math.isfinite(max_cost_ratio) and max_cost_ratio > 0):
        raise BadInput(
            f"--max-cost-ratio must be a positive number, not {max_cost_ratio}",
            hint="e.g. 0.5 for half the baseline's cost, 1.0 for no more than it",
        )
    if max_quality_drop is not None and not math.isfinite(max_quality_drop):
        raise BadInput(
            f"--max-quality-drop must be a number of points, not {max_quality_drop}",
            hint="e.g. 1.0 to allow one point less than the baseline",
        )


def gate(
    statement: Statement | LoadStatement,
    *,
    max_cost_ratio: float,
    max_quality_drop: float | None,
    cost_metric: str = "cost",
    strict: bool = False,
) -> Verdict:
    """Check a statement against the limits. A missing cost figure fails its condition; with
    ``strict``, so does a missing interval (the worst end of each interval is judged).
    Two loadtest runs (a ``LoadStatement``) are judged on cost alone: $ per 1k requests at the
    SLO (``cost``) or p99 there (``latency``); ``max_quality_drop`` is not used."""
    check_limits(max_cost_ratio, max_quality_drop, cost_metric)
    if isinstance(statement, LoadStatement):
        value, ok, text = cost_condition(statement, max_cost_ratio, cost_metric, strict)
        cond = Condition(f"{cost_metric} ratio", value, max_cost_ratio, ok, text)
        return Verdict(passed=ok, conditions=(cond,))
    if max_quality_drop is None:
        raise BadInput(
            "--max-quality-drop is needed to gate evaluations",
            hint="e.g. --max-quality-drop 1.0 (only loadtest runs are gated on cost alone)",
        )
    conditions = (
        _cost_condition(statement, max_cost_ratio, cost_metric, strict),
        _quality_condition(statement, max_quality_drop, strict),
    )
    return Verdict(passed=all(c.passed for c in conditions), conditions=conditions)


def _cost_condition(st: Statement, limit: float, cost_metric: str, strict: bool) -> Condition:
    key, figure, label = COST_METRICS[cost_metric]
    label = label.replace("requests", st.per)  # a causal LM's cost counts output tokens
    name = f"{cost_metric} ratio"
    ratio = st.ratios.get(key)
    if ratio is None:
        return Condition(name, None, limit, False, f"{name} unknown: {st.why_no_ratio(key)}")
    figures = (
        f"{label}: candidate {_show(figure, getattr(st.candidate, figure))} / baseline "
        f"{_show(figure, getattr(st.baseline, figure))}"
    )
    ci = st.ratio_cis.get(key)
    if strict and ci is None:
        return Condition(
            name,
            None,
            limit,
            False,
            f"{name} {ratio:.3f} has no confidence interval, which --strict requires: "
            f"{st.why_no_interval(key)} ({figures})",
        )
    value, basis = ratio, "median of the rounds" if ci is not None else "point estimate"
    if strict and ci is not None:
        value = ci.high  # the dearest the rounds allow
        basis = f"worst end of the {round(ci.confidence * 100)}% CI {ci.low:.3f}-{ci.high:.3f}"
    ok = value <= limit
    return Condition(
        name,
        value,
        limit,
        ok,
        f"{name} {value:.3f} {'<=' if ok else '>'} {limit:g} ({figures}; {basis})",
    )


def _quality_condition(st: Statement, limit: float, strict: bool) -> Condition:
    metric = st.baseline.metric
    figures = (
        f"{metric}: baseline {units.points(st.baseline.quality)}, candidate "
        f"{units.points(st.candidate.quality)}"
    )
    if strict and st.drop_ci is None:
        return Condition(
            "quality drop",
            None,
            limit,
            False,
            f"quality drop {units.points(st.quality_drop)} has no confidence interval, which "
            "--strict requires: the per-row outputs of both sides are not both recorded "
            f"({figures})",
        )
    drop, basis = st.quality_drop, "point estimate"
    if strict and st.ci is not None and st.drop_ci is not None:
        drop = st.drop_ci[1]  # the worst the data allows at the CI's level
        basis = f"worst end of the {round(st.ci.confidence * 100)}% CI"
    shown, unit = units.points(drop), "points"
    if st.quality_drop_pct is not None:  # lower is better: a relative increase, in percent
        assert st.baseline.quality is not None
        drop = 100.0 * drop / st.baseline.quality
        shown, unit = f"{drop:+.2f}%", "% (relative)"
    ok = drop <= limit
    return Condition(
        "quality drop",
        drop,
        limit,
        ok,
        f"quality drop {shown} {'<=' if ok else '>'} {limit:g}{'' if unit[0] == '%' else ' '}"
        f"{unit} ({figures}; {basis})",
    )


def _show(figure: str, value: float | None) -> str:
    if figure == "cost_usd_per_1m":
        return units.usd(value)
    if figure == "energy_j_per_1k":
        return units.joules(value)
    return units.ms(value)
