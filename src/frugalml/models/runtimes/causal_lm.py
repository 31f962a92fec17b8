"""The causal-LM runtime: a ``transformers`` decoder (``AutoModelForCausalLM``) run by PyTorch.

It loads a Hugging Face causal-LM folder (``config.json`` whose architecture is a
``...ForCausalLM`` or a decoder-only model type, plus safetensors weights) or a ``.gguf`` file
that transformers can dequantize (the bundled ``smollm2`` alias: SmolLM2-135M-Instruct,
Q4_1, dequantized to float32 on load). Models it gives out have ``output == "lm"``: the
language-model tasks (``perplexity``, ``fidelity``, ``generation``) run them through
``logits`` (one forward over token ids) and ``greedy`` (prefill + a timed decode loop over
the KV cache).

transformers refuses ``save_pretrained`` of a GGUF-loaded model, so ``save`` writes the
config and the state dict itself (safetensors; shared embedding/lm_head tensors once).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.errors import BadInput
from frugalml.models import hf
from frugalml.models.base import Model, Runtime
from frugalml.models.registry import register, threads_for

WEIGHTS = "model.safetensors"


def is_causal_config(raw: dict[str, Any]) -> bool:
    """True when a ``config.json`` dict says its model is a causal language model.

    Only the saved ``architectures`` decide: a class whose name ends in ``ForCausalLM``, or
    transformers' causal-LM class of a decoder-only family (``GPT2LMHeadModel``; a family that
    also has a masked-LM class, BERT's ``BertLMHeadModel`` say, stays an encoder). A config
    without architectures is never a causal LM: every encoder folder resolves to the runtime it
    did before causal LMs existed.
    """
    archs = [str(a) for a in raw.get("architectures") or []]
    if not archs or raw.get("is_encoder_decoder"):
        return False
    if any(a.endswith("ForCausalLM") for a in archs):
        return True
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    kind = str(raw.get("model_type"))
    return (
        kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
        and MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(kind) in archs
    )


def _weights_error(path: Path, e: BaseException) -> BadInput:
    return BadInput(
        f"cannot load the language model in {path}: {hf.first_line(e)}",
        hint="give a causal-LM folder with safetensors weights, or a GGUF file transformers "
        "can dequantize (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16, F32 ...)",
    )


@contextlib.contextmanager
def _no_gguf_progress() -> Iterator[None]:
    """No per-tensor progress bar while transformers dequantizes a GGUF file."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - an older transformers
        yield
        return
    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def _load_module(path: Path) -> tuple[Any, Any]:
    """(network, tokenizer) from a folder or a .gguf file; failures as one ``BadInput``."""
    import torch
    from transformers import AutoModelForCausalLM

    hf.quiet_transformers()
    if path.is_file():  # GGUF: dequantized to float32
        import importlib.util

        if importlib.util.find_spec("gguf") is None:
            raise BadInput(
                f"reading {path.name} needs the optional package 'gguf', which is not installed",
                hint="pip install 'frugalml[llm]' (or 'frugalml[all]')",
            )
        kwargs: dict[str, Any] = {"gguf_file": path.name}
        where = str(path.parent)
        dtype: Any = torch.float32
    else:  # a folder: the dtype its weights are saved in (bf16 variants stay bf16)
        kwargs = {}
        where = str(path)
        dtype = "auto"
    try:
        with _no_gguf_progress():
            module = AutoModelForCausalLM.from_pretrained(
                where, attn_implementation="eager", dtype=dtype, **kwargs
            )
    except Exception as e:
        raise _weights_error(path, e) from e
    return module, hf.lm_tokenizer(where, path, **kwargs)


def state_bytes(module: Any) -> int:
    """Bytes of the network's weights as stored (each shared tensor once)."""
    seen: set[int] = set()
    total = 0
    for tensor in list(module.state_dict().values()):
        try:
            ptr = tensor.data_ptr()
        except RuntimeError:  # a tensor subclass without storage: count its parts
            ptr = id(tensor)
        if ptr in seen:
            continue
        seen.add(ptr)
        total += tensor_bytes(tensor)
    return total


