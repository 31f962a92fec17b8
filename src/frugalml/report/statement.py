"""The cost-delta statement: what a candidate model gains and loses against a baseline.

"No model promotion without a cost delta statement." A statement holds both sides' figures
(quality, latency, throughput, $ per 1M requests, energy per 1k requests with its source,
CO2, peak memory, size on disk, training cost where known), the quality difference with a
paired bootstrap confidence interval, the candidate/baseline ratios, a short paragraph in
plain language and a table. It is built from plain data (``Side``), so the same statement
comes out of a fresh evaluation or out of the ledger alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from frugalml import units
from frugalml.errors import BadInput
from frugalml.measure.bootstrap import (
    MIN_ROUNDS_FOR_CI,
    DeltaCI,
    RatioCI,
    paired_ratio,
    paired_ratio_ci,
)
from frugalml.search.pareto import QUALITY_TOLERANCE

# Serving figures of one side (keys of an evaluation), in the order the table shows them.
FIGURE_KEYS: tuple[str, ...] = (
    "throughput_per_s",
    "latency_ms_p50",
    "latency_ms_p99",
    "cost_usd_per_1m",
    "energy_j_per_1k",
    "co2_g_per_1k",
    "peak_memory_bytes",
    "size_bytes",
)
# ratio name -> figure it divides (candidate / baseline)
RATIO_KEYS: dict[str, str] = {
    "cost": "cost_usd_per_1m",
    "energy": "energy_j_per_1k",
    "co2": "co2_g_per_1k",
    "latency_p50": "latency_ms_p50",
    "latency_p99": "latency_ms_p99",
    "throughput": "throughput_per_s",
    "memory": "peak_memory_bytes",
    "size": "size_bytes",
}
# ratios of figures measured anew every round: paired over rounds, with an interval
TIMED_RATIOS: tuple[str, ...] = (
    "throughput",
    "latency_p50",
    "latency_p99",
    "cost",
    "energy",
    "co2",
)


@dataclass(frozen=True)
class TrainingCost:
    """What producing a model cost, from the ledger run that produced it."""

    run_id: str
    kind: str
    wall_hours: float
    device_hours: float  # accelerator-hours (GPU count x wall); 0 on a CPU-only run
    cost_usd: float
    energy_j: float
    energy_source: str
    what: str = "training it"  # "building and evaluating it" for a search's candidate run

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Side:
    """One model in a comparison: its quality and serving figures, and where they came from.

    ``quality`` is in the metric's points (accuracy in %, Spearman x 100...); figures are per
    request: latency in ms, throughput in requests/s, $ per 1M requests, joules and grams CO2
    per 1k requests, bytes. ``items_path`` names the per-row outputs (``.npz``) that a paired
    bootstrap needs; ``run_id`` the ledger run holding all of it.
    """

    name: str
    source: str
    task: str
    metric: str
    higher_is_better: bool
    quality: float | None
    run_id: str | None = None
    data: str | None = None
    n_items: int | None = None
    throughput_per_s: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    cost_usd_per_1m: float | None = None
    energy_j_per_1k: float | None = None
    energy_source: str | None = None
    co2_g_per_1k: float | None = None
    peak_memory_bytes: int | None = None
    size_bytes: int | None = None
    device: str | None = None
    threads: int | None = None
    instance: str | None = None
    region: str | None = None
    training: TrainingCost | None = None
    items_path: str | None = None
    group: str | None = None  # the compare/gate run that measured both sides, alternating
    data_sha256: str | None = None  # of the data file, when the evaluation recorded it
    batch_size: int | None = None  # texts per call: latency is the time of one such batch
    # figure (a FIGURE_KEYS name) -> its value in each timed round, in round order
    per_round: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:  # rounds read back from JSON come as lists
        rounds = {str(k): tuple(float(x) for x in v) for k, v in self.per_round.items()}
        object.__setattr__(self, "per_round", rounds)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["training"] = self.training.to_dict() if self.training else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Side:
        names = {f.name for f in dataclasses.fields(cls)}
        kept = {k: v for k, v in data.items() if k in names}
        if kept.get("training"):
            kept["training"] = TrainingCost(**kept["training"])
        return cls(**kept)


def _ratio(candidate: float | None, baseline: float | None) -> float | None:
    if candidate is None or baseline is None or baseline == 0:
        return None
    value = candidate / baseline
    return value if math.isfinite(value) else None


def check_comparable(baseline: Side, candidate: Side) -> None:
    """Raise ``BadInput`` unless the two sides measure the same thing with a quality each."""
    if baseline.task != candidate.task:
        raise BadInput(
            f"the baseline was evaluated on task '{baseline.task}' and the candidate "
            f"on '{candidate.task}'; a statement compares one task",
            hint="compare runs of the same task, or pass both models with --task",
        )
    if baseline.metric != candidate.metric:
        raise BadInput(
            f"the baseline's metric is '{baseline.metric}' and the candidate's "
            f"'{candidate.metric}'",
            hint="compare runs scored with the same metric",
        )
    b, c = baseline, candidate
    if (b.data_sha256 and c.data_sha256 and b.data_sha256 != c.data_sha256) or (
        b.n_items and c.n_items and b.n_items != c.n_items
    ):
        raise BadInput(
            f"the sides were scored on different data ({b.data or '?'}, {b.n_items or '?'} rows "
            f"against {c.data or '?'}, {c.n_items or '?'} rows); their quality cannot be "
            "compared",
            hint="evaluate both on the same --data",
        )
    for role, side in (("candidate", candidate), ("baseline", baseline)):
        if side.quality is None or not math.isfinite(side.quality):
            raise BadInput(
                f"the {role} ({side.source}) has no quality recorded",
                hint="evaluate it with --task and --data, or pick an eval run "
                "(`frugal runs --kind eval`)",
            )


@dataclass(frozen=True)
class Statement:
    """The cost-delta statement. Build it with :func:`build_statement`.

    ``ratios`` are candidate / baseline. For sides measured in one run, alternating, the
    timing ratios (:data:`TIMED_RATIOS`) are the median of the rounds' paired ratios and
    ``ratio_cis`` holds their intervals; ``timing_gap`` says why there are none otherwise.
    """

    baseline: Side
    candidate: Side
    quality_delta: float  # candidate - baseline, in points
    quality_drop: float  # how much worse the candidate is, in points (negative: better)
    ci: DeltaCI | None  # paired bootstrap of quality_delta; None without per-row outputs
    ratios: dict[str, float | None]
    paired: bool  # both evaluated in one process, alternating
    notes: tuple[str, ...] = field(default=())
    ratio_cis: dict[str, RatioCI] = field(default_factory=dict)
    timing_gap: str | None = None  # why the timing ratios have no interval
    recorded_run_ids: tuple[str, ...] = ()  # eval runs this comparison wrote to the ledger

    # ---- derived ----------------------------------------------------------------------
    @property
    def per(self) -> str:
        """What the cost figures count: output tokens for a causal LM's task, else requests."""
        return "output tokens" if self.baseline.task in ("perplexity", "generation") else "requests"

    @property
    def quality_drop_pct(self) -> float | None:
        """Lower-is-better metrics (perplexity): the drop as a relative increase in percent
        (what ``--max-quality-drop`` means for them); None for points metrics."""
        b = self.baseline.quality
        if self.baseline.higher_is_better or not b:
            return None
        return 100.0 * self.quality_drop / b

    @property
    def drop_ci(self) -> tuple[float, float] | None:
        """The CI of ``quality_drop`` (low, high)."""
        if self.ci is None:
            return None
        if self.baseline.higher_is_better:
            return -self.ci.high, -self.ci.low
        return self.ci.low, self.ci.high

    @property
    def batch_sizes_differ(self) -> bool:
        b, c = self.baseline.batch_size, self.candidate.batch_size
        return b is not None and c is not None and b != c

    def why_no_ratio(self, name: str) -> str:
        """Why ``ratios[name]`` is None, in words."""
        if name.startswith("latency") and self.batch_sizes_differ:
            return (
                f"the sides ran different batch sizes (baseline {self.baseline.batch_size}, "
                f"candidate {self.candidate.batch_size}), so their latencies are not comparable"
            )
        if name == "memory" and device_memory_shared(self.baseline, self.candidate):
            return "one process held both models, so its peak memory is not either model's"
        return f"{name} is missing for a side"

    def why_no_interval(self, name: str) -> str:
        """Why ``ratio_cis`` has no ``name``, in words."""
        if self.ratios.get(name) is None:
            return self.why_no_ratio(name)
        return self.timing_gap or f"the rounds give no interval for the {name} ratio"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.baseline.task,
            "metric": self.baseline.metric,
            "higher_is_better": self.baseline.higher_is_better,
            "baseline": self.baseline.to_dict(),
            "candidate": self.candidate.to_dict(),
            "quality_delta": self.quality_delta,
            "quality_drop": self.quality_drop,
            "quality_drop_pct": self.quality_drop_pct,
            "quality_ci": self.ci.to_dict() if self.ci else None,
            "ratios": self.ratios,
            "ratio_cis": {k: v.to_dict() for k, v in self.ratio_cis.items()},
            "timing_gap": self.timing_gap,
            "paired": self.paired,
            "recorded_run_ids": list(self.recorded_run_ids),
            "paragraph": self.paragraph(),
            "table": [
                dict(zip(("figure", "baseline", "candidate", "change"), row, strict=True))
                for row in self.rows()
            ],
            "notes": list(self.notes),
        }

    # ---- words --------------------------------------------------------------------------
    def _quality_sentence(self) -> str:
        b, c = self.baseline, self.candidate
        assert b.quality is not None and c.quality is not None  # check_comparable ensured it
        text = (
            f"On {b.task} ({b.metric}"
            + (f", {b.n_items:,} rows" if b.n_items else "")
            + f"), {_the('candidate', c.name)} scores {units.points(c.quality)} against "
            f"{units.points(b.quality)} for {_the('baseline', b.name)}: "
            f"{units.points(self.quality_delta, signed=True)} points"
        )
        if (pct_drop := self.quality_drop_pct) is not None:
            text += f" ({pct_drop:+.2f}% relative)"
        if self.ci is not None:
            pct = round(self.ci.confidence * 100)
            text += (
                f" ({pct}% CI {units.points(self.ci.low, signed=True)} to "
                f"{units.points(self.ci.high, signed=True)})"
            )
            if self.ci.contains(0.0):
                text += ", not distinguishable from no change"
            elif max(abs(self.ci.low), abs(self.ci.high)) < QUALITY_TOLERANCE:
                text += (
                    f", a difference the interval tells apart from zero but within "
                    f"±{QUALITY_TOLERANCE:g} points: no change in practice"
                )
            elif self.quality_drop > 0:
                text += ", a real loss"
            else:
                text += ", a real gain"
        else:
            text += " (no confidence interval: per-row outputs were not recorded)"
        return text + "."

    def _ratio_words(self, name: str, *, change: bool = False) -> str:
        """``0.16×, 84% less; 95% CI 0.12× to 0.21×`` (the parts that are known)."""
        value = self.ratios.get(name)
        text = units.ratio(value) + (f", {units.change(value)}" if change else "")
        ci = self.ratio_cis.get(name)
        if ci is not None:
            text += (
                f"; {round(ci.confidence * 100)}% CI {units.ratio(ci.low)} to "
                f"{units.ratio(ci.high)}"
            )
        return text

    def _latency_words(self) -> str | None:
        b, c = self.baseline, self.candidate
        if c.latency_ms_p50 is None or b.latency_ms_p50 is None:
            return None
        if self.batch_sizes_differ:
            return (
                f"answers a request in {units.ms(c.latency_ms_p50)} at the median (p99 "
                f"{units.ms(c.latency_ms_p99)}) served in batches of {c.batch_size}, against "
                f"{units.ms(b.latency_ms_p50)} (p99 {units.ms(b.latency_ms_p99)}) in batches "
                f"of {b.batch_size} (not compared: the batch sizes differ)"
            )
        batch = f" in batches of {b.batch_size}" if b.batch_size else ""
        text = (
            f"answers a request in {units.ms(c.latency_ms_p50)} at the median (p99 "
            f"{units.ms(c.latency_ms_p99)}) against {units.ms(b.latency_ms_p50)} (p99 "
            f"{units.ms(b.latency_ms_p99)}){batch}"
        )
        if self.ratios.get("latency_p50") is not None:
            text += f" ({self._ratio_words('latency_p50')})"
        return text

    def _cost_sentence(self) -> str:
        b, c = self.baseline, self.candidate
        parts: list[str] = []
        r = self.ratios
        if r.get("cost") is not None:
            parts.append(
                f"costs {units.usd(c.cost_usd_per_1m)} per 1M {self.per} against "
                f"{units.usd(b.cost_usd_per_1m)} ({self._ratio_words('cost', change=True)})"
            )
        if r.get("throughput") is not None:
            parts.append(
                f"serves {units.per_s(c.throughput_per_s)} against "
                f"{units.per_s(b.throughput_per_s)} ({self._ratio_words('throughput')})"
            )
        if (latency := self._latency_words()) is not None:
            parts.append(latency)
        if r.get("energy") is not None:
            parts.append(
                f"uses {units.joules(c.energy_j_per_1k)} per 1k {self.per} against "
                f"{units.joules(b.energy_j_per_1k)} ({self._ratio_words('energy', change=True)}; "
                f"{_source_words(b, c)})"
            )
        if r.get("size") is not None:
            parts.append(
                f"takes {units.nbytes(c.size_bytes)} on disk against {units.nbytes(b.size_bytes)}"
            )
        if not parts:
            return "Neither side has serving figures recorded, so no cost delta can be stated."
        where = ""
        if b.device or b.threads:
            where = f" on {b.device or 'this machine'}" + (
                f" with {b.threads} threads" if b.threads else ""
            )
        how = " (both measured in one run, alternating)" if self.paired else ""
        return (
            f"Measured{where}{how}, it "
            + ", ".join(parts[:-1])
            + (f" and {parts[-1]}." if len(parts) > 1 else f"{parts[0]}.")
        )

    def _training_sentence(self) -> str:
        t = self.candidate.training
        if t is None:
            return ""
        hours = (
            f"{units.sig(t.device_hours)} device-hours"
            if t.device_hours > 0
            else f"{units.sig(t.wall_hours)} machine-hours"
        )
        return (
            f" Producing the candidate ({t.what}, {t.kind} run {t.run_id[:12]}) took {hours} "
            f"and cost {units.usd(t.cost_usd)}."
        )

    def paragraph(self) -> str:
        """The statement in plain language: one short paragraph."""
        return (
            " ".join(s for s in (self._quality_sentence(), self._cost_sentence()) if s)
            + self._training_sentence()
        )

    def _change(self, name: str) -> str:
        """A table's change cell: ``0.16× [0.12, 0.21]`` with the interval where known."""
        text = units.ratio(self.ratios.get(name))
        ci = self.ratio_cis.get(name)
        if ci is not None:
            text += f" [{units.sig(ci.low, 2)}, {units.sig(ci.high, 2)}]"
        return text

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(figure, baseline, candidate, change) rows for the table; every unit shown."""
        b, c = self.baseline, self.candidate
        delta = units.points(self.quality_delta, signed=True) + " pts"
        if self.ci is not None:
            delta += (
                f" [{units.points(self.ci.low, signed=True)}, "
                f"{units.points(self.ci.high, signed=True)}]"
            )
        rows = [(f"quality ({b.metric})", units.points(b.quality), units.points(c.quality), delta)]
        if b.batch_size or c.batch_size:
            rows.append(
                (
                    "batch size",
                    str(b.batch_size or "-"),
                    str(c.batch_size or "-"),
                    "differs" if self.batch_sizes_differ else "",
                )
            )
        for label, key, show in (
            ("latency p50", "latency_p50", units.ms),
            ("latency p99", "latency_p99", units.ms),
            ("throughput", "throughput", units.per_s),
            (f"$ per 1M {self.per}", "cost", units.usd),
        ):
            figure = RATIO_KEYS[key]
            rows.append(
                (label, show(getattr(b, figure)), show(getattr(c, figure)), self._change(key))
            )
        rows += [
            (f"energy per 1k {self.per}", _energy(b), _energy(c), self._change("energy")),
            (
                f"CO2 per 1k {self.per}",
                units.grams(b.co2_g_per_1k),
                units.grams(c.co2_g_per_1k),
                self._change("co2"),
            ),
            (
                "peak memory",
                units.nbytes(b.peak_memory_bytes),
                units.nbytes(c.peak_memory_bytes),
                self._change("memory"),
            ),
            (
                "size on disk",
                units.nbytes(b.size_bytes),
                units.nbytes(c.size_bytes),
                self._change("size"),
            ),
        ]
        if b.training or c.training:
            rows.append(("training cost", _training(b.training), _training(c.training), ""))
        return rows


def _the(role: str, name: str) -> str:
    """``the baseline minilm``; just ``baseline (original)`` when the name says the role."""
    return name if role in name.lower() else f"the {role} {name}"


def _energy(side: Side) -> str:
    if side.energy_j_per_1k is None:
        return "-"
    return f"{units.joules(side.energy_j_per_1k)} ({side.energy_source or 'unknown source'})"


def _training(t: TrainingCost | None) -> str:
    if t is None:
        return "-"
    hours = (
        f"{units.sig(t.device_hours)} device-h"
        if t.device_hours > 0
        else f"{units.sig(t.wall_hours)} machine-h"
    )
    return f"{hours}, {units.usd(t.cost_usd)}"


def _source_words(b: Side, c: Side) -> str:
    sources = {s for s in (b.energy_source, c.energy_source) if s}
    if not sources:
        return "source unknown"
    if sources == {"estimate"}:
        return "an estimate, not a reading"
    return "read from " + " and ".join(sorted(sources))


def device_memory_shared(baseline: Side, candidate: Side) -> bool:
    """Were both sides measured in one process (compare/gate's alternating evaluation)?"""
    return baseline.group is not None and baseline.group == candidate.group


def timing_ratios(
    baseline: Side, candidate: Side, ratios: dict[str, float | None]
) -> tuple[dict[str, RatioCI], str | None]:
    """Pair the rounds of two sides measured together: ``ratios`` updated in place with the
    median paired ratio of each timed figure; the intervals; why there are none (or None)."""
    if not device_memory_shared(baseline, candidate):
        return {}, (
            "the sides were not measured side by side in one run (compare or gate with --task "
            "and --data measures both, alternating)"
        )
    cis: dict[str, RatioCI] = {}
    rounds = 0
    for name in TIMED_RATIOS:
        key = RATIO_KEYS[name]
        b, c = baseline.per_round.get(key), candidate.per_round.get(key)
        if not b or not c or len(b) != len(c):
            continue
        rounds = len(b)
        if (ratio := paired_ratio(b, c)) is not None:
            ratios[name] = ratio
        if (ci := paired_ratio_ci(b, c)) is not None:
            cis[name] = ci
    if cis:
        return cis, None
    if rounds == 0:
        return cis, "the figures of each round were not recorded"
    return cis, (
        f"{rounds} rounds are too few for a 95% interval of the timing ratios "
        f"({MIN_ROUNDS_FOR_CI} or more give one: --rounds)"
    )


def _notes(st: Statement) -> tuple[str, ...]:
    """The notes every statement of these sides carries (after the caller's own)."""
    b, c = st.baseline, st.candidate
    notes: tuple[str, ...] = ()
    if b.energy_source == "estimate" or c.energy_source == "estimate":
        notes += (
            "Energy is an estimate (CPU time x watts per busy core from the price "
            "catalog), not a meter reading; CO2 follows from it.",
        )
    if st.ci is None:
        notes += (
            "No per-row outputs for both sides, so no confidence interval for the "
            "quality difference.",
        )
    if st.ratio_cis:
        n = next(iter(st.ratio_cis.values())).rounds
        notes += (
            f"Timing ratios (throughput, latency, $, energy, CO2) are the median of {n} rounds' "
            "candidate/baseline ratios, each round measuring both side by side; their 95% "
            "intervals come from the order statistics of those rounds (no assumption on the "
            "noise).",
        )
    elif st.timing_gap:
        notes += (f"No interval for the timing ratios: {st.timing_gap}.",)
    if st.batch_sizes_differ:
        notes += (
            f"The sides ran different batch sizes (baseline {b.batch_size}, candidate "
            f"{c.batch_size}): latency is the time of one batch, so the latencies are shown but "
            "not compared (measure both with the same --batch-size to compare them); "
            "throughput and cost per request stay comparable.",
        )
    if device_memory_shared(b, c) and st.paired:
        notes += (
            "Peak memory is the evaluating process's, which held both models: it is shown "
            "but not compared (`frugal eval` each model alone for its own peak).",
        )
    return notes


def build_statement(
    baseline: Side,
    candidate: Side,
    ci: DeltaCI | None = None,
    *,
    paired: bool = False,
    notes: tuple[str, ...] = (),
    recorded_run_ids: tuple[str, ...] = (),
) -> Statement:
    """The statement for two comparable sides (``BadInput`` otherwise)."""
    check_comparable(baseline, candidate)
    assert baseline.quality is not None and candidate.quality is not None
    delta = candidate.quality - baseline.quality
    drop = -delta if baseline.higher_is_better else delta
    ratios = {
        name: _ratio(getattr(candidate, key), getattr(baseline, key))
        for name, key in RATIO_KEYS.items()
    }
    cis, gap = timing_ratios(baseline, candidate, ratios)
    b_batch, c_batch = baseline.batch_size, candidate.batch_size
    if b_batch is not None and c_batch is not None and b_batch != c_batch:
        for name in ("latency_p50", "latency_p99"):  # one batch of 8 is not one of 32
            ratios[name] = None
            cis.pop(name, None)
    if paired and device_memory_shared(baseline, candidate):
        ratios["memory"] = None  # one process held both models: its peak tells them apart not
    st = Statement(
        baseline=baseline,
        candidate=candidate,
        quality_delta=delta,
        quality_drop=drop,
        ci=ci,
        ratios=ratios,
        paired=paired,
        ratio_cis=cis,
        timing_gap=gap,
        recorded_run_ids=tuple(recorded_run_ids),
    )
    return dataclasses.replace(st, notes=tuple(notes) + _notes(st))
