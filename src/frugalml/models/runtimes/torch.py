"""The PyTorch runtime: a ``transformers`` network, saved as ``config.json`` + safetensors.

Loading never unpickles: safetensors files load as tensors; a folder with only
``pytorch_model.bin`` goes through ``torch.load(weights_only=True)`` (transformers' default),
whose refusal of anything but tensors is reported in one line.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from frugalml.errors import BadInput
from frugalml.models import hf
from frugalml.models.base import Model, Runtime
from frugalml.models.registry import register, threads_for

WEIGHTS = "model.safetensors"


def forward_names(module: Any) -> set[str]:
    """The input names a network's ``forward`` accepts (through a torch.compile wrapper)."""
    target = getattr(module, "_orig_mod", module)
    try:
        return set(inspect.signature(target.forward).parameters)
    except (TypeError, ValueError):
        return {"input_ids", "attention_mask", "token_type_ids"}


def weights_error(path: Path, e: BaseException) -> BadInput:
    """The one-line error for weights that cannot be loaded (truncated, pickled, mismatched)."""
    return BadInput(
        f"cannot load the model weights in {path}: {hf.first_line(e)}",
        hint="give a folder with complete model.safetensors weights (frugal never unpickles)",
    )


def build_module(config: Any, with_head: bool) -> Any:
    from transformers import AutoModel, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if with_head else AutoModel
    return cls.from_config(config, attn_implementation="eager")


def from_pretrained(path: Path, *, with_head: bool, **kwargs: Any) -> Any:
    """``transformers`` ``from_pretrained`` with every failure as one ``BadInput`` line.

    The one place a torch network is read from a Hugging Face folder: ``load`` (eval, optimize)
    and the trainer (``kwargs``: a new head's labels) get the same checks and the same errors.
    """
    from transformers import AutoModel, AutoModelForSequenceClassification

    hf.quiet_transformers()
    hf.read_config(path)  # malformed or unsupported config: one line, before torch reads it
    if not has_weights(path):
        raise BadInput(
            f"{path} has a config.json but no weights (model.safetensors)",
            hint="copy the weights next to config.json",
        )
    cls = AutoModelForSequenceClassification if with_head else AutoModel
    try:
        return cls.from_pretrained(str(path), attn_implementation="eager", **kwargs)
    except Exception as e:
        raise weights_error(path, e) from e


def has_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").exists()


def _match_shapes(module: Any, weights: Path) -> None:
    """Resize Linear layers to the saved shapes (pruned heads / FFN neurons) before loading."""
    import torch
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    for name, sub in list(module.named_modules()):
        if not isinstance(sub, torch.nn.Linear):
            continue
        saved = shapes.get(f"{name}.weight")
        if saved is None or tuple(sub.weight.shape) == saved:
            continue
        new = torch.nn.Linear(saved[1], saved[0], bias=sub.bias is not None)
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, new)


def _safetensors_dtype(weights: Path) -> str:
    """``float16``/``bfloat16`` when every floating tensor has it, else ``float32``."""
    from safetensors import safe_open

    kinds: set[str] = set()
    with safe_open(str(weights), framework="pt") as f:
        for k in f.keys():  # noqa: SIM118
            dtype = f.get_slice(k).get_dtype()
            if dtype in ("F16", "BF16", "F32"):
                kinds.add(dtype)
    return (
        {"F16": "float16", "BF16": "bfloat16"}.get(kinds.pop(), "float32")
        if len(kinds) == 1
        else "float32"
    )


def _load_exact(path: Path, config: Any, with_head: bool) -> tuple[Any, str]:
    """A network rebuilt from the config with the saved shapes, weights from safetensors."""
    import torch
    from safetensors.torch import load_model

    weights = path / WEIGHTS
    try:
        module = build_module(config, with_head=with_head)
        _match_shapes(module, weights)
        dtype = _safetensors_dtype(weights)
        if dtype != "float32":
            module.to(getattr(torch, dtype))
        load_model(module, str(weights), device="cpu")
    except BadInput:
        raise
    except Exception as e:
        raise weights_error(path, e) from e
    return module, dtype


@register
class TorchRuntime:
    name = "torch"

    def find(self, folder: Path) -> Path | None:
        if (folder / "config.json").exists() and has_weights(folder):
            return folder
        return None

    def load(self, path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
        config = hf.read_config(path)
        tokenizer = hf.load_tokenizer(path)
        labels = hf.head_labels(config)
        dtype = "float32"
        if exact and (path / WEIGHTS).exists():
            module, dtype = _load_exact(path, config, with_head=labels is not None)
        else:
            module = from_pretrained(path, with_head=labels is not None)
        module.eval().to(device)
        pooling, max_len = hf.st_pooling(path)
        return Model(
            engine=self.name,
            output="logits" if labels else "embedding",
            tokenizer=tokenizer,
            base=base,
            pooling=pooling,
            runtime=Runtime(max_length=hf.max_length_of(tokenizer, max_len, config)),
            module=module,
            source=module,
            device=device,
            dtype=dtype,
            label_names=labels,
            arch=str(config.model_type),
            config=config.to_dict(),
            dims=hf.dims_of(config),
        )

    def run(self, model: Model, enc: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        want = threads_for(model)
        if model.device == "cpu" and torch.get_num_threads() != want:
            torch.set_num_threads(want)
        names = model.state(lambda: forward_names(model.module))
        feed = {k: torch.from_numpy(v).to(model.device) for k, v in enc.items() if k in names}
        with torch.inference_mode():
            out = model.module(**feed)
        if model.output == "logits":
            tensor = out.logits if hasattr(out, "logits") else out[0]
        else:
            tensor = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        return np.asarray(tensor.float().cpu().numpy())

    def save(self, model: Model, folder: Path) -> list[str]:
        from safetensors.torch import save_model

        source = model.source if model.source is not None else model.module
        # as save_pretrained does: the class that loads it (a head, or the bare encoder)
        source.config.architectures = [type(source).__name__]
        source.config.save_pretrained(str(folder))
        save_model(source, str(folder / WEIGHTS))
        return ["config.json", WEIGHTS]

    def size_bytes(self, model: Model) -> int:
        source = model.source if model.source is not None else model.module
        seen: set[int] = set()
        total = 0
        for tensor in list(source.state_dict().values()):
            ptr = tensor.data_ptr()
            if ptr in seen:
                continue
            seen.add(ptr)
            total += tensor.numel() * tensor.element_size()
        return total
