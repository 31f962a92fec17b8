"""ONNX export: the PyTorch network as an ONNX graph, run by ONNX Runtime.

``torch.onnx.export`` (TorchScript exporter: robust for encoders with dynamic batch and
sequence axes) writes one self-contained ``.onnx`` file; the graph returns the last hidden
state (pooled outside, as for PyTorch) or the logits. ONNX Runtime applies its own graph
optimizations (constant folding, fusions) at session start (``ORT_ENABLE_ALL``).
"""

from __future__ import annotations

import contextlib
import io
import uuid
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from frugalml.errors import CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class OnnxExport:
    """Export to ONNX and run with ONNX Runtime."""

    opset: int = 17  # ONNX opset; 17 has LayerNormalization as one op


def _wrapper(module: Any, names: list[str], logits: bool) -> Any:
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *args: Any) -> Any:
            out = self.inner(**dict(zip(names, args, strict=True)))
            return out.logits if logits else out.last_hidden_state

    return Wrapped().eval()


@register(OnnxExport, stage=20, engines=("torch",), produces="onnx")
def onnx_export(model: Model, cfg: OnnxExport, ctx: PassContext) -> Model:
    import torch

    from frugalml.models import forward_names

    module = model.module
    if getattr(model, "dtype", "float32") != "float32" or model.replay:
        raise CandidateFailed(
            "ONNX export needs the float32 PyTorch network (export before quantizing or compiling)"
        )
    accepted = forward_names(module)
    sample = model.tokenize(["frugal exports this sentence", "and this one"])
    names: list[str] = [
        n
        for n in ("input_ids", "attention_mask", "token_type_ids")
        if n in sample and n in accepted
    ]
    args = tuple(torch.from_numpy(sample[n]).to(model.device) for n in names)
    logits = model.output == "logits"
    out_name = "logits" if logits else "last_hidden_state"
    dynamic: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic[out_name] = {0: "batch"} if logits else {0: "batch", 1: "sequence"}
    path = ctx.workdir() / f"export-{uuid.uuid4().hex[:10]}.onnx"
    wrapped = _wrapper(module, names, logits)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped,
                args,
                str(path),
                input_names=names,
                output_names=[out_name],
                dynamic_axes=dynamic,
                opset_version=cfg.opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as e:
        raise CandidateFailed(f"ONNX export failed: {str(e).splitlines()[0][:300]}") from e
    # config.json of the saved folder describes the exported network (after structure passes)
    config = module.config.to_dict() if hasattr(module, "config") else model.config
    return model.evolve(engine="onnx", onnx_path=path, module=None, source=None, config=config)
