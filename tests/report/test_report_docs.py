"""The CI example in docs/ci-gate.md is a valid GitHub Actions workflow that runs the gate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "ci-gate.md"


def test_ci_gate_workflow_parses_and_gates() -> None:
    yaml = pytest.importorskip("yaml")
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1
    workflow = yaml.safe_load(blocks[0])
    steps = workflow["jobs"]["gate"]["steps"]
    gate = next(s for s in steps if "frugal gate" in s.get("run", ""))
    for option in ("--max-cost-ratio", "--max-quality-drop", "--task", "--data", "--json"):
        assert option in gate["run"]
    assert "exit $code" in gate["run"]  # the gate's exit status decides the job
    assert workflow[True]["pull_request"]  # YAML 1.1 reads the `on:` key as True
