"""Training techniques as registered configs: recipes and curricula.

A **recipe** says which weights train (``full``: all; ``lora``: low-rank adapters + the head)
and a **curriculum** in what order examples are seen (``none``, ``length``, ``loss``). Each is
a frozen dataclass in its own module that registers itself, as passes do, and as PEFT's
``LoraConfig`` carries a method's settings::

    @register_recipe
    @dataclass(frozen=True)
    class Lora(Recipe):
        name: ClassVar[str] = "lora"
        r: int = 8
        def wrap(self, model, model_path): ...

``FinetuneConfig(recipe=Lora(r=16))`` takes the config, or its name for the defaults
(``recipe="lora"``). Adding a recipe or a curriculum is one new module (plus its name in
``_BUILTINS``, so it is registered when first looked up) and one row in the tests' table.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from frugalml.errors import BadInput

if TYPE_CHECKING:
    from frugalml.train.prepare import Encoded

_BUILTINS = (
    "frugalml.train.recipe_full",
    "frugalml.train.recipe_lora",
    "frugalml.train.curriculum",
)


class Recipe:
    """Which weights train. Subclasses are frozen dataclasses; their fields are the settings.

    Contract: ``wrap`` turns the freshly built classifier into the model to train (the
    trainer and the evaluator process both call it, so checkpoint keys match); ``suggest``
    samples this recipe's part of ``frugal tune``'s search space.
    """

    name: ClassVar[str]
    default_lr: ClassVar[float]  # peak learning rate when none is given
    lr_range: ClassVar[tuple[float, float]]  # tune's log-uniform learning-rate range

    def validate(self) -> None:
        """Raise ``BadInput`` for settings that cannot work."""

    def wrap(self, model: Any, model_path: Path) -> Any:
        """The model to train, built from ``model`` (a transformers classifier)."""
        return model

    def suggest(self, trial: Any) -> Recipe:
        """This recipe with its settings sampled by an Optuna ``trial`` (tune)."""
        return self

    def params(self) -> dict[str, Any]:
        """Its settings for the ledger (names as ``FinetuneConfig.to_params`` gives them)."""
        return {"recipe": self.name}

    def merge_on_save(self) -> bool:
        """Save a plain HF model (adapters merged into the weights), else the adapter only."""
        return True

    def oom_tips(self) -> list[str]:
        """What to change when training runs out of memory, beyond batch size and length."""
        return []


class Curriculum:
    """In what order training examples are seen: ``batches`` yields ``steps`` lists of row
    indices. Subclasses are frozen dataclasses; their fields are the settings."""

    name: ClassVar[str]
    scores_examples: ClassVar[bool] = False  # needs a pass over the data (time reported apart)

    def validate(self) -> None:
        """Raise ``BadInput`` for settings that cannot work."""

    def batches(
        self, data: CurriculumData, batch_size: int, steps: int, seed: int
    ) -> Iterator[list[int]]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {"curriculum": self.name}


@dataclasses.dataclass(frozen=True)
class CurriculumData:
    """What a curriculum may look at: the tokenized training rows and the model to train."""

    enc: Encoded
    pad_id: int
    model: Any
    device: str


RECIPES: dict[str, type[Recipe]] = {}
CURRICULA: dict[str, type[Curriculum]] = {}
R = TypeVar("R", bound=type[Recipe])
C = TypeVar("C", bound=type[Curriculum])


def register_recipe(cls: R) -> R:
    """Register a recipe config class under its ``name`` (a class decorator)."""
    _check_dataclass(cls)
    RECIPES[cls.name] = cls
    return cls


def register_curriculum(cls: C) -> C:
    """Register a curriculum config class under its ``name`` (a class decorator)."""
    _check_dataclass(cls)
    CURRICULA[cls.name] = cls
    return cls


def _check_dataclass(cls: type) -> None:
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} must be a frozen dataclass")


def _load_builtins() -> None:
    for module in _BUILTINS:
        importlib.import_module(module)


def recipe_names() -> tuple[str, ...]:
    _load_builtins()
    return tuple(sorted(RECIPES))


def curriculum_names() -> tuple[str, ...]:
    _load_builtins()
    return tuple(CURRICULA)


def recipe_config(value: str | Recipe) -> Recipe:
    """The recipe config for ``value``: a config passes through; a name gives its defaults."""
    if isinstance(value, Recipe):
        return value
    _load_builtins()
    if value not in RECIPES:
        raise BadInput(f"unknown recipe '{value}'", hint=f"use one of {', '.join(RECIPES)}")
    return RECIPES[value]()


def curriculum_config(value: str | Curriculum) -> Curriculum:
    """The curriculum config for ``value``: a config passes through; a name, its defaults."""
    if isinstance(value, Curriculum):
        return value
    _load_builtins()
    if value not in CURRICULA:
        raise BadInput(f"unknown curriculum '{value}'", hint=f"use one of {', '.join(CURRICULA)}")
    return CURRICULA[value]()


def to_json(config: Recipe | Curriculum) -> dict[str, Any]:
    """A registered config as JSON (its module, ``name`` and fields), for the evaluator
    process, which imports the module so that a recipe defined outside frugal registers."""
    fields = dataclasses.asdict(config)  # type: ignore[call-overload]
    return {"module": type(config).__module__, "name": config.name, "fields": fields}


def recipe_from_json(data: dict[str, Any]) -> Recipe:
    _load_builtins()
    importlib.import_module(data["module"])
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data["fields"].items()}
    return RECIPES[data["name"]](**fields)
