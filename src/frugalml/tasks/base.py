"""What a task is: how to split the data, which texts to run, and how to score per row.

A task scores a model on the user's data in *points* (correlation or accuracy x 100). What it
needs is declared, not looked up by name: ``needs_reference`` (it compares with the original
model's outputs) and ``learns_from_data(model)`` (it fits something on rows: a probe).

Splits (``SPLITS``), all seeded and stratified by label when labelled:

- ``all``: every row is scored — when nothing is learnt from the data (``frugal eval`` of a
  similarity or fidelity task, or a classifier with its own head);
- ``score``: the held-out half (``SCORE_FRACTION``); the other half (``tune``) fits what
  learns (a probe on a bare encoder), so no model is scored on rows it was fitted on;
- ``select`` / ``final``: ``optimize``'s three-way split. ``tune`` (a third) is what passes
  learn from (calibration, distillation) and a probe is fitted on; every candidate is scored
  and selected on ``select``; ``final`` is touched by no pass and no selection: the bound is
  checked there once more before a model is saved.

Scoring goes through per-row ``items`` (e.g. each pair's predicted similarity and gold score,
each text's correctness), and ``quality_on(items, indices)`` recomputes the metric on any
subset or resample of rows — what a paired bootstrap of the difference between two models
needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from frugalml.errors import BadInput

if TYPE_CHECKING:
    from frugalml.data import Dataset
    from frugalml.models import Model

Items = dict[str, np.ndarray]
SCORE_FRACTION = 0.5  # half the rows are held out for scoring
FINAL_FRACTION = 1 / 3  # optimize: a third for the final check, then tune and select halve the rest
MIN_ROWS = 4
MIN_ROWS_SEARCH = 6  # two rows per part of optimize's three-way split
SPLITS = ("all", "score", "select", "final")


@dataclass
class Context:
    """What ``prepare`` computed for scoring: a fitted probe, reference outputs, label order."""

    probe: Any = None
    reference: np.ndarray | None = None
    label_index: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


TASKS: dict[str, type[Task]] = {}  # name -> class, filled as task modules are imported


class Task(ABC):
    """A way to measure quality. Subclasses set ``name``, ``metric`` and implement 3 methods;
    a subclass with a ``name`` registers itself in ``TASKS``."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]  # the first is the default
    higher_is_better: ClassVar[bool] = True
    summary: ClassVar[str] = ""  # one line for help texts: "pairs + gold score → Spearman"
    needs_reference: ClassVar[bool] = False  # scored against the original model's outputs

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            TASKS[cls.name] = cls

    def __init__(self, metric: str | None = None, seed: int = 0) -> None:
        if metric is not None and metric not in self.metrics:
            raise BadInput(
                f"unknown metric '{metric}' for the {self.name} task",
                hint=f"use one of {', '.join(self.metrics)}",
            )
        self.metric = metric or self.metrics[0]
        self.seed = seed

    @abstractmethod
    def check(self, data: Dataset) -> None:
        """Raise ``BadInput`` (naming the missing columns) if ``data`` cannot be used."""

    @abstractmethod
    def texts(self, data: Dataset) -> list[str]:
        """The texts the model runs on for these rows (both sides of a pair)."""

    @abstractmethod
    def items(self, outputs: np.ndarray, data: Dataset, ctx: Context) -> Items:
        """Per-row arrays from the model's outputs for ``texts(data)``, in that order."""

    @abstractmethod
    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        """The metric in points on the rows at ``indices`` (all rows when None)."""

    def prepare(
        self, model: Model, tune: Dataset, score: Dataset, reference: np.ndarray | None = None
    ) -> Context:
        """Fit what scoring needs (default: nothing). ``reference`` = the original's outputs."""
        return Context(reference=reference)

    def learns_from_data(self, model: Model) -> bool:
        """Whether scoring ``model`` fits something on rows (then they cannot all be scored)."""
        return False

    def auto_split(self, model: Model) -> str:
        """``all`` when nothing is learnt from the data, else the held-out ``score`` half."""
        return "score" if self.learns_from_data(model) else "all"

    def parts(self, data: Dataset, split: str, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(fit, scored) rows for a named split (``SPLITS``); ``fit`` is what may be learnt."""
        if split == "all":
            if len(data) < 2:
                raise BadInput(f"{data.source or 'the data'} has {len(data)} row(s)")
            return data, data
        if split == "score":
            return self.split(data, seed)
        if split in ("select", "final"):
            tune, select, final = self.search_split(data, seed)
            return tune, select if split == "select" else final
        raise BadInput(f"unknown split '{split}'", hint=f"use one of {', '.join(SPLITS)}")

    def search_split(self, data: Dataset, seed: int = 0) -> tuple[Dataset, Dataset, Dataset]:
        """(tune, select, final): optimize's three-way split (a third each, seeded)."""
        if len(data) < MIN_ROWS_SEARCH:
            raise BadInput(
                f"{data.source or 'the data'} has {len(data)} rows; optimize needs at least "
                f"{MIN_ROWS_SEARCH} (a third each to tune, select and check the final choice)"
            )
        rest, final = data.split(FINAL_FRACTION, seed=seed)
        tune, select = rest.split(0.5, seed=seed)
        return tune, select, final

    def split(self, data: Dataset, seed: int = 0) -> tuple[Dataset, Dataset]:
        """(tune, score): a seeded split of the rows, stratified by label when labelled."""
        if len(data) < MIN_ROWS:
            raise BadInput(
                f"{data.source or 'the data'} has {len(data)} rows; frugal needs at "
                f"least {MIN_ROWS} (half are held out for scoring)"
            )
        return data.split(SCORE_FRACTION, seed=seed)

    def rows(self, items: Items) -> int:
        return len(next(iter(items.values())))


def pick(items: Items, indices: Sequence[int] | np.ndarray | None) -> Items:
    if indices is None:
        return items
    idx = np.asarray(indices, dtype=np.int64)
    return {k: v[idx] for k, v in items.items()}
