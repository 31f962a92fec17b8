"""Run one batch through a model's engine: PyTorch module or ONNX Runtime session.

Both engines share tokenization (``Model.tokenize``) and pooling (``Pooling.apply``, in numpy),
so an exported or quantized variant differs from its original only in the network itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.measure.hardware import usable_cpus

if TYPE_CHECKING:
    from frugalml.models.base import Model


def threads_for(model: Model) -> int:
    return model.runtime.threads or usable_cpus()


def run_batch(model: Model, texts: Sequence[str]) -> np.ndarray:
    enc = model.tokenize(texts)
    raw = _run_onnx(model, enc) if model.engine == "onnx" else _run_torch(model, enc)
    if model.output == "embedding":
        if raw.ndim == 3:
            return model.pooling.apply(raw, enc["attention_mask"])
        return raw.astype(np.float32, copy=False)
    return raw.astype(np.float32, copy=False)


# ---- PyTorch ------------------------------------------------------------------------------
def _forward_names(module: Any) -> set[str]:
    target = getattr(module, "_orig_mod", module)  # torch.compile wrapper
    try:
        return set(inspect.signature(target.forward).parameters)
    except (TypeError, ValueError):
        return {"input_ids", "attention_mask", "token_type_ids"}


def _run_torch(model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    want = threads_for(model)
    if model.device == "cpu" and torch.get_num_threads() != want:
        torch.set_num_threads(want)
    names = model.extra.get("_forward_names")
    if names is None:
        names = model.extra["_forward_names"] = _forward_names(model.module)
    feed = {k: torch.from_numpy(v).to(model.device) for k, v in enc.items() if k in names}
    with torch.inference_mode():
        out = model.module(**feed)
    if model.output == "logits":
        tensor = out.logits if hasattr(out, "logits") else out[0]
    else:
        tensor = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
    return tensor.float().cpu().numpy()


# ---- ONNX Runtime -------------------------------------------------------------------------
def onnx_session(model: Model) -> Any:
    """The model's ONNX Runtime session, created on first use for its threads and device."""
    key = (str(model.onnx_path), threads_for(model), model.device)
    if model._session is not None and model._session_key == key:
        return model._session
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads_for(model)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # warnings about unused initializers are noise to users
    providers = ["CPUExecutionProvider"]
    if model.device.startswith("cuda"):
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    model._session = ort.InferenceSession(str(model.onnx_path), so, providers=providers)
    model._session_key = key
    return model._session


def _run_onnx(model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
    sess = onnx_session(model)
    names = [i.name for i in sess.get_inputs()]
    feed = {n: enc[n] for n in names if n in enc}
    if "token_type_ids" in names and "token_type_ids" not in enc:
        feed["token_type_ids"] = np.zeros_like(enc["input_ids"])
    return np.asarray(sess.run(None, feed)[0])