def tensor_bytes(tensor: Any) -> int:
    """Stored bytes of one tensor, quantized tensor subclasses (torchao) included."""
    inner = getattr(tensor, "__tensor_flatten__", None)
    if inner is not None and type(tensor).__name__ != "Tensor":
        try:
            names, _meta = tensor.__tensor_flatten__()
            return sum(tensor_bytes(getattr(tensor, n)) for n in names)
        except Exception:  # pragma: no cover - an unknown subclass
            pass
    return int(tensor.numel() * tensor.element_size())


@register
class CausalLMRuntime:
    name = "causal_lm"

    def find(self, folder: Path) -> Path | None:
        if folder.is_file():
            return folder if folder.suffix.lower() == ".gguf" else None
        if not (folder / "config.json").exists():
            return None
        if not (any(folder.glob("*.safetensors")) or (folder / "pytorch_model.bin").exists()):
            return None
        try:
            raw = hf.read_config_dict(folder)
        except BadInput:
            return None  # the torch runtime reports a broken config
        return folder if is_causal_config(raw) else None

    def load(self, path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
        module, tokenizer = _load_module(path)
        module.eval().to(device)
        config = module.config
        return Model(
            engine=self.name,
            output="lm",
            tokenizer=tokenizer,
            base=base,
            runtime=Runtime(batch_size=1, length_sort=False, max_length=max_context(config)),
            module=module,
            source=module,
            device=device,
            dtype=str(next(module.parameters()).dtype).removeprefix("torch."),
            arch=str(config.model_type),
            config=config.to_dict(),
            dims=hf.dims_of(config),
        )

    # ---- running ------------------------------------------------------------------------
    def _threads(self, model: Model) -> None:
        import torch

        want = threads_for(model)
        if model.device == "cpu" and torch.get_num_threads() != want:
            torch.set_num_threads(want)

    def run(self, model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        """Next-token logits at the last position of each row, float32 (batch, vocab)."""
        logits = self.logits(model, enc["input_ids"])
        return np.asarray(logits[:, -1, :].float().cpu().numpy())

    def logits(self, model: Model, ids: Any) -> Any:
        """Logits (batch, seq, vocab) for token ids (numpy or tensor), float32, on CPU."""
        import torch

        self._threads(model)
        x = torch.as_tensor(np.asarray(ids) if not torch.is_tensor(ids) else ids)
        with torch.inference_mode():
            out = model.module(input_ids=x.to(model.device), use_cache=False)
        return out.logits.float().cpu()

    def greedy(
        self, model: Model, ids: Any, new_tokens: int, *, sync: Any = None
    ) -> tuple[np.ndarray, float, list[float]]:
        """Greedy decoding of ``new_tokens`` after prompts ``ids`` (batch, seq, no padding).

        Returns (the new tokens (batch, new_tokens), prefill seconds to the first token,
        seconds of each following decode step). The KV cache is reused step to step.
        """
        import torch

        self._threads(model)
        sync = sync or (lambda: None)
        x = torch.as_tensor(np.asarray(ids)).to(model.device)
        if any(p.name == "torch_compile" for p in model.passes):
            return _static_greedy(model, x, new_tokens, sync)
        out_tokens = []
        steps: list[float] = []
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = model.module(input_ids=x, use_cache=True)
            nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            sync()
            prefill_s = time.perf_counter() - t0
            out_tokens.append(nxt)
            cache = _cache_of(out)
            key = model.state(dict).setdefault("cache_arg", _cache_arg(model.module))
            for _ in range(new_tokens - 1):
                t = time.perf_counter()
                out = model.module(input_ids=nxt, use_cache=True, **{key: cache})
                nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
                sync()
                steps.append(time.perf_counter() - t)
                out_tokens.append(nxt)
                cache = _cache_of(out)
        tokens = torch.cat(out_tokens, dim=1).cpu().numpy()
        return tokens, prefill_s, steps

    # ---- saving and size ------------------------------------------------------------------
    def save(self, model: Model, folder: Path) -> list[str]:
        """``config.json`` + ``model.safetensors`` from the state dict (works for GGUF loads)."""
        from safetensors.torch import save_model

        source = model.source if model.source is not None else model.module
        config = source.config
        config.architectures = [type(source).__name__]
        for key in ("gguf_file", "quantization_config"):
            if hasattr(config, key):
                delattr(config, key)
        config.save_pretrained(str(folder))
        save_model(source, str(folder / WEIGHTS))
        return ["config.json", WEIGHTS]

    def size_bytes(self, model: Model) -> int:
        source = model.source if model.source is not None else model.module
        return state_bytes(source)

    def weights_bytes(self, model: Model) -> int:
        """Bytes of weights a decode step reads: the network as it runs (quantized or not),
        but of an input embedding table not tied to the output projection only one row."""
        module = model.module
        total = state_bytes(module)
        try:
            emb = module.get_input_embeddings().weight
            head = module.get_output_embeddings()
            tied = head is not None and head.weight.data_ptr() == emb.data_ptr()
        except (AttributeError, RuntimeError):  # pragma: no cover - an unusual network
            return total
        return total if tied else total - tensor_bytes(emb) + tensor_bytes(emb[0])


STATIC_CACHE_MIN = 256  # positions: a static cache is this long at least, else a power of two


def _static_greedy(model: Model, x: Any, new_tokens: int, sync: Any) -> Any:
    """``greedy`` with a static KV cache and the decode step compiled (``torch_compile``).

    The cache holds ``STATIC_CACHE_MIN`` positions or the next power of two of prompt + new
    tokens, so prompts of similar length share one compiled graph; a new batch size or cache
    size compiles once more, in the call that first meets it (the caller's warm-up)."""
    import torch
    from transformers import StaticCache

    state = model.state(dict)
    if "step" not in state:  # compiled once per model; shapes recompile inside torch
        net, arg = model.module, _cache_arg(model.module)

        def step(tok: Any, pos: Any, cache: Any) -> Any:
            return net(input_ids=tok, cache_position=pos, **{arg: cache}).logits

        state["step"] = torch.compile(step, dynamic=False)
    batch, length = int(x.shape[0]), int(x.shape[1])
    size = max(STATIC_CACHE_MIN, 1 << (length + new_tokens - 1).bit_length())
    key = (batch, size)
    if key not in state:
        state[key] = StaticCache(config=model.module.config, max_cache_len=size)
    cache = state[key]
    out_tokens = []
    steps: list[float] = []
    with torch.no_grad():  # not inference_mode: the cache is reset in place between calls
        cache.reset()
        t0 = time.perf_counter()
        pos = torch.arange(length, device=x.device)
        arg = _cache_arg(model.module)
        logits = model.module(input_ids=x, cache_position=pos, **{arg: cache}).logits
        nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
        sync()
        prefill_s = time.perf_counter() - t0
        out_tokens.append(nxt)
        for i in range(new_tokens - 1):
            t = time.perf_counter()
            pos = torch.tensor([length + i], device=x.device)
            # After the first step (which compiles or checks every guard), the same shapes,
            # dtypes and cache follow: only the guards that tell the cached graphs apart run
            # (a profile of smollm2's step here: ~3.5 ms of ~25 ms a token in guard checks).
            with torch.compiler.set_stance(skip_guard_eval_unsafe=i > 0):
                logits = state["step"](nxt, pos, cache)
            nxt = logits[:, -1, :].argmax(dim=-1, keepdim=True)
            sync()
            steps.append(time.perf_counter() - t)
            out_tokens.append(nxt)
    tokens = torch.cat(out_tokens, dim=1).cpu().numpy()
    return tokens, prefill_s, steps


def _cache_arg(module: Any) -> str:
    """The keyword a network's ``forward`` takes its KV cache by (``cache`` in transformers 5)."""
    from frugalml.models.runtimes.torch import forward_names

    return "cache" if "cache" in forward_names(module) else "past_key_values"


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def max_context(config: Any) -> int:
    return int(getattr(config, "max_position_embeddings", 2048) or 2048)
