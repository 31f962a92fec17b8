"""The ONNX Runtime runtime: an ONNX graph, saved as ``onnx/model.onnx`` + ``config.json``.

``onnx/model.onnx`` is where sentence-transformers (``backend="onnx"``) and Optimum look for
the graph; a graph at the folder's top (``model.onnx``, frugal's first layout, or a user's
export) loads too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.errors import BadInput
from frugalml.models import hf
from frugalml.models.base import Model, Output, Runtime
from frugalml.models.registry import register, threads_for


def folder_of(graph: Path, sub: str = "onnx") -> Path:
    """The model folder of a graph file: ``X`` for ``X/onnx/model.onnx`` and ``X/model.onnx``
    (``sub``: the graph's own subfolder, ``openvino`` for an OpenVINO IR)."""
    parent = graph.parent
    if parent.name == sub and not (parent / "tokenizer_config.json").exists():
        return parent.parent
    return parent


def graph_model(
    engine: str,
    folder: Path,
    *,
    base: str,
    device: str,
    first_output: Callable[[], str | None],
    **where: Any,
) -> Model:
    """The ``Model`` of an exported graph (ONNX, OpenVINO IR) in ``folder``: its tokenizer and
    pooling, and its head labels, dimensions and architecture when a ``config.json`` is there.
    ``first_output()`` names the graph's first output ("logits": a classifier);
    ``where``: the field that holds the graph (``onnx_path=`` or ``source=``)."""
    tokenizer = hf.load_tokenizer(folder)
    pooling, max_len = hf.st_pooling(folder)
    labels = None
    dims: dict[str, int] = {}
    config: dict[str, Any] = {}
    arch = ""
    if (folder / "config.json").exists():
        cfg = hf.read_config(folder)
        labels, dims, config, arch = (
            hf.head_labels(cfg),
            hf.dims_of(cfg),
            cfg.to_dict(),
            str(cfg.model_type),
        )
    first = first_output()  # read whatever the labels: an unreadable graph is refused here
    output: Output = "logits" if labels or first == "logits" else "embedding"
    return Model(
        engine=engine,
        output=output,
        tokenizer=tokenizer,
        base=base,
        pooling=pooling,
        runtime=Runtime(max_length=hf.max_length_of(tokenizer, max_len)),
        device=device,
        label_names=labels,
        arch=arch,
        config=config,
        dims=dims,
        **where,
    )


@register
class OnnxRuntime:
    name = "onnx"

    def find(self, folder: Path) -> Path | None:
        for rel in (hf.ONNX_FILE, "model.onnx"):
            if (folder / rel).is_file():
                return folder / rel
        return None

    def load(self, path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
        def first_output() -> str | None:
            import onnx

            try:
                graph = onnx.load(str(path), load_external_data=False)
            except Exception as e:
                raise BadInput(f"{path} is not a readable ONNX model: {hf.first_line(e)}") from e
            outputs = graph.graph.output
            return outputs[0].name if outputs else None

        return graph_model(
            self.name, folder_of(path), base=base, device=device, first_output=first_output,
            onnx_path=path,
        )  # fmt: skip

    def session(self, model: Model) -> Any:
        """The model's ONNX Runtime session, made on first use for its threads and device."""
        import onnxruntime as ort

        def make() -> Any:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads_for(model)
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            so.log_severity_level = 3  # warnings about unused initializers are noise to users
            providers = ["CPUExecutionProvider"]
            if model.device.startswith("cuda"):
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            return ort.InferenceSession(str(model.onnx_path), so, providers=providers)

        return model.state(make)

    def run(self, model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        sess = self.session(model)
        names = [i.name for i in sess.get_inputs()]
        feed = {n: enc[n] for n in names if n in enc}
        if "token_type_ids" in names and "token_type_ids" not in enc:
            feed["token_type_ids"] = np.zeros_like(enc["input_ids"])
        return np.asarray(sess.run(None, feed)[0])

    def save(self, model: Model, folder: Path) -> list[str]:
        if model.onnx_path is None:
            raise ValueError("ONNX model without a graph file")
        target = folder / hf.ONNX_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model.onnx_path, target)
        written = [hf.ONNX_FILE]
        data = Path(str(model.onnx_path) + ".data")
        if data.exists():
            shutil.copyfile(data, Path(str(target) + ".data"))
            written.append(hf.ONNX_FILE + ".data")
        if model.config:
            (folder / "config.json").write_text(
                json.dumps(model.config, indent=2, sort_keys=True, default=str) + "\n",
                encoding="utf-8",
            )
            written.append("config.json")
        return written

    def size_bytes(self, model: Model) -> int:
        if model.onnx_path is None:
            return 0
        data = Path(str(model.onnx_path) + ".data")
        return model.onnx_path.stat().st_size + (data.stat().st_size if data.exists() else 0)
