"""Exact and near-duplicate rows.

- **Exact**: rows whose texts are equal after normalisation (case folded, whitespace
  collapsed). The first occurrence represents the group. When the copies carry different
  labels the group *conflicts*: the first row with the majority label is kept and the others
  removed; with no majority label (a tie) every copy is removed, since none can be trusted.
- **Near** (``minhash``): MinHash LSH (``datasketch``) over word n-gram shingles finds
  candidate pairs; each is confirmed with the exact Jaccard similarity of the shingle sets.
- **Near** (``embedding``): cosine similarity of sentence embeddings (MiniLM or TF-IDF SVD).

Near duplicates are found greedily in row order: a row is a near duplicate of the first
earlier *kept* row it matches, so clusters never chain through removed rows and one
representative (the first occurrence) is kept per cluster.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frugalml.errors import BadInput

NEAR_METHODS: tuple[str, ...] = ("minhash", "embedding")
DEFAULT_THRESHOLD = {"minhash": 0.8, "embedding": 0.95}

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Removal:
    """One row to remove and why.

    ``index`` is the 0-based data row (blank lines and a header are not rows); ``reason`` is
    one of ``exact-duplicate``, ``conflicting-labels``, ``near-duplicate``, ``label-issue``;
    ``kept`` is the row it duplicates (``None`` when no copy is kept); ``similarity`` is the
    Jaccard or cosine similarity for near duplicates (1.0 for exact ones), or the probe's
    probability of the given label for label issues.
    """

    index: int
    reason: str
    detail: str
    kept: int | None = None
    similarity: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "reason": self.reason,
            "detail": self.detail,
            "kept": self.kept,
            "similarity": self.similarity,
        }


def normalize(text: str) -> str:
    """Case-folded text with runs of whitespace collapsed: the exact-duplicate key."""
    return _SPACE.sub(" ", text).strip().casefold()


def exact_duplicates(
    texts: Sequence[str], labels: Sequence[str] | None = None
) -> tuple[list[Removal], int]:
    """Rows that repeat an earlier row's normalised text; and the number of conflicting groups.

    Returns ``(removals, conflicting_groups)``: see the module docstring for which copy of a
    conflicting group is kept.
    """
    groups: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        groups.setdefault(normalize(text), []).append(i)
    removals: list[Removal] = []
    conflicts = 0
    for rows in groups.values():
        if len(rows) < 2:
            continue
        group_labels = [labels[i] for i in rows] if labels is not None else None
        if group_labels is None or len(set(group_labels)) == 1:
            removals += [
                Removal(i, "exact-duplicate", f"same text as row {rows[0]}", rows[0], 1.0)
                for i in rows[1:]
            ]
            continue
        conflicts += 1
        counts = Counter(group_labels).most_common()
        seen = ", ".join(f"{lab!r} x{n}" for lab, n in counts)
        if len(counts) > 1 and counts[0][1] == counts[1][1]:  # a tie: trust no copy
            removals += [
                Removal(
                    i,
                    "conflicting-labels",
                    f"{len(rows)} copies with labels {seen} and no majority",
                    None,
                    1.0,
                )
                for i in rows
            ]
            continue
        majority = counts[0][0]
        keep = next(i for i in rows if labels[i] == majority)  # type: ignore[index]
        for i in rows:
            if i == keep:
                continue
            lab = labels[i]  # type: ignore[index]
            if lab == majority:
                removals.append(
                    Removal(i, "exact-duplicate", f"same text as row {keep}", keep, 1.0)
                )
            else:
                removals.append(
                    Removal(
                        i,
                        "conflicting-labels",
                        f"same text as row {keep} but labelled {lab!r}, not the "
                        f"majority {majority!r} ({seen})",
                        keep,
                        1.0,
                    )
                )
    removals.sort(key=lambda r: r.index)
    return removals, conflicts


def shingles(text: str, ngram: int) -> set[str]:
    """Word n-grams of the normalised text; a text shorter than ``ngram`` words is one shingle."""
    words = _WORD.findall(normalize(text))
    if len(words) <= ngram:
        return {" ".join(words)} if words else {normalize(text)}
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def check_near(method: str, threshold: float | None) -> float:
    """Validate a near-duplicate method and threshold; return the threshold to use."""
    if method not in NEAR_METHODS:
        raise BadInput(
            f"unknown near-duplicate method '{method}'",
            hint=f"use one of {', '.join(NEAR_METHODS)}",
        )
    value = DEFAULT_THRESHOLD[method] if threshold is None else threshold
    if not 0 < value <= 1:
        raise BadInput(
            f"near-duplicate threshold must be in (0, 1], got {value}",
            hint="e.g. 0.8 Jaccard for minhash, 0.95 cosine for embedding",
        )
    return value


def _describe(i: int, kept: int, sim: float, kind: str, labels: Sequence[str] | None) -> Removal:
    detail = f"{kind} {sim:.2f} with row {kept}"
    if labels is not None and labels[i] != labels[kept]:
        detail += f" (labelled {labels[i]!r} there {labels[kept]!r})"
    return Removal(i, "near-duplicate", detail, kept, round(float(sim), 4))


def near_duplicates_minhash(
    texts: Sequence[str],
    rows: Sequence[int],
    *,
    threshold: float = 0.8,
    ngram: int = 1,
    num_perm: int = 128,
    labels: Sequence[str] | None = None,
    seed: int = 1,
) -> list[Removal]:
    """Near duplicates among ``rows`` (indices into ``texts``) by word-shingle Jaccard.

    ``ngram=1`` (word sets) suits short sentences, where a single changed word leaves few
    shared bigrams; use 2-3 for paragraphs.
    """
    from datasketch import MinHash, MinHashLSH

    sets = {i: shingles(texts[i], ngram) for i in rows}
    hashes = MinHash.bulk(
        ([s.encode() for s in sets[i]] for i in rows), num_perm=num_perm, seed=seed
    )
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removals: list[Removal] = []
    for i, mh in zip(rows, hashes, strict=True):
        best: tuple[int, float] | None = None
        for j in lsh.query(mh):  # candidates are earlier kept rows; confirm exactly
            a, b = sets[i], sets[j]
            jac = len(a & b) / len(a | b)
            if jac >= threshold and (best is None or j < best[0]):
                best = (j, jac)
        if best is None:
            lsh.insert(i, mh)
        else:
            removals.append(_describe(i, best[0], best[1], "Jaccard", labels))
    return removals


def near_duplicates_embedding(
    vectors: Any,
    rows: Sequence[int],
    *,
    threshold: float = 0.95,
    labels: Sequence[str] | None = None,
    chunk: int = 1024,
) -> list[Removal]:
    """Near duplicates among ``rows`` by cosine similarity of unit-length ``vectors`` (a dense
    array or a SciPy sparse matrix, e.g. TF-IDF)."""
    idx = np.asarray(rows, dtype=np.int64)
    x = vectors[idx]
    kept = np.zeros(len(idx), dtype=bool)
    removals: list[Removal] = []
    for start in range(0, len(idx), chunk):
        stop = min(start + chunk, len(idx))
        sims = x[start:stop] @ x[:stop].T  # (chunk, rows so far); 4 MB per 1k x 1k
        if hasattr(sims, "toarray"):
            sims = sims.toarray()
        # only the (few) pairs above the threshold with an earlier row matter: O(hits), not
        # O(rows^2) Python steps
        rr, cc = np.nonzero(sims >= threshold)
        earlier = cc < rr + start
        rr, cc = rr[earlier], cc[earlier]
        hits: dict[int, list[int]] = {}
        for a, j in zip(rr.tolist(), cc.tolist(), strict=True):
            hits.setdefault(a, []).append(j)
        for a in range(stop - start):
            pos = start + a
            match = [j for j in hits.get(a, ()) if kept[j]]
            if match:
                j = min(match)
                removals.append(
                    _describe(int(idx[pos]), int(idx[j]), float(sims[a, j]), "cosine", labels)
                )
            else:
                kept[pos] = True
    return removals
