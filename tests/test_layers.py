"""The layer order is a contract the lint checks (import-linter, contracts in pyproject.toml).

The real package passes it, and the contract bites: a copy of the package with one new arrow
against the order (ledger importing the CLI, inside a function) or a new cycle fails it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is in the [dev] extra")

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command as c; "
            "sys.exit(c(sys.argv[1:]))",
            str(ROOT / "pyproject.toml"),
            "--no-cache",
            "--no-logo",
        ],
        capture_output=True,
        text=True,
        cwd=src,
        env={**os.environ, "PYTHONPATH": str(src)},
        timeout=600,
    )


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(
        ROOT / "src" / "frugalml", src / "frugalml", ignore=shutil.ignore_patterns("__pycache__")
    )
    return src


def test_the_package_keeps_the_layer_contract() -> None:
    done = _lint_imports(ROOT / "src")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_an_upward_arrow_breaks_the_contract(package_copy: Path) -> None:
    store = package_copy / "frugalml" / "ledger" / "__init__.py"
    original = store.read_text(encoding="utf-8")
    store.write_text(
        original + "\n\ndef _late():\n    from frugalml.cli import app\n\n    return app\n",
        encoding="utf-8",
    )
    try:
        done = _lint_imports(package_copy)
    finally:
        store.write_text(original, encoding="utf-8")
    assert done.returncode != 0
    assert "frugalml.ledger is not allowed to import frugalml.cli" in done.stdout


def test_a_new_top_level_module_must_be_given_a_layer(package_copy: Path) -> None:
    extra = package_copy / "frugalml" / "newthing.py"
    extra.write_text('"""A module nobody placed in the layer order."""\n', encoding="utf-8")
    try:
        done = _lint_imports(package_copy)
    finally:
        extra.unlink()
    assert done.returncode != 0 and "frugalml.newthing" in done.stdout
