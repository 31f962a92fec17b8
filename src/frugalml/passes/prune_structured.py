"""Structured magnitude pruning: remove whole attention heads and FFN neurons.

In every BERT-style block, the ``heads`` fraction of attention heads and the ``ffn`` fraction
of feed-forward neurons with the smallest weight norms are cut out of the matrices, so the
network really is smaller and faster (unlike unstructured zeros). Head importance = the L2
norm of the head's query/key/value rows and output-projection columns; neuron importance = the
L2 norm of its input row times its output column. An optional recovery fine-tune distills the
pruned network from the original on the tune split's text.

Saved models keep the pruned shapes; ``load`` rebuilds the network from ``config.json`` and
resizes the linear layers to the saved tensors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from frugalml.errors import CandidateFailed
from frugalml.passes.distill import recover
from frugalml.passes.registry import PassContext, register
from frugalml.passes.structure import bert_parts, encoder_layers, head_size, shrink_linear

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class StructuredPrune:
    """Remove the weakest attention heads and FFN neurons (+ optional recovery fine-tune)."""

    heads: float = 0.25  # fraction of attention heads removed in every block
    ffn: float = 0.25  # fraction of feed-forward neurons removed in every block
    recovery_epochs: int = 3  # distillation epochs afterwards (0: none)
    lr: float = 1e-4


def _per_head(rows: Any, n_heads: int, size: int) -> Any:
    """Squared L2 norm of each head's block of rows: (n_heads * size, d) -> (n_heads,)."""
    return rows.reshape(n_heads, size, -1).pow(2).sum(dim=(1, 2))


@register(StructuredPrune, stage=11, engines=("torch",))
def structured_prune(model: Model, cfg: StructuredPrune, ctx: PassContext) -> Model:
    import torch

    if not (0 <= cfg.heads < 1 and 0 <= cfg.ffn < 1) or cfg.heads == cfg.ffn == 0:
        raise CandidateFailed("heads and ffn are fractions in [0, 1), not both 0")
    if model.replay or model.dtype != "float32":
        raise CandidateFailed("pruning needs the float32 PyTorch network")
    student = copy.deepcopy(model.source if model.source is not None else model.module)
    _parent, _attr, layers = encoder_layers(student)
    heads_left: list[int] = []
    ffn_left: list[int] = []
    with torch.no_grad():
        for layer in layers:
            p = bert_parts(layer)
            size = head_size(p, student.config)
            n_heads = p.query.weight.shape[0] // size
            drop = min(round(cfg.heads * n_heads), n_heads - 1)
            if drop > 0:
                score = (
                    _per_head(p.query.weight, n_heads, size)
                    + _per_head(p.key.weight, n_heads, size)
                    + _per_head(p.value.weight, n_heads, size)
                    + _per_head(p.attn_out.weight.t(), n_heads, size)
                )
                keep_heads = torch.sort(torch.topk(score, n_heads - drop).indices).values
                idx = (keep_heads[:, None] * size + torch.arange(size)[None, :]).flatten()
                att = p.attention
                att.query = shrink_linear(p.query, out_keep=idx)
                att.key = shrink_linear(p.key, out_keep=idx)
                att.value = shrink_linear(p.value, out_keep=idx)
                layer.attention.output.dense = shrink_linear(p.attn_out, in_keep=idx)
                att.num_attention_heads = n_heads - drop
                att.all_head_size = (n_heads - drop) * size
            heads_left.append(n_heads - drop)
            width = p.ffn_in.weight.shape[0]
            cut = min(round(cfg.ffn * width), width - 1)
            if cut > 0:
                score = p.ffn_in.weight.norm(dim=1) * p.ffn_out.weight.norm(dim=0)
                keep = torch.sort(torch.topk(score, width - cut).indices).values
                layer.intermediate.dense = shrink_linear(p.ffn_in, out_keep=keep)
                layer.output.dense = shrink_linear(p.ffn_out, in_keep=keep)
            ffn_left.append(width - cut)
    if len(set(ffn_left)) == 1:
        student.config.intermediate_size = ffn_left[0]
    ctx.log(f"structured pruning: heads per block {heads_left}, FFN width {ffn_left}")
    stats = recover(student, model, ctx, epochs=cfg.recovery_epochs, lr=cfg.lr)
    structure = {**model.structure, "heads_per_layer": heads_left, "ffn_per_layer": ffn_left}
    return model.evolve(
        module=student,
        source=student,
        structure=structure,
        stats={**model.stats, "recovery": stats},
    )
