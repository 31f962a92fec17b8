"""Training recipes: which weights train (full or LoRA), in what precision, at what memory.

- ``build_model``: a sequence classifier from a local HF folder with a new head for the
  labels, wrapped by the recipe (``frugalml.train.registry``: ``recipe_lora`` adds ``peft``
  LoRA adapters, and only they, the head and the pooler train). The evaluator process calls
  the same function, so checkpoint keys match.
- ``autocast``: bf16 (CPU with native support, or CUDA) or fp16 (CUDA only, with a grad
  scaler); fp32 is a no-op.
- ``trainable_state`` / ``load_trainable_state``: what a checkpoint holds (trainable tensors
  only: a LoRA checkpoint of MiniLM is ~0.8 MB instead of ~90 MB).
- ``save_model``: a standard HF folder (config with id2label, model.safetensors, tokenizer),
  LoRA merged into the base weights by default, plus ``frugal.json``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml.errors import BadInput
from frugalml.train.prepare import Labels, write_manifest

if TYPE_CHECKING:
    from frugalml.train.registry import Recipe

PRECISIONS = ("fp32", "bf16", "fp16")
# Modules trained in full next to the LoRA adapters (names as suffixes of module paths): the
# new head must train, and BERT's pooler feeds it (all-MiniLM-L6-v2 never trained its pooler).
LORA_MODULES_TO_SAVE = ("classifier", "pooler", "score")


def is_head(param_name: str) -> bool:
    """True for the new classification head and the pooler that feeds it (trained from a
    near-random start, so they get their own, larger learning rate)."""
    parts = param_name.split(".")
    return any(m in parts for m in LORA_MODULES_TO_SAVE)


def quiet_transformers() -> None:
    """Silence load-time chatter ('newly initialized weights', progress bars) on stderr."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("peft").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated.*")


def load_tokenizer(model_path: Path) -> Any:
    from frugalml.models.hf import load_tokenizer as load

    quiet_transformers()
    return load(model_path)


def build_model(model_path: Path, labels: Labels, *, recipe: Recipe, seed: int = 0) -> Any:
    """A sequence classifier for ``labels`` from a local folder, wrapped for ``recipe``.

    The head is initialised from ``seed`` so the trainer and the evaluator build the same
    model (the evaluator then loads the checkpoint's trainable tensors over it).
    """
    import torch

    from frugalml.models.runtimes.torch import from_pretrained

    quiet_transformers()
    torch.manual_seed(seed)
    # the loader eval uses: the same checks and one-line errors for a broken folder
    model = from_pretrained(
        model_path,
        with_head=True,
        num_labels=len(labels.names),
        id2label=labels.id2label,
        label2id=labels.label2id,
        ignore_mismatched_sizes=True,
    )
    return recipe.wrap(model, model_path)


def count_params(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def pick_device(device: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; an explicit device is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(
            f"device '{device}' asked for, but no CUDA GPU is available",
            hint="use --device cpu (or auto)",
        )
    return device


def bf16_native_on_cpu() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 / AMX), not emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def check_precision(precision: str, device: str) -> None:
    """Fail early, with what to do, on a precision this device cannot train in."""
    import torch

    if precision not in PRECISIONS:
        raise BadInput(
            f"unknown precision '{precision}'", hint=f"use one of {', '.join(PRECISIONS)}"
        )
    on_cuda = device.startswith("cuda")
    if precision == "fp16" and not on_cuda:
        raise BadInput(
            "fp16 training needs a CUDA GPU (this run is on the CPU)",
            hint="use --precision bf16 (CPUs with AVX512-BF16/AMX) or fp32",
        )
    if precision == "bf16" and on_cuda and not torch.cuda.is_bf16_supported():
        raise BadInput("this GPU does not support bf16", hint="use --precision fp16 or fp32")


@contextlib.contextmanager
def autocast(precision: str, device: str) -> Iterator[None]:
    """Mixed-precision context for the forward pass (weights and optimizer stay fp32)."""
    import torch

    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=dtype):
        yield


def enable_grad_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass: less memory, ~30% more compute."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise BadInput(
            f"{type(base).__name__} does not support gradient checkpointing",
            hint="drop --grad-checkpointing",
        )
    # non-reentrant checkpointing works with frozen inputs (LoRA) without extra hooks
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def trainable_state(model: Any) -> dict[str, Any]:
    """CPU copies of the trainable tensors (what a checkpoint needs), keyed by parameter name."""
    return {
        n: p.detach().to("cpu", copy=True).contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def load_trainable_state(model: Any, state: dict[str, Any]) -> None:
    """Load a ``trainable_state`` into a model built the same way; every key must match."""
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise BadInput(
            f"checkpoint does not match the model: unexpected "
            f"{', '.join(result.unexpected_keys[:3])}"
        )


def save_model(
    model: Any, tokenizer: Any, out: Path, manifest: dict[str, Any], *, merge: bool = True
) -> Path:
    """Write ``out`` as a standard HF folder (LoRA merged unless ``merge=False``) + frugal.json.

    The folder is what ``frugalml.passes.persist.save`` writes for every model (the one
    manifest schema, a model card, files with the umask's modes), so ``frugal eval``,
    ``optimize``, ``compare`` and ``frugalml.load`` read it. Unmerged LoRA saves the adapter
    only (``adapter_config.json``, ``adapter_model.safetensors``) and records the base model
    in ``frugal.json`` (``adapter``), from which ``frugalml.load`` merges it in memory.
    """
    import copy

    from frugalml.models import Model, Runtime, hf
    from frugalml.passes import persist

    out.mkdir(parents=True, exist_ok=True)
    is_peft = hasattr(model, "merge_and_unload")
    if is_peft and merge:
        plain = copy.deepcopy(model).merge_and_unload()
        kind = "hf-sequence-classification"
    elif is_peft:
        plain = model
        kind = "peft-lora-sequence-classification"
    else:
        plain = model
        kind = "hf-sequence-classification"
    base = (
        plain.get_base_model()
        if kind == "hf-sequence-classification" and hasattr(plain, "get_base_model")
        else plain
    )
    if getattr(base, "is_gradient_checkpointing", False):
        base.gradient_checkpointing_disable()
    labels = list(manifest.get("labels") or [])
    config = base.get_base_model().config if hasattr(base, "get_base_model") else base.config
    model = Model(
        engine="torch",
        output="logits",
        tokenizer=tokenizer,
        base=str(manifest.get("base_model", "")),
        runtime=Runtime(max_length=int(manifest.get("max_length") or 512)),
        module=base,
        source=base,
        label_names=tuple(labels),
        arch=str(config.model_type),
        config=config.to_dict(),
        dims=hf.dims_of(config),
    )
    card = manifest.get("card")  # the cost-delta statement, when the caller measured one
    extra = {k: v for k, v in manifest.items() if k != "card"}
    extra = {"kind": kind, "merged": bool(is_peft and merge) or not is_peft, **extra}
    how = [
        f"- Fine-tuned with frugal: recipe {manifest.get('recipe')}, "
        f"precision {manifest.get('precision')}, best checkpoint at step {manifest.get('step')}"
    ]
    if kind == "hf-sequence-classification":
        persist.save(model, out, card=card, how=how, **extra)
        return out
    base.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    persist.write_card(out, persist.model_card(model, statement=card, how=how))
    data = persist.manifest_of(
        model, adapter={"base_model_path": manifest.get("base_model_path")}, **extra
    )
    data["files"] = [*persist.files_under(out), persist.MANIFEST]
    write_manifest(out, data)
    persist.respect_umask(out / f for f in data["files"])
    return out
