"""Dynamic int8 quantization: int8 weights, activations quantized on the fly per batch.

- ONNX Runtime (``onnxruntime.quantization.quantize_dynamic``): MatMul/Gemm weights become
  int8 (``MatMulInteger`` / ``DynamicQuantizeMatMul`` kernels, VNNI where the CPU has it); the
  saved graph holds the int8 weights (about 4x smaller).
- PyTorch (``torch.ao.quantization.quantize_dynamic``): ``nn.Linear`` → dynamic int8 Linear.
  A runtime transform: ``save`` keeps the float weights and ``load`` re-quantizes them (the
  result is deterministic), so no pickled quantized module is ever written.

Why torch.ao and not torchao's maintained ``quantize_(m, Int8DynamicActivationInt8WeightConfig())``
(``bench/quantize_int8.py``, ``bench/results/quantize_int8.json``: all-MiniLM-L6-v2, 2 threads,
256 STS-B dev sentences, batch 32, torch 2.13 / torchao 0.18; speedups are paired per-batch
ratios to fp32 in one interleaved run on a shared machine at load ~12 on 2 cores; warm-up is the
first pass, compiling included, fp32's own being 25 s):

=============================  ========  =========  ===============  =================  ========
candidate                      speed     CPU-time   cosine to fp32   Spearman (points)  warm-up
=============================  ========  =========  ===============  =================  ========
torch.ao dynamic int8 (this)   1.33x     1.39x      0.952            -0.70              20 s
torchao int8, eager            0.43x     0.45x      0.997            +0.18              62 s
torchao int8 + torch.compile   1.25x     1.34x      0.997            +0.21              136 s
fp32 + torch.compile           1.05x     1.01x      1.000             0.00              146 s
=============================  ========  =========  ===============  =================  ========

torchao is closer to fp32 but is only as fast as torch.ao once compiled, and compiling needs a
C++ compiler and minutes of warm-up (on every ``load``, since the pass is replayed); eager it
is slower than fp32 (the issue's idle-machine figures agree: 710 fp32, 1,233 torch.ao, 541
torchao eager sentences/s). torch.ao stays: cheaper to set up, no slower to run, and the search's
quality bound rejects it where its 0.7-point loss matters. Its deprecation notice is silenced
below on purpose; when a torch release removes ``torch.ao.quantization``, switch this function
to torchao + ``torch.compile`` and rerun the benchmark.
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
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice: see the docstring
        quantized = torch_quantize(
            copy.deepcopy(model.module).cpu(), {torch.nn.Linear}, dtype=torch.qint8
        )
    return model.evolve(
        module=quantized.eval(),
        dtype="int8",
    )
