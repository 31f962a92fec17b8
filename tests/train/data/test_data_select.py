"""Selection strategies keep class balance, are seeded, and pick what they promise."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest
from planted_text import Planted

from frugalml.errors import BadInput
from frugalml.train.data import SelectConfig, select_rows
from frugalml.train.data.embed import embed
from frugalml.train.data.select import (
    groups_by_label,
    k_center_greedy,
    margins,
    quotas,
    select,
    subset_size,
)

QUOTA_CASES = [  # (group sizes, total)
    ({"a": 50, "b": 50}, 50),
    ({"a": 90, "b": 9, "c": 1}, 10),
    ({"a": 7, "b": 3}, 1),
    ({"a": 3310, "b": 3610}, 3460),
    ({"x": 5}, 5),
]


@pytest.mark.parametrize(("sizes", "total"), QUOTA_CASES)
def test_quotas_are_proportional_and_sum_to_total(sizes: dict[str, int], total: int) -> None:
    groups = {k: list(range(n)) for k, n in sizes.items()}
    q = quotas(groups, total)
    assert sum(q.values()) == total
    n = sum(sizes.values())
    for k, size in sizes.items():
        assert 0 <= q[k] <= size
        if total >= len(sizes):
            assert q[k] >= 1  # no class disappears
            assert abs(q[k] - total * size / n) < 1 + 1e-9


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_fraction_outside_0_1_is_rejected(bad: float) -> None:
    with pytest.raises(BadInput, match="fraction"):
        SelectConfig(fraction=bad, strategy="random")


def test_unknown_strategy_is_rejected() -> None:
    with pytest.raises(BadInput, match="unknown selection strategy"):
        SelectConfig(fraction=0.5, strategy="loss")


def test_random_is_seeded_and_stratified(planted: Planted) -> None:
    ds = planted.ds
    a = select(len(ds), ds.labels, SelectConfig(0.3, "random", seed=1))
    b = select(len(ds), ds.labels, SelectConfig(0.3, "random", seed=1))
    c = select(len(ds), ds.labels, SelectConfig(0.3, "random", seed=2))
    assert a == b != c and a == sorted(a) and len(set(a)) == len(a)
    assert len(a) == subset_size(len(ds), 0.3)
    full, part = Counter(ds.labels), Counter(ds.labels[i] for i in a)  # type: ignore[index]
    for label, n in full.items():
        assert abs(part[label] - n * len(a) / len(ds)) <= 1


def test_fraction_one_keeps_every_row(planted: Planted) -> None:
    ds = planted.ds
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1, 1], size=len(ds))
    for strategy in ("random", "uncertainty"):
        got = select(
            len(ds), ds.labels, SelectConfig(1.0, strategy), probs=probs, exclude={0, 1, 2}
        )
        assert got == list(range(len(ds)))


def test_uncertainty_takes_the_smallest_margins_and_skips_excluded() -> None:
    rng = np.random.default_rng(0)
    n = 200
    labels = ["a"] * 100 + ["b"] * 100
    p = rng.uniform(0, 1, n)
    probs = np.stack([p, 1 - p], axis=1)
    excluded = set(range(0, n, 10))
    got = select(n, labels, SelectConfig(0.25, "uncertainty"), probs=probs, exclude=excluded)
    assert not set(got) & excluded
    m = margins(probs)
    for label in ("a", "b"):
        rows = [i for i in range(n) if labels[i] == label and i not in excluded]
        picked = [i for i in got if labels[i] == label]
        # every picked row is at least as uncertain as every row left out
        left = [i for i in rows if i not in set(picked)]
        assert max(m[picked]) <= min(m[left])


def test_random_share_mixes_in_random_rows() -> None:
    n = 400
    labels = ["a"] * n
    probs = np.stack([np.linspace(0.5, 1, n), 1 - np.linspace(0.5, 1, n)], axis=1)
    pure = select(n, labels, SelectConfig(0.25, "uncertainty"), probs=probs)
    mixed = select(n, labels, SelectConfig(0.25, "uncertainty", random_share=0.5), probs=probs)
    assert pure == list(range(100))  # margins grow with the row index
    assert 30 <= sum(i >= 100 for i in mixed) <= 50  # half the quota drawn at random


def test_k_center_greedy_covers_clusters_before_repeating_one() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 16))
    x = np.concatenate([c + 0.01 * rng.normal(size=(20, 16)) for c in centers])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    picked = k_center_greedy(x, list(range(100)), 5, random.Random(0))
    assert sorted({i // 20 for i in picked}) == [0, 1, 2, 3, 4]  # one per cluster


def test_diversity_avoids_planted_copies(planted: Planted) -> None:
    sel = select_rows(planted.ds, SelectConfig(0.5, "diversity"), embedder="tfidf", folds=3)
    chosen = set(sel.indices)
    assert len(chosen) == subset_size(len(planted.ds), 0.5)
    copies = {**planted.exact, **planted.near}
    assert not chosen & set(planted.exact)  # exact copies are held back
    assert sum(c in chosen and o in chosen for c, o in copies.items()) <= 2
    assert set(planted.exact) <= set(sel.held_back)
    assert sel.class_balance(planted.ds.labels) == dict(
        sorted(Counter(planted.ds.labels[i] for i in sel.indices).items())
    )  # type: ignore[index]


def test_uncertainty_holds_back_flagged_labels(planted: Planted) -> None:
    sel = select_rows(planted.ds, SelectConfig(0.5, "uncertainty"), embedder="tfidf")
    held = {i for i, why in sel.held_back.items() if why == "label-issue"}
    assert len(held & planted.flipped) >= 0.75 * len(planted.flipped)
    assert not set(sel.indices) & held  # enough clean rows: none comes back
    assert sel.probe_accuracy is not None and sel.probe_accuracy > 0.7
    assert {"embedding", "label_probe", "select"} <= set(sel.seconds)


def test_uncertainty_on_one_class_says_why(planted: Planted) -> None:
    ds = type(planted.ds)(texts=planted.ds.texts[:40], labels=("x",) * 40, source="one")
    with pytest.raises(BadInput, match="uncertainty selection is impossible"):
        select_rows(ds, SelectConfig(0.5, "uncertainty"), embedder="tfidf")
    # random and diversity still work on one class
    assert len(select_rows(ds, SelectConfig(0.5, "random")).indices) == 20
    assert len(select_rows(ds, SelectConfig(0.5, "diversity"), embedder="tfidf").indices) == 20


def test_unlabelled_rows_form_one_group() -> None:
    assert groups_by_label(None, 3) == {"": [0, 1, 2]}
    x = embed(["a cat sat", "a dog ran", "the sun shone", "rain fell"], "tfidf").vectors()
    assert x.shape[0] == 4
