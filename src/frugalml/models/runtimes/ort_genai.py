"""The ONNX Runtime GenAI runtime: a causal LM as the GenAI model builder writes it.

A folder with ``genai_config.json`` + ``model.onnx`` (+ ``model.onnx.data``), made by
``python -m onnxruntime_genai.models.builder`` (the ``OrtGenAIBuild`` pass runs it on a saved
causal LM: int4 ``MatMulNBits`` or fp32 on CPU). Models it gives out have ``output == "lm"``
and the causal-LM runtime's interface, so the LM tasks and ``evaluate_lm`` run them unchanged:
``logits`` (one generator per row: the prompt's logits at every position) and ``greedy``
(prefill, then ``generate_next_token`` steps over GenAI's own KV cache). Token ids come from
the Hugging Face tokenizer saved next to the model, so both runtimes see the same tokens.

``onnxruntime-genai`` is optional (``frugalml[llm]``); without it such a folder is refused in
one line.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.errors import BadInput
from frugalml.models import hf
from frugalml.models.base import Model, Runtime
from frugalml.models.registry import register

CONFIG = "genai_config.json"
FILES = (CONFIG, "model.onnx", "model.onnx.data")


def _og() -> Any:
    try:
        import onnxruntime_genai as og
    except ImportError as e:
        raise BadInput(
            "this model needs ONNX Runtime GenAI (onnxruntime-genai), which is not installed",
            hint="pip install 'frugalml[llm]'",
        ) from e
    return og


def _decoder(folder: Path) -> dict[str, Any]:
    try:
        raw = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
        return dict(raw["model"]["decoder"]) | {"context_length": raw["model"]["context_length"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadInput(f"{folder / CONFIG} is not an ONNX Runtime GenAI config: {e}") from e


@register
class OrtGenAIRuntime:
    name = "ort_genai"

    def find(self, folder: Path) -> Path | None:
        if folder.is_dir() and (folder / CONFIG).is_file() and (folder / "model.onnx").is_file():
            return folder
        return None

    def load(self, path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
        if device != "cpu":
            raise BadInput(f"the ort_genai runtime runs on cpu here, not {device}")
        og = _og()
        dec = _decoder(path)
        try:
            network = og.Model(str(path))
        except Exception as e:
            raise BadInput(f"ONNX Runtime GenAI cannot load {path}: {hf.first_line(e)}") from e
        tokenizer = hf.load_tokenizer(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        heads = int(dec.get("num_attention_heads") or 1)
        config = {
            "num_hidden_layers": int(dec.get("num_hidden_layers") or 0),
            "num_attention_heads": heads,
            "num_key_value_heads": int(dec.get("num_key_value_heads") or heads),
            "head_dim": int(dec.get("head_size") or 0),
            "hidden_size": int(dec.get("hidden_size") or 0),
            "max_position_embeddings": int(dec["context_length"]),
        }
        return Model(
            engine=self.name,
            output="lm",
            tokenizer=tokenizer,
            base=base,
            runtime=Runtime(
                batch_size=1, length_sort=False, max_length=config["max_position_embeddings"]
            ),
            module=network,
            source=path,
            onnx_path=path / "model.onnx",
            device=device,
            dtype=_precision(path),
            arch="ort_genai",
            config=config,
            dims={"hidden_size": config["hidden_size"], "layers": config["num_hidden_layers"]},
        )

    # ---- running ------------------------------------------------------------------------
    def _generator(self, model: Model, rows: int, length: int) -> Any:
        og = _og()
        params = og.GeneratorParams(model.module)
        context = int(model.config.get("max_position_embeddings") or length)
        params.set_search_options(max_length=min(length, context), do_sample=False, batch_size=rows)
        return og.Generator(model.module, params)

    def run(self, model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        logits = self.logits(model, enc["input_ids"])
        return np.asarray(logits[:, -1, :].numpy(), dtype=np.float32)

    def logits(self, model: Model, ids: Any) -> Any:
        """Logits (batch, seq, vocab) as a float32 CPU tensor, like the causal-LM runtime's."""
        import torch

        rows = np.asarray(ids.cpu().numpy() if torch.is_tensor(ids) else ids, dtype=np.int32)
        out = []
        for row in rows:  # one generator per row: no padding enters the prompt
            gen = self._generator(model, 1, len(row) + 1)
            gen.append_tokens(row[None, :])
            out.append(np.asarray(gen.get_output("logits"), dtype=np.float32)[0])
        return torch.from_numpy(np.stack(out))

    def greedy(
        self, model: Model, ids: Any, new_tokens: int, *, sync: Any = None
    ) -> tuple[np.ndarray, float, list[float]]:
        """Greedy decoding, as the causal-LM runtime's ``greedy`` (same return values)."""
        rows = np.asarray(ids, dtype=np.int32)
        batch, prompt = rows.shape
        gen = self._generator(model, batch, prompt + new_tokens + 1)
        steps: list[float] = []
        t0 = time.perf_counter()
        gen.append_tokens(rows)
        last = np.asarray(gen.get_logits()).reshape(batch, -1).argmax(axis=-1)
        prefill_s = time.perf_counter() - t0
        for _ in range(new_tokens - 1):  # each step: take the chosen token, run the model on it
            t = time.perf_counter()
            gen.generate_next_token()
            last = np.asarray(gen.get_logits()).reshape(batch, -1).argmax(axis=-1)
            steps.append(time.perf_counter() - t)
        seqs = np.stack([np.asarray(gen.get_sequence(i))[prompt:] for i in range(batch)])
        tokens = np.concatenate([seqs[:, : new_tokens - 1], last[:, None]], axis=1)
        return tokens.astype(np.int64), prefill_s, steps

    # ---- saving and size ------------------------------------------------------------------
    def save(self, model: Model, folder: Path) -> list[str]:
        src = Path(model.source)
        written = []
        for name in FILES:
            if (src / name).exists():
                if (src / name).resolve() != (folder / name).resolve():
                    shutil.copyfile(src / name, folder / name)
                written.append(name)
        return written

    def size_bytes(self, model: Model) -> int:
        src = Path(model.source)
        return sum((src / n).stat().st_size for n in FILES[1:] if (src / n).exists())

    def weights_bytes(self, model: Model) -> int:
        """Bytes of weights a decode step reads: the graph's initializers as stored (4-bit
        blocks, scales ...), but of the input embedding table only the one row it looks up."""
        import onnx
        from onnx.helper import tensor_dtype_to_np_dtype

        graph = onnx.load(str(Path(model.source) / "model.onnx"), load_external_data=False).graph
        total = 0
        for init in graph.initializer:
            stored = int(np.prod(init.dims)) * tensor_dtype_to_np_dtype(init.data_type).itemsize
            if "embed_tokens" in init.name and len(init.dims) == 2:
                stored //= max(1, int(init.dims[0]))  # one row per token
            total += stored
        return total


def _precision(folder: Path) -> str:
    """int4 when the graph has MatMulNBits nodes (the builder's int4), else float32."""
    return "int4" if b"MatMulNBits" in (folder / "model.onnx").read_bytes() else "float32"
