"""Pure parts of training: data checks, model resolution, batching, curricula, estimates."""

from __future__ import annotations

from pathlib import Path

import pytest

from frugalml.cli.train_cmds import parse_target
from frugalml.data import Dataset
from frugalml.errors import BadInput
from frugalml.train import FinetuneConfig
from frugalml.train.curriculum import competence, curriculum_batches, shuffled_batches
from frugalml.train.prepare import Encoded, check_data, collate, resolve_model
from frugalml.train.tuning import TrialSummary, estimate_unpruned


def _ds(labels: list[str] | None, n: int | None = None) -> Dataset:
    count = n if n is not None else len(labels or [])
    return Dataset(
        texts=tuple(f"text {i}" for i in range(count)),
        labels=tuple(labels) if labels is not None else None,
        source="x.tsv",
    )


@pytest.mark.parametrize(
    ("train", "dev", "message"),
    [
        (_ds(None, 3), _ds(["a", "b"]), "training data x.tsv has no label column"),
        (_ds(["a", "b"]), _ds(None, 2), "evaluation data x.tsv has no label column"),
        (_ds(["a", "a", "a"]), _ds(["a"]), "single class ('a')"),
        (_ds(["a", "b"]), _ds(["a", "c", "d"]), "evaluation labels not in the head: c, d"),
        (_ds([]), _ds(["a"]), "is empty"),
    ],
)
def test_check_data_rejects_unusable_labels(train: Dataset, dev: Dataset, message: str) -> None:
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_data(train, dev)


def test_check_data_orders_labels_numerically() -> None:
    labels = check_data(_ds(["10", "2", "1", "2"]), _ds(["1"]))
    assert labels.names == ("1", "2", "10")
    assert labels.ids(["10", "1"]) == [2, 0]


def test_resolve_model(tmp_path: Path) -> None:
    assert (resolve_model("minilm") / "config.json").is_file()
    with pytest.raises(BadInput, match="model not found"):
        resolve_model(tmp_path / "nope")
    with pytest.raises(BadInput, match=r"no config\.json"):
        resolve_model(tmp_path)


def test_collate_pads_and_masks() -> None:
    enc = Encoded(input_ids=[[1, 5, 2], [1, 2]], token_type_ids=None, labels=[1, 0])
    batch = collate(enc, [1, 0], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 0], [1, 5, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch["labels"].tolist() == [0, 1]
    assert collate(enc, [0], pad_id=0, pad_to=6)["input_ids"].shape == (1, 6)


@pytest.mark.parametrize(
    ("text", "points"), [("accuracy=85", 85.0), ("accuracy=0.9", 90.0), (None, None)]
)
def test_parse_target(text: str | None, points: float | None) -> None:
    assert parse_target(text) == points


@pytest.mark.parametrize("bad", ["f1=0.8", "accuracy", "accuracy=high"])
def test_parse_target_rejects(bad: str) -> None:
    with pytest.raises(BadInput):
        parse_target(bad)


@pytest.mark.parametrize(
    "change",
    [
        {"recipe": "qlora"},
        {"precision": "int8"},
        {"batch_size": 0},
        {"target_accuracy": 150.0},
        {"eval_mode": "later"},
        {"curriculum": "random"},
    ],
)
def test_config_validation(change: dict[str, object]) -> None:
    with pytest.raises(BadInput):
        FinetuneConfig(**change).validate()  # type: ignore[arg-type]


def test_shuffled_batches_cover_each_epoch_once() -> None:
    batches = list(shuffled_batches(10, 4, steps=6, seed=0))  # 3 batches per epoch, 2 epochs
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(i for b in batches[:3] for i in b) == list(range(10))
    assert sorted(i for b in batches[3:] for i in b) == list(range(10))
    assert batches != list(shuffled_batches(10, 4, steps=6, seed=1))


def test_curriculum_starts_easy_then_covers_everything() -> None:
    difficulty = [float(i) for i in range(100)]  # row i has difficulty i
    batches = list(curriculum_batches(difficulty, 10, steps=20, seed=0, start=0.2, ramp_steps=10))
    assert max(batches[0]) < 20  # first batch from the easiest 20%
    assert max(max(b) for b in batches[:2]) < 40
    seen = set().union(*map(set, batches))
    assert seen == set(range(100))
    assert competence(0, 10, 0.2) == pytest.approx(0.2)
    assert competence(10, 10, 0.2) == 1.0
    assert competence(5, 10, 0.2) < competence(6, 10, 0.2)


def test_estimate_unpruned_extends_pruned_trials() -> None:
    compute = {
        "wall_s": 2.0,
        "cpu_s": 4.0,
        "device_s": 0.0,
        "energy_j": 10.0,
        "cost_usd": 0.1,
        "co2_g": 1.0,
    }
    trials = (
        TrialSummary(0, "complete", 80.0, {}, 9, 9, "a", compute),
        TrialSummary(1, "pruned", 60.0, {}, 3, 9, "b", compute),
    )
    est = estimate_unpruned(trials)
    assert est["cpu_s"] == pytest.approx(4.0 + 4.0 * 3)
    assert est["cost_usd"] == pytest.approx(0.1 + 0.3)


def test_learning_rate_schedule_is_linear_warmup_then_decay() -> None:
    """docs/train.md: linear warm-up from 0 over ``warmup_ratio`` of the steps, then linear
    decay to 0 at the last step (10 steps, ratio 0.2: 2 warm-up steps)."""
    import torch

    from frugalml.train.loop import linear_schedule

    cfg = FinetuneConfig(learning_rate=0.1, warmup_ratio=0.2)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=cfg.lr)
    sched = linear_schedule(opt, cfg.warmup_steps(10), 10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [0.0, 0.05, 0.1, 0.0875, 0.075, 0.0625, 0.05, 0.0375, 0.025, 0.0125]
    assert lrs == pytest.approx(expected)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # 0 after the last step
    assert FinetuneConfig(warmup_ratio=0.0).warmup_steps(10) == 0
    assert FinetuneConfig(warmup_ratio=0.01).warmup_steps(10) == 1  # at least one step
