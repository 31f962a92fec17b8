"""ONNX Runtime GenAI: the builder's int4 / fp32 of a causal LM as a runtime and a pass."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from tinylm import tiny_llama

from frugalml.errors import BadInput

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime_genai") is None,
    reason="onnxruntime-genai (frugalml[llm]) not installed",
)
WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wikitext-2" / "valid.txt"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("lm") / "tiny", context=64)


@pytest.fixture(scope="module")
def built(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[type-arg]
    from frugalml.passes import OrtGenAIBuild, PassContext, apply
    from frugalml.passes.persist import load

    base = load(tiny)
    work = tmp_path_factory.mktemp("work")
    return {
        "base": base,
        "fp32": apply(base, OrtGenAIBuild(precision="fp32"), PassContext(work_dir=work)),
        "int4": apply(base, OrtGenAIBuild(precision="int4"), PassContext(work_dir=work)),
    }


def test_the_fp32_build_computes_the_same_logits_and_tokens(built: dict) -> None:  # type: ignore[type-arg]
    base, fp32 = built["base"], built["fp32"]
    assert fp32.engine == "ort_genai" and fp32.output == "lm" and fp32.dtype == "float32"
    assert [p.name for p in fp32.passes] == ["ort_genai_build"]
    ids = np.arange(100, 140, dtype=np.int64)[None, :]
    want = base.engine_runtime.logits(base, ids).numpy()
    got = fp32.engine_runtime.logits(fp32, ids).numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-3 * max(1.0, np.abs(want).max())
    tok_a, _, steps_a = base.engine_runtime.greedy(base, ids, 8)
    tok_b, pre_b, steps_b = fp32.engine_runtime.greedy(fp32, ids, 8)
    assert tok_b.tolist() == tok_a.tolist()  # greedy over GenAI's KV cache: the same tokens
    assert len(steps_b) == len(steps_a) == 7 and pre_b > 0


def test_the_int4_build_is_smaller_and_close(built: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    from frugalml.passes.persist import load, save

    fp32, int4 = built["fp32"], built["int4"]
    assert int4.dtype == "int4"
    assert int4.engine_runtime.weights_bytes(int4) < fp32.engine_runtime.weights_bytes(fp32) / 2
    ids = np.arange(100, 140, dtype=np.int64)[None, :]
    a = fp32.engine_runtime.logits(fp32, ids).numpy()
    b = int4.engine_runtime.logits(int4, ids).numpy()
    assert not np.allclose(a, b)  # quantized: different,
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9  # but the same model
    # the builder's own folder is a causal LM for eval/optimize, by the ort_genai runtime
    from frugalml.models.load import find_weights, is_lm_spec

    assert find_weights(Path(int4.source))[0] == "ort_genai" and is_lm_spec(int4.source)
    # saved and loaded back: the same engine and the same logits
    folder = save(int4, tmp_path / "saved")
    again = load(folder)
    assert again.engine == "ort_genai" and again.passes[0].name == "ort_genai_build"
    assert np.allclose(again.engine_runtime.logits(again, ids).numpy(), b, atol=1e-5)


def test_evaluate_measures_an_ort_genai_model_per_token(built: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    from frugalml.search.evaluate_lm import evaluate_lm

    if not WIKI.is_file():  # pragma: no cover
        pytest.skip("real text not found")
    text = tmp_path / "t.txt"
    text.write_text(WIKI.read_text(encoding="utf-8")[:6000], encoding="utf-8")
    opts = {"window": 32, "windows": 2, "new_tokens": 8}
    base = evaluate_lm(built["base"], "perplexity", text, repeats=1, task_options=opts)
    r = evaluate_lm(built["fp32"], "perplexity", text, repeats=1, task_options=opts)
    assert r.quality == pytest.approx(base.quality, rel=1e-3)  # fp32: the same perplexity
    assert r.decode_tokens_per_s > 0 and r.mbu > 0  # a tiny model may decode from the caches
    assert r.weights_bytes == built["fp32"].engine_runtime.weights_bytes(built["fp32"])


def test_two_models_built_with_one_config_in_one_work_folder_keep_their_own_files(
    tiny: Path, tmp_path: Path
) -> None:
    """An LM search builds every candidate with the same config in one work folder: the first
    build's saved folder must still hold its own weights after the second build."""
    from frugalml.passes import OrtGenAIBuild, PassContext, apply
    from frugalml.passes.persist import load, save

    other = tiny_llama(tmp_path / "other", seed=1, context=64)
    ctx = PassContext(work_dir=tmp_path / "work")
    first = apply(load(tiny), OrtGenAIBuild(precision="fp32"), ctx)
    apply(load(other), OrtGenAIBuild(precision="fp32"), ctx)
    save(first, tmp_path / "saved")
    ids = np.arange(100, 120, dtype=np.int64)[None, :]
    want = load(tiny).engine_runtime.logits(load(tiny), ids).numpy()
    saved = load(tmp_path / "saved")
    got = saved.engine_runtime.logits(saved, ids).numpy()
    assert np.abs(got - want).max() < 1e-3 * max(1.0, np.abs(want).max())


