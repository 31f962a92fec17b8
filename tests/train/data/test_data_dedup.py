"""Exact and near-duplicate detection on real text with planted copies."""

from __future__ import annotations

from collections import Counter

import pytest
from planted_text import Planted

from frugalml.data import Dataset, load_data
from frugalml.errors import BadInput
from frugalml.train.data import AuditConfig, audit, dedup
from frugalml.train.data.embed import embed


def test_normalize_folds_case_and_whitespace() -> None:
    assert dedup.normalize("  The\tQuick \n Fox ") == dedup.normalize("the quick fox")
    assert dedup.normalize("the quick fox") != dedup.normalize("the quick fox.")


def test_exact_duplicates_keep_the_first_copy(planted: Planted) -> None:
    removals, conflicts = dedup.exact_duplicates(planted.ds.texts, planted.ds.labels)
    assert conflicts == 0
    found = {r.index: r.kept for r in removals}
    assert all(found.get(copy) == orig for copy, orig in planted.exact.items())
    assert all(r.reason == "exact-duplicate" for r in removals)
    # every reported pair really is equal after normalisation, and no original is removed
    for r in removals:
        assert dedup.normalize(planted.ds.texts[r.index]) == dedup.normalize(
            planted.ds.texts[r.kept]
        )  # type: ignore[index]
        assert r.kept < r.index  # type: ignore[operator]


def test_conflicting_labels_majority_kept_tie_dropped() -> None:
    texts = ["a fine film", "A  fine film", "a fine film", "dull", "DULL", "unique"]
    labels = ["1", "1", "0", "0", "1", "1"]
    removals, conflicts = dedup.exact_duplicates(texts, labels)
    by_row = {r.index: r for r in removals}
    assert conflicts == 2
    # group 1: majority '1' (rows 0, 1) keeps row 0; row 2 labelled '0' is a conflict
    assert 0 not in by_row
    assert by_row[1].reason == "exact-duplicate"
    assert by_row[2].reason == "conflicting-labels" and by_row[2].kept == 0
    # group 2: a 1-1 tie, so neither copy is trusted
    assert by_row[3].reason == by_row[4].reason == "conflicting-labels"
    assert by_row[3].kept is None and 5 not in by_row


def test_minhash_finds_planted_near_duplicates(planted: Planted) -> None:
    exact, _ = dedup.exact_duplicates(planted.ds.texts, planted.ds.labels)
    gone = {r.index for r in exact}
    rows = [i for i in range(len(planted.ds)) if i not in gone]
    near = dedup.near_duplicates_minhash(planted.ds.texts, rows, threshold=0.8, ngram=1)
    found = {r.index: r.kept for r in near}
    recall = sum(found.get(c) == o for c, o in planted.near.items()) / len(planted.near)
    assert recall >= 0.9
    for r in near:  # LSH candidates are confirmed with the exact Jaccard
        a = dedup.shingles(planted.ds.texts[r.index], 1)
        b = dedup.shingles(planted.ds.texts[r.kept], 1)  # type: ignore[index]
        assert len(a & b) / len(a | b) >= 0.8
        assert r.kept not in found  # representatives are kept rows: no chains


def test_embedding_near_duplicates_with_tfidf_vectors(planted: Planted) -> None:
    feats = embed(list(planted.ds.texts), "tfidf", dense=False)
    # one inserted word changes several TF-IDF 1-2-grams: cosine ~0.85-0.9, hence 0.8
    near = dedup.near_duplicates_embedding(feats.unit_rows(), range(len(planted.ds)), threshold=0.8)
    found = {r.index: r.kept for r in near}
    copies = {**planted.exact, **planted.near}
    recall = sum(found.get(c) == o for c, o in copies.items()) / len(copies)
    assert recall >= 0.9
    # every other pair found is a genuine near duplicate in the docstrings themselves
    # ("Return the keyed message..." / "Replace the keyed message..."): most words shared
    for r in near:
        a = dedup.shingles(planted.ds.texts[r.index], 1)
        b = dedup.shingles(planted.ds.texts[r.kept], 1)  # type: ignore[index]
        assert len(a & b) / len(a | b) >= 0.5


def test_near_options_are_validated() -> None:
    with pytest.raises(BadInput, match="unknown near-duplicate method"):
        dedup.check_near("simhash", None)
    with pytest.raises(BadInput, match="threshold"):
        dedup.check_near("minhash", 1.5)
    assert dedup.check_near("embedding", None) == dedup.DEFAULT_THRESHOLD["embedding"]


def test_exact_duplicates_on_trec_match_a_plain_count(shared_data) -> None:  # type: ignore[no-untyped-def]
    ds = load_data(shared_data / "trec" / "TREC.train.all")
    removals, _ = dedup.exact_duplicates(ds.texts, ds.labels)
    counts = Counter(dedup.normalize(t) for t in ds.texts)
    assert len(removals) == sum(n - 1 for n in counts.values())
    assert len(removals) > 0


def test_pairs_compare_both_sides(planted: Planted) -> None:
    a, b = planted.ds.texts[:40], planted.ds.texts[40:80]
    texts, texts2 = [*a, a[3], a[5]], [*b, b[3], b[6]]  # row 40 repeats row 3
    ds = Dataset(texts=tuple(texts), texts2=tuple(texts2), scores=(1.0,) * 42, source="pairs")
    report = audit(ds, AuditConfig(embedder="tfidf"))
    assert report.task == "similarity" and report.label_issues_skipped == "the data has no labels"
    assert [(r.index, r.kept, r.reason) for r in report.removals] == [(40, 3, "exact-duplicate")]
