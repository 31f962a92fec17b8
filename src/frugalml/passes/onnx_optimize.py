"""Transformer graph fusions with ``onnxruntime.transformers.optimizer``.

Fuses the exported graph's attention, LayerNorm + residual (SkipLayerNormalization), bias +
GELU and embedding subgraphs into ONNX Runtime's contrib operators, offline, so the saved graph
is the fused one. Head count and hidden size are detected from the graph (pruned heads work).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from frugalml.errors import CandidateFailed
from frugalml.passes.registry import PassContext, quiet_logs, register

if TYPE_CHECKING:
    from frugalml.models import Model

# transformers model_type -> the optimizer's model family
_FAMILY = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "camembert": "bert",
    "electra": "bert",
    "mpnet": "bert",
    "distilbert": "bert",
    "albert": "bert",
}


@dataclass(frozen=True)
class OnnxOptimize:
    """Fuse transformer subgraphs (attention, SkipLayerNorm, BiasGelu) in the ONNX graph."""

    gelu_approximation: bool = False  # tanh-approximated GELU: faster, slightly different
    attention: bool = True  # fuse self-attention into one Attention op


@register(OnnxOptimize, stage=25, engines=("onnx",))
def onnx_optimize(model: Model, cfg: OnnxOptimize, ctx: PassContext) -> Model:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    family = _FAMILY.get(model.arch or "bert", "bert")
    options = FusionOptions(family)
    options.enable_gelu_approximation = cfg.gelu_approximation
    options.enable_attention = cfg.attention
    path = ctx.workdir() / f"fused-{uuid.uuid4().hex[:10]}.onnx"
    dims = model.dims
    # pruned heads differ per block: let the optimizer detect them (0 = detect)
    pruned = "heads_per_layer" in model.structure
    num_heads = 0 if pruned else int(dims.get("num_heads", 0))
    hidden = 0 if pruned else int(dims.get("hidden_size", 0))
    try:
        with quiet_logs("fusion_attention", "fusion_utils", "onnx_model", "optimizer"):
            fused = optimize_model(
                str(model.onnx_path),
                model_type=family,
                num_heads=num_heads,
                hidden_size=hidden,
                optimization_options=options,
                opt_level=0,
                use_gpu=model.device.startswith("cuda"),
            )
            fused.save_model_to_file(str(path))
    except Exception as e:
        raise CandidateFailed(f"ONNX graph fusion failed: {str(e).splitlines()[0][:300]}") from e
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    ctx.log(f"fused operators: {stats}")
    return model.evolve(onnx_path=path, stats={**model.stats, "fused_ops": stats})