def test_a_folder_ort_genai_cannot_load_is_one_line(tmp_path: Path) -> None:
    from frugalml.models import load

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "genai_config.json").write_text("{}")
    (bad / "model.onnx").write_bytes(b"")
    with pytest.raises(BadInput, match="not an ONNX Runtime GenAI config"):
        load(bad)


def test_optimize_searches_ort_genai_builds_with_their_fidelity(tiny: Path, tmp_path: Path) -> None:
    import frugalml

    if not WIKI.is_file():  # pragma: no cover
        pytest.skip("real text not found")
    text = tmp_path / "t.txt"
    text.write_text(WIKI.read_text(encoding="utf-8")[:6000], encoding="utf-8")
    opts = {"window": 32, "windows": 2, "new_tokens": 8}
    res = frugalml.optimize(
        str(tiny), "perplexity", text, out=tmp_path / "out", passes=["ort_genai_build"],
        repeats=1, max_quality_drop=1000, task_options=opts,
    )  # fmt: skip
    by_label = {c["label"]: c for c in res.candidates}
    for label in ("ort_genai_build", "ort_genai_build(block_size=128)"):
        cand = by_label[label]
        assert cand["status"] == "ok", cand.get("error")
        assert cand["mean_kl"] > 0 and 0 <= cand["flips"] <= 1  # int4: not the original
        assert cand["quality"] != res.baseline["quality"]
    if res.best is not None:  # only builds were tried: one is saved as GenAI files, loads back
        assert frugalml.load(tmp_path / "out" / "best").engine == "ort_genai"


def test_the_builders_options_reach_the_graph(tiny: Path, tmp_path: Path) -> None:
    """Asymmetric blocks (a zero point each) and an int8 lm_head of its own: the builder's
    options as search parameters, which a one-call build never sets."""
    import onnx

    from frugalml.passes import OrtGenAIBuild, PassContext, apply
    from frugalml.passes.persist import load

    cfg = OrtGenAIBuild(precision="int4", symmetric=False, accuracy_level=1, lm_head="int8")
    assert "is_symmetric=false" in cfg.builder_options()
    built = apply(load(tiny), cfg, PassContext(work_dir=tmp_path))
    graph = onnx.load(str(Path(built.source) / "model.onnx"), load_external_data=False).graph
    nodes = [n for n in graph.node if n.op_type == "MatMulNBits"]
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in nodes]
    assert nodes and all(len(n.input) >= 4 and n.input[3] for n in nodes)  # zero points
    assert all(a["accuracy_level"] == 1 for a in attrs)
    head = [a for n, a in zip(nodes, attrs, strict=True) if n.name.startswith("/lm_head/")]
    assert [a["bits"] for a in head] == [8]
    body = [a["bits"] for n, a in zip(nodes, attrs, strict=True) if n.name.startswith("/model/")]
    assert body and set(body) == {4}
    ids = np.arange(100, 130, dtype=np.int64)[None, :]
    assert built.engine_runtime.greedy(built, ids, 4)[0].shape == (1, 4)


def test_bad_builder_options_are_refused() -> None:
    from frugalml.passes import OrtGenAIBuild

    with pytest.raises(BadInput, match="lm_head"):
        OrtGenAIBuild(lm_head="int2")
    with pytest.raises(BadInput, match="accuracy_level"):
        OrtGenAIBuild(accuracy_level=7)
