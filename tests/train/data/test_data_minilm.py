"""The claims about MiniLM itself: its embeddings find paraphrase-level near duplicates at the
default cosine threshold, and its probe judges sentiment labels better than TF-IDF's.

One MiniLM pass embeds every text this module needs (about 10-30 s on 2 CPU cores).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from planted_text import Planted

from frugalml.data import Dataset, load_data
from frugalml.train.data import AuditConfig, Features, audit, embed
from frugalml.train.data.embed import row_texts
from frugalml.train.data.label_issues import out_of_fold_probs


@pytest.fixture(scope="module")
def sst2(request: pytest.FixtureRequest) -> Dataset | None:
    """400 SST-2 rows, or None without the shared data (the near-duplicate test still runs)."""
    try:
        root = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        return None
    return load_data(root / "sst2" / "stsa.binary.train").sample(400, seed=0)


@pytest.fixture(scope="module")
def minilm(planted: Planted, sst2: Dataset | None) -> Features:
    texts = row_texts(planted.ds) + (list(sst2.texts) if sst2 is not None else [])
    return embed(texts, "minilm")


def _rows(f: Features, start: int, stop: int) -> Features:
    return replace(f, dense=f.vectors()[start:stop])


def test_minilm_near_duplicates_at_default_threshold(planted: Planted, minilm: Features) -> None:
    n = len(planted.ds)
    assert minilm.vectors().shape[1] == 384
    report = audit(
        planted.ds,
        AuditConfig(near_method="embedding", label_issues=False),
        features=_rows(minilm, 0, n),
    )
    found = {r.index: r.kept for r in report.removals}
    copies = {**planted.exact, **planted.near}
    assert sum(found.get(c) == o for c, o in copies.items()) >= 0.9 * len(copies)
    assert all(r.similarity is not None and r.similarity >= 0.95 for r in report.near)


def test_minilm_probe_beats_tfidf_on_sentiment(
    planted: Planted, minilm: Features, sst2: Dataset | None
) -> None:
    if sst2 is None:
        pytest.skip("SST-2 not found in the shared data folder")
    n = len(planted.ds)
    names = sst2.label_names()
    dense = out_of_fold_probs(minilm.vectors()[n:], sst2.labels, names)  # type: ignore[arg-type]
    sparse = out_of_fold_probs(
        embed(list(sst2.texts), "tfidf", dense=False).probe_input(), sst2.labels, names
    )  # type: ignore[arg-type]
    assert dense.accuracy > sparse.accuracy + 0.03
    assert dense.accuracy > 0.7
