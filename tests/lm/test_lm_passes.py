"""Weight-only int8/int4 (torchao) on a causal LM, and optimize over them (tiny random Llama)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tinylm import tiny_llama

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wikitext-2" / "valid.txt"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("lmp") / "tiny", context=64)


@pytest.fixture
def text(tmp_path: Path) -> Path:
    if not WIKI.is_file():  # pragma: no cover
        pytest.skip(f"real text not found at {WIKI}")
    path = tmp_path / "text.txt"
    path.write_text(WIKI.read_text(encoding="utf-8")[:6000], encoding="utf-8")
    return path


def test_int8_and_int4_weight_only_change_weights_not_embeddings(tiny: Path, text: Path) -> None:
    from frugalml.models.runtimes.causal_lm import state_bytes
    from frugalml.passes import WeightOnlyQuant, apply
    from frugalml.passes.persist import load
    from frugalml.search.evaluate_lm import as_text
    from frugalml.tasks.lm_fidelity import LMFidelity

    base = load(tiny)
    q8 = apply(base, [WeightOnlyQuant(bits=8)])
    q4 = apply(base, [WeightOnlyQuant(bits=4, group_size=32)])
    up = q8.module.model.layers[0].mlp.up_proj.weight
    assert type(up).__name__ != "Parameter" or up.dtype != base.module.dtype  # quantized
    assert type(q8.module.lm_head.weight) is type(base.module.lm_head.weight)  # kept
    assert q8.module.model.embed_tokens.weight.dtype == base.module.model.embed_tokens.weight.dtype
    # linear weights of 4 bytes now take one byte (+ scales): fewer bytes read per token
    assert state_bytes(q8.module) < state_bytes(base.module)
    fid = LMFidelity(window=32, windows=2, new_tokens=4)
    _i, f8 = fid.score(q8, as_text(text), base)
    _i, f4 = fid.score(q4, as_text(text), base)
    assert 0 < f8["mean_kl"] < f4["mean_kl"]  # 4 bits lose more than 8
    assert f8["top1_agreement"] >= 0.9


def test_a_weight_only_variant_saves_unquantized_and_replays_on_load(
    tiny: Path, tmp_path: Path
) -> None:
    from frugalml.passes import WeightOnlyQuant, apply
    from frugalml.passes.persist import load, save

    q8 = apply(load(tiny), [WeightOnlyQuant(bits=8)])
    folder = save(q8, tmp_path / "q8")
    manifest = json.loads((folder / "frugal.json").read_text())
    assert [p["name"] for p in manifest["replay"]] == ["weight_only_quant"]
    again = load(folder)
    ids = np.arange(3, 30, dtype=np.int64)[None, :]
    a = q8.engine_runtime.logits(q8, ids).numpy()
    b = again.engine_runtime.logits(again, ids).numpy()
    assert np.allclose(a, b, atol=1e-5)
    assert again.dtype == "int8" and again.passes[0].name == "weight_only_quant"


def test_optimize_a_causal_lm_keeps_the_pareto_front(
    tiny: Path, text: Path, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    r = cli(
        "optimize", str(tiny), "--task", "perplexity", "--data", str(text), "--out", str(out),
        "--passes", "weight_only_quant", "--repeats", "1", "--max-quality-drop", "50",
        "--window", "32", "--windows", "2", "--new-tokens", "8", "--json",
    )  # fmt: skip
    assert r.returncode in (0, 2), r.stderr
    payload = json.loads(r.stdout)
    cands = payload["candidates"]
    assert cands[0]["label"] == "baseline (original)" and cands[0]["metric"] == "perplexity"
    assert {c["label"] for c in cands[1:]} >= {
        "weight_only_quant",
        "weight_only_quant(bits=4, group_size=32)",
    }
    for c in cands:
        if c["status"] == "ok":
            assert {"mean_kl", "flips", "top1_agreement", "cost_usd_per_1m"} <= set(c)
    assert payload["pareto"] and all(p["status"] == "ok" for p in payload["pareto"])
    assert (out / "candidates.json").exists() and (out / "report.md").exists()
    if payload["best"] is not None:  # cheaper than the original in bound: saved
        assert (out / "best" / "frugal.json").exists()
        assert payload["best"]["quality_drop"] <= 50


def test_compiled_static_cache_decoding_gives_the_eager_models_tokens(
    tiny: Path, tmp_path: Path
) -> None:
    """``torch_compile`` on a causal LM: the decode step over a static KV cache, compiled;
    the same greedy tokens as the eager model's dynamic cache, at batch 1 and 2, saved and
    loaded back with the pass replayed."""
    import torch

    from frugalml.passes import TorchCompile, apply
    from frugalml.passes.persist import load, save

    base = load(tiny)
    comp = apply(base, [TorchCompile()])
    assert [p.name for p in comp.passes] == ["torch_compile"]
    rng = np.random.default_rng(0)
    one = rng.integers(5, 1000, size=(1, 9))
    two = rng.integers(5, 1000, size=(2, 7))
    for ids in (one, two, one):  # a new batch size compiles again; the first graph is kept
        want, _pre, _steps = base.engine_runtime.greedy(base, ids, 6)
        got, pre, steps = comp.engine_runtime.greedy(comp, ids, 6)
        assert got.shape == (ids.shape[0], 6) and pre > 0 and len(steps) == 5
        assert got.tolist() == want.tolist()
    cache = comp.state(dict)
    assert (1, 256) in cache and (2, 256) in cache  # one static cache per batch size
    # the eager forward (perplexity) is the unchanged network's
    x = torch.as_tensor(one)
    assert torch.equal(comp.engine_runtime.logits(comp, x), base.engine_runtime.logits(base, x))
    again = load(save(comp, tmp_path / "saved"))
    assert [p.name for p in again.passes] == ["torch_compile"]
    assert again.engine_runtime.greedy(again, one, 6)[0].tolist() == (
        base.engine_runtime.greedy(base, one, 6)[0].tolist()
    )
    assert "step" in again.state(dict)  # the loaded model decodes through the compiled step


def _on_q4_1_grid(folder: Path, out: Path) -> Path:
    """``folder``'s model with every Linear weight put on GGUF's Q4_1 grid (groups of 32: 16
    levels from the group's min to its max, as the bundled smollm2's weights are)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear) and not name.endswith("lm_head"):
                rows, cols = mod.weight.shape
                lo = torch.randn(rows, cols // 32, 1, generator=gen) * 0.05 - 0.05
                step = torch.rand(rows, cols // 32, 1, generator=gen) * 0.01 + 0.002
                k = torch.randint(0, 16, (rows, cols // 32, 32), generator=gen)
                k[..., 0], k[..., 1] = 0, 15  # each group spans its whole grid
                mod.weight.copy_((lo + step * k).reshape(rows, cols))
    model.save_pretrained(str(out), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(folder)).save_pretrained(str(out))
    return out


def test_packed_int4_keeps_weights_on_a_q4_1_grid_and_halves_the_bytes(
    tiny: Path, tmp_path: Path
) -> None:
    import torch

    from frugalml.models.runtimes.causal_lm import state_bytes
    from frugalml.passes import WeightOnlyQuant, apply
    from frugalml.passes.persist import load, save

    base = load(_on_q4_1_grid(tiny, tmp_path / "grid"))
    packed = apply(base, [WeightOnlyQuant(bits=4, group_size=32, cpu_kernels=True)])
    wide = apply(base, [WeightOnlyQuant(bits=4, group_size=32)])  # one value a byte
    coarse = apply(base, [WeightOnlyQuant(bits=4, group_size=64, cpu_kernels=True)])
    assert packed.dtype == "int4" and packed.module.dtype == torch.bfloat16
    w = base.module.model.layers[0].mlp.up_proj.weight

    def weights(model: Any) -> torch.Tensor:  # the kernel's own weights: identity x W^T
        lin = model.module.model.layers[0].mlp.up_proj
        return lin(torch.eye(lin.in_features, dtype=torch.bfloat16)).float().T

    got, miss = weights(packed), weights(coarse)
    # the same 16 levels per group come back, up to bf16's rounding (8-bit mantissa)...
    assert torch.allclose(got, w, rtol=2**-7, atol=2**-9)
    # ...which groups of 64 (two groups' ranges in one grid) cannot keep
    assert (miss - w).abs().mean() > 8 * (got - w).abs().mean()
    assert state_bytes(packed.module) < 0.75 * state_bytes(wide.module)
    ids = np.arange(3, 40, dtype=np.int64)[None, :]
    a = base.engine_runtime.logits(base, ids).numpy()
    b = packed.engine_runtime.logits(packed, ids).numpy()
    # only the bf16 activations differ: the logits move by a small part of their spread
    assert np.abs(a - b).mean() < 0.05 * a.std()
    again = load(save(packed, tmp_path / "saved"))  # saved unquantized, replayed on load
    c = again.engine_runtime.logits(again, ids).numpy()
    assert np.array_equal(b, c) and again.dtype == "int4"


def test_the_cpu_int8_kernel_takes_no_group_size() -> None:
    from frugalml.errors import BadInput
    from frugalml.passes import WeightOnlyQuant

    with pytest.raises(BadInput, match="per row"):
        WeightOnlyQuant(bits=8, group_size=32, cpu_kernels=True)


@pytest.mark.parametrize("bits", [4, 8])
def test_cpu_kernels_decode_through_the_compiled_step(
    tiny: Path, tmp_path: Path, bits: int
) -> None:
    """The combinations optimize tries: int4 / int8 on the CPU kernels (bf16), then the decode
    step compiled over a static cache; the greedy tokens are the eager quantized model's, and
    a new batch size (a second compiled graph) does not disturb the first."""
    from frugalml.passes import TorchCompile, WeightOnlyQuant, apply
    from frugalml.passes.persist import load

    base = load(_on_q4_1_grid(tiny, tmp_path / "grid"))
    cfg = WeightOnlyQuant(bits=bits, group_size=32 if bits == 4 else None, cpu_kernels=True)
    eager = apply(base, [cfg])
    both = apply(base, [cfg, TorchCompile()])
    assert eager.dtype == both.dtype == f"int{bits}"
    rng = np.random.default_rng(0)
    one, two = rng.integers(5, 1000, size=(1, 9)), rng.integers(5, 1000, size=(2, 7))
    for ids in (one, two, one):
        want, _pre, _steps = eager.engine_runtime.greedy(eager, ids, 6)
        got, _pre, steps = both.engine_runtime.greedy(both, ids, 6)
        assert len(steps) == 5 and got.tolist() == want.tolist()
    assert "step" in both.state(dict)


def test_two_compiled_models_in_one_process_each_decode_their_own_tokens(
    tiny: Path, tmp_path: Path
) -> None:
    """Every model's compiled step is the same code object, so one cache holds both models'
    graphs; after a step's first call only the guards that tell graphs apart are checked, and
    those must still tell the two models apart (interleaved, each gives its eager tokens)."""
    from frugalml.passes import TorchCompile, apply
    from frugalml.passes.persist import load

    a = load(tiny)
    b = load(_on_q4_1_grid(tiny, tmp_path / "grid"))  # the same shapes, other weights
    ca, cb = apply(a, [TorchCompile()]), apply(b, [TorchCompile()])
    ids = np.random.default_rng(1).integers(5, 1000, size=(1, 9))
    want_a = a.engine_runtime.greedy(a, ids, 8)[0].tolist()
    want_b = b.engine_runtime.greedy(b, ids, 8)[0].tolist()
    assert want_a != want_b
    for _ in range(2):
        assert ca.engine_runtime.greedy(ca, ids, 8)[0].tolist() == want_a
        assert cb.engine_runtime.greedy(cb, ids, 8)[0].tolist() == want_b
