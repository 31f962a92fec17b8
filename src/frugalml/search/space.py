"""The candidate space and the order it is explored in (ask/tell, no evaluation here).

``base_pipelines`` lists sensible composed pipelines for a model's engine and device, most
promising first, in three tiers: cheap conversions (ONNX, int8, bf16: seconds to build), then
runtime settings (batch size) of the best candidates so far, then expensive structural
variants (layer dropping + distillation, structured pruning + recovery, compile) — a
structural candidate that becomes the cheapest in bound has its batch sizes tried right
after it — then runtime settings again for whatever became best. ``Strategy`` hands
candidates out one at a time (``ask``) and learns from results (``tell``); the runner decides
how to evaluate them. Every pipeline is checked against the ordering rules
(``passes.pipeline.problem``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from frugalml.passes import (
    HalfPrecision,
    LayerDrop,
    MagnitudePrune,
    OnnxExport,
    OnnxOptimize,
    OpenVINOInt8,
    QuantizeDynamic,
    QuantizeStatic,
    RuntimeSettings,
    StructuredPrune,
    TorchCompile,
    describe,
    problem,
)
from frugalml.passes.registry import info_of
from frugalml.search.constraints import Cheapest, QualityBound
from frugalml.search.pareto import Record

Pipeline = tuple[Any, ...]
BATCH_SIZES_CPU = (8, 64, 128)
BATCH_SIZES_GPU = (64, 128, 256)
# Layer dropping that keeps quality on text no pass saw: ~4,000 standard-library sentences
# besides the task's few hundred (a shallow student fits those and generalises worse), and
# MiniLM's intermediate-layer loss (each kept block's token states follow its teacher block)
DISTILL_MORE: dict[str, Any] = {"extra_texts": 4000, "hidden_weight": 1.0}


@dataclass(frozen=True)
class Candidate:
    """One point of the space: a pipeline of passes (the last may be runtime settings)."""

    id: str
    pipeline: Pipeline
    tier: str  # "baseline" | "convert" | "runtime" | "structure"

    @property
    def label(self) -> str:
        return " + ".join(describe(c) for c in self.pipeline) or "baseline (original)"


def base_pipelines(
    *, engine: str, device: str, layers: int | None, has_tune_text: bool
) -> dict[str, list[Pipeline]]:
    """Pipelines by tier, most promising first, for a model on ``engine``/``device``."""
    q8, q8pc = QuantizeDynamic(), QuantizeDynamic(per_channel=True)
    convert: list[Pipeline]
    structure: list[Pipeline] = []
    if device.startswith("cuda"):
        convert = [
            (HalfPrecision("float16"),),
            (HalfPrecision("bfloat16"),),
            (HalfPrecision("float16"), TorchCompile()),
            (TorchCompile(),),
            (OnnxExport(),),
        ]
        if layers and layers > 2 and has_tune_text:
            structure = [(LayerDrop(keep=layers - 2), HalfPrecision("float16"))]
    else:
        # OpenVINO int8 (NNCF-calibrated, AMX/VNNI kernels): only where openvino and nncf
        # are installed (``problem`` drops it otherwise); calibration needs the tune text
        ov8 = [OpenVINOInt8()] if has_tune_text else []
        convert = [
            (OnnxExport(), q8pc),
            *((OnnxExport(), ov) for ov in ov8),
            (OnnxExport(), q8),
            (OnnxExport(),),
            (OnnxExport(), OnnxOptimize()),
            (OnnxExport(), OnnxOptimize(), q8pc),
            (q8,),
            (HalfPrecision("bfloat16"),),
            (OnnxExport(), QuantizeStatic()),
        ]
        if layers and layers > 2 and has_tune_text:
            # distilled with more text and the teacher's block states (DISTILL_MORE): half
            # the blocks first (the biggest saving), then a third; the plain recipe after
            for keep in {layers // 2: None, layers - max(1, layers // 3): None}:
                if keep >= 2:
                    drop = LayerDrop(keep=keep, **DISTILL_MORE)
                    structure.append((drop, OnnxExport(), q8pc))
                    # the same student in OpenVINO int8: the distillation is built once
                    # (prefixes are cached), the NNCF calibration takes seconds
                    structure += [(drop, OnnxExport(), ov) for ov in ov8]
            # a third of the blocks (6 -> 4) first: the bigger saving; then one block
            structure += [
                (LayerDrop(keep=layers - max(1, layers // 3)), OnnxExport(), q8pc),
                (LayerDrop(keep=layers - 1), OnnxExport(), q8pc),
            ]
            if layers >= 4:  # half the blocks: the biggest saving, the hardest to keep in bound
                structure.append((LayerDrop(keep=layers // 2), OnnxExport(), q8pc))
        if has_tune_text:
            structure.append((StructuredPrune(heads=0.25, ffn=0.25), OnnxExport(), q8pc))
        structure.append((TorchCompile(),))
        if has_tune_text:  # zeros alone do not speed up dense kernels: least promising
            structure.append((MagnitudePrune(sparsity=0.3, recovery_epochs=1), OnnxExport(), q8pc))
    valid = {
        tier: [
            p for p in _on_engine(pipes, engine) if problem(p, engine=engine, device=device) is None
        ]
        for tier, pipes in (("convert", convert), ("structure", structure))
    }
    return valid


def _on_engine(pipelines: Sequence[Pipeline], engine: str) -> list[Pipeline]:
    """The pipelines as they apply to a model already on ``engine``: a leading conversion to
    that engine (``OnnxExport`` for an ONNX model) is dropped, then empty and repeated
    pipelines. One list serves every runtime; ``problem`` then drops what the engine cannot
    take, from what each pass declares (``engines=``/``produces=`` at registration)."""
    seen: set[Pipeline] = set()
    out: list[Pipeline] = []
    for pipe in pipelines:
        while pipe and info_of(pipe[0]).produces == engine:
            pipe = pipe[1:]
        if pipe and pipe not in seen:
            seen.add(pipe)
            out.append(pipe)
    return out


@dataclass
class Strategy:
    """Ask/tell over the space: convert tier, runtime variants of the best, structure tier,
    runtime variants again. ``seed`` shuffles ties inside a tier reproducibly (none by
    default: the order is the prior of what works)."""

    tiers: dict[str, list[Pipeline]]
    bound_max_drop: float
    device: str = "cpu"
    seed: int = 0
    shuffle: bool = False
    runtime_top: int = 2  # runtime variants for this many of the best candidates
    _queue: list[Candidate] = field(default_factory=list)
    _done: dict[str, tuple[Candidate, Record]] = field(default_factory=dict)
    _tried: set[Pipeline] = field(default_factory=set)
    _phase: int = 0
    _n: int = 0
    _baseline: Record | None = None

    def __post_init__(self) -> None:
        self._queue.append(self._new((), "baseline"))

    def _new(self, pipeline: Pipeline, tier: str) -> Candidate:
        cand = Candidate(f"c{self._n:02d}", pipeline, tier)
        self._n += 1
        self._tried.add(pipeline)
        return cand

    def _enqueue(self, pipelines: Sequence[Pipeline], tier: str) -> None:
        pipes = [p for p in pipelines if p not in self._tried]
        if self.shuffle:
            random.Random(self.seed + self._phase).shuffle(pipes)
        self._queue.extend(self._new(p, tier) for p in pipes)

    def _runtime_variants(self) -> list[Pipeline]:
        bound = self._bound()
        if bound is None:
            return []
        # the best candidates whose batch sizes are not tried yet (a candidate given its
        # variants when it was the new best would otherwise take a place here for nothing)
        pool = [
            (c, r)
            for c, r in self._done.values()
            if c.tier != "runtime" and any(p not in self._tried for p in self._variants_of(c))
        ]
        chosen: list[Candidate] = []
        while pool and len(chosen) < self.runtime_top:
            best = Cheapest().pick([r for _c, r in pool], bound)
            if best is None:
                break
            cand = next(c for c, r in pool if r is best)
            chosen.append(cand)
            pool = [(c, r) for c, r in pool if c is not cand]
        return [p for cand in chosen for p in self._variants_of(cand)]

    def ask(self) -> Candidate | None:
        """The next candidate, or None when the space is exhausted."""
        while not self._queue and self._phase < 4:
            self._phase += 1
            if self._phase == 1:
                self._enqueue(self.tiers.get("convert", []), "convert")
            elif self._phase in (2, 4):
                self._enqueue(self._runtime_variants(), "runtime")
            elif self._phase == 3:
                self._enqueue(self.tiers.get("structure", []), "structure")
        return self._queue.pop(0) if self._queue else None

    def tell(self, cand: Candidate, record: Record) -> None:
        self._done[cand.id] = (cand, record)
        if cand.tier == "baseline" and record.get("status") == "ok":
            self._baseline = record
        if cand.tier == "structure" and self.runtime_top > 0 and self._is_cheapest(cand):
            # a new best from the expensive tier: try its batch sizes next, before the
            # remaining structural candidates (cheap to try, and the budget may end first)
            fresh = [p for p in self._variants_of(cand) if p not in self._tried]
            self._queue[:0] = [self._new(p, "runtime") for p in fresh]

    def _bound(self) -> QualityBound | None:
        if self._baseline is None:
            return None
        return QualityBound(
            float(self._baseline["quality"]),
            self.bound_max_drop,
            bool(self._baseline.get("higher_is_better", True)),
        )

    def _is_cheapest(self, cand: Candidate) -> bool:
        bound = self._bound()
        if bound is None:
            return False
        best = Cheapest().pick([r for c, r in self._done.values() if c.tier != "runtime"], bound)
        return best is not None and best is self._done[cand.id][1]

    def _variants_of(self, cand: Candidate) -> list[Pipeline]:
        sizes = BATCH_SIZES_GPU if self.device.startswith("cuda") else BATCH_SIZES_CPU
        current = self._done[cand.id][1].get("batch_size", 32)
        return [(*cand.pipeline, RuntimeSettings(batch_size=bs)) for bs in sizes if bs != current]

    def pending(self) -> int:
        """Candidates queued now (later phases may add more)."""
        return len(self._queue)

    def untried(self) -> int:
        """Candidates known and not tried: queued, plus the tiers not yet expanded (runtime
        variants are not counted: which ones depends on results)."""
        later = 0
        if self._phase < 1:
            later += len([p for p in self.tiers.get("convert", []) if p not in self._tried])
        if self._phase < 3:
            later += len([p for p in self.tiers.get("structure", []) if p not in self._tried])
        return len(self._queue) + later

    def estimate_remaining(self) -> int:
        """Queued candidates plus a guess for the phases not yet expanded."""
        later = 0
        if self._phase < 1:
            later += len(self.tiers.get("convert", []))
        if self._phase < 3:
            later += len(self.tiers.get("structure", []))
        later += (
            (2 - (self._phase >= 2) - (self._phase >= 4))
            * self.runtime_top
            * len(BATCH_SIZES_CPU)
            // 2
        )
        return len(self._queue) + later
