"""Curriculum: in what order training examples are seen.

- ``none``: a fresh seeded shuffle every epoch.
- ``length``: short examples first, then all — competence-based sampling (Platanios et al.,
  2019, "Competence-based Curriculum Learning for NMT"): at step ``t`` batches are drawn from
  the easiest ``c(t)`` fraction of the data, ``c(t) = min(1, sqrt(c0² + (1 - c0²) t / T))``,
  so the pool grows from ``c0`` (20%) to everything at ``T`` (half of the run by default).
- ``loss``: the same schedule, with difficulty = the example's initial loss: the cross-entropy
  of a linear probe on the pretrained encoder's embeddings, predicted out of fold (so an
  example's own label does not make it look easy). The scoring pass is one forward pass over
  the training data and is reported apart (``curriculum_s``).

Within the pool every example is used once before any is repeated, so coverage is the same as
``none`` once the pool is everything.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from frugalml.errors import BadInput
from frugalml.train.registry import Curriculum, CurriculumData, register_curriculum


@register_curriculum
@dataclass(frozen=True)
class Shuffled(Curriculum):
    """``none``: a fresh seeded shuffle every epoch."""

    name: ClassVar[str] = "none"

    def batches(
        self, data: CurriculumData, batch_size: int, steps: int, seed: int
    ) -> Iterator[list[int]]:
        return shuffled_batches(len(data.enc), batch_size, steps, seed)


@dataclass(frozen=True)
class _Paced(Curriculum):
    """Easiest first, the pool growing by ``competence`` from ``start`` of the data to all of
    it ``ramp`` of the way through the run."""

    start: float = 0.2  # fraction of the easiest data in the pool at step 0
    ramp: float = 0.5  # fraction of the run until the pool is all data

    def validate(self) -> None:
        if not (0 < self.start <= 1 and 0 <= self.ramp <= 1):
            raise BadInput(
                f"curriculum start {self.start} and ramp {self.ramp} must be fractions",
                hint="start in (0, 1], ramp in [0, 1]",
            )

    def difficulty(self, data: CurriculumData, seed: int) -> list[float]:
        raise NotImplementedError

    def batches(
        self, data: CurriculumData, batch_size: int, steps: int, seed: int
    ) -> Iterator[list[int]]:
        return curriculum_batches(
            self.difficulty(data, seed),
            batch_size,
            steps,
            seed,
            start=self.start,
            ramp_steps=int(self.ramp * steps),
        )

    def params(self) -> dict[str, Any]:
        return {
            "curriculum": self.name,
            "curriculum_start": self.start,
            "curriculum_ramp": self.ramp,
        }


@register_curriculum
@dataclass(frozen=True)
class ByLength(_Paced):
    """``length``: short examples first (difficulty = token count)."""

    name: ClassVar[str] = "length"

    def difficulty(self, data: CurriculumData, seed: int) -> list[float]:
        return length_difficulty(data.enc.lengths())


@register_curriculum
@dataclass(frozen=True)
class ByLoss(_Paced):
    """``loss``: easy first by the initial (out-of-fold linear-probe) loss."""

    name: ClassVar[str] = "loss"
    scores_examples: ClassVar[bool] = True

    def difficulty(self, data: CurriculumData, seed: int) -> list[float]:
        from frugalml.train.prepare import collate

        n = len(data.enc)
        chunks = (
            collate(data.enc, list(range(i, min(n, i + 64))), data.pad_id) for i in range(0, n, 64)
        )
        moved = ({k: v.to(data.device) for k, v in b.items()} for b in chunks)
        return loss_difficulty(data.model, moved, data.enc.labels, seed)


def shuffled_batches(n: int, batch_size: int, steps: int, seed: int) -> Iterator[list[int]]:
    """``steps`` batches of row indices: seeded per-epoch shuffles, last batch of an epoch short."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < steps:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            if done >= steps:
                return
            yield order[start : start + batch_size].tolist()
            done += 1


def competence(step: int, ramp_steps: int, start: float) -> float:
    """Fraction of the easiest data in the pool at ``step`` (square-root schedule)."""
    if ramp_steps <= 0:
        return 1.0
    return min(1.0, math.sqrt(start**2 + (1 - start**2) * step / ramp_steps))


def curriculum_batches(
    difficulty: Sequence[float],
    batch_size: int,
    steps: int,
    seed: int,
    *,
    start: float = 0.2,
    ramp_steps: int | None = None,
) -> Iterator[list[int]]:
    """``steps`` batches, easiest first, the pool growing by ``competence``.

    ``ramp_steps``: steps until the pool is all data (default: half of ``steps``). Ties in
    difficulty are broken by a seeded shuffle.
    """
    n = len(difficulty)
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(n)
    order = np.lexsort((tiebreak, np.asarray(difficulty, dtype=float)))  # easiest first
    ramp = steps // 2 if ramp_steps is None else ramp_steps
    seen = np.zeros(n, dtype=bool)  # by rank in ``order``
    for t in range(steps):
        k = min(n, max(batch_size, math.ceil(competence(t, ramp, start) * n)))
        avail = np.flatnonzero(~seen[:k])
        if avail.size == 0:  # the pool is used up: start it over
            seen[:k] = False
            avail = np.arange(k)
        take = min(batch_size, avail.size)
        pick = rng.choice(avail, size=take, replace=False)
        seen[pick] = True
        yield order[pick].tolist()


def length_difficulty(lengths: Sequence[int]) -> list[float]:
    """Difficulty = token count."""
    return [float(x) for x in lengths]


def loss_difficulty(
    model: Any, batches: Iterator[dict[str, Any]], labels: Sequence[int], seed: int = 0
) -> list[float]:
    """Out-of-fold linear-probe loss per example from the model's pretrained encoder.

    ``batches``: padded batches in row order. Mean-pooled last hidden states (no grad) feed a
    logistic regression, 3-fold cross-validated; difficulty = -log p(true label).
    """
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    encoder = getattr(base, base.base_model_prefix, base)
    was_training = model.training
    model.eval()
    feats: list[np.ndarray] = []
    with torch.no_grad():
        for batch in batches:
            kwargs = {k: v for k, v in batch.items() if k != "labels"}
            hidden = encoder(**kwargs).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            feats.append(pooled.float().cpu().numpy())
    model.train(was_training)
    x = np.concatenate(feats)
    y = np.asarray(labels)
    counts = np.bincount(y)
    folds = int(min(3, counts[counts > 0].min())) if counts.size else 0
    if folds < 2:  # a class with one example: no out-of-fold estimate; fall back to in-sample
        proba = LogisticRegression(max_iter=1000).fit(x, y).predict_proba(x)
    else:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        proba = cross_val_predict(
            LogisticRegression(max_iter=1000), x, y, cv=cv, method="predict_proba"
        )
    classes = np.unique(y)
    col = {c: i for i, c in enumerate(classes)}
    p_true = proba[np.arange(len(y)), [col[c] for c in y]]
    return (-np.log(np.clip(p_true, 1e-12, 1.0))).tolist()
