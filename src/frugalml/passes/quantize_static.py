"""Static int8 quantization (ONNX Runtime): activation ranges calibrated on the task's text.

Weights and activations are int8 with fixed scales; the scales come from running the model on
``calibration_texts`` texts of the task data's *tune* split (never the rows quality is scored
on). The graph is shape-inferred first (``quant_pre_process``), as ONNX Runtime recommends.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from frugalml.errors import CandidateFailed
from frugalml.passes.registry import PassContext, quiet_logs, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class QuantizeStatic:
    """Static int8 quantization with calibration on the task data (ONNX Runtime)."""

    calibration_texts: int = 256  # texts from the tune split used to fit activation ranges
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    quant_format: Literal["qdq", "qoperator"] = "qdq"


@register(QuantizeStatic, stage=30, engines=("onnx",), group="precision", needs_data=True)
def quantize_static(model: Model, cfg: QuantizeStatic, ctx: PassContext) -> Model:
    if model.device != "cpu":
        raise CandidateFailed("static int8 quantization runs on CPU only")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
    )
    from onnxruntime.quantization import quantize_static as ort_quantize
    from onnxruntime.quantization.shape_inference import quant_pre_process

    rng = np.random.default_rng(ctx.seed)
    texts = list(ctx.texts)
    if len(texts) > cfg.calibration_texts:
        texts = [
            texts[i] for i in sorted(rng.choice(len(texts), cfg.calibration_texts, replace=False))
        ]
    import onnxruntime as ort

    names = [
        i.name
        for i in ort.InferenceSession(
            str(model.onnx_path), providers=["CPUExecutionProvider"]
        ).get_inputs()
    ]
    batches = [model.tokenize([texts[i] for i in idx]) for idx in model.batches(texts)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[dict[str, Any]] = iter(
                {n: b[n] for n in names if n in b} for b in batches
            )

        def get_next(self) -> dict[str, Any] | None:
            return next(self._it, None)

    work = ctx.workdir()
    pre = work / f"pre-{uuid.uuid4().hex[:10]}.onnx"
    out = work / f"static-{uuid.uuid4().hex[:10]}.onnx"
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[cfg.method]
    try:
        # ONNX Runtime's shape inference may drop temp files in the working directory
        with quiet_logs(), contextlib.chdir(work):
            quant_pre_process(str(model.onnx_path), str(pre), skip_symbolic_shape=True)
            ort_quantize(
                str(pre),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ
                if cfg.quant_format == "qdq"
                else QuantFormat.QOperator,
                per_channel=cfg.per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                op_types_to_quantize=["MatMul", "Gemm"],
                extra_options={"MatMulConstBOnly": True},
            )
    except Exception as e:
        raise CandidateFailed(f"static quantization failed: {str(e).splitlines()[0][:300]}") from e
    finally:
        pre.unlink(missing_ok=True)
    return model.evolve(onnx_path=out, dtype="int8")
