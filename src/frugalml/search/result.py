"""What ``optimize`` found: ``OptimizeResult``, and ``ProductionCost``, what the model cost to
produce. Plain data; the reports (``frugalml.report``) and the CLI read it, search writes it.

``candidates.json`` is ``OptimizeResult.candidates_file()``: the top-level verdict
(``stop_reason``, ``untried``, ``production_cost``, ``rows`` per split) and ``candidates``, one
entry per candidate (``search.record.CandidateRecord.to_dict()``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from frugalml.records import Usage

StopReason = Literal["completed", "budget", "interrupted"]
STOP_REASONS: dict[str, str] = {
    "completed": "every candidate in the space was tried",
    "budget": "the time budget ran out before every candidate was tried",
    "interrupted": "interrupted (Ctrl-C) before every candidate was tried",
}


@dataclass(frozen=True)
class ProductionCost:
    """What producing the chosen model cost: everything its ledger lineage holds.

    The optimize run — every candidate's building and evaluation, the final checks, the
    evaluation server and its processes — plus, when the original was fine-tuned by frugal,
    its fine-tune run. Seconds, joules, US dollars, grams of CO2; ``runs`` are the ledger ids
    counted (``frugal show ID``), ``candidates`` how many candidates the search evaluated.
    """

    cost_usd: float
    energy_j: float
    energy_source: str
    cpu_s: float
    wall_s: float
    co2_g: float
    runs: tuple[str, ...] = ()
    candidates: int = 0

    @classmethod
    def of(cls, usage: Usage, run_id: str, candidates: int = 0) -> ProductionCost:
        return cls(
            cost_usd=usage.cost_usd,
            energy_j=usage.energy_j,
            energy_source=usage.energy_source,
            cpu_s=usage.cpu_s,
            wall_s=usage.wall_s,
            co2_g=usage.co2_g,
            runs=(run_id,),
            candidates=candidates,
        )

    def plus(self, usage: Usage, run_id: str) -> ProductionCost:
        """This cost and one more run's (an estimate anywhere makes the sum an estimate)."""
        sources = {self.energy_source, usage.energy_source}
        return ProductionCost(
            cost_usd=self.cost_usd + usage.cost_usd,
            energy_j=self.energy_j + usage.energy_j,
            energy_source=self.energy_source if len(sources) == 1 else "estimate",
            cpu_s=self.cpu_s + usage.cpu_s,
            wall_s=self.wall_s + usage.wall_s,
            co2_g=self.co2_g + usage.co2_g,
            runs=(*self.runs, run_id),
            candidates=self.candidates,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs"] = list(self.runs)
        return data


@dataclass
class OptimizeResult:
    """What ``optimize`` found. ``best`` is None when nothing beat the original in bound.

    ``baseline``, ``best``, ``pareto`` and ``candidates`` are candidate entries
    (``CandidateRecord.to_dict()``). ``stop_reason``: why the search stopped (``STOP_REASONS``);
    ``untried``: candidates it did not get to. ``rows``: rows of each split (tune, select,
    final). ``production_cost``: what producing ``best`` cost (the whole search).
    """

    baseline: dict[str, Any]
    best: dict[str, Any] | None
    pareto: list[dict[str, Any]]
    candidates: list[dict[str, Any]]
    out: Path
    run_id: str
    task: str
    metric: str
    max_quality_drop: float
    budget_s: float
    elapsed_s: float
    untried: int = 0
    stop_reason: StopReason = "completed"
    production_cost: ProductionCost | None = None
    rows: dict[str, int] = field(default_factory=dict)
    model: str = ""
    data: str = ""
    notes: list[str] = field(default_factory=list)

    def candidates_file(self) -> dict[str, Any]:
        """What ``candidates.json`` holds."""
        return {
            "stop_reason": self.stop_reason,
            "untried": self.untried,
            "production_cost": self.production_cost.to_dict() if self.production_cost else None,
            "rows": self.rows,
            "max_quality_drop": self.max_quality_drop,
            "candidates": self.candidates,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.candidates_file(),
            "baseline": self.baseline,
            "best": self.best,
            "pareto": self.pareto,
            "out": str(self.out),
            "run_id": self.run_id,
            "task": self.task,
            "metric": self.metric,
            "budget_s": self.budget_s,
            "elapsed_s": self.elapsed_s,
            "model": self.model,
            "data": self.data,
            "notes": self.notes,
        }
