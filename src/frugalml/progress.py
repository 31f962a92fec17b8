"""One progress bar for every long job: Rich, on stderr (stdout stays clean for ``--json``)."""

from __future__ import annotations

from typing import Any


def progress_bar(
    label: str | None = None,
    *,
    unit: str | None = None,
    remaining: bool = True,
    info: bool = False,
    transient: bool = False,
    disable: bool = False,
    console: Any = None,
) -> Any:
    """A ``rich.progress.Progress``: label, bar, done/total [unit], elapsed [, remaining] [, info].

    ``label`` None shows each task's description. ``info`` adds a column showing the task's
    ``info`` field (give ``info=""`` to ``add_task``). ``console``: default a stderr console.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[ProgressColumn] = [
        TextColumn(f"[bold]{label}" if label is not None else "[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
    ]
    if unit:
        columns.append(TextColumn(unit))
    columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    return Progress(
        *columns,
        console=console if console is not None else Console(stderr=True),
        transient=transient,
        disable=disable,
    )
