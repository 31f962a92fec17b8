"""The OpenVINO runtime: an OpenVINO IR (``openvino/openvino_model.xml`` + ``.bin``).

``openvino/openvino_model.xml`` is where sentence-transformers (``backend="openvino"``) and
Optimum Intel look for the graph; an IR at the folder's top (``openvino_model.xml``, Optimum
Intel's own layout) loads too. The IR records the precision its float parts run in (``rt_info``
``runtime_options`` / ``INFERENCE_PRECISION_HINT``, written by ``openvino_int8``); OpenVINO's
CPU plugin does not read that key itself, so this runtime passes it at compile time (another
OpenVINO user gets the plugin's default: bf16 on a CPU with AMX). The CPU plugin runs int8 on
this CPU's AMX-INT8 kernels (``brgemm_avx512_amx``).

It runs as many streams as the model has threads, one thread each, and splits every batch's
rows over them (asynchronous requests): on the 2-core benchmark machine, 1,977 sentences/s
at batch 32 against 1,319 for one 2-thread stream, whose threads wait on each other at every
layer (``bench/results/openvino_probe.json``). A batch of one row runs on one thread.

``openvino`` is optional (``frugalml[openvino]``); without it such a folder is refused in one
line.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.errors import BadInput
from frugalml.models import hf
from frugalml.models.base import Model
from frugalml.models.registry import register, threads_for
from frugalml.models.runtimes.onnxruntime import folder_of as graph_folder
from frugalml.models.runtimes.onnxruntime import graph_model

IR_FILE = "openvino/openvino_model.xml"
FILES = (IR_FILE, IR_FILE[: -len(".xml")] + ".bin")
HINT = "pip install 'frugalml[openvino]'"
PRECISION = "INFERENCE_PRECISION_HINT"


def precision_key() -> list[str]:
    """Where an IR records the precision its float parts run in (``rt_info``)."""
    return ["runtime_options", PRECISION]


def precision_of(network: Any) -> str | None:
    """The precision recorded in an IR (``f32``, ``bf16``), or None: OpenVINO's default."""
    if not network.has_rt_info(precision_key()):
        return None
    return str(network.get_rt_info(precision_key()).astype(str))


def ov() -> Any:
    """The ``openvino`` module, or a one-line ``BadInput`` saying how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise BadInput(
            "this model needs OpenVINO (the openvino package), which is not installed", hint=HINT
        ) from e
    return openvino


def bin_of(xml: Path) -> Path:
    return xml.with_suffix(".bin")


def folder_of(xml: Path) -> Path:
    """The model folder of an IR: ``X`` for ``X/openvino/openvino_model.xml`` and
    ``X/openvino_model.xml``."""
    return graph_folder(xml, "openvino")


@register
class OpenVINORuntime:
    name = "openvino"

    def find(self, folder: Path) -> Path | None:
        for rel in (IR_FILE, "openvino_model.xml"):
            if (folder / rel).is_file():
                return folder / rel
        return None

    def load(self, path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
        if device != "cpu":
            raise BadInput(f"the openvino runtime runs on cpu here, not {device}")
        if not bin_of(path).is_file():
            raise BadInput(f"{path} has no weights file {bin_of(path).name} next to it")

        def first_output() -> str | None:
            outputs = [o.get_any_name() for o in read(path).outputs if o.get_names()]
            return outputs[0] if outputs else None

        return graph_model(
            self.name, folder_of(path), base=base, device=device, first_output=first_output,
            source=path,
        )  # fmt: skip

    def compiled(self, model: Model) -> Any:
        """The model's compiled network, one stream of one thread per thread it runs with, and
        an infer request per stream; made on first use."""

        def make() -> Any:
            core = ov().Core()
            network = read(Path(model.source))
            streams = threads_for(model)
            config: dict[str, Any] = {
                "INFERENCE_NUM_THREADS": streams,
                "NUM_STREAMS": streams,  # one thread each: no barrier between the cores
                "PERFORMANCE_HINT": "THROUGHPUT",
            }
            # the CPU plugin does not read the IR's own runtime_options for this key
            if (precision := precision_of(network)) is not None:
                config[PRECISION] = precision
            try:
                compiled = core.compile_model(network, "CPU", config)
            except Exception as e:
                raise BadInput(f"OpenVINO cannot compile {model.source}: {hf.first_line(e)}") from e
            names = [i.get_any_name() for i in compiled.inputs]
            requests = [compiled.create_infer_request() for _ in range(streams)]
            # infer requests are not thread-safe (an ONNX Runtime session is): one batch at a time
            return compiled, requests, names, threading.Lock()

        return model.state(make)

    def run(self, model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        """One batch, its rows split evenly over the streams, which run at once."""
        compiled, requests, names, lock = self.compiled(model)
        with lock:
            return self._run(compiled, requests, names, enc)

    def _run(
        self, compiled: Any, requests: list[Any], names: list[str], enc: dict[str, np.ndarray]
    ) -> np.ndarray:
        feed = {n: enc[n] for n in names if n in enc}
        if "token_type_ids" in names and "token_type_ids" not in enc:
            feed["token_type_ids"] = np.zeros_like(enc["input_ids"])
        rows = len(enc["input_ids"])
        parts = [p for p in np.array_split(np.arange(rows), min(len(requests), rows)) if len(p)]
        out = compiled.output(0)
        if len(parts) == 1:
            return np.asarray(requests[0].infer(feed)[out])
        running = list(zip(requests, parts, strict=False))
        for request, part in running:
            request.start_async({n: a[part] for n, a in feed.items()})
        for request, _part in running:
            request.wait()
        return np.concatenate([request.get_tensor(out).data.copy() for request, _p in running])

    def save(self, model: Model, folder: Path) -> list[str]:
        if model.source is None:
            raise ValueError("OpenVINO model without an IR file")
        xml = Path(model.source)
        target = folder / IR_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(xml, target)
        shutil.copyfile(bin_of(xml), bin_of(target))
        written = list(FILES)
        if model.config:
            (folder / "config.json").write_text(
                json.dumps(model.config, indent=2, sort_keys=True, default=str) + "\n",
                encoding="utf-8",
            )
            written.append("config.json")
        return written

    def size_bytes(self, model: Model) -> int:
        if model.source is None:
            return 0
        xml = Path(model.source)
        return xml.stat().st_size + bin_of(xml).stat().st_size


def read(path: Path) -> Any:
    """The OpenVINO network of an IR (or ONNX) file; a broken one is refused in one line."""
    try:
        return ov().Core().read_model(str(path))
    except BadInput:
        raise
    except Exception as e:
        raise BadInput(f"{path} is not a readable OpenVINO model: {hf.first_line(e)}") from e
