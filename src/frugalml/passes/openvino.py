"""OpenVINO int8: post-training quantization with NNCF, run by OpenVINO's CPU plugin.

The ONNX graph is read by OpenVINO and quantized by ``nncf.quantize`` (``ModelType.TRANSFORMER``:
the MatMuls' inputs and weights int8, per-channel weights, LayerNorm/Softmax/GELU left in
float), its activation ranges calibrated on ``calibration_texts`` texts of the task data's
*tune* split in the batches they would run in (never the rows quality is scored on). The
result is an OpenVINO IR run by the ``openvino`` runtime, whose CPU plugin uses this CPU's
AMX-INT8 / AVX-512 VNNI kernels; ONNX Runtime's dynamic int8 does not (see
``bench/openvino_probe.py`` and docs/benchmarks.md for the measured difference).
``precision``: what the parts left in float run in. OpenVINO's default on a CPU with AMX is
bf16, which lost 0.2-0.4 Spearman point on STS-B train in the probe; ``f32`` (the default)
lost none. The choice is recorded in the IR (``rt_info``: ``runtime_options``) and applied by
the ``openvino`` runtime (OpenVINO's CPU plugin does not read that key itself).

Needs ``openvino`` and ``nncf`` (``frugalml[openvino]``); without them the pipeline is invalid
(the search leaves it out) and applying it is refused in one line. NNCF's usage telemetry
(sent unless a consent file says otherwise) is switched off for the pass.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes.registry import PassContext, quiet_logs, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class OpenVINOInt8:
    """int8 with NNCF calibration on the task data, run by OpenVINO (AMX/VNNI int8 kernels)."""

    calibration_texts: int = 1000  # texts from the tune split used to fit activation ranges
    precision: Literal["f32", "bf16"] = "f32"  # what the parts left in float run in

    def __post_init__(self) -> None:
        if self.precision not in ("f32", "bf16"):
            raise BadInput(f"openvino_int8: precision must be f32 or bf16, not {self.precision!r}")
        if self.calibration_texts < 1:
            raise BadInput("openvino_int8: calibration_texts must be at least 1")

    def device_problem(self, device: str) -> str | None:
        if device != "cpu":
            return "frugal runs OpenVINO on cpu only"
        if not available():
            return "openvino and nncf are not installed (pip install 'frugalml[openvino]')"
        return None


def _nncf_without_telemetry() -> Any:
    """``nncf``, with its usage telemetry (on unless a consent file says no: NNCF asks no one)
    replaced by its own no-op stub: frugal sends nothing anywhere on a user's behalf."""
    import nncf
    from nncf.telemetry import decorator, wrapper

    stub = wrapper.NNCFTelemetryStub()
    wrapper.telemetry = stub
    decorator.telemetry = stub
    return nncf


def available() -> bool:
    """Whether OpenVINO and NNCF can be imported (without importing them)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("openvino", "nncf"))
    except (ImportError, ValueError):  # a finder that refuses it, a half-imported module
        return False


@register(
    OpenVINOInt8,
    stage=30,
    engines=("onnx",),
    produces="openvino",
    group="precision",
    needs_data=True,
    name="openvino_int8",
)
def openvino_int8(model: Model, cfg: OpenVINOInt8, ctx: PassContext) -> Model:
    if (why := cfg.device_problem(model.device)) is not None:
        raise CandidateFailed(why)
    if model.onnx_path is None:
        raise CandidateFailed("OpenVINO int8 needs the model's ONNX graph (export it first)")
    from frugalml.models.runtimes.openvino import IR_FILE, ov, precision_key, read

    nncf = _nncf_without_telemetry()

    ov_mod = ov()
    rng = np.random.default_rng(ctx.seed)
    texts = list(ctx.texts)
    if len(texts) > cfg.calibration_texts:
        keep = sorted(rng.choice(len(texts), cfg.calibration_texts, replace=False))
        texts = [texts[i] for i in keep]
    network = read(model.onnx_path)
    names = {i.get_any_name() for i in network.inputs}
    batches = []
    for idx in model.batches(texts):
        enc = model.tokenize([texts[i] for i in idx])
        feed = {n: enc[n] for n in names if n in enc}
        if "token_type_ids" in names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(enc["input_ids"])
        batches.append(feed)
    try:
        # NNCF's progress bars (rich) write to whatever sys.stdout is while they run
        sink = io.StringIO()
        with (
            quiet_logs("nncf"),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            quantized = nncf.quantize(
                network,
                nncf.Dataset(batches),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=max(1, len(batches)),
            )
    except Exception as e:
        raise CandidateFailed(f"NNCF quantization failed: {str(e).splitlines()[0][:300]}") from e
    quantized.set_rt_info(cfg.precision, precision_key())
    out = ctx.workdir() / f"ov-int8-{uuid.uuid4().hex[:10]}" / IR_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    ov_mod.save_model(quantized, str(out), compress_to_fp16=False)
    return model.evolve(engine="openvino", source=out, onnx_path=None, dtype="int8")
