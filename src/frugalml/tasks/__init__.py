"""Tasks: how quality is measured, in points (correlation or accuracy x 100).

- ``similarity``: sentence pairs + gold score → Spearman x 100 (``tasks.similarity``).
- ``classification``: text + label → accuracy x 100; a probe for bare encoders
  (``tasks.classification``).
- ``fidelity``: unlabelled text → agreement with the original model x 100 (``tasks.fidelity``;
  for a causal LM ``tasks.lm_fidelity``: top-1 agreement, KL divergence, flips).
- ``perplexity``: text → a causal LM's perplexity (lower is better; ``tasks.perplexity``).
- ``generation``: prompts → greedy continuations, timed (``tasks.generation``).

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
from frugalml.tasks.generation import Generation
from frugalml.tasks.lm_fidelity import LMFidelity
from frugalml.tasks.perplexity import Perplexity
from frugalml.tasks.similarity import Similarity

TASKS: dict[str, type[Task]] = {
    t.name: t for t in (Similarity, Classification, Fidelity, Perplexity, Generation)
}
#: the tasks a causal LM runs, by name (``fidelity`` is the LM variant here)
LM_TASKS: dict[str, type[Task]] = {t.name: t for t in (Perplexity, LMFidelity, Generation)}


def get_task(
    task: str | Task, *, metric: str | None = None, seed: int = 0, lm: bool = False
) -> Task:
    """A task by name (``metric``: one of its ``metrics``; default the first).

    ``lm``: the task for a causal language model (``fidelity`` is then ``LMFidelity``).
    """
    if isinstance(task, Task):
        return task
    table = LM_TASKS if lm else TASKS
    if task not in table:
        raise BadInput(f"unknown task '{task}'", hint=f"use one of {', '.join(table)}")
    return table[task](metric=metric, seed=seed)


def quality_on(
    task: str | Task,
    items: Items,
    indices: Sequence[int] | np.ndarray | None = None,
    *,
    metric: str | None = None,
) -> float:
    """The task's metric, in points, on the rows of ``items`` at ``indices``."""
    return get_task(task, metric=metric).quality_on(items, indices)


__all__ = ["LM_TASKS", "TASKS", "Context", "Items", "Task", "get_task", "quality_on"]
