"""Tasks: data checks, splits, per-row items and quality in points (incl. on resampled rows)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from frugalml.data import Dataset, load_data, stdlib_sentences
from frugalml.errors import BadInput
from frugalml.models import Model, load
from frugalml.tasks import get_task, quality_on
from tinymodels import tiny_bert


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    return load(tiny_bert(tmp_path_factory.mktemp("tiny") / "m"))


@pytest.fixture(scope="module")
def sts(shared_data: Path) -> Dataset:
    return load_data(shared_data / "sts-b" / "sts-dev.csv").sample(120, seed=1)


def test_similarity_items_and_quality_on_resamples(sts: Dataset, tiny_model: Model) -> None:
    task = get_task("similarity")
    tune, score = task.split(sts, seed=0)
    assert len(tune) + len(score) == len(sts) and not set(tune.texts) & set(score.texts)
    out = tiny_model.encode(task.texts(score))
    items = task.items(out, score, task.prepare(tiny_model, tune, score))
    assert set(items) == {"pred", "gold"} and len(items["pred"]) == len(score)
    full = task.quality_on(items)
    assert full == pytest.approx(100 * spearmanr(items["pred"], items["gold"]).statistic)
    idx = np.random.default_rng(0).integers(0, len(score), len(score))
    assert quality_on("similarity", items, idx) == pytest.approx(
        100 * spearmanr(items["pred"][idx], items["gold"][idx]).statistic
    )
    assert get_task("similarity", metric="pearson").quality_on(items) != pytest.approx(full)


def test_split_is_seeded(sts: Dataset) -> None:
    task = get_task("similarity")
    a, b = task.split(sts, seed=0), task.split(sts, seed=0)
    c = task.split(sts, seed=1)
    assert a[1].texts == b[1].texts and a[1].texts != c[1].texts


def test_fidelity_of_the_original_is_100(tiny_model: Model) -> None:
    data = Dataset(texts=tuple(stdlib_sentences(40, seed=2)))
    task = get_task("fidelity")
    tune, score = task.split(data)
    ref = tiny_model.encode(task.texts(score))
    items = task.items(ref, score, task.prepare(tiny_model, tune, score, reference=ref))
    assert task.quality_on(items) == pytest.approx(100.0, abs=1e-4)
    noisy = ref + np.random.default_rng(0).normal(0, 0.05, ref.shape).astype(np.float32)
    worse = task.items(noisy, score, task.prepare(tiny_model, tune, score, reference=ref))
    assert 50 < task.quality_on(worse) < 100


def test_classification_probe_on_trec(shared_data: Path) -> None:
    """A bare encoder is scored by a logistic-regression probe fitted on the tune split."""
    data = load_data(shared_data / "trec" / "TREC.train.all").sample(240, seed=0)
    assert data.encoding == "iso-8859-1"
    model = load("minilm")
    task = get_task("classification")
    tune, score = task.split(data)
    ctx = task.prepare(model, tune, score)
    assert ctx.probe is not None
    items = task.items(model.encode(task.texts(score)), score, ctx)
    acc = task.quality_on(items)
    assert 50 < acc <= 100  # six classes: chance is ~17-23 points
    assert 0 < get_task("classification", metric="macro_f1").quality_on(items) <= 100


def test_classification_with_the_models_own_head(tmp_path: Path) -> None:
    model = load(tiny_bert(tmp_path / "clf", head=2))
    texts = stdlib_sentences(20, seed=5)
    data = Dataset(texts=tuple(texts), labels=tuple(f"class{i % 2}" for i in range(20)))
    task = get_task("classification")
    tune, score = task.split(data)
    ctx = task.prepare(model, tune, score)
    assert ctx.probe is None and ctx.label_index == {"class0": 0, "class1": 1}
    logits = model.encode(task.texts(score))
    items = task.items(logits, score, ctx)
    gold = np.array([int(lbl[-1]) for lbl in score.labels or ()])
    assert task.quality_on(items) == pytest.approx(100 * np.mean(logits.argmax(1) == gold))
    other = Dataset(texts=tuple(texts), labels=tuple("pos" if i % 2 else "neg" for i in range(20)))
    with pytest.raises(BadInput, match="do not match the data's labels"):
        task.prepare(model, *task.split(other))


@pytest.mark.parametrize(
    ("task", "data", "message"),
    [
        ("similarity", Dataset(texts=("a b", "c d", "e f", "g h")), "no second sentence"),
        ("classification", Dataset(texts=("a b", "c d", "e f", "g h")), "no label column"),
        ("classification", Dataset(texts=("a", "b", "c", "d"), labels=("x",) * 4), "single label"),
        ("fidelity", Dataset(texts=("only", "three", "rows")), "at least 4"),
    ],
)
def test_unusable_data_is_refused(task: str, data: Dataset, message: str) -> None:
    t = get_task(task)
    with pytest.raises(BadInput, match=message):
        t.check(data)
        t.split(data)


def test_unknown_task_and_metric() -> None:
    with pytest.raises(BadInput, match="unknown task"):
        get_task("translation")
    with pytest.raises(BadInput, match="unknown metric"):
        get_task("similarity", metric="accuracy")


def test_optimize_splits_three_ways_disjoint_and_seeded(sts: Dataset) -> None:
    task = get_task("similarity")
    tune, select, final = task.search_split(sts, seed=0)
    keys = [set(zip(p.texts, p.texts2 or (), strict=True)) for p in (tune, select, final)]
    assert sum(map(len, keys)) == len(set().union(*keys)) == len(sts)  # disjoint, every row
    assert len(final) == pytest.approx(len(sts) / 3, abs=1)
    again = task.search_split(sts, seed=0)[2]
    assert list(again.texts) == list(final.texts)
    assert list(task.parts(sts, "final")[1].texts) == list(final.texts)
    assert task.parts(sts, "all")[1] is sts


def test_a_task_declares_what_it_needs(tiny_model: Model, tmp_path: Path) -> None:
    from frugalml.models import load

    assert get_task("fidelity").needs_reference and not get_task("similarity").needs_reference
    probe = get_task("classification")
    assert probe.learns_from_data(tiny_model) and probe.auto_split(tiny_model) == "score"
    assert get_task("similarity").auto_split(tiny_model) == "all"
    head = load(tiny_bert(tmp_path / "cls", head=2))
    assert not probe.learns_from_data(head) and probe.auto_split(head) == "all"


def test_a_new_task_is_one_class_and_shows_in_the_help() -> None:
    from frugalml.tasks import TASKS, Task, help_text

    class Length(Task):  # a task defined anywhere registers itself by its name
        name = "length"
        metrics = ("chars",)
        summary = "text → mean length"

        def check(self, data: Dataset) -> None:
            return None

        def texts(self, data: Dataset) -> list[str]:
            return list(data.texts)

        def items(self, outputs, data, ctx):  # type: ignore[no-untyped-def]
            return {"n": np.asarray([len(t) for t in data.texts], dtype=float)}

        def quality_on(self, items, indices=None):  # type: ignore[no-untyped-def]
            return float(items["n"].mean())

    try:
        assert get_task("length").metric == "chars"
        assert "length (text → mean length)" in help_text()
    finally:
        TASKS.pop("length")
