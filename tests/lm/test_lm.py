"""Causal LMs: the runtime, the LM tasks, the measurement, and bad input (tiny random Llama)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tinylm import tiny_llama

from frugalml.errors import BadInput, CandidateFailed

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wikitext-2" / "valid.txt"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("lm") / "tiny", context=64)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("lm") / "other", context=64, seed=1, tied=False)


@pytest.fixture
def text(tmp_path: Path) -> Path:
    if WIKI.is_file():
        body = WIKI.read_text(encoding="utf-8")[:6000]
    else:  # pragma: no cover - the shared data is absent
        pytest.skip(f"real text not found at {WIKI}")
    path = tmp_path / "text.txt"
    path.write_text(body, encoding="utf-8")
    return path


def test_loads_a_causal_lm_folder_and_saves_it_back(tiny: Path, tmp_path: Path) -> None:
    from frugalml.passes.persist import load, save

    model = load(tiny)
    assert (model.engine, model.output, model.arch) == ("causal_lm", "lm", "llama")
    ids = np.arange(5, 25, dtype=np.int64)[None, :]
    before = model.engine_runtime.logits(model, ids)
    out = save(model, tmp_path / "saved")
    again = load(out)
    assert again.output == "lm" and again.engine == "causal_lm"
    assert np.allclose(before.numpy(), again.engine_runtime.logits(again, ids).numpy(), atol=1e-5)


def test_perplexity_matches_transformers_own_loss(tiny: Path, text: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from frugalml.passes.persist import load
    from frugalml.search.evaluate_lm import as_text
    from frugalml.tasks.perplexity import Perplexity

    model = load(tiny)
    task = Perplexity(window=32, windows=3)
    items, figures = task.score(model, as_text(text))
    assert figures == {"window": 32, "stride": 32, "windows": 3}
    # independent: transformers' own shifted cross-entropy over the same three windows
    ids = model.tokenizer(text.read_text()[:4000], add_special_tokens=False)["input_ids"][:96]
    ref = AutoModelForCausalLM.from_pretrained(str(tiny)).eval()
    losses = []
    with torch.no_grad():
        for i in range(3):
            x = torch.tensor([ids[i * 32 : (i + 1) * 32]])
            losses.append(float(ref(input_ids=x, labels=x).loss))
    assert task.quality_on(items) == pytest.approx(math.exp(float(np.mean(losses))), rel=1e-4)
    assert task.quality_on(items, [0]) == pytest.approx(math.exp(losses[0]), rel=1e-4)
    assert not task.higher_is_better


def test_fidelity_of_the_original_is_perfect_and_of_another_model_is_not(
    tiny: Path, other: Path, text: Path
) -> None:
    from frugalml.passes.persist import load
    from frugalml.search.evaluate_lm import as_text
    from frugalml.tasks.lm_fidelity import LMFidelity

    a, b = load(tiny), load(other)
    task = LMFidelity(window=32, windows=2, new_tokens=8)
    items, fig = task.score(a, as_text(text), a)
    assert task.quality_on(items) == 100.0 and fig["mean_kl"] == pytest.approx(0, abs=1e-6)
    assert fig["flips"] == 0.0
    items, fig = task.score(b, as_text(text), a)
    assert fig["mean_kl"] > 0.01 and task.quality_on(items) < 100.0
    assert fig["flips"] == 1.0  # an untied random lm_head continues differently


def test_eval_json_has_the_lm_keys(tiny: Path, text: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("eval", str(tiny), "--task", "perplexity", "--data", str(text), "--json",
            "--repeats", "1", "--windows", "3", "--new-tokens", "8")  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in (
        "prefill_tokens_per_s", "decode_tokens_per_s", "decode_tokens_per_s_batch",
        "time_to_first_token_ms_p50", "time_to_first_token_ms_p99", "inter_token_ms_p50",
        "inter_token_ms_p99", "cost_usd_per_1m_input_tokens", "cost_usd_per_1m_output_tokens",
        "energy_j_per_1k_tokens", "energy_source", "bytes_per_token",
        "memory_bandwidth_bytes_per_s", "mbu",
    ):  # fmt: skip
        assert key in d and d[key] is not None, key
    assert d["metric"] == "perplexity" and d["higher_is_better"] is False
    # the default 512-token window, capped by the tiny model's context; 3 windows as asked
    assert d["task_figures"] == {"window": 64, "stride": 64, "windows": 3}
    assert d["new_tokens"] == 8 and d["texts_timed"] == 2 * 8  # 2 prompts x 8 tokens, 1 pass
    assert d["bytes_per_token"] > d["weights_bytes"] > 0
    assert 0 < d["mbu"] <= 1
    assert (
        d["energy_source"] in ("estimate", "rapl", "nvml", "reading", "mixed") or d["energy_source"]
    )


def test_generation_task_on_jsonl_prompts(tiny: Path, tmp_path: Path) -> None:
    from frugalml.passes.persist import load
    from frugalml.search.evaluate_lm import evaluate_lm

    data = tmp_path / "prompts.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in ("The lobster is", "Paris is the"))
    )
    r = evaluate_lm(load(tiny), "generation", data, repeats=1)
    assert r.task == "generation" and r.quality == 100.0 and r.rows == 2
    assert r.decode_tokens_per_s > 0 and r.new_tokens == 32


def test_an_encoder_given_to_perplexity_is_one_line(tmp_path: Path, text: Path, cli) -> None:  # type: ignore[no-untyped-def]
    from tinymodels import tiny_bert

    enc = tiny_bert(tmp_path / "bert")
    r = cli("eval", str(enc), "--task", "perplexity", "--data", str(text))
    assert r.returncode == 2
    assert "needs a causal language model" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # the error, nothing else


def test_text_shorter_than_one_window_is_one_line(tiny: Path, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    short = tmp_path / "short.txt"
    short.write_text("Homarus gammarus is a lobster .\n")
    r = cli("eval", str(tiny), "--task", "perplexity", "--data", str(short), "--window", "48")
    assert r.returncode == 2, r.stderr
    assert "shorter than one 48-token window" in r.stderr and "Traceback" not in r.stderr


def test_a_gguf_transformers_cannot_read_is_one_line(tmp_path: Path, text: Path, cli) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    r = cli("eval", str(bad), "--task", "perplexity", "--data", str(text))
    assert r.returncode == 2, r.stderr
    assert "cannot" in r.stderr and "Traceback" not in r.stderr


def test_roofline_refuses_a_decode_rate_above_the_bandwidth() -> None:
    from frugalml.measure.bandwidth import check_roofline, memory_bandwidth

    assert check_roofline(5e9, 10e9, "x") == pytest.approx(0.5)
    with pytest.raises(CandidateFailed, match="measurement bug"):
        check_roofline(12e9, 10e9, "decoding at 99 tokens/s")
    with pytest.raises(CandidateFailed, match="measurement bug"):  # 538 MB a token: DRAM
        check_roofline(12e9, 10e9, "decoding at 22 tokens/s", bytes_per_token=538e6)
    # 1 MB a token may stay in the CPU caches, faster than the probe's memory: reported
    assert check_roofline(12e9, 10e9, "decoding at 12000 tokens/s", 1e6) == pytest.approx(1.2)
    assert memory_bandwidth("cpu") > 1e8  # a real copy of 128 MiB, any machine moves 100 MB/s


def test_prompt_file_without_prompts_is_refused(tmp_path: Path) -> None:
    from frugalml.data.lm_text import read_text

    bad = tmp_path / "p.jsonl"
    bad.write_text('{"question": "x"}\n')
    with pytest.raises(BadInput, match="no 'prompt' or 'text'"):
        read_text(bad)


@pytest.mark.slow
def test_smollm2_perplexity_on_wikitext(text: Path) -> None:
    from frugalml.passes.persist import load
    from frugalml.search.evaluate_lm import evaluate_lm

    model = load("smollm2")
    assert model.output == "lm" and model.base == "smollm2" and model.arch == "llama"
    r = evaluate_lm(
        model, "perplexity", text, repeats=1, new_tokens=8, prompts=1,
        task_options={"window": 128, "windows": 2},
    )  # fmt: skip
    # a 135M instruct model on encyclopedic text: far better than chance (vocab 49152)
    assert 5 < r.quality < 200, r.quality
    assert r.task_figures["window"] == 128 and 0 < r.mbu <= 1


@pytest.mark.slow
def test_demo_llm_optimizes_smollm2_on_stdlib_prose(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    r = cli("demo", "--llm", "--budget-minutes", "0.1", "--sentences", "80", "--out", str(out),
            "--json")  # fmt: skip
    # the budget ends the search after the baseline (exit 3: stopped before a choice)
    assert r.returncode == 3, r.stderr
    payload = json.loads(r.stdout)
    base = payload["baseline"]
    assert base["task"] == "perplexity" and base["task_figures"]["window"] == 128
    assert 1 < base["quality"] < 1e4 and 0 < base["mbu"] <= 1
    assert (out / "demo-text.txt").exists() and (out / "report.md").exists()


def test_generation_against_another_model_counts_changed_continuations(
    tiny: Path, other: Path, tmp_path: Path
) -> None:
    from frugalml.data.lm_text import read_text
    from frugalml.passes.persist import load
    from frugalml.tasks.generation import Generation

    data = tmp_path / "prompts.txt"
    data.write_text("The lobster is blue\nParis is the capital of\nA film about\n")
    task = Generation(new_tokens=6)
    items, figures = task.score(load(other), read_text(data), load(tiny))
    assert figures == {"prompts": 3, "new_tokens": 6}
    assert task.quality_on(items) == 0.0  # an untied random lm_head continues differently


def test_a_decode_step_reads_one_row_of_an_untied_input_embedding(tiny: Path, other: Path) -> None:
    from frugalml.models import load

    tied, untied = load(tiny), load(other)
    fp32 = 4
    every = sum(p.numel() for p in tied.module.parameters()) * fp32  # the tied table once
    assert tied.engine_runtime.weights_bytes(tied) == every
    table = untied.module.get_input_embeddings().weight
    rest = sum(p.numel() for p in untied.module.parameters()) * fp32 - table.numel() * fp32
    assert untied.engine_runtime.weights_bytes(untied) == rest + table.shape[1] * fp32
