"""Unstructured magnitude pruning: zero the smallest weights of every linear layer.

In each linear layer of the encoder blocks, the ``sparsity`` fraction of weights with the
smallest magnitude is set to zero; an optional short recovery fine-tune (distillation from the
original on the tune split's text) keeps the zeros and adjusts the rest. Dense kernels do not
skip zeros: this pass alone saves no time on CPU; it is in the space because it combines with
compression and sparse runtimes, and the search measures rather than assumes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from frugalml.errors import CandidateFailed
from frugalml.passes.distill import recover
from frugalml.passes.registry import PassContext, register
from frugalml.passes.structure import encoder_layers

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class MagnitudePrune:
    """Zero the smallest-magnitude weights of each linear layer (+ optional recovery)."""

    sparsity: float = 0.3  # fraction of each linear layer's weights set to zero
    recovery_epochs: int = 0  # distillation epochs afterwards (0: none)
    lr: float = 5e-5


@register(MagnitudePrune, stage=12, engines=("torch",))
def magnitude_prune(model: Model, cfg: MagnitudePrune, ctx: PassContext) -> Model:
    import torch

    if not 0 < cfg.sparsity < 1:
        raise CandidateFailed(f"sparsity must be between 0 and 1, not {cfg.sparsity}")
    if model.replay or model.dtype != "float32":
        raise CandidateFailed("pruning needs the float32 PyTorch network")
    student = copy.deepcopy(model.source if model.source is not None else model.module)
    _parent, _attr, layers = encoder_layers(student)
    prefix = _prefix_of(student, layers)
    masks: dict[str, Any] = {}
    with torch.no_grad():
        for li, layer in enumerate(layers):
            for name, sub in layer.named_modules():
                if not isinstance(sub, torch.nn.Linear):
                    continue
                w = sub.weight
                k = int(cfg.sparsity * w.numel())
                if k < 1:
                    continue
                threshold = w.abs().flatten().kthvalue(k).values
                mask = (w.abs() > threshold).to(w.dtype)
                w.mul_(mask)
                masks[f"{prefix}{li}.{name}.weight"] = mask
    zeros = sum(int((m == 0).sum()) for m in masks.values())
    ctx.log(f"magnitude pruning: {zeros} weights zeroed")
    stats = recover(student, model, ctx, epochs=cfg.recovery_epochs, lr=cfg.lr, masks=masks)
    structure = {**model.structure, "sparsity": cfg.sparsity}
    return model.evolve(
        module=student,
        source=student,
        structure=structure,
        stats={**model.stats, "recovery": stats},
    )


def _prefix_of(module: Any, layers: Any) -> str:
    for name, sub in module.named_modules():
        if sub is layers:
            return f"{name}."
    return ""
