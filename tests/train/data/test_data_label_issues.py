"""Label issues: cleanlab on out-of-fold probabilities finds planted flipped labels."""

from __future__ import annotations

import random

import numpy as np
import pytest
from planted_text import Planted

from frugalml.data import load_data
from frugalml.train.data import AuditConfig, audit
from frugalml.train.data.embed import embed
from frugalml.train.data.label_issues import (
    Unavailable,
    check_labels,
    find_label_issues,
    out_of_fold_probs,
)


def test_planted_flips_are_found(planted: Planted) -> None:
    ds = planted.ds
    feats = embed(list(ds.texts), "tfidf", dense=False)
    probe = out_of_fold_probs(feats.probe_input(), ds.labels, ds.label_names(), folds=5)
    assert probe.probs.shape == (len(ds), 2)
    np.testing.assert_allclose(probe.probs.sum(axis=1), 1.0, atol=1e-6)
    issues = find_label_issues(probe)
    flagged = {x.index for x in issues}
    recall = len(flagged & planted.flipped) / len(planted.flipped)
    assert recall >= 0.75, f"found {sorted(flagged & planted.flipped)} of {planted.flipped}"
    # worst first, and each suggestion is the label the flip replaced
    probs = [x.given_prob for x in issues]
    assert probs == sorted(probs)
    for x in issues:
        if x.index in planted.flipped:
            assert x.suggested != x.given == ds.labels[x.index]  # type: ignore[index]


def test_audit_report_plans_removals_once_per_row(planted: Planted) -> None:
    report = audit(planted.ds, AuditConfig(embedder="tfidf"))
    c = report.counts()
    assert c["rows"] == len(planted.ds)
    assert c["removed"] == len({r.index for r in report.removals})  # one reason per row
    assert c["kept"] == len(report.kept()) == c["rows"] - c["removed"]
    gone = {r.index for r in report.removals}
    assert set(planted.exact) <= gone and not (set(planted.exact.values()) & gone)
    assert len(gone & planted.flipped) >= 0.75 * len(planted.flipped)
    assert report.class_balance == {
        k: planted.ds.labels.count(k)  # type: ignore[union-attr]
        for k in ("other", "returns")
    }
    d = report.to_dict(planted.ds)
    assert {r["index"] for r in d["removals"]} == gone
    assert all("text" in r and "label" in r for r in d["removals"])


def test_one_class_or_a_singleton_class_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="same label"):
        check_labels(["a"] * 10, 5)
    with pytest.raises(Unavailable, match="only once"):
        check_labels(["a"] * 10 + ["b"], 5)
    with pytest.raises(Unavailable, match="no labels"):
        check_labels(None, 5)
    assert check_labels(["a"] * 10 + ["b"] * 3, 5) == 3  # folds shrink to the rarest class


def test_audit_says_why_label_issues_were_skipped(planted: Planted) -> None:
    one_class = planted.ds.take(range(50))
    one_class = type(one_class)(texts=one_class.texts, labels=("x",) * 50, source="one")
    report = audit(one_class, AuditConfig(embedder="tfidf"))
    assert report.label_issues == [] and "same label" in (report.label_issues_skipped or "")


def test_trec_flips_found_with_real_labels(shared_data) -> None:  # type: ignore[no-untyped-def]
    ds = load_data(shared_data / "trec" / "TREC.train.all").sample(600, seed=1)
    rng = random.Random(3)
    labels = list(ds.labels)  # type: ignore[arg-type]
    names = ds.label_names()
    flipped = set(rng.sample(range(len(ds)), 20))
    for i in flipped:
        labels[i] = rng.choice([n for n in names if n != labels[i]])
    noisy = type(ds)(texts=ds.texts, labels=tuple(labels), source=ds.source)
    report = audit(noisy, AuditConfig(embedder="tfidf", near=False))
    found = {x.index for x in report.label_issues}
    assert len(found & flipped) >= 0.6 * len(flipped)
    # far more of the flags hit planted flips than the flips' share of the rows (3%)
    assert len(found & flipped) / max(1, len(found)) > 0.15
