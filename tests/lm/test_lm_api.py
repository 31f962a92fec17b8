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
    ok = cli("gate", a, b, "--max-cost-ratio", "1000", "--max-quality-drop", "1000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    no = cli("gate", a, b, "--max-cost-ratio", "1e-9", "--max-quality-drop", "1000")
    assert no.returncode == 1, no.stdout + no.stderr


def test_compare_and_gate_measure_two_causal_lms_now(
    tiny: Path, text: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    from frugalml.passes import WeightOnlyQuant, apply
    from frugalml.passes.persist import save

    q4 = save(apply(frugalml.load(tiny), [WeightOnlyQuant(bits=4, group_size=32)]), tmp_path / "q4")
    lm_args = ["--task", "perplexity", "--data", str(text), "--rounds", "2", "--window", "32",
               "--windows", "2", "--new-tokens", "8"]  # fmt: skip
    cmp = cli("compare", str(tiny), str(q4), *lm_args, "--json")
    assert cmp.returncode == 0, cmp.stderr
    st = json.loads(cmp.stdout)
    assert st["metric"] == "perplexity" and st["higher_is_better"] is False and st["paired"]
    # the qualities are the perplexities `frugalml.evaluate` measures of each model alone
    alone = [
        frugalml.evaluate(str(m), "perplexity", text, repeats=1, task_options=SMALL).quality
        for m in (tiny, q4)
    ]
    assert [st["baseline"]["quality"], st["candidate"]["quality"]] == pytest.approx(alone)
    assert st["quality_drop_pct"] == pytest.approx(100 * (alone[1] / alone[0] - 1))
    assert "per 1M output tokens" in st["paragraph"]
    # each side's cost is the median of its recorded rounds' $ per 1M output tokens
    from frugalml.ledger import Ledger

    with Ledger() as book:
        runs = [book.get(r) for r in st["recorded_run_ids"]]
    for side, run in zip((st["baseline"], st["candidate"]), runs, strict=True):
        rounds = run.params["per_round"]["cost_usd_per_1m"]
        assert len(rounds) == 2 and side["cost_usd_per_1m"] == pytest.approx(
            sorted(rounds)[0] / 2 + sorted(rounds)[1] / 2
        )
        assert run.params["eval"]["cost_usd_per_1m_output_tokens"] == pytest.approx(
            side["cost_usd_per_1m"]
        )
    # the candidate's fidelity to the baseline, measured and stated
    fid = runs[1].params["fidelity"]
    assert fid["mean_kl"] > 0 and 0 <= fid["top1_agreement"] <= 1
    assert any(f"mean KL {fid['mean_kl']:.4f}" in n for n in st["notes"])
    assert "fidelity" not in runs[0].params
    # the gate judges perplexity's drop in percent: a bound just under the measured drop fails
    worse, better = (q4, tiny) if alone[1] > alone[0] else (tiny, q4)
    pct = 100 * (max(alone) / min(alone) - 1)
    args = ["gate", str(better), str(worse), *lm_args, "--max-cost-ratio", "1000"]
    no = cli(*args, "--max-quality-drop", f"{pct * 0.9:.6f}")
    assert no.returncode == 1, no.stdout + no.stderr
    assert "FAIL  quality drop" in no.stdout and "% (relative)" in no.stdout
    assert "$ per 1M output tokens" in no.stdout
    ok = cli(*args, "--max-quality-drop", f"{pct * 1.1 + 1e-6:.6f}")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_compare_refuses_a_causal_lm_against_an_encoder(tiny: Path, text: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("compare", "minilm", str(tiny), "--task", "fidelity", "--data", str(text))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "not a causal language model" in r.stderr
