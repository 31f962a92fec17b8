"""Real text with planted problems, for the data-tool tests.

The text is real (standard-library docstrings, and SST-2/TREC rows when ``../shared/data`` is
present); what is planted (duplicates, flipped labels) is recorded so tests can check recall.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from frugalml.data import Dataset, stdlib_sentences

_RETURNS = re.compile(r"\breturns?\b", re.IGNORECASE)


def topic(sentence: str) -> str:
    """A label real text carries by itself: does the sentence talk about returning?"""
    return "returns" if _RETURNS.search(sentence) else "other"


@dataclass
class Planted:
    """A labelled data set with planted exact duplicates, near duplicates and flipped labels.

    ``exact``/``near`` map a planted copy's row to its original's row; ``flipped`` are rows
    whose label was flipped.
    """

    ds: Dataset
    exact: dict[int, int] = field(default_factory=dict)
    near: dict[int, int] = field(default_factory=dict)
    flipped: set[int] = field(default_factory=set)


def plant(
    n: int = 300, *, exact: int = 10, near: int = 10, flips: int = 12, seed: int = 0
) -> Planted:
    rng = random.Random(seed)
    pool = stdlib_sentences(min_chars=60, max_chars=200)
    pos = [t for t in pool if topic(t) == "returns"]
    neg = [t for t in pool if topic(t) != "returns"]
    base = rng.sample(pos, n // 2) + rng.sample(neg, n - n // 2)  # balanced classes
    rng.shuffle(base)
    texts = list(base)
    labels = [topic(t) for t in texts]
    out = Planted(ds=Dataset(texts=()))
    originals = rng.sample(range(len(base)), exact + near)
    for k, i in enumerate(originals):
        if k < exact:  # same text, different case and spacing
            texts.append("  " + base[i].upper().replace(" ", "   ") + " ")
            out.exact[len(texts) - 1] = i
        else:  # one word inserted near the end: Jaccard well above 0.8 for 60+ characters
            words = base[i].split()
            words.insert(len(words) - 1, "really")
            texts.append(" ".join(words))
            out.near[len(texts) - 1] = i
        labels.append(labels[i])
    order = list(range(len(texts)))  # copies stay after their originals: keep-first is testable
    planted_rows = set(out.exact) | set(out.near) | set(originals)
    candidates = [i for i in order if i not in planted_rows]
    for i in rng.sample(candidates, flips):
        labels[i] = "other" if labels[i] == "returns" else "returns"
        out.flipped.add(i)
    out.ds = Dataset(
        texts=tuple(texts), labels=tuple(labels), source="planted", format="label-text"
    )
    return out


def write_label_text(path, ds: Dataset) -> None:  # type: ignore[no-untyped-def]
    assert ds.labels is not None
    path.write_text(
        "".join(f"{lab} {t}\n" for lab, t in zip(ds.labels, ds.texts, strict=True)),
        encoding="utf-8",
    )
