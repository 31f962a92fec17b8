"""Recipes and curricula are registered configs: each one in the table trains, round-trips to
the evaluator process and reports its settings; a recipe defined here (not in frugal) is
usable by ``finetune`` with no other change."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from frugalml.data import load_data
from frugalml.errors import BadInput
from frugalml.train import (
    ByLength,
    ByLoss,
    FinetuneConfig,
    Full,
    Lora,
    Recipe,
    Shuffled,
    finetune,
)
from frugalml.train.registry import (
    CURRICULA,
    RECIPES,
    curriculum_config,
    curriculum_names,
    recipe_config,
    recipe_from_json,
    recipe_names,
    register_recipe,
    to_json,
)

# one row per registered recipe: (config, trainable share of the tiny model is below 1?)
RECIPE_CASES = [(Full(), False), (Lora(r=4, alpha=8), True)]
CURRICULUM_CASES = [Shuffled(), ByLength(start=0.5), ByLoss()]


@pytest.fixture(scope="module")
def data(sst2_small: tuple[Path, Path]) -> tuple[Any, Any]:
    return load_data(sst2_small[0]), load_data(sst2_small[1])


def test_every_registered_technique_has_a_row() -> None:
    assert set(recipe_names()) == {type(c).name for c, _ in RECIPE_CASES}
    assert set(curriculum_names()) == {type(c).name for c in CURRICULUM_CASES}


@pytest.mark.parametrize(("recipe", "partial"), RECIPE_CASES, ids=lambda c: getattr(c, "name", ""))
def test_recipe_trains_and_round_trips(tiny_model, data, recipe: Recipe, partial: bool) -> None:  # type: ignore[no-untyped-def]
    assert recipe_from_json(to_json(recipe)) == recipe  # what the evaluator process rebuilds
    assert recipe_config(recipe.name) == type(recipe)()  # a name gives the defaults
    cfg = FinetuneConfig(recipe=recipe, eval_mode="none", max_steps=2, max_length=32)
    assert cfg.lr == recipe.default_lr and cfg.to_params()["recipe"] == recipe.name
    r = finetune(tiny_model, *data, cfg)
    assert r.recipe == recipe.name and r.steps == 2
    assert (r.trainable_params < r.total_params) is partial


@pytest.mark.parametrize("curriculum", CURRICULUM_CASES, ids=lambda c: c.name)
def test_curriculum_trains(tiny_model, data, curriculum) -> None:  # type: ignore[no-untyped-def]
    cfg = FinetuneConfig(
        recipe="full", curriculum=curriculum, eval_mode="none", max_steps=3, max_length=32
    )
    assert curriculum_config(curriculum.name) == type(curriculum)()
    r = finetune(tiny_model, *data, cfg)
    assert r.curriculum == curriculum.name and r.steps == 3
    assert cfg.to_params()["curriculum"] == curriculum.name


@pytest.mark.parametrize(
    "bad",
    [
        {"recipe": "qlora"},
        {"curriculum": "random"},
        {"recipe": Lora(r=0)},
        {"curriculum": ByLength(start=0.0)},
    ],
)
def test_bad_technique_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        FinetuneConfig(**bad).validate()


@dataclass(frozen=True)
class HeadOnly(Recipe):
    """A recipe added outside frugal: freeze the encoder, train the head and the pooler."""

    name: ClassVar[str] = "head-only"
    default_lr: ClassVar[float] = 1e-3
    lr_range: ClassVar[tuple[float, float]] = (1e-4, 1e-2)

    def wrap(self, model: Any, model_path: Path) -> Any:
        from frugalml.train.recipes import is_head

        for name, p in model.named_parameters():
            p.requires_grad_(is_head(name))
        return model


def test_a_new_recipe_is_one_class(tiny_model, data) -> None:  # type: ignore[no-untyped-def]
    register_recipe(HeadOnly)  # what the decorator on a new module's class does
    try:
        cfg = FinetuneConfig(
            recipe="head-only", eval_mode="sync", eval_every=2, max_steps=2, max_length=32
        )
        r = finetune(tiny_model, *data, cfg)
        assert r.recipe == "head-only" and 0 < r.trainable_params < r.total_params // 10
        assert [e.step for e in r.evals] == [2]
    finally:
        del RECIPES["head-only"]
    assert "head-only" not in recipe_names() and dataclasses.is_dataclass(HeadOnly)
    assert set(CURRICULA) >= {"none", "length", "loss"}
