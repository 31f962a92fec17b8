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

from frugalml.ledger import Ledger
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
    for width in (1400, 800):
        facts = chromium.probe(html, width=width)
        assert facts["page"]["scroll"] <= facts["page"]["client"], (width, facts["page"])
        for b in facts["boxes"]:  # nothing behind a horizontal scroll
            assert b["scroll"] <= b["client"] + 1, (width, b)
        assert len(facts["points"]) == points
        assert len(facts["rows"]) == rows
        kinds = [p["kind"] for p in facts["points"]]
        assert kinds.count("baseline") == 1
        assert kinds.count("chosen") == sum(bool(e.get("chosen")) for e in search["entries"])
        assert facts["front"] == 1 and facts["scripts_with_src"] == 0 and facts["links"] == 0
        # optimize's --max-quality-drop (100 points here): named, off the chart, not a line
        # that would squash every point into a strip
        assert facts["bound_label"] is not None and facts["bound"] is None
        labels = [lab["text"] for lab in facts["bar_labels"]]
        assert len(set(labels)) == len(labels) == points
        svg = facts["svg"]
        for p in facts["points"]:
            b = p["box"]
            assert svg["x"] <= b["x"] and b["x"] + b["w"] <= svg["x"] + svg["w"]
            assert svg["y"] <= b["y"] and b["y"] + b["h"] <= svg["y"] + svg["h"]
        png = chromium.screenshot(
            html, search["root"] / f"optimize-report-{width}.png", size=(width, 2600)
        )
        w, _h, distinct = chromium.png_facts(png)
        assert w == width and distinct > 50
        if os.environ.get("FRUGAL_SCREENSHOTS"):
            keep = Path(os.environ["FRUGAL_SCREENSHOTS"])
            keep.mkdir(parents=True, exist_ok=True)
            (keep / png.name).write_bytes(png.read_bytes())


def test_report_shows_why_the_search_stopped(search: dict[str, Any], tmp_path: Path) -> None:
    """A candidates.json that says the budget ran out, with candidates left untried."""
    folder = tmp_path / "out"
    folder.mkdir()
    entries = search["entries"]
    (folder / "candidates.json").write_text(
        json.dumps({"candidates": entries, "stop_reason": "budget", "untried": 8,
                    "max_quality_drop": 1.5}),
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "r.html"
    done = frugal("report", str(folder), "--out", str(out), "--ledger", search["ledger"],
                  home=search["home"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert (
        "The search stopped: the time budget ran out before every candidate was tried; 8 "
        "candidates not tried." in text
    )
    assert "quality bound: 1.50 points below the original" in text
    for e in entries:  # every candidate named by its id, as in candidates.json
        assert f"<b>{e['id']}</b>" in text


def test_one_mapping_from_a_recorded_evaluation_to_a_side() -> None:
    import dataclasses

    from frugalml.report import sources
    from frugalml.report.statement import Side

    ev = {"rows": 7, "throughput_per_s": 10.0, "co2_g_per_1m": 2000.0, "size_bytes": 5}
    figures = sources.figures_of(ev)
    assert figures["n_items"] == 7 and figures["co2_g_per_1k"] == 2.0
    assert figures["size_bytes"] == 5 and figures["latency_ms_p50"] is None
    # every serving figure of a Side comes through this one mapping
    who = {"name", "source", "task", "metric", "higher_is_better", "quality", "run_id", "data",
           "training", "items_path", "group", "data_sha256", "per_round"}  # fmt: skip
    assert set(figures) == {f.name for f in dataclasses.fields(Side)} - who
    side = sources.side_from_entry({"id": "c01", "quality": 80.0, **ev}, source="t")
    assert (side.n_items, side.co2_g_per_1k, side.throughput_per_s) == (7, 2.0, 10.0)


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
    # producing the chosen model cost the whole search (its lineage), not its candidate run
    training = out["statement"]["candidate"]["training"]
    assert training["kind"] == "optimize" and "the whole search" in training["what"]
    chosen = next(e for e in entries if e.get("chosen"))
    with Ledger(search["ledger"]) as book:
        own = book.get(chosen["run_id"]).usage
    assert own is not None and training["cost_usd"] > own.cost_usd


# ---- units and words (issue 12): one formatter per unit, one name per option ---------------
def _commands() -> dict[str, Any]:
    """Every command of the CLI by its full name (``data audit``), as Click sees it."""
    import typer

    from frugalml.cli import app

    out: dict[str, Any] = {}

    def walk(cmd: Any, prefix: str) -> None:
        if hasattr(cmd, "commands"):  # a group
            for name, sub in cmd.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            out[prefix] = cmd

    walk(typer.main.get_command(app), "")
    return out


def _option(cmd: Any, name: str) -> Any:
    return next((p for p in cmd.params if name in getattr(p, "opts", ())), None)


def _type_name(option: Any) -> str:
    """The declared type of an option (Typer's descriptor, or Click's type)."""
    desc = getattr(option, "type_descriptor", None)
    if desc is not None:
        return getattr(desc.annotation, "__name__", str(desc.annotation))
    return type(option.type).__name__


def test_data_is_a_path_everywhere() -> None:
    with_data = {n: _option(c, "--data") for n, c in _commands().items()}
    with_data = {n: o for n, o in with_data.items() if o is not None}
    assert {"eval", "optimize", "compare", "gate", "finetune", "tune"} <= set(with_data)
    assert {n for n, o in with_data.items() if _type_name(o) != "Path"} == set()


def test_rounds_is_the_one_name_and_repeats_a_hidden_alias() -> None:
    cmds = _commands()
    for name in ("eval", "optimize", "compare", "gate"):
        assert _option(cmds[name], "--rounds") is not None, name
        old = _option(cmds[name], "--repeats")
        assert old is None or old.hidden, name
    from frugalml.cli.app import renamed

    assert renamed(None, 5, "--repeats", "--rounds") == 5
    assert renamed(2, 5, "--repeats", "--rounds") == 2  # the old name, when given, wins


def test_help_texts_say_what_the_option_does() -> None:
    cmds = _commands()
    drop = _option(cmds["demo"], "--max-quality-drop")
    assert drop.help and "point" in drop.help
    seed = _option(cmds["eval"], "--seed").help.lower()
    for word in ("calibration", "distillation", "search"):  # optimize's work, not eval's
        assert word not in seed


def test_one_formatter_per_unit() -> None:
    from frugalml import units
    from frugalml.cli import format as fmt
    from frugalml.cli import optimize_cmds
    from frugalml.report import markdown

    for dollars in (fmt.usd, markdown._usd, optimize_cmds._fmt_usd):
        assert dollars is units.usd
    assert fmt.nbytes is units.nbytes
    assert units.nbytes(90_852_864) == "86.6 MiB"  # 90852864 / 2**20 = 86.64
    assert units.usd(0.0358379) == "$0.0358" and units.usd(1234.5) == "$1,234"
    assert units.versus(0.46) == "0.46× the cost, 54% less"
    assert units.versus(1.3, "latency") == "1.30× the latency, 30% more"


def test_report_md_speaks_mib_and_one_ratio_wording(search: dict[str, Any]) -> None:
    text = (search["out"] / "report.md").read_text(encoding="utf-8")
    assert "MiB" in text and " MB " not in text and " MB |" not in text
    assert "x cheaper" not in text
    if any(e.get("chosen") for e in search["entries"]):
        assert "× the cost, " in text
