"""The llama.cpp runtime: a GGUF causal LM run by ``llama-cpp-python`` (optional).

llama.cpp runs a GGUF file's weights as they are stored (Q4_1, Q8_0 ...: no dequantizing
to float32), which makes it the CPU peer to beat for a quantized small LM. Models it gives
out have ``output == "lm"`` and the causal-LM runtime's interface, so the LM tasks and
``evaluate_lm`` run them unchanged: ``logits`` (a context that keeps every position's logits)
and ``greedy`` (prefill, then one ``eval`` of one token per step over llama.cpp's KV cache).
Token ids come from the Hugging Face tokenizer of the same GGUF (saved next to the model),
so both runtimes score the same tokens.

It loads a folder holding ``model.gguf`` (what ``save`` writes, and what the
``llama_cpp_gguf`` pass makes); a bare ``.gguf`` file stays the ``causal_lm`` runtime's
(dequantized by transformers) unless that pass is applied. ``llama-cpp-python`` is not a
dependency of any extra but ``[llamacpp]`` (it builds from source, minutes); without it such
a folder is refused in one line and the pass is a failed candidate.

Contexts are made on first use and kept in the model's state, one per (logits kept, context
length, threads): the weights are memory-mapped once by the OS, whatever the count. They run
with flash attention, as llama.cpp's own default (``auto``) does on CPU; llama-cpp-python's
``Llama`` turns it off unless asked. On SmolLM2's Q4_1 GGUF here (2 threads, 63 greedy steps
after a 64-token prompt) it decoded 92.9 tokens/s with it and 83.1 without
(``bench/llama_cpp_flash.py``, ``bench/results/llama_cpp_flash.json``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.errors import BadInput
from frugalml.models import hf
from frugalml.models.base import Model, Runtime
from frugalml.models.registry import register, threads_for

WEIGHTS = "model.gguf"
#: the longest context a model gets here (the scores a logits context keeps are
#: context x vocabulary float32: 2048 x 49152 x 4 B = 400 MB for SmolLM2)
MAX_CONTEXT = 2048
INSTALL_HINT = (
    "pip install 'frugalml[llamacpp]' (builds llama.cpp from source; with "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON ..." on a CPU where a native build fails)'
)


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as e:
        raise BadInput(
            "this model needs llama.cpp (llama-cpp-python), which is not installed",
            hint=INSTALL_HINT,
        ) from e
    return llama_cpp


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The architecture figures of a GGUF file (layers, heads, context ...), from its header."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:
        raise BadInput(f"{path} is not a readable GGUF file: {hf.first_line(e)}") from e

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    arch = str(field("general.architecture") or "llama")
    heads = int(field(f"{arch}.attention.head_count") or 1)
    hidden = int(field(f"{arch}.embedding_length") or 0)
    kinds = sorted({t.tensor_type.name for t in reader.tensors})
    return {
        "arch": arch,
        "num_hidden_layers": int(field(f"{arch}.block_count") or 0),
        "num_attention_heads": heads,
        "num_key_value_heads": int(field(f"{arch}.attention.head_count_kv") or heads),
        "hidden_size": hidden,
        "head_dim": hidden // heads if heads else 0,
        "max_position_embeddings": int(field(f"{arch}.context_length") or MAX_CONTEXT),
        "tensor_types": kinds,
    }


def _float_dtype(kinds: list[str]) -> str:
    """The dtype of an unquantized file: its 2-D weights' (F16 / BF16 next to F32 norms)."""
    return "float16" if "F16" in kinds else "bfloat16" if "BF16" in kinds else "float32"


