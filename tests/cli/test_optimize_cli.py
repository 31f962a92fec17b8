"""The real command line: eval, optimize, demo — happy paths, bad input, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frugalml.data import stdlib_sentences
from frugalml.search.evaluate import EVAL_KEYS
from tinymodels import tiny_bert, write_jsonl


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "m")


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "texts.jsonl"
    return write_jsonl(path, [{"text": t} for t in stdlib_sentences(48, seed=4)])


def _no_traceback(proc) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


def test_eval_json_has_the_documented_keys(cli, tiny: Path, texts: Path) -> None:  # type: ignore[no-untyped-def]
    proc = cli(
        "eval",
        str(tiny),
        "--task",
        "fidelity",
        "--data",
        str(texts),
        "--json",
        "--repeats",
        "1",
        "--instance",
        "aws/c7i.large",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert list(data)[: len(EVAL_KEYS)] == list(EVAL_KEYS)
    assert data["quality"] == pytest.approx(100.0, abs=1e-3) and data["threads"] >= 1
    assert data["instance"] == "aws/c7i.large" and data["cost_usd_per_1m"] > 0
    runs = json.loads(cli("runs", "--json", "--kind", "eval").stdout)
    assert runs and runs[0]["quality"]["agreement"] == pytest.approx(data["quality"])


def test_optimize_writes_best_candidates_and_report(
    cli,
    texts: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The bundled MiniLM with a bound that admits any quality, and passes that include
    dropping half its blocks on top of ONNX int8 (about 4-5x less work than fp32 on a CPU):
    a candidate cheaper beyond the timing noise exists unless the machine's load changes by
    that much between two evaluations. (int8 alone, ~2x, was not enough margin on a machine
    at load 12; the tiny test model is too small for int8 to be reliably faster at all.)"""
    out = tmp_path / "out"
    proc = cli(
        "optimize",
        "minilm",
        "--task",
        "fidelity",
        "--data",
        str(texts),
        "--out",
        str(out),
        "--passes",
        "layer_drop,onnx_export,quantize_dynamic",
        "--max-quality-drop",
        "100",
        "--rounds",
        "1",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    data = json.loads(proc.stdout)
    assert set(data) >= {"baseline", "best", "pareto", "candidates", "out"}
    assert set(EVAL_KEYS) <= set(data["best"]) and data["best"]["passes"]
    assert {c["status"] for c in data["candidates"]} == {"ok"}
    assert (out / "best" / "frugal.json").exists() and (out / "report.md").exists()
    assert json.loads((out / "candidates.json").read_text())["candidates"][0]["id"] == "c00"
    again = cli(
        "eval",
        str(out / "best"),
        "--task",
        "fidelity",
        "--data",
        str(texts),
        "--json",
        "--repeats",
        "1",
    )
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["split"] == "all" and rerun["rows_scored"] == rerun["rows_total"] == 48
    # the search's figure is reproduced on its select split
    from frugalml.search.evaluate import evaluate

    select = evaluate(out / "best", "fidelity", texts, split="select", repeats=1)
    assert select.quality == pytest.approx(data["best"]["quality"], abs=1e-3)
    assert select.rows_scored == data["rows"]["select"] < 48


def test_unmeetable_bound_and_a_failing_candidate(
    cli,
    tiny: Path,
    texts: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """No candidate within 0 points: exit 2, report and Pareto front still written.

    torch.compile needs a C++ compiler on CPU; with none on PATH that candidate fails alone,
    is recorded with its error, and the search goes on to the next.
    """
    out = tmp_path / "strict"
    proc = cli(
        "optimize",
        str(tiny),
        "--task",
        "fidelity",
        "--data",
        str(texts),
        "--out",
        str(out),
        "--passes",
        "torch_compile,quantize_dynamic",
        "--max-quality-drop",
        "0",
        "--repeats",
        "1",
        "--json",
        env={"PATH": str(tmp_path / "empty-bin")},
    )
    assert proc.returncode == 2, proc.stderr
    _no_traceback(proc)
    assert "no candidate is cheaper than the original within 0" in proc.stderr
    assert (out / "report.md").exists() and "No candidate meets the bound" in (
        out / "report.md"
    ).read_text()
    assert not (out / "best").exists()
    file = json.loads((out / "candidates.json").read_text())
    assert file["stop_reason"] == "completed" and file["untried"] == 0
    cands = {c["label"]: c for c in file["candidates"]}
    assert cands["torch_compile"]["status"] == "failed"
    assert "C++ compiler" in cands["torch_compile"]["error"]
    assert cands["quantize_dynamic"]["status"] == "ok"
    assert cands["quantize_dynamic"]["quality_drop"] > 0
    assert any(c["on_pareto"] for c in cands.values())
    assert json.loads(proc.stdout)["best"] is None
    runs = json.loads(cli("runs", "--json", "--kind", "candidate").stdout)
    assert sorted(r["status"] for r in runs) == ["failed", "finished", "finished"]


def _bad(cli, *args: str):  # type: ignore[no-untyped-def]
    proc = cli(*args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    _no_traceback(proc)
    assert "frugal: error:" in proc.stderr
    return proc


def test_bad_input_gives_one_clear_line(
    cli,
    tiny: Path,
    texts: Path,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    shared_data: Path,
) -> None:
    def optimize(model: str, task: str, data: str, out: str, *more: str):  # type: ignore[no-untyped-def]
        return _bad(cli, "optimize", model, "--task", task, "--data", data, "--out", out, *more)

    p = _bad(cli, "eval", str(tmp_path / "nope"), "--task", "fidelity", "--data", str(texts))
    assert "model not found" in p.stderr
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "quantum-transformer"}))
    (odd / "model.safetensors").write_bytes(b"")
    p = optimize(str(odd), "fidelity", str(texts), str(tmp_path / "o1"))
    assert "unsupported architecture 'quantum-transformer'" in p.stderr
    sst = shared_data / "sst2" / "stsa.binary.dev"
    p = optimize(str(tiny), "similarity", str(sst), str(tmp_path / "o2"))
    assert "no second sentence" in p.stderr
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("text\nhello there\n".encode("utf-16"))
    p = _bad(cli, "eval", str(tiny), "--task", "fidelity", "--data", str(utf16))
    assert "UTF-16" in p.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    p = optimize(str(tiny), "fidelity", str(empty), str(tmp_path / "o3"))
    assert "no data rows" in p.stderr
    p = optimize(
        str(tiny), "fidelity", str(texts), str(tmp_path / "o4"), "--passes", "quantum_pass"
    )
    assert "unknown pass" in p.stderr
    p = optimize(str(tiny), "fidelity", str(texts), str(tmp_path / "o5"), "--final-confidence", "1")
    assert "--final-confidence must be at least 0.5 and below 1" in p.stderr
    assert not (tmp_path / "o5" / ".work").exists()
    p = _bad(cli, "eval", str(tiny), "--task", "translation", "--data", str(texts))
    assert "unknown task" in p.stderr


