"""A causal LM through the library's verbs (``frugalml.evaluate`` / ``frugalml.optimize``) and
through what proves a cut afterwards: ``frugal report``, ``compare`` and ``gate`` on its runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tinylm import tiny_llama

import frugalml
from frugalml.errors import BadInput

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wikitext-2" / "valid.txt"
SMALL = {"window": 32, "windows": 2, "new_tokens": 8}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("lm") / "tiny", context=64)


@pytest.fixture
def text(tmp_path: Path) -> Path:
    if not WIKI.is_file():  # pragma: no cover - the shared data is absent
        pytest.skip(f"real text not found at {WIKI}")
    path = tmp_path / "text.txt"
    path.write_text(WIKI.read_text(encoding="utf-8")[:6000], encoding="utf-8")
    return path


def test_frugalml_evaluate_measures_a_causal_lm_per_token(tiny: Path, text: Path) -> None:
    r = frugalml.evaluate(str(tiny), "perplexity", text, repeats=1, task_options=SMALL)
    assert type(r).__name__ == "LMEvalResult"
    assert r.metric == "perplexity" and r.higher_is_better is False
    assert r.task_figures == {"window": 32, "stride": 32, "windows": 2}
    assert r.new_tokens == 8 and r.decode_tokens_per_s > 0
    assert r.cost_usd_per_1m == r.cost_usd_per_1m_output_tokens
    # documents given as a Python list are text too
    docs = [line for line in text.read_text(encoding="utf-8").splitlines() if line.strip()]
    again = frugalml.evaluate(
        frugalml.load(tiny), "perplexity", docs, repeats=1, task_options=SMALL
    )
    assert again.metric == "perplexity" and again.rows == 2


def test_lm_settings_given_with_an_encoder_are_refused(text: Path) -> None:
    with pytest.raises(BadInput, match="causal-LM tasks"):
        frugalml.evaluate("minilm", "fidelity", text, task_options={"window": 8})


def test_optimize_report_compare_and_gate_on_a_causal_lm(
    tiny: Path, text: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    res = frugalml.optimize(
        str(tiny), "perplexity", text, out=out, passes=["weight_only_quant"], repeats=1,
        max_quality_drop=50, task_options=SMALL,
    )  # fmt: skip
    assert res.candidates[0]["label"] == "baseline (original)"
    assert {c["label"] for c in res.candidates} >= {"weight_only_quant"}
    assert (out / "report.md").read_text().startswith("# frugal optimize: causal LM")
    assert (out / "report.html").exists() and not res.notes  # every report writer worked

    # frugal report with no source: the newest optimize run of the ledger names its files
    rep = cli("report", "--out", str(tmp_path / "r.html"), "--json")
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["points"] == len(res.candidates)

    # eval runs of the original and an int8 variant: compare and gate judge them from the ledger
    from frugalml.passes import WeightOnlyQuant, apply
    from frugalml.passes.persist import save

    save(apply(frugalml.load(tiny), [WeightOnlyQuant(bits=8)]), tmp_path / "q8")
    runs = []
    for model in (tiny, tmp_path / "q8"):
        r = cli(
            "eval", str(model), "--task", "perplexity", "--data", str(text), "--json",
            "--rounds", "1", "--window", "32", "--windows", "2", "--new-tokens", "8",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout))
    a, b = (r["run_id"] for r in runs)
    cmp = cli("compare", a, b, "--json")
    assert cmp.returncode == 0, cmp.stderr
    st = json.loads(cmp.stdout)
    assert st["metric"] == "perplexity" and st["higher_is_better"] is False
    # lower is better: the drop is how much the candidate's perplexity rose
    assert st["quality_drop"] == pytest.approx(runs[1]["quality"] - runs[0]["quality"])
    expected_cost = (
        runs[1]["cost_usd_per_1m_output_tokens"] / runs[0]["cost_usd_per_1m_output_tokens"]
    )
    assert st["ratios"]["cost"] == pytest.approx(expected_cost)
    assert "per 1M output tokens" in st["paragraph"]  # an LM's cost counts tokens, not requests
    # measured now (--task/--data) is not done for LMs yet: one line that says what to do
    fresh = cli("compare", str(tiny), str(tmp_path / "q8"), "--task", "perplexity", "--data",
                str(text))  # fmt: skip
    assert fresh.returncode == 2 and len(fresh.stderr.strip().splitlines()) == 1, fresh.stderr
    assert "from their eval runs" in fresh.stderr
    ok = cli("gate", a, b, "--max-cost-ratio", "1000", "--max-quality-drop", "1000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    no = cli("gate", a, b, "--max-cost-ratio", "1e-9", "--max-quality-drop", "1000")
    assert no.returncode == 1, no.stdout + no.stderr
