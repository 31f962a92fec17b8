"""Pick an informative fraction of a training set, keeping its class balance.

Every strategy fills the same per-label quotas (each label keeps its share of the rows,
largest remainders rounding), so a subset never shifts the class prior:

- ``random``: a seeded sample within each label. The baseline to beat.
- ``uncertainty``: the rows an out-of-fold probe is least sure about (smallest margin
  between its two most likely labels); easy rows teach a fine-tune little. Pure uncertainty
  also collects label noise, so rows cleanlab flags as label issues (and exact duplicates)
  are left out first, and a ``random_share`` of each quota is filled at random to keep the
  subset representative.
- ``diversity``: k-center greedy (the core-set rule) on unit-length sentence embeddings
  within each label: each pick is the row farthest from everything picked so far, so the
  subset covers the embedding space with little redundancy. Flagged rows and duplicates are
  left out first here too, and ``random_share`` applies the same way.

Rows left out by the guards come back only if a label's quota cannot be met without them.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from frugalml.data import Dataset
from frugalml.errors import BadInput
from frugalml.train.data.dedup import exact_duplicates
from frugalml.train.data.embed import Features, Progress, embed, row_texts
from frugalml.train.data.label_issues import Unavailable, find_label_issues, out_of_fold_probs

STRATEGIES: tuple[str, ...] = ("random", "uncertainty", "diversity")


@dataclass(frozen=True)
class SelectConfig:
    """How to select. ``fraction`` in (0, 1]; ``random_share`` in [0, 1) of each quota is
    drawn at random in the non-random strategies (0 = purely informative)."""

    fraction: float
    strategy: str = "uncertainty"
    seed: int = 0
    random_share: float = 0.0

    def __post_init__(self) -> None:
        check_select(self.fraction, self.strategy, self.random_share)


def check_select(fraction: float, strategy: str, random_share: float = 0.0) -> None:
    if strategy not in STRATEGIES:
        raise BadInput(
            f"unknown selection strategy '{strategy}'", hint=f"use one of {', '.join(STRATEGIES)}"
        )
    if not (isinstance(fraction, int | float) and math.isfinite(fraction) and 0 < fraction <= 1):
        raise BadInput(
            f"--fraction must be in (0, 1], got {fraction}",
            hint="e.g. --fraction 0.5 keeps half the rows",
        )
    if not 0 <= random_share < 1:
        raise BadInput(f"--random-share must be in [0, 1), got {random_share}")


def groups_by_label(labels: Sequence[str] | None, n: int) -> dict[str, list[int]]:
    """Row indices per label (one group ``""`` for unlabelled data), in row order."""
    groups: dict[str, list[int]] = {}
    for i in range(n):
        groups.setdefault(labels[i] if labels is not None else "", []).append(i)
    return groups


def quotas(groups: dict[str, list[int]], total: int) -> dict[str, int]:
    """Rows per label summing to ``total``, proportional to group sizes (largest remainder).

    Every label keeps at least one row when ``total`` allows, so no class disappears.
    """
    n = sum(len(g) for g in groups.values())
    exact = {k: total * len(g) / n for k, g in groups.items()}
    out = {k: min(len(groups[k]), math.floor(v)) for k, v in exact.items()}
    if total >= len(groups):
        for k in out:
            out[k] = max(out[k], 1)
    order = sorted(groups, key=lambda k: (-(exact[k] - math.floor(exact[k])), k))
    while sum(out.values()) < total:
        grew = False
        for k in order:
            if sum(out.values()) >= total:
                break
            if out[k] < len(groups[k]):
                out[k] += 1
                grew = True
        if not grew:
            break
    while sum(out.values()) > total:  # the at-least-one rule overshot: trim the largest
        k = max(out, key=lambda key: out[key])
        out[k] -= 1
    return out


def subset_size(n: int, fraction: float) -> int:
    """``round(n * fraction)``, at least 1."""
    return max(1, min(n, round(n * fraction)))


def _fill(
    ranked: list[int],
    pool: list[int],
    quota: int,
    share: float,
    rng: random.Random,
    held_back: list[int],
) -> list[int]:
    """``quota`` rows: a random ``share`` from ``pool``, the rest from ``ranked`` (best first),
    then ``held_back`` rows at random if the pool runs out."""
    n_random = round(quota * share)
    picked = rng.sample(pool, min(n_random, len(pool)))
    taken = set(picked)
    for i in ranked:
        if len(picked) >= quota:
            break
        if i not in taken:
            picked.append(i)
            taken.add(i)
    if len(picked) < quota:
        spare = [i for i in held_back if i not in taken]
        picked += rng.sample(spare, min(quota - len(picked), len(spare)))
    return picked


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: small = the probe is unsure."""
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    top = np.sort(probs, axis=1)
    return np.asarray(top[:, -1] - top[:, -2])


