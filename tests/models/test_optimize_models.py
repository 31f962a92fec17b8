"""Model adapters: load every MODEL spec, run batches, save/load every variant kind (no pickle)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

import frugalml
from frugalml.data import stdlib_sentences
from frugalml.errors import BadInput, NotFound
from frugalml.models import Model, Runtime, load, resolve_path
from frugalml.passes import (
    HalfPrecision,
    LayerDrop,
    MagnitudePrune,
    OnnxExport,
    OnnxOptimize,
    QuantizeDynamic,
    RuntimeSettings,
    StructuredPrune,
    cpu_supports_bf16,
    persist,
)
from tinymodels import tiny_bert

TEXTS = stdlib_sentences(24, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def tiny_model(tiny: Path) -> Model:
    return load(tiny)


def test_minilm_alias_matches_sentence_transformers() -> None:
    """The bundled MiniLM loads by alias and embeds exactly as sentence-transformers does."""
    from sentence_transformers import SentenceTransformer

    model = load("minilm")
    assert model.engine == "torch" and model.output == "embedding"
    assert model.pooling.mode == "mean" and model.pooling.normalize
    assert model.runtime.max_length == 256
    ours = model.encode(TEXTS)
    theirs = SentenceTransformer(str(resolve_path("minilm")), device="cpu").encode(
        TEXTS, batch_size=32
    )
    assert ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_encode_keeps_input_order_whatever_the_batching(tiny_model: Model) -> None:
    sorted_small = tiny_model.evolve(runtime=Runtime(batch_size=5, length_sort=True))
    plain_big = tiny_model.evolve(runtime=Runtime(batch_size=64, length_sort=False))
    a, b = sorted_small.encode(TEXTS), plain_big.encode(TEXTS)
    np.testing.assert_allclose(a, b, atol=1e-5)
    single = np.stack([tiny_model.run_batch([t])[0] for t in TEXTS[:4]])
    np.testing.assert_allclose(single, a[:4], atol=1e-5)


def test_sorted_batches_group_texts_by_token_count_and_pad_each_to_its_longest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MiniLM on 300 real sentences: batches run most tokens first, no batch holds a text
    longer than any of the one before (characters are not tokens: sorting by them mixes
    lengths), each batch is padded only to its own longest text, and the outputs are those
    of running each text alone."""
    model = load("minilm").evolve(runtime=Runtime(batch_size=16))
    texts = stdlib_sentences(300, seed=11)
    counts = np.array([len(ids) for ids in model.tokenizer(texts)["input_ids"]])
    batches = model.batches(texts)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(texts)))
    for before, after in itertools.pairwise(batches):
        assert counts[after].max() <= counts[before].min()
    widths: list[int] = []
    runtime = model.engine_runtime
    seen = runtime.run

    def spy(m: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        widths.append(enc["input_ids"].shape[1])
        return seen(m, enc)

    monkeypatch.setattr(runtime, "run", spy)
    out = model.encode(texts)
    monkeypatch.undo()
    assert widths == [int(counts[b].max()) for b in batches]
    alone = np.stack([model.run_batch([texts[i]])[0] for i in range(0, 300, 37)])
    np.testing.assert_allclose(out[::37], alone, atol=1e-5)


# every variant kind: pipeline -> save -> load gives the same outputs
VARIANTS = {
    "original": [],
    "onnx": [OnnxExport()],
    "onnx_fused": [OnnxExport(), OnnxOptimize()],
    "onnx_int8": [OnnxExport(), QuantizeDynamic(per_channel=True)],
    "torch_int8": [QuantizeDynamic()],
    "structured_prune": [StructuredPrune(heads=0.25, ffn=0.5, recovery_epochs=0)],
    "magnitude_prune": [MagnitudePrune(sparsity=0.5)],
    "layer_drop": [LayerDrop(keep=2, epochs=1)],
    "layer_drop_onnx_int8": [LayerDrop(keep=2, epochs=1), OnnxExport(), QuantizeDynamic()],
    "runtime": [RuntimeSettings(batch_size=7, length_sort=False)],
    "bf16": [HalfPrecision("bfloat16")],
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_round_trips_through_save_and_load(
    name: str, tiny_model: Model, tmp_path: Path
) -> None:
    pipeline = VARIANTS[name]
    if name == "bf16" and not cpu_supports_bf16():
        pytest.skip("this CPU has no native bfloat16")
    variant = frugalml.apply(tiny_model, pipeline, texts=TEXTS)
    before = variant.encode(TEXTS)
    folder = persist.save(variant, tmp_path / name)
    files = {str(p.relative_to(folder)) for p in folder.rglob("*")}
    assert not files & {"pytorch_model.bin", "model.pt", "model.pkl"}, "never a pickle"
    assert ("onnx/model.onnx" in files) == (variant.engine == "onnx")
    assert ("model.safetensors" in files) == (variant.engine == "torch")
    manifest = json.loads((folder / "frugal.json").read_text())
    assert [p["name"] for p in manifest["passes"]] == [p.name for p in variant.passes]
    back = frugalml.load(folder)
    assert back.engine == variant.engine and back.runtime == variant.runtime
    assert [p.name for p in back.passes] == [p.name for p in variant.passes]
    np.testing.assert_allclose(back.encode(TEXTS), before, atol=2e-3 if name == "bf16" else 1e-5)
    # saved weights are what size_bytes reports (give or take the safetensors header)
    on_disk = sum(
        (folder / f).stat().st_size
        for f in ("onnx/model.onnx", "model.safetensors")
        if (folder / f).exists()
    )
    assert abs(on_disk - variant.size_bytes()) < 0.01 * on_disk + 65536


def test_structural_passes_really_shrink_the_network(tiny_model: Model, tmp_path: Path) -> None:
    pruned = frugalml.apply(tiny_model, StructuredPrune(heads=0.5, ffn=0.5, recovery_epochs=0))
    layer = pruned.module.encoder.layer[0]
    assert layer.attention.self.query.out_features == 16  # 2 of 4 heads of size 8 left
    assert layer.intermediate.dense.out_features == 32
    assert pruned.size_bytes() < tiny_model.size_bytes()
    dropped = frugalml.apply(tiny_model, LayerDrop(keep=2, epochs=1), texts=TEXTS)
    assert len(dropped.module.encoder.layer) == 2
    assert dropped.structure["layers_kept"] in ([0, 1], [0, 2])
    assert len(tiny_model.module.encoder.layer) == 3, "the input model is left as it was"


def test_onnx_file_and_output_folder_specs(tiny_model: Model, tmp_path: Path) -> None:
    folder = persist.save(frugalml.apply(tiny_model, OnnxExport()), tmp_path / "out" / "best")
    # the graph file of a frugal folder
    graph = frugalml.load(folder / "onnx" / "model.onnx")
    assert graph.engine == "onnx" and [p.name for p in graph.passes] == ["onnx_export"]
    np.testing.assert_allclose(graph.encode(TEXTS), tiny_model.encode(TEXTS), atol=1e-5)
    # a bare .onnx file with only its tokenizer next to it: pooled like a plain HF model
    bare_dir = tmp_path / "bare"
    bare_dir.mkdir()
    (bare_dir / "graph.onnx").write_bytes((folder / "onnx" / "model.onnx").read_bytes())
    tiny_model.tokenizer.save_pretrained(str(bare_dir))
    bare = load(bare_dir / "graph.onnx")
    assert bare.engine == "onnx" and not bare.pooling.normalize
    expected = tiny_model.evolve(pooling=bare.pooling).encode(TEXTS)
    np.testing.assert_allclose(bare.encode(TEXTS), expected, atol=1e-5)
    # a frugal output folder resolves to its best/
    assert resolve_path(tmp_path / "out") == folder


def test_classification_head_gives_logits(tmp_path: Path) -> None:
    model = load(tiny_bert(tmp_path / "clf", head=3))
    assert model.output == "logits"
    assert model.label_names == ("class0", "class1", "class2")
    assert model.encode(TEXTS[:5]).shape == (5, 3)


def test_bad_model_specs_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="model not found"):
        load(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BadInput, match=r"not an \.onnx model"):
        load(tmp_path / "notes.txt")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"model_type": "not-a-real-model"}))
    (odd / "model.safetensors").write_bytes(b"")
    with pytest.raises(BadInput, match="unsupported architecture 'not-a-real-model'"):
        load(odd)
    (odd / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(BadInput, match="not a text encoder"):
        load(odd)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="not a model folder"):
        load(empty)
    with pytest.raises(BadInput, match=r"no CUDA GPU|unknown device"):
        load("minilm", device="tpu")
