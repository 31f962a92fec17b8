"""Layer dropping + knowledge distillation: a shallower student taught by the original.

Keeps ``keep`` of the encoder's transformer blocks — by default the subset (first block
kept) whose student, before any training, agrees best with the original on a few hundred tune
texts; ``choose="even"`` spreads them evenly instead (6 → 4 keeps blocks 0, 2, 3, 5) — then
distills the student from the original model (the teacher = the model this pass receives,
i.e. the baseline) on unlabelled text of the task data's tune split (``passes.distill``),
optionally with ``extra_texts`` more sentences (the ``optimize --extra-text`` file's when given,
else the standard library's docstrings: ``data.stdlib_sentences``) and the
intermediate-layer loss (``hidden_weight``: each kept block's token states follow the teacher
block it started as). Compute falls roughly in proportion to the blocks removed.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from frugalml.data import stdlib_sentences
from frugalml.errors import CandidateFailed
from frugalml.passes.distill import distill, teacher_outputs
from frugalml.passes.registry import PassContext, register
from frugalml.passes.structure import encoder_layers

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class LayerDrop:
    """Keep fewer transformer blocks, then distill from the original on the task's text."""

    keep: int = 4  # blocks kept
    choose: Literal["search", "even"] = "search"  # which blocks: see choose_layers
    epochs: int = 4  # distillation epochs over the tune split's texts
    lr: float = 1e-4
    batch_size: int = 32
    max_texts: int = 4000  # cap on distillation texts (time)
    # extra unlabelled sentences from the standard library's docstrings (data.corpus), added
    # to the task's texts: a shallow student fits a few hundred task texts and generalises
    # worse to text no pass saw. At most EXTRA_PER_TASK_TEXT per task text: distillation time
    # grows with the texts, and 4,000 extra on a 48-text task is 80x the work for text that
    # is mostly not the task's
    extra_texts: int = 0
    # weight of the intermediate-layer loss (token-state MSE of each kept block to the
    # teacher block it came from; the last to the teacher's last), 0 = pooled cosine only
    hidden_weight: float = 0.0


EXTRA_PER_TASK_TEXT = 10  # cap on extra_texts per task text (STS-B's 500-row tune split: none)
SEARCH_TEXTS = 256  # tune texts used to compare block subsets before distillation
MAX_SUBSETS = 24


def extra_sentences(ctx: PassContext, n: int) -> list[str]:
    """``n`` sentences (seeded) of the run's extra corpus, or of the standard library's
    docstrings when it has none (technical prose: text closer to the task's, such as
    WikiText-2 for STS-B's news and captions, teaches a student more of the task)."""
    if not ctx.corpus:
        return stdlib_sentences(n, seed=ctx.seed)
    corpus = list(ctx.corpus)
    return corpus if n >= len(corpus) else random.Random(ctx.seed).sample(corpus, n)


def kept_layers(total: int, keep: int) -> list[int]:
    """Evenly spread block indices, first and last included."""
    if keep >= total:
        return list(range(total))
    return sorted({round(float(x)) for x in np.linspace(0, total - 1, keep)})


def subsets(total: int, keep: int) -> list[list[int]]:
    """Block subsets worth comparing: all that keep the first block (when few), else the even
    spread and its one-step neighbours."""
    from itertools import combinations
    from math import comb

    if comb(total - 1, keep - 1) <= MAX_SUBSETS:
        return [[0, *rest] for rest in combinations(range(1, total), keep - 1)]
    even = kept_layers(total, keep)
    out = [even]
    for i in range(1, len(even)):
        for step in (-1, 1):
            cand = sorted({*even[:i], even[i] + step, *even[i + 1 :]})
            if len(cand) == keep and cand[0] >= 0 and cand[-1] < total and cand not in out:
                out.append(cand)
    return out[:MAX_SUBSETS]


def choose_layers(
    model: Model,
    student: Any,
    layers: Any,
    keep: int,
    texts: list[str],
    target: np.ndarray,
    log: Any,
) -> list[int]:
    """The subset whose undistilled student agrees best with the teacher on ``texts``.

    Cheap (inference only, a few hundred texts per subset) and it matters: which blocks are
    kept decides how much distillation has to recover.
    """
    import torch

    parent, attr, _ = encoder_layers(student)
    sample = texts[:SEARCH_TEXTS]
    ref = target[: len(sample)]
    ref = ref / np.clip(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12, None)
    best, best_score = kept_layers(len(layers), keep), -np.inf
    for subset in subsets(len(layers), keep):
        setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in subset]))
        student.config.num_hidden_layers = len(subset)
        out = model.evolve(module=student, source=student).encode(sample)
        out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        score = float((out * ref).sum(axis=1).mean())
        if score > best_score:
            best, best_score = subset, score
    log(f"layer drop: blocks {best} agree best before distillation (cosine {best_score:.4f})")
    return best


@register(LayerDrop, stage=10, engines=("torch",), needs_data=True)
def layer_drop(model: Model, cfg: LayerDrop, ctx: PassContext) -> Model:
    import torch

    if model.replay or model.dtype != "float32":
        raise CandidateFailed("layer dropping needs the float32 PyTorch network")
    student = copy.deepcopy(model.source if model.source is not None else model.module)
    parent, attr, layers = encoder_layers(student)
    total = len(layers)
    if not 1 <= cfg.keep < total:
        raise CandidateFailed(
            f"keep={cfg.keep}: the encoder has {total} blocks; keep 1 to {total - 1}"
        )
    texts = list(ctx.texts)[: cfg.max_texts]
    extra = min(cfg.extra_texts, EXTRA_PER_TASK_TEXT * len(texts))
    if extra > 0:
        texts += extra_sentences(ctx, extra)
    target = teacher_outputs(model, texts)
    if cfg.choose == "search":
        keep = choose_layers(model, student, list(layers), cfg.keep, texts, target, ctx.log)
    else:
        keep = kept_layers(total, cfg.keep)
    setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    student.config.num_hidden_layers = len(keep)
    ctx.log(f"layer drop: keeping blocks {keep} of {total}; distilling on {len(texts)} texts")
    stats = distill(
        student,
        model,
        texts,
        target,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seed=ctx.seed,
        hidden_weight=cfg.hidden_weight,
        # student block j started as teacher block keep[j]: it learns that block's output;
        # the last student block learns the teacher's last
        layer_map=[*keep[:-1], total - 1],
        log=ctx.log,
    )
    structure = {
        **model.structure,
        "layers_kept": [model.structure.get("layers_kept", list(range(total)))[i] for i in keep],
    }
    return model.evolve(
        module=student,
        source=student,
        structure=structure,
        stats={**model.stats, "distill": stats},
    )