def k_center_greedy(
    vectors: np.ndarray, rows: Sequence[int], k: int, rng: random.Random, start: Sequence[int] = ()
) -> list[int]:
    """``k`` more of ``rows``: repeatedly the row farthest (cosine distance) from every row
    picked so far, beginning from ``start`` (rows already chosen) or else a random row."""
    if k <= 0 or not rows:
        return []
    idx = np.asarray(rows, dtype=np.int64)
    x = vectors[idx]
    picked: list[int] = []
    if len(start):
        dist = np.min(1.0 - x @ vectors[np.asarray(start, dtype=np.int64)].T, axis=1)
    else:
        first = rng.randrange(len(idx))
        picked.append(first)
        dist = 1.0 - x @ x[first]  # (rows,) cosine distance to the nearest picked row
        dist[first] = -np.inf
    while len(picked) < min(k, len(idx)):
        nxt = int(np.argmax(dist))
        picked.append(nxt)
        dist = np.minimum(dist, 1.0 - x @ x[nxt])
        dist[picked] = -np.inf
    return [int(idx[p]) for p in picked]


def select(
    n_rows: int,
    labels: Sequence[str] | None,
    config: SelectConfig,
    *,
    probs: np.ndarray | None = None,
    vectors: np.ndarray | None = None,
    exclude: Collection[int] = (),
) -> list[int]:
    """The selected row indices, in row order.

    ``probs`` (rows x classes, out of fold) is needed for ``uncertainty``, ``vectors``
    (rows x dim, unit length) for ``diversity``; ``exclude`` are rows the informative
    strategies leave out first (label issues, duplicates).
    """
    rng = random.Random(config.seed)
    groups = groups_by_label(labels, n_rows)
    want = quotas(groups, subset_size(n_rows, config.fraction))
    skip = set(exclude) if config.strategy != "random" else set()
    chosen: list[int] = []
    if config.strategy == "uncertainty":
        if probs is None:
            raise ValueError("uncertainty selection needs out-of-fold probabilities")
        score = margins(probs)
    for label in sorted(groups):
        rows, quota = groups[label], want[label]
        pool = [i for i in rows if i not in skip]
        held = [i for i in rows if i in skip]
        if config.strategy == "random":
            chosen += rng.sample(rows, quota)
        elif config.strategy == "uncertainty":
            ranked = sorted(pool, key=lambda i: (score[i], i))
            chosen += _fill(ranked, pool, quota, config.random_share, rng, held)
        else:
            if vectors is None:
                raise ValueError("diversity selection needs embeddings")
            n_random = round(quota * config.random_share)
            seeded = rng.sample(pool, min(n_random, len(pool)))
            taken = set(seeded)
            rest = [i for i in pool if i not in taken]
            ranked = k_center_greedy(vectors, rest, quota - len(seeded), rng, start=seeded)
            chosen += _fill(seeded + ranked, pool, quota, 0.0, rng, held)
    return sorted(chosen)


@dataclass
class Selection:
    """The chosen rows (in row order) and what choosing them took.

    ``held_back`` maps rows the informative strategies left out first to why; ``seconds``
    splits the wall time by step (embedding, probe, picking).
    """

    indices: list[int]
    config: SelectConfig
    rows: int
    held_back: dict[int, str]
    probe_accuracy: float | None
    seconds: dict[str, float]
    features: Features | None = None

    def class_balance(self, labels: Sequence[str] | None) -> dict[str, int]:
        if labels is None:
            return {}
        return dict(sorted(Counter(labels[i] for i in self.indices).items()))


def select_rows(
    ds: Dataset,
    config: SelectConfig,
    *,
    embedder: str = "minilm",
    folds: int = 5,
    progress: Progress | None = None,
    features: Features | None = None,
) -> Selection:
    """Choose ``config.fraction`` of ``ds``'s rows with ``config.strategy``.

    ``uncertainty`` needs labels with at least two classes (``BadInput`` otherwise);
    ``diversity`` works on unlabelled data too (one group, no label-issue guard).
    """
    seconds: dict[str, float] = {}
    held: dict[int, str] = {}
    probs = None
    accuracy = None
    labels = ds.labels
    if config.strategy == "uncertainty" and labels is None:
        raise BadInput(
            f"{ds.source or 'the data'} has no label column; uncertainty selection needs labels",
            hint="name it with --label-col, or use --strategy diversity or random",
        )
    if config.strategy != "random":
        texts = row_texts(ds)
        t0 = time.perf_counter()
        exact, _ = exact_duplicates(texts, labels)
        held.update({r.index: r.reason for r in exact})
        seconds["exact_duplicates"] = time.perf_counter() - t0
        if features is None:
            features = embed(
                texts,
                embedder,
                dense=config.strategy == "diversity",
                progress=progress,
                seed=config.seed,
            )
            seconds["embedding"] = features.seconds
        if labels is not None:
            t0 = time.perf_counter()
            try:
                probe = out_of_fold_probs(
                    features.probe_input(),
                    labels,
                    ds.label_names(),
                    folds=folds,
                    seed=config.seed,
                    progress=progress,
                )
            except Unavailable as e:
                if config.strategy == "uncertainty":
                    raise BadInput(
                        f"uncertainty selection is impossible: {e}",
                        hint="use --strategy random or diversity",
                    ) from e
            else:
                probs, accuracy = probe.probs, probe.accuracy
                for issue in find_label_issues(probe):
                    held.setdefault(issue.index, "label-issue")
            seconds["label_probe"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    vectors = features.vectors() if config.strategy == "diversity" and features else None
    chosen = select(len(ds), labels, config, probs=probs, vectors=vectors, exclude=held)
    seconds["select"] = time.perf_counter() - t0
    return Selection(
        indices=chosen,
        config=config,
        rows=len(ds),
        held_back=held,
        probe_accuracy=accuracy,
        seconds=seconds,
        features=features,
    )
