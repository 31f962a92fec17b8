"""Dynamic int8 quantization: int8 weights, activations quantized on the fly per batch.

- ONNX Runtime (``onnxruntime.quantization.quantize_dynamic``): MatMul/Gemm weights become
  int8 (``MatMulInteger`` / ``DynamicQuantizeMatMul`` kernels, VNNI where the CPU has it); the
  saved graph holds the int8 weights (about 4x smaller).
- PyTorch (``torch.ao.quantization.quantize_dynamic``): ``nn.Linear`` → dynamic int8 Linear.
  A runtime transform: ``save`` keeps the float weights and ``load`` re-quantizes them (the
  result is deterministic), so no pickled quantized module is ever written.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from frugalml.errors import CandidateFailed
from frugalml.passes.registry import PassContext, quiet_logs, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class QuantizeDynamic:
    """Dynamic int8 quantization of the linear layers (ONNX Runtime or PyTorch)."""

    weight_type: Literal["qint8", "quint8"] = "qint8"  # signed int8 is fastest with VNNI
    per_channel: bool = False  # one scale per output channel (ONNX): better quality, a bit slower
    reduce_range: bool = False  # 7-bit weights, for CPUs without VNNI (avoids overflow)


@register(
    QuantizeDynamic, stage=30, engines=("torch", "onnx"), group="precision", replay_on=("torch",)
)
def quantize_dynamic(model: Model, cfg: QuantizeDynamic, ctx: PassContext) -> Model:
    if model.device != "cpu":
        raise CandidateFailed("dynamic int8 quantization runs on CPU only")
    if model.engine == "onnx":
        return _onnx(model, cfg, ctx)
    return _torch(model, cfg)


def _onnx(model: Model, cfg: QuantizeDynamic, ctx: PassContext) -> Model:
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize

    path = ctx.workdir() / f"int8-{uuid.uuid4().hex[:10]}.onnx"
    weight = QuantType.QInt8 if cfg.weight_type == "qint8" else QuantType.QUInt8
    # MatMulConstBOnly: only MatMuls with a constant weight (not attention's Q·K^T);
    # DefaultTensorType: lets fused graphs with contrib ops pass type inference.
    extra = {"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT}
    try:
        with quiet_logs():
            ort_quantize(
                str(model.onnx_path),
                str(path),
                weight_type=weight,
                per_channel=cfg.per_channel,
                reduce_range=cfg.reduce_range,
                extra_options=extra,
            )
    except Exception as e:
        raise CandidateFailed(
            f"ONNX dynamic quantization failed: {str(e).splitlines()[0][:300]}"
        ) from e
    return model.evolve(onnx_path=path, dtype="int8")


def _torch(model: Model, cfg: QuantizeDynamic) -> Model:
    import torch
    from torch.ao.quantization import quantize_dynamic as torch_quantize

    if cfg.weight_type != "qint8":
        raise CandidateFailed("PyTorch dynamic quantization supports qint8 weights only")
    engines = torch.backends.quantized.supported_engines
    for wanted in ("x86", "fbgemm", "onednn", "qnnpack"):
        if wanted in engines:
            torch.backends.quantized.engine = wanted
            break
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notice
        quantized = torch_quantize(
            copy.deepcopy(model.module).cpu(), {torch.nn.Linear}, dtype=torch.qint8
        )
    return model.evolve(
        module=quantized.eval(),
        dtype="int8",
    )
