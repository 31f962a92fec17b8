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
    """The bundled MiniLM, whose int8 variants run 2-3x faster than fp32 on a CPU: a
    cheaper candidate within the bound exists whatever the machine's load (the tiny test
    model is too small for int8 to be reliably faster)."""
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
        "onnx_export,quantize_dynamic",
        "--max-quality-drop",
        "10",
        "--repeats",
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
    assert json.loads((out / "candidates.json").read_text())[0]["id"] == "c00"
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
    assert json.loads(again.stdout)["quality"] == pytest.approx(data["best"]["quality"], abs=1e-3)


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
    cands = {c["label"]: c for c in json.loads((out / "candidates.json").read_text())}
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
    p = _bad(cli, "eval", str(tmp_path / "nope"), "--task", "fidelity", "--data", str(texts))
    assert "model not found" in p.stderr
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "quantum-transformer"}))
    (odd / "model.safetensors").write_bytes(b"")
    p = _bad(
        cli,
        "optimize",
        str(odd),
        "--task",
        "fidelity",
        "--data",
        str(texts),
        "--out",
        str(tmp_path / "o1"),
    )
    assert "unsupported architecture 'quantum-transformer'" in p.stderr
    sst = shared_data / "sst2" / "stsa.binary.dev"
    p = _bad(
        cli,
        "optimize",
        str(tiny),
        "--task",
        "similarity",
        "--data",
        str(sst),
        "--out",
        str(tmp_path / "o2"),
    )
    assert "no second sentence" in p.stderr
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes("text\nhello there\n".encode("utf-16"))
    p = _bad(cli, "eval", str(tiny), "--task", "fidelity", "--data", str(utf16))
    assert "UTF-16" in p.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    p = _bad(
        cli,
        "optimize",
        str(tiny),
        "--task",
        "fidelity",
        "--data",
        str(empty),
        "--out",
        str(tmp_path / "o3"),
    )
    assert "no data rows" in p.stderr
    p = _bad(
        cli,
        "optimize",
        str(tiny),
        "--task",
        "fidelity",
        "--data",
        str(texts),
        "--out",
        str(tmp_path / "o4"),
        "--passes",
        "quantum_pass",
    )
    assert "unknown pass" in p.stderr
    p = _bad(cli, "eval", str(tiny), "--task", "translation", "--data", str(texts))
    assert "unknown task" in p.stderr


@pytest.mark.slow
def test_demo_runs_on_the_bundled_model(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    proc = cli(
        "demo", "--out", str(out), "--sentences", "40", "--budget-minutes", "0.5", timeout=900
    )
    _no_traceback(proc)
    assert proc.returncode in (0, 2), proc.stderr
    assert f"report: {out / 'report.html'}" in proc.stdout and (out / "report.md").exists()
    assert (out / "report.html").exists()
    rows = (out / "demo-data.jsonl").read_text().splitlines()
    assert len(rows) == 40 and all(json.loads(r)["text"] for r in rows)
    cands = json.loads((out / "candidates.json").read_text())
    assert cands[0]["label"] == "baseline (original)" and cands[0]["quality"] > 99.99
