"""What a task is: how to split the data, which texts to run, and how to score per row.

A task scores a model on the user's data in *points* (correlation or accuracy x 100). The data
is split once, seeded: the ``score`` part is what quality is measured on; the ``tune`` part is
what anything that learns from data uses (a classification probe, static-quantization
calibration, distillation), so no model is scored on rows it was tuned on.

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
MIN_ROWS = 4


@dataclass
class Context:
    """What ``prepare`` computed for scoring: a fitted probe, reference outputs, label order."""

    probe: Any = None
    reference: np.ndarray | None = None
    label_index: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """A way to measure quality. Subclasses set ``name``, ``metric`` and implement 3 methods."""

    name: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]  # the first is the default
    higher_is_better: ClassVar[bool] = True

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
