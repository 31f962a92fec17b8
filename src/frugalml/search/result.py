"""What ``optimize`` found: ``OptimizeResult``, and ``ProductionCost``, what the model cost to
produce. Plain data; the reports (``frugalml.report``) and the CLI read it, search writes it.

``candidates.json`` is ``OptimizeResult.candidates_file()``: the top-level verdict
(``stop_reason``, ``untried``, ``production_cost``, ``rows`` per split) and ``candidates``, one
``CandidateRecord`` per candidate (every figure, its unit in its name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from frugalml.records import Usage

StopReason = Literal["completed", "budget", "interrupted"]
STOP_REASONS: dict[str, str] = {
    "completed": "every candidate in the space was tried",
    "budget": "the time budget ran out before every candidate was tried",
    "interrupted": "interrupted (Ctrl-C) before every candidate was tried",
}


class PassEntry(TypedDict):
    name: str
    config: dict[str, Any]


class CandidateRecord(TypedDict, total=False):
    """One candidate, as ``candidates.json`` lists it and the search passes it around (a
    mapping, so ``pareto`` and ``constraints`` stay pure functions over records). Units are
    in the names: seconds ``_s``, bytes ``_bytes``, joules ``_j``, dollars ``_usd``, quality
    in points of ``metric``; ratios are against the original (the baseline)."""

    # what it is
    id: str  # c00 (the original), c01, ...
    label: str  # "onnx_export + quantize_dynamic(per_channel=True)"
    tier: str  # baseline | convert | runtime | structure
    passes: list[PassEntry]
    runtime: dict[str, Any]  # threads, batch_size, length_sort, max_length
    status: str  # ok | failed
    error: str | None
    optimize_run_id: str
    run_id: str  # its ``candidate`` run in the ledger
    model_dir: str | None  # its saved folder while the search runs (best/ for the chosen)
    best_dir: str
    prepare_s: float  # building and saving it
    eval_s: float  # evaluating it (its own process)
    # the evaluation on the select split: every ``EvalResult`` figure
    task: str
    quality: float
    metric: str
    higher_is_better: bool
    throughput_per_s: float
    latency_ms_p50: float
    latency_ms_p99: float
    latency_ms_batch1: float | None  # mean time of one text alone (roofline calibration)
    cost_usd_per_1m: float
    cost_usd_per_1m_low: float  # at the fastest timed pass
    cost_usd_per_1m_high: float  # at the slowest
    energy_j_per_1k: float
    energy_source: str
    peak_memory_bytes: int
    size_bytes: int
    device: str
    threads: int
    batch_size: int
    length_sort: bool
    rows: int
    rows_scored: int
    rows_total: int
    split: str
    texts_timed: int
    repeats: int
    warmup_s: float
    timed_s: float
    cpu_s: float  # of the timed passes
    usd_per_hour: float
    instance: str
    region: str
    co2_g_per_1m: float
    model: str
    # against the original, on the select split
    quality_drop: float  # points lost (negative: better)
    meets_bound: bool
    cost_ratio: float  # original's cost / this one's (how many times cheaper: >1 is cheaper)
    throughput_ratio: float  # this one's throughput / original's
    on_pareto: bool
    chosen: bool
    # the final check (the held-out split), for the candidates checked
    final_quality: float
    final_quality_drop: float  # the point estimate
    final_drop_bound: float  # upper end of its one-sided final_confidence interval (bootstrap)
    final_confidence: float
    final_check: str  # passed (final_drop_bound within the bound) | failed
    final_error: str
    # where it ran (--engine ray): every figure carries its node; ratios against the original
    # timed on the same node (node_baseline), or baseline_note says it was not
    node_id: str | None
    host: str | None
    hardware: dict[str, Any] | None
    worker_pid: int | None  # the Ray worker process that ran the evaluation task
    eval_window: list[float | None]  # epoch seconds the evaluation task started and ended
    engine_overhead_s: float  # scheduling + transfer of its evaluation
    node_baseline: dict[str, Any]
    baseline_note: str


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

    ``baseline``, ``best``, ``pareto`` and ``candidates`` are ``CandidateRecord``s.
    ``stop_reason``: why the search stopped (``STOP_REASONS``);
    ``untried``: candidates it did not get to. ``rows``: rows of each split (tune, select,
    final). ``production_cost``: what producing ``best`` cost (the whole search).
    """

    baseline: CandidateRecord
    best: CandidateRecord | None
    pareto: list[CandidateRecord]
    candidates: list[CandidateRecord]
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
