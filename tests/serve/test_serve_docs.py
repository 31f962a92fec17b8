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


def test_benchmark_table_quotes_the_committed_json() -> None:
    result = json.loads(RESULT.read_text(encoding="utf-8"))
    text = DOC.read_text(encoding="utf-8")
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r"^\| `([\w-]+)` \|.*$", text, re.MULTILINE)
    }
    measured = [a for a in result["arms"] if "rates" in a]
    assert measured, "the committed JSON has no measured arm"
    for arm in measured:
        row = rows[arm["arm"]]
        assert f"{arm['sustained_rps']:.2f}" in row
        run = arm["server_run"]
        for key in ("usd_per_1k_requests_active", "usd_per_1k_requests_amortized"):
            assert f"{run[key] * 1000:.3f}" in row  # quoted in $ per 1M requests
        assert f"{run['busy_share']:.2f}" in row
    assert f"{result['dynamic_over_batch1']}" in text
