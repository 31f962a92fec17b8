"""Finding the parts of a transformer encoder that structural passes change.

Not a pass: helpers shared by layer dropping and structured pruning. ``encoder_layers`` finds
the stack of transformer blocks in any encoder; ``bert_parts`` the attention projections and
FFN of a BERT-style block (BERT, RoBERTa, XLM-R, ELECTRA, MiniLM, CamemBERT).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from frugalml.errors import CandidateFailed


def encoder_layers(module: Any) -> tuple[Any, str, Any]:
    """(parent module, attribute name, ModuleList) of the encoder's transformer blocks."""
    import torch

    n = getattr(module.config, "num_hidden_layers", None)
    for name, sub in module.named_modules():
        if (
            isinstance(sub, torch.nn.ModuleList)
            and name.rsplit(".", 1)[-1] in ("layer", "layers")
            and (n is None or len(sub) == n)
        ):
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            return parent, attr, sub
    raise CandidateFailed(f"cannot find the encoder's layer stack in {type(module).__name__}")


@dataclass
class BertParts:
    """One BERT-style block's linear layers (weights are (out_features, in_features))."""

    attention: Any  # the self-attention module (query, key, value)
    query: Any
    key: Any
    value: Any
    attn_out: Any  # attention.output.dense: all_head_size -> hidden
    ffn_in: Any  # intermediate.dense: hidden -> intermediate
    ffn_out: Any  # output.dense: intermediate -> hidden


def bert_parts(layer: Any) -> BertParts:
    try:
        att = layer.attention.self
        return BertParts(
            attention=att,
            query=att.query,
            key=att.key,
            value=att.value,
            attn_out=layer.attention.output.dense,
            ffn_in=layer.intermediate.dense,
            ffn_out=layer.output.dense,
        )
    except AttributeError as e:
        raise CandidateFailed(
            f"structured pruning supports BERT-style encoder blocks (BERT, "
            f"RoBERTa, MiniLM, ELECTRA), not {type(layer).__name__}"
        ) from e


def head_size(parts: BertParts, config: Any) -> int:
    size = getattr(parts.attention, "attention_head_size", None)
    return int(size or config.hidden_size // config.num_attention_heads)


def shrink_linear(linear: Any, *, out_keep: Any = None, in_keep: Any = None) -> Any:
    """A new Linear keeping the rows ``out_keep`` and columns ``in_keep`` (index tensors)."""
    import torch

    w = linear.weight.data
    b = linear.bias.data if linear.bias is not None else None
    if out_keep is not None:
        w = w[out_keep]
        b = b[out_keep] if b is not None else None
    if in_keep is not None:
        w = w[:, in_keep]
    new = torch.nn.Linear(
        w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype
    )
    new.weight.data.copy_(w)
    if b is not None:
        new.bias.data.copy_(b)
    return new
