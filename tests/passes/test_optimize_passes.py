"""Passes: registration, ordering rules, and what each technique does to a (tiny, real) model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import frugalml
from frugalml.data import stdlib_sentences
from frugalml.errors import BadInput, CandidateFailed
from frugalml.models import Model, load
from frugalml.passes import (
    PASSES,
    HalfPrecision,
    LayerDrop,
    MagnitudePrune,
    OnnxExport,
    OnnxOptimize,
    QuantizeDynamic,
    QuantizeStatic,
    RuntimeSettings,
    StructuredPrune,
    TorchCompile,
    config_from,
    describe,
    problem,
)
from frugalml.passes.registry import config_to_dict
from tinymodels import tiny_bert

TEXTS = stdlib_sentences(48, seed=7)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    return load(tiny_bert(tmp_path_factory.mktemp("tiny") / "m"))


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_every_pass_is_a_frozen_config_with_defaults_that_round_trips() -> None:
    assert set(PASSES) >= {
        "onnx_export",
        "onnx_optimize",
        "quantize_dynamic",
        "quantize_static",
        "half_precision",
        "magnitude_prune",
        "structured_prune",
        "layer_drop",
        "torch_compile",
        "runtime_settings",
    }
    for name, info in PASSES.items():
        cfg = info.config()
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.__setattr__(dataclasses.fields(cfg)[0].name, None)
        assert config_from(name, config_to_dict(cfg)) == cfg
        assert describe(cfg) == name


# (pipeline, engine, device) -> expected problem (None: valid)
ORDERINGS = [
    ((OnnxExport(), QuantizeDynamic()), "torch", "cpu", None),
    (
        (
            LayerDrop(),
            StructuredPrune(),
            OnnxExport(),
            OnnxOptimize(),
            QuantizeDynamic(),
            RuntimeSettings(),
        ),
        "torch",
        "cpu",
        None,
    ),
    ((QuantizeDynamic(), OnnxExport()), "torch", "cpu", "cannot come after"),
    ((OnnxOptimize(),), "torch", "cpu", "needs a onnx model"),
    ((OnnxExport(), TorchCompile()), "torch", "cpu", "needs a torch or causal_lm model, not onnx"),
    ((OnnxExport(), QuantizeDynamic(), QuantizeStatic()), "torch", "cpu", "one precision"),
    ((OnnxExport(), OnnxExport()), "torch", "cpu", "needs a torch model"),
    ((RuntimeSettings(), RuntimeSettings()), "torch", "cpu", "appears twice"),
    ((HalfPrecision("float16"),), "torch", "cpu", "float16 needs a GPU"),
    ((HalfPrecision("float16"), TorchCompile()), "torch", "cuda", None),
    ((QuantizeStatic(),), "onnx", "cpu", None),
    ((LayerDrop(),), "onnx", "cpu", "needs a torch model"),
]


@pytest.mark.parametrize(("pipeline", "engine", "device", "expected"), ORDERINGS)
def test_pipeline_ordering_rules(
    pipeline: tuple,
    engine: str,
    device: str,  # type: ignore[type-arg]
    expected: str | None,
) -> None:
    why = problem(pipeline, engine=engine, device=device)
    if expected is None:
        assert why is None
    else:
        assert why is not None and any(e in why for e in expected.split("|")), why


def test_apply_refuses_an_invalid_pipeline(tiny_model: Model) -> None:
    with pytest.raises(BadInput, match="invalid pipeline"):
        frugalml.apply(tiny_model, [QuantizeDynamic(), OnnxExport()])
    with pytest.raises(BadInput, match="needs unlabelled text"):
        frugalml.apply(tiny_model, LayerDrop(keep=2))


def test_onnx_export_matches_torch_and_int8_quantizes_the_matmuls(tiny_model: Model) -> None:
    import onnx

    ref = tiny_model.encode(TEXTS)
    exported = frugalml.apply(tiny_model, OnnxExport())
    np.testing.assert_allclose(exported.encode(TEXTS), ref, atol=1e-5)
    fused = frugalml.apply(exported, OnnxOptimize())
    ops = {n.op_type for n in onnx.load(str(fused.onnx_path)).graph.node}
    assert ops & {"SkipLayerNormalization", "Attention", "BiasGelu", "Gelu"}
    np.testing.assert_allclose(fused.encode(TEXTS), ref, atol=1e-4)
    for base in (exported, fused):
        q = frugalml.apply(base, QuantizeDynamic(per_channel=True))
        ops = {n.op_type for n in onnx.load(str(q.onnx_path)).graph.node}
        assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}, ops
        assert q.dtype == "int8" and _cos(q.encode(TEXTS), ref).mean() > 0.95
    static = frugalml.apply(exported, QuantizeStatic(calibration_texts=16), texts=TEXTS)
    ops = {n.op_type for n in onnx.load(str(static.onnx_path)).graph.node}
    assert "QuantizeLinear" in ops and _cos(static.encode(TEXTS), ref).mean() > 0.9


def test_torch_dynamic_int8_replaces_linears_and_is_replayed(tiny_model: Model) -> None:
    import torch

    q = frugalml.apply(tiny_model, QuantizeDynamic())
    kinds = {type(m).__module__ for m in q.module.modules()}
    assert any("quantized" in k for k in kinds)
    assert [p.name for p in q.replay] == ["quantize_dynamic"]
    assert isinstance(q.source.encoder.layer[0].intermediate.dense, torch.nn.Linear)
    assert _cos(q.encode(TEXTS), tiny_model.encode(TEXTS)).mean() > 0.9


def test_magnitude_prune_zeroes_the_fraction_and_recovery_keeps_zeros(tiny_model: Model) -> None:
    pruned = frugalml.apply(
        tiny_model, MagnitudePrune(sparsity=0.4, recovery_epochs=1), texts=TEXTS
    )
    w = pruned.module.encoder.layer[1].intermediate.dense.weight
    assert float((w == 0).float().mean()) == pytest.approx(0.4, abs=0.01)
    assert pruned.stats["recovery"]["steps"] > 0


def test_distillation_brings_the_student_back_towards_the_teacher(tiny_model: Model) -> None:
    import copy

    import torch

    from frugalml.passes.distill import distill

    ref = tiny_model.encode(TEXTS)
    student = copy.deepcopy(tiny_model.module)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in student.encoder.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    damaged = tiny_model.evolve(module=student)
    before = _cos(damaged.encode(TEXTS), ref).mean()
    stats = distill(student, tiny_model, TEXTS, ref, epochs=8, lr=1e-3, batch_size=16)
    assert stats["loss_last"] < stats["loss_first"]
    assert _cos(damaged.encode(TEXTS), ref).mean() > before + 0.01
    dropped = frugalml.apply(tiny_model, LayerDrop(keep=1, epochs=2), texts=TEXTS)
    assert dropped.stats["distill"]["steps"] == 2 * 2  # 48 texts in batches of 32, 2 epochs


def _block_gap(student: Model, teacher: Model, texts: list[str], layer_map: list[int]) -> float:
    """Mean squared distance of each student block's token states to its teacher block's."""
    import torch

    enc = {k: torch.from_numpy(v) for k, v in teacher.tokenize(texts).items()}
    mask = enc["attention_mask"].unsqueeze(-1).float()
    with torch.no_grad():
        s = student.module(**enc, output_hidden_states=True).hidden_states
        t = teacher.module(**enc, output_hidden_states=True).hidden_states
    gaps = [
        float((((s[j + 1] - t[k + 1]) * mask) ** 2).sum() / mask.sum())
        for j, k in enumerate(layer_map)
    ]
    return sum(gaps) / len(gaps)


def test_layer_drop_learns_from_extra_text_and_the_teacher_blocks() -> None:
    """MiniLM 6 -> 3 blocks (0, 2, 5): ``extra_texts`` adds standard-library sentences to the
    task's (more distillation steps); ``hidden_weight`` makes each kept block's token states
    follow the teacher block it came from (the last: the teacher's last), so they end closer
    to them than distilling the pooled embedding alone does, at the same steps."""
    minilm = load("minilm")
    texts = TEXTS[:32]
    common = {"keep": 3, "choose": "even", "epochs": 3, "lr": 1e-3, "batch_size": 8}
    plain = frugalml.apply(minilm, LayerDrop(**common), texts=texts)
    assert plain.structure["layers_kept"] == [0, 2, 5]
    assert plain.stats["distill"]["steps"] == 3 * 4  # 32 texts, batches of 8, 3 epochs
    wider = frugalml.apply(minilm, LayerDrop(**common, extra_texts=16), texts=texts)
    assert wider.stats["distill"]["steps"] == 3 * 6  # 32 + 16 texts
    taught = frugalml.apply(minilm, LayerDrop(**common, hidden_weight=1.0), texts=texts)
    assert taught.stats["distill"]["steps"] == 3 * 4
    held = stdlib_sentences(200, seed=21)[100:140]
    layer_map = [0, 2, 5]
    assert _block_gap(taught, minilm, held, layer_map) < 0.9 * _block_gap(
        plain, minilm, held, layer_map
    )


def test_extra_text_is_capped_at_ten_per_task_text() -> None:
    """4,000 extra sentences on a 4-text task would be 1,000x its text (and the optimize CLI
    test's 48 texts took over six minutes a candidate): at most 10 per task text are added."""
    minilm = load("minilm")
    cfg = LayerDrop(keep=3, choose="even", epochs=1, batch_size=8, extra_texts=4000)
    student = frugalml.apply(minilm, cfg, texts=TEXTS[:4])
    assert student.stats["distill"]["steps"] == 6  # (4 + 40) texts in batches of 8, 1 epoch


def test_bad_pass_settings_fail_the_candidate(tiny_model: Model) -> None:
    with pytest.raises(CandidateFailed, match="keep=9"):
        frugalml.apply(tiny_model, LayerDrop(keep=9), texts=TEXTS)
    with pytest.raises(CandidateFailed, match="fractions"):
        frugalml.apply(tiny_model, StructuredPrune(heads=0, ffn=0))


def test_runtime_settings_change_how_not_what(tiny_model: Model) -> None:
    fast = frugalml.apply(tiny_model, RuntimeSettings(threads=1, batch_size=3, length_sort=False))
    assert (fast.runtime.threads, fast.runtime.batch_size, fast.runtime.length_sort) == (
        1,
        3,
        False,
    )
    np.testing.assert_allclose(fast.encode(TEXTS), tiny_model.encode(TEXTS), atol=1e-5)


@pytest.mark.slow
def test_torch_compile_gives_the_same_outputs(tiny_model: Model) -> None:
    import shutil

    if not (shutil.which("g++") or shutil.which("clang++")):
        pytest.skip("no C++ compiler for torch.compile on CPU")
    compiled = frugalml.apply(tiny_model, TorchCompile())
    np.testing.assert_allclose(compiled.encode(TEXTS[:8]), tiny_model.encode(TEXTS[:8]), atol=1e-4)


@pytest.mark.gpu
def test_half_precision_on_gpu(tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    model = load(tiny_bert(tmp_path / "m"), device="cuda")
    half = frugalml.apply(model, [HalfPrecision("float16"), TorchCompile()])
    assert _cos(half.encode(TEXTS), model.encode(TEXTS)).mean() > 0.99