@pytest.mark.slow
def test_demo_runs_on_the_bundled_model(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    proc = cli(
        "demo", "--out", str(out), "--sentences", "40", "--budget-minutes", "0.5", timeout=900
    )
    _no_traceback(proc)
    assert proc.returncode in (0, 2, 3), proc.stderr  # 3: the budget ran out first
    assert f"report: {out / 'report.html'}" in proc.stdout and (out / "report.md").exists()
    assert (out / "report.html").exists()
    rows = (out / "demo-data.jsonl").read_text().splitlines()
    assert len(rows) == 40 and all(json.loads(r)["text"] for r in rows)
    cands = json.loads((out / "candidates.json").read_text())["candidates"]
    assert cands[0]["label"] == "baseline (original)" and cands[0]["quality"] > 99.99


def test_eval_scores_every_row_unless_the_task_learns(  # type: ignore[no-untyped-def]
    cli, tiny: Path, tmp_path: Path, shared_data: Path
) -> None:
    """Similarity learns nothing from the data: every pair is scored, and the figure is the
    Spearman of the model's own embeddings over all pairs. A probe on a bare encoder must
    learn: the held-out half only, and the output says so. --json gives the run id."""
    import numpy as np
    from scipy.stats import spearmanr

    import frugalml
    from frugalml.data import load_data

    lines = (shared_data / "sts-b" / "sts-dev.csv").read_text(encoding="utf-8").splitlines()
    sts = tmp_path / "sts.tsv"
    sts.write_text("\n".join(lines[:121]) + "\n", encoding="utf-8")
    pairs = load_data(sts)
    proc = cli("eval", str(tiny), "--task", "similarity", "--data", str(sts), "--json",
               "--repeats", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["split"] == "all" and data["rows_scored"] == data["rows_total"] == len(pairs)
    model = frugalml.load(tiny)
    a, b = model.encode(list(pairs.texts)), model.encode(list(pairs.texts2 or ()))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert data["quality"] == pytest.approx(100 * spearmanr(cos, pairs.scores).statistic, abs=0.05)
    shown = cli("show", data["run_id"], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["kind"] == "eval"

    trec = tmp_path / "trec.txt"
    rows = (shared_data / "trec" / "TREC.train.all").read_text(encoding="iso-8859-1")
    trec.write_text("\n".join(rows.splitlines()[:80]) + "\n", encoding="utf-8")
    args = ("eval", str(tiny), "--task", "classification", "--data", str(trec), "--repeats", "1")
    probe = json.loads(cli(*args, "--json").stdout)
    assert probe["split"] == "score" and probe["rows_total"] == 80
    assert 0 < probe["rows_scored"] < 80
    text = cli(*args).stdout
    assert f"{probe['rows_scored']} of 80 rows" in text and "probe" in text


def test_eval_warns_on_a_non_utf8_file_and_names_its_encoding(  # type: ignore[no-untyped-def]
    cli, tiny: Path, tmp_path: Path
) -> None:
    """A Shift-JIS-free but cp1252 file is read as ISO-8859-1: one warning line on stderr and
    the encoding used in --json (it was silent mojibake before)."""
    data = tmp_path / "latin.jsonl"
    rows = [f'{{"text": "caf\u00e9 cr\u00e8me number {i}"}}' for i in range(12)]
    data.write_bytes(("\n".join(rows) + "\n").encode("cp1252"))
    proc = cli("eval", str(tiny), "--task", "fidelity", "--data", str(data), "--json",
               "--rounds", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc)
    warnings = [ln for ln in proc.stderr.splitlines() if "frugal: warning:" in ln]
    assert len(warnings) == 1 and "iso-8859-1" in warnings[0].lower(), proc.stderr
    info = json.loads(proc.stdout)["data"]
    assert info["encoding"] == "iso-8859-1" and info["rows"] == 12
    missing = cli("eval", str(tiny), "--task", "fidelity", "--data", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "--data" in missing.stderr


def test_a_spent_time_budget_has_its_own_exit_code_and_verdict(  # type: ignore[no-untyped-def]
    cli, tiny: Path, texts: Path, tmp_path: Path
) -> None:
    """The original is always evaluated; a budget of 6 ms is spent by then, so every
    candidate is left untried: exit 3, the reason on stderr, in report.md and candidates.json."""
    out = tmp_path / "o"
    proc = cli("optimize", str(tiny), "--task", "fidelity", "--data", str(texts), "--out",
               str(out), "--budget-minutes", "0.0001", "--passes", "quantize_dynamic,onnx_export",
               "--repeats", "1")  # fmt: skip
    _no_traceback(proc)
    assert proc.returncode == 3, proc.stderr
    assert "time budget" in proc.stderr and "no candidate is cheaper" not in proc.stderr
    file = json.loads((out / "candidates.json").read_text())
    assert file["stop_reason"] == "budget" and file["untried"] >= 2
    assert [c["tier"] for c in file["candidates"]] == ["baseline"]
    report = (out / "report.md").read_text()
    assert "time budget ran out" in report and f"{file['untried']} not tried" in report
