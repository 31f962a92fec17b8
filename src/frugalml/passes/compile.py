"""torch.compile: the PyTorch network compiled by TorchInductor (fused kernels, less Python).

A runtime transform: the weights do not change; ``save`` keeps them and ``load`` compiles
again. Compilation happens on the first batches, which the measurement counts as warm-up
(``warmup_s``), not as serving time. Shapes are marked dynamic so length-sorted batches of
varying sequence length do not each trigger a recompile. Needs a C++ compiler on CPU.

On a causal LM (``causal_lm`` runtime) it is the decode step that is compiled, over a static
KV cache (transformers' ``StaticCache``, sized to a power of two of at least 256 positions
that holds prompt and new tokens): every step then has the same shapes, so one graph serves
them all (one per batch size and cache size). The prefill and the perplexity forward stay
eager; the pass only marks the model, and the runtime's ``greedy`` does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from frugalml.errors import CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class TorchCompile:
    """Compile the PyTorch network with torch.compile (Inductor)."""

    mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    dynamic: bool = True  # one graph for all batch/sequence shapes


@register(TorchCompile, stage=40, engines=("torch", "causal_lm"), replay_on=("torch", "causal_lm"))
def torch_compile(model: Model, cfg: TorchCompile, ctx: PassContext) -> Model:
    import shutil

    import torch

    if model.device == "cpu" and not (shutil.which("g++") or shutil.which("clang++")):
        raise CandidateFailed("torch.compile on CPU needs a C++ compiler (g++ or clang++)")
    if model.engine == "causal_lm":  # the runtime compiles its static-cache decode step
        return model.evolve()  # (weight-only int8/int4 included: Inductor calls their kernels)
    if model.dtype == "int8":
        raise CandidateFailed("torch.compile is not combined with dynamic int8 modules")
    compiled = torch.compile(model.module, mode=cfg.mode, dynamic=cfg.dynamic)
    return model.evolve(module=compiled)
