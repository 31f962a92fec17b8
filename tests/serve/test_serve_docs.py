"""docs/serve.md matches the code: its options exist, its table quotes the committed JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "serve.md"
RESULT = ROOT / "bench" / "results" / "serve_minilm.json"


def _options(command: str) -> set[str]:
    from frugalml.cli import app

    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    return {opt for p in cmd.params for opt in getattr(p, "opts", [])}


@pytest.mark.parametrize("command", ["serve", "loadtest", "compare", "gate", "report"])
def test_every_option_the_docs_show_exists(command: str) -> None:
    text = DOC.read_text(encoding="utf-8") + (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip().startswith(f"frugal {command} ")]
    assert lines, f"docs show no `frugal {command}` command"
    known = _options(command)
    for line in lines:
        for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", line.split("#")[0]):
            assert opt in known, f"{opt} in `{line.strip()}` is not an option of {command}"


def _serving_section() -> str:
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    start = text.index("## Serving")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_benchmark_table_quotes_the_committed_json() -> None:
    result = json.loads(RESULT.read_text(encoding="utf-8"))
    text = _serving_section()
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w-]+)` \|.*$", text, re.MULTILINE)
    }
    measured = [a for a in result["arms"] if "rates" in a]
    assert measured, "the committed JSON has no measured arm"
    for arm in result["arms"]:
        row = rows[arm["arm"]]  # every arm has its row, skipped and failed ones included
        if "rates" not in arm:
            assert "skipped" in arm or "error" in arm
            continue
        assert f"| {arm['sustained_rps']:.2f} |" in row
        assert f"| {arm['sustained_rps_at_slo2']:.2f} |" in row
        if arm["usd_per_1k_requests_at_slo"] is not None:
            assert f"{arm['usd_per_1k_requests_at_slo'] * 1000:.3f}" in row  # per 1M requests
        if arm.get("overload"):
            over = arm["overload"]
            assert f"{over['rate_rps']:g} → {over['rejected_429']}, {over['errors']}," in row
        if arm.get("server_run"):
            run = arm["server_run"]
            for key in ("usd_per_1k_requests_active", "usd_per_1k_requests_amortized"):
                assert f"{run[key] * 1000:.3f}" in row
    for x in result["load_avg_at_start"] + result["load_avg_at_end"]:
        assert str(x) in text  # the machine's load is stated with the figures


def test_benchmark_targets_are_stated_as_the_json_judges_them() -> None:
    result = json.loads(RESULT.read_text(encoding="utf-8"))
    text = _serving_section()
    words = {True: "**met**", False: "**not met**", None: "not judged"}
    for target in result["targets"].values():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {target['target']} |"))
        assert line.rstrip().endswith(f"| {words[target['met']]} |"), line
