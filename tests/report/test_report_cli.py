"""``frugal report`` and the report.html ``frugal optimize`` writes, opened in real Chromium.

A real (short) search, run through the library, on a tiny real encoder (``tinymodels``: a
seeded 2-block BERT with MiniLM's tokenizer). What the report shows is generic, so the model
is tiny.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tinymodels import tiny_bert

ROWS = 60


def frugal(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRUGAL_HOME": str(home), "FRUGAL_CONFIG": str(home / "none.toml"),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    env.pop("FRUGAL_LEDGER", None)
    return subprocess.run([sys.executable, "-m", "frugalml", *args], capture_output=True,
                          text=True, env=env, timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("search")
    home = root / "home"
    data = root / "sts.tsv"
    lines = (shared_data / "sts-b" / "sts-dev.csv").read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(lines[:ROWS]) + "\n", encoding="utf-8")
    model = tiny_bert(root / "tiny", layers=2)
    ledger = f"sqlite:///{root / 'ledger.db'}"
    out = root / "out"
    from frugalml.passes import OnnxExport, QuantizeDynamic
    from frugalml.report.markdown import optimize  # the search + its reports

    # the original, two converted variants and no runtime variants: a chart with a front,
    # few enough candidates for a 2-core CI machine
    optimize(str(model), "similarity", str(data), tiers={"convert": [
        (OnnxExport(), QuantizeDynamic()), (OnnxExport(),)]}, runtime_variants=0,
        max_quality_drop=100.0, repeats=1, out=out, ledger=ledger)  # fmt: skip
    entries = json.loads((out / "candidates.json").read_text())["candidates"]
    return {"root": root, "home": home, "out": out, "ledger": ledger, "entries": entries}


def _expect(entries: list[dict[str, Any]]) -> tuple[int, int]:
    """(points in the chart, rows in the table) the report must show."""
    plotted = [e for e in entries if e["status"] == "ok" and e.get("cost_usd_per_1m")]
    return len(plotted), len(entries)


@pytest.mark.browser
def test_optimize_writes_a_report_that_renders(search: dict[str, Any], chromium) -> None:  # type: ignore[no-untyped-def]
    html = search["out"] / "report.html"
    assert html.exists()
    points, rows = _expect(search["entries"])
    assert (points, rows) == (3, 3)  # the original and two variants
    facts = chromium.probe(html)
    assert len(facts["points"]) == points
    assert len(facts["rows"]) == rows
    kinds = [p["kind"] for p in facts["points"]]
    assert kinds.count("baseline") == 1
    assert kinds.count("chosen") == sum(bool(e.get("chosen")) for e in search["entries"])
    assert facts["front"] == 1 and facts["scripts_with_src"] == 0 and facts["links"] == 0
    svg = facts["svg"]
    for p in facts["points"]:
        b = p["box"]
        assert svg["x"] <= b["x"] and b["x"] + b["w"] <= svg["x"] + svg["w"]
        assert svg["y"] <= b["y"] and b["y"] + b["h"] <= svg["y"] + svg["h"]
    png = chromium.screenshot(html, search["root"] / "optimize-report.png")
    width, height, distinct = chromium.png_facts(png)
    assert (width, height) == (1280, 1800) and distinct > 50


@pytest.mark.browser
def test_report_from_the_ledger_and_from_the_folder(search: dict[str, Any], chromium) -> None:  # type: ignore[no-untyped-def]
    run_id = json.loads(frugal("runs", "--kind", "optimize", "--json", "--ledger",
                               search["ledger"], home=search["home"]).stdout)[0]["id"]  # fmt: skip
    points, rows = _expect(search["entries"])
    for source in (run_id[:8], str(search["out"]), None):
        out = search["root"] / f"report-{source and Path(source).name}.html"
        args = ["report", *([source] if source else []), "--out", str(out), "--ledger",
                search["ledger"], "--json"]  # fmt: skip
        done = frugal(*args, home=search["home"])
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["points"] == rows
        facts = chromium.probe(out)
        assert (len(facts["points"]), len(facts["rows"])) == (points, rows)
        text = out.read_text(encoding="utf-8")
        assert "Hardware." in text and ("Estimate" in text or "reading" in text)
        if any(e.get("chosen") for e in search["entries"]):
            assert "Cost-delta statement" in text and "95% CI" in text


def test_report_bad_input_exits_2(search: dict[str, Any], tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    cases = [
        (["report", "--ledger", empty], "no optimize run"),
        (["report", str(tmp_path), "--ledger", empty], "not a `frugal optimize` output"),
        (["report", "ffff0000", "--ledger", search["ledger"]], "not a file"),
        (["report", str(search["out"]), "--out", "/proc/nope/r.html", "--ledger",
          search["ledger"]], "cannot write the report"),
    ]  # fmt: skip
    for args, needle in cases:
        done = frugal(*args, home=search["home"])
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert needle in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_gate_on_the_search_output(search: dict[str, Any]) -> None:
    """The chosen candidate of the folder against the original's candidate run."""
    entries = search["entries"]
    if not any(e.get("chosen") for e in entries):
        pytest.skip("the short search chose nothing on this machine")
    base = next(e for e in entries if e["tier"] == "baseline")["run_id"]
    done = frugal("gate", base, str(search["out"]), "--max-cost-ratio", "1.0",
                  "--max-quality-drop", "100", "--ledger", search["ledger"], "--json",
                  home=search["home"])  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout)
    assert out["statement"]["quality_ci"] is not None  # per-row outputs found in OUT/.work
    assert out["statement"]["candidate"]["training"]["kind"] == "candidate"
