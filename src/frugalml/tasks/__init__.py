"""Tasks: how quality is measured, in points (correlation or accuracy x 100).

- ``similarity``: sentence pairs + gold score → Spearman x 100 (``tasks.similarity``).
- ``classification``: text + label → accuracy x 100; a probe for bare encoders
  (``tasks.classification``).
- ``fidelity``: unlabelled text → agreement with the original model x 100 (``tasks.fidelity``).

``get_task(name)`` returns a task; ``quality_on(task, items, indices)`` recomputes a task's
metric on a subset or resample of rows (for paired bootstraps). See ``tasks.base``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugalml.errors import BadInput
from frugalml.tasks.base import Context, Items, Task
from frugalml.tasks.classification import Classification
from frugalml.tasks.fidelity import Fidelity
from frugalml.tasks.similarity import Similarity

TASKS: dict[str, type[Task]] = {t.name: t for t in (Similarity, Classification, Fidelity)}


def get_task(task: str | Task, *, metric: str | None = None, seed: int = 0) -> Task:
    """A task by name (``metric``: one of its ``metrics``; default the first)."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise BadInput(f"unknown task '{task}'", hint=f"use one of {', '.join(TASKS)}")
    return TASKS[task](metric=metric, seed=seed)


def quality_on(
    task: str | Task,
    items: Items,
    indices: Sequence[int] | np.ndarray | None = None,
    *,
    metric: str | None = None,
) -> float:
    """The task's metric, in points, on the rows of ``items`` at ``indices``."""
    return get_task(task, metric=metric).quality_on(items, indices)


__all__ = ["TASKS", "Context", "Items", "Task", "get_task", "quality_on"]
