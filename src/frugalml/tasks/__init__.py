"""Tasks: how quality is measured, in points (correlation or accuracy x 100).

- ``similarity``: sentence pairs + gold score → Spearman x 100 (``tasks.similarity``).
- ``classification``: text + label → accuracy x 100; a probe for bare encoders
  (``tasks.classification``).
- ``fidelity``: unlabelled text → agreement with the original model x 100 (``tasks.fidelity``).

Adding a task is one module in this package: a ``Task`` subclass with a ``name`` registers
itself (``TASKS``; every module here is imported once), declares what it needs
(``needs_reference``, ``learns_from_data``) and its ``summary`` for help texts.

``get_task(name)`` returns a task; ``quality_on(task, items, indices)`` recomputes a task's
metric on a subset or resample of rows (for paired bootstraps). See ``tasks.base``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugalml.errors import BadInput
from frugalml.tasks.base import TASKS, Context, Items, Task


def _import_task_modules() -> None:
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


_import_task_modules()


def get_task(task: str | Task, *, metric: str | None = None, seed: int = 0) -> Task:
    """A task by name (``metric``: one of its ``metrics``; default the first)."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise BadInput(f"unknown task '{task}'", hint=f"use one of {', '.join(TASKS)}")
    return TASKS[task](metric=metric, seed=seed)


def help_text() -> str:
    """``"classification (text + label → accuracy), ..."``: every registered task, for --help."""
    return ", ".join(f"{name} ({t.summary})" for name, t in sorted(TASKS.items())) + "."


def quality_on(
    task: str | Task,
    items: Items,
    indices: Sequence[int] | np.ndarray | None = None,
    *,
    metric: str | None = None,
) -> float:
    """The task's metric, in points, on the rows of ``items`` at ``indices``."""
    return get_task(task, metric=metric).quality_on(items, indices)


__all__ = ["TASKS", "Context", "Items", "Task", "get_task", "help_text", "quality_on"]