@register
class LlamaCppRuntime:
    name = "llama_cpp"

    def find(self, folder: Path) -> Path | None:
        if folder.is_dir() and (folder / WEIGHTS).is_file():
            return folder / WEIGHTS
        return None

    def load(self, path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
        """``path``: a ``.gguf`` file; its tokenizer is the folder's (or the GGUF's own)."""
        if device != "cpu":
            raise BadInput(f"the llama_cpp runtime runs on cpu here, not {device}")
        _llama_cpp()
        meta = gguf_metadata(path)
        tokenizer = _tokenizer(path)
        context = min(int(meta["max_position_embeddings"]), MAX_CONTEXT)
        config = {k: v for k, v in meta.items() if k not in ("arch", "tensor_types")}
        config["max_position_embeddings"] = context
        quant = [t for t in meta["tensor_types"] if t not in ("F32", "F16", "BF16")]
        return Model(
            engine=self.name,
            output="lm",
            tokenizer=tokenizer,
            base=base,
            runtime=Runtime(batch_size=1, length_sort=False, max_length=context),
            module=path,
            source=path,
            device=device,
            dtype="+".join(quant) if quant else _float_dtype(meta["tensor_types"]),
            arch=str(meta["arch"]),
            config=config,
            dims={"hidden_size": config["hidden_size"], "layers": config["num_hidden_layers"]},
        )

    # ---- running ------------------------------------------------------------------------
    def _context(self, model: Model, *, logits_all: bool, n_ctx: int) -> Any:
        """A llama.cpp context for ``model`` (made once per settings, kept in its state)."""
        contexts: dict[tuple[bool, int, int], Any] = model.state(dict)
        threads = threads_for(model)
        n_ctx = max(16, min(int(n_ctx), int(model.runtime.max_length)))
        key = (logits_all, n_ctx, threads)
        if key not in contexts:
            llama_cpp = _llama_cpp()
            try:
                contexts[key] = llama_cpp.Llama(
                    model_path=str(model.module), n_ctx=n_ctx, n_batch=min(512, n_ctx),
                    n_threads=threads, n_threads_batch=threads, logits_all=logits_all,
                    flash_attn=True, verbose=False, seed=0,
                )  # fmt: skip
            except Exception as e:
                raise BadInput(f"llama.cpp cannot load {model.module}: {hf.first_line(e)}") from e
        return contexts[key]

    def run(self, model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        logits = self.logits(model, enc["input_ids"])
        return np.asarray(logits[:, -1, :].numpy(), dtype=np.float32)

    def logits(self, model: Model, ids: Any) -> Any:
        """Logits (batch, seq, vocab) as a float32 CPU tensor, like the causal-LM runtime's."""
        import torch

        rows = np.asarray(ids.cpu().numpy() if torch.is_tensor(ids) else ids, dtype=np.int64)
        llm = self._context(model, logits_all=True, n_ctx=int(model.runtime.max_length))
        if rows.shape[1] > llm.n_ctx():
            raise BadInput(f"{rows.shape[1]} tokens do not fit llama.cpp's {llm.n_ctx()} context")
        out = []
        for row in rows:
            llm.reset()
            llm.eval([int(t) for t in row])
            out.append(np.array(llm.scores[: len(row)], dtype=np.float32))
        return torch.from_numpy(np.stack(out))

    def greedy(
        self, model: Model, ids: Any, new_tokens: int, *, sync: Any = None
    ) -> tuple[np.ndarray, float, list[float]]:
        """Greedy decoding, as the causal-LM runtime's ``greedy`` (same return values).

        Rows of a batch run one after another (llama-cpp-python decodes one sequence per
        context): the seconds of step i are summed over the rows, so tokens/s at a batch
        size above 1 is what that costs here, not more.
        """
        llama_cpp = _llama_cpp()
        rows = np.asarray(ids, dtype=np.int64)
        llm = self._context(model, logits_all=False, n_ctx=int(model.runtime.max_length))
        vocab = llm.n_vocab()
        prefill_s = 0.0
        steps = [0.0] * max(0, new_tokens - 1)
        out = np.zeros((rows.shape[0], new_tokens), dtype=np.int64)
        for r, row in enumerate(rows):
            llm.reset()
            t0 = time.perf_counter()
            llm.eval([int(t) for t in row])
            nxt = int(np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), (vocab,)).argmax())
            prefill_s += time.perf_counter() - t0
            out[r, 0] = nxt
            for i in range(new_tokens - 1):
                t = time.perf_counter()
                llm.eval([nxt])
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llm.ctx), (vocab,))
                nxt = int(logits.argmax())
                steps[i] += time.perf_counter() - t
                out[r, i + 1] = nxt
        return out, prefill_s, steps

    # ---- saving and size ------------------------------------------------------------------
    def save(self, model: Model, folder: Path) -> list[str]:
        src = Path(model.source)
        if src.resolve() != (folder / WEIGHTS).resolve():
            shutil.copyfile(src, folder / WEIGHTS)
        return [WEIGHTS]

    def size_bytes(self, model: Model) -> int:
        return Path(model.source).stat().st_size

    def weights_bytes(self, model: Model) -> int:
        """Bytes of weights a decode step reads: every tensor as stored in the GGUF, but of
        the input embedding table (when the output projection is its own tensor) one row."""
        import gguf

        reader = gguf.GGUFReader(str(model.source))
        names = {t.name for t in reader.tensors}
        total = 0
        for t in reader.tensors:
            stored = int(t.n_bytes)
            if t.name == "token_embd.weight" and "output.weight" in names:
                stored //= max(1, int(t.shape[-1]))  # one row per token
            total += stored
        return total


def _tokenizer(path: Path) -> Any:
    """The Hugging Face tokenizer saved next to ``path``, else the GGUF file's own."""
    hf.quiet_transformers()
    folder = path.parent
    if (folder / "tokenizer_config.json").exists() or (folder / "tokenizer.json").exists():
        return hf.lm_tokenizer(str(folder), path)
    return hf.lm_tokenizer(str(folder), path, gguf_file=path.name)
