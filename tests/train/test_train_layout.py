"""The train package's shape: no function hides a module of the same name, and its modules
import one way (config ← loop ← finetuning ← tuning), never back."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import frugalml.train

# lower layers first: a module may import only modules before it in this list
ORDER = ["registry", "config", "loop", "finetuning", "tuning"]


def test_no_function_shadows_a_module() -> None:
    for info in pkgutil.iter_modules(frugalml.train.__path__):
        module = importlib.import_module(f"frugalml.train.{info.name}")
        assert getattr(frugalml.train, info.name) is module, info.name


def _imports(path: Path) -> set[str]:
    """frugalml.train modules imported anywhere in ``path`` (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["frugalml", "train"] and len(parts) > 2:
                found.add(parts[2])
    return found


@pytest.mark.parametrize("name", ORDER)
def test_train_modules_import_one_way(name: str) -> None:
    path = Path(frugalml.train.__file__).parent / f"{name}.py"
    higher = set(ORDER[ORDER.index(name) + 1 :])
    assert not _imports(path) & higher, f"{name} imports {_imports(path) & higher}"
