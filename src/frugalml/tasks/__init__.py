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


def get_task(task: str | Task, *, seed: int = 0) -> Task:
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise BadInput(f"unknown task '{task}'", hint=f"use one of {', '.join(TASKS)}")
    cls = TASKS[task]
    return Classification(seed=seed) if cls is Classification else cls()


def quality_on(task: str | Task, items: Items,
               indices: Sequence[int] | np.ndarray | None = None) -> float:
    """The task's metric, in points, on the rows of ``items`` at ``indices``."""
    return get_task(task).quality_on(items, indices)


__all__ = ["TASKS", "Context", "Items", "Task", "get_task", "quality_on"]
