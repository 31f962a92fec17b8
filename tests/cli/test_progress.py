"""The shared progress bar: what each long job shows on stderr."""

from __future__ import annotations

import io

from rich.console import Console

from frugalml.progress import progress_bar


def _render(bar, task: int) -> str:  # type: ignore[no-untyped-def]
    out = Console(file=io.StringIO(), width=200, color_system=None)
    out.print(bar.make_tasks_table([bar.tasks[task]]))
    return out.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def test_bar_shows_label_counts_unit_and_info() -> None:
    bar = progress_bar("training", unit="steps", info=True, console=Console(file=io.StringIO()))
    task = bar.add_task("train", total=10, info="loss 0.6931")
    bar.update(task, completed=3)
    line = _render(bar, task)
    assert "training" in line and "3/10" in line and "steps" in line and "loss 0.6931" in line


def test_bar_without_label_shows_each_task_description() -> None:
    bar = progress_bar(remaining=False, console=Console(file=io.StringIO()))
    first = bar.add_task("exact duplicates", total=4)
    second = bar.add_task("label issues", total=2)
    bar.update(second, completed=2)
    assert "exact duplicates" in _render(bar, first) and "0/4" in _render(bar, first)
    assert "label issues" in _render(bar, second) and "2/2" in _render(bar, second)


def test_disabled_bar_prints_nothing() -> None:
    sink = io.StringIO()
    with progress_bar("x", disable=True, console=Console(file=sink, force_terminal=True)) as bar:
        bar.add_task("t", total=1)
    assert sink.getvalue() == ""
