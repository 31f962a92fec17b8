"""``--engine``, ``--address`` and ``--max-parallel``: bad combinations are one line and exit 2
before any work (no Ray needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark"], "unknown engine 'spark'"),
        (["--max-parallel", "2"], "--max-parallel needs --engine ray"),
        (["--address", "auto"], "--address needs --engine ray"),
        (["--engine", "ray", "--max-parallel", "0"], "--max-parallel must be at least 1"),
    ],
)
def test_bad_engine_options_exit_2(cli: Any, texts: Path, tmp_path: Path, args: list[str],
                                   message: str) -> None:  # fmt: skip
    proc = cli("optimize", "minilm", "--task", "fidelity", "--data", str(texts),
               "--out", str(tmp_path / "out"), *args)  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before any work
