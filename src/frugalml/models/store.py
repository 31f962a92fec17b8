"""Save and load every variant kind: safetensors or ONNX files plus a ``frugal.json`` manifest.

A saved model folder holds:

- ``frugal.json`` — the manifest: ``engine`` (torch/onnx), ``output`` (embedding/logits),
  ``base`` (the model it was made from), ``passes`` (every pass applied, with its config),
  ``replay`` (runtime-only passes re-applied on load: PyTorch dynamic int8, torch.compile),
  ``structure`` (shape changes: layers kept, heads and FFN neurons left), ``runtime`` (threads,
  batch size, length-sorted batching, max length), ``pooling``, ``dtype``, ``label_names``, and
  whatever the writer adds (``optimize_run_id``, ``candidate_id``, ``quality``...).
- the weights: ``model.onnx`` (ONNX engine) or ``config.json`` + ``model.safetensors``
  (PyTorch engine; loaded into a network rebuilt from the config with the recorded shapes, so
  pruned and layer-dropped models load without pickle);
- the tokenizer files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput
from frugalml.models.base import AppliedPass, Model, Pooling, Runtime

MANIFEST = "frugal.json"
FORMAT_VERSION = 1
WEIGHT_FILES = ("model.onnx", "model.onnx.data", "model.safetensors")


def manifest_of(model: Model, **extra: Any) -> dict[str, Any]:
    return {
        "frugal_model": FORMAT_VERSION,
        "engine": model.engine,
        "output": model.output,
        "base": model.base,
        "arch": model.arch,
        "passes": [p.to_dict() for p in model.passes],
        "replay": [p.to_dict() for p in model.replay],
        "structure": model.structure,
        "runtime": model.runtime.to_dict(),
        "pooling": {"mode": model.pooling.mode, "normalize": model.pooling.normalize},
        "dtype": model.dtype,
        "device": model.device,
        "label_names": list(model.label_names) if model.label_names else None,
        "dims": model.extra.get("dims", {}),
        **extra,
    }


def save(model: Model, path: Path, **extra: Any) -> Path:
    """Write ``model`` to the folder ``path`` (created; existing weight files replaced)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in WEIGHT_FILES:
        (path / name).unlink(missing_ok=True)
    model.tokenizer.save_pretrained(str(path))
    if model.engine == "onnx":
        if model.onnx_path is None:
            raise ValueError("ONNX model without a graph file")
        shutil.copyfile(model.onnx_path, path / "model.onnx")
        data = Path(str(model.onnx_path) + ".data")
        if data.exists():
            shutil.copyfile(data, path / "model.onnx.data")
    else:
        from safetensors.torch import save_model

        source = model.source if model.source is not None else model.module
        source.config.save_pretrained(str(path))
        save_model(source, str(path / "model.safetensors"))
    (path / MANIFEST).write_text(
        json.dumps(manifest_of(model, **extra), indent=2, default=str) + "\n", encoding="utf-8"
    )
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(
            f"cannot read {path / MANIFEST}: {e}", hint="the folder is not a complete frugal model"
        ) from e
    if data.get("frugal_model", 0) > FORMAT_VERSION:
        raise BadInput(f"{path} was saved by a newer frugal", hint="upgrade frugal")
    return data


def load_saved(path: Path, *, device: str = "cpu") -> Model:
    from frugalml.models.load import build_module, load_tokenizer, read_config

    man = read_manifest(path)
    tokenizer = load_tokenizer(path)
    common: dict[str, Any] = dict(
        output=man["output"],
        tokenizer=tokenizer,
        base=man.get("base", str(path)),
        pooling=Pooling(**man.get("pooling", {})),
        runtime=Runtime.from_dict(man.get("runtime", {})),
        passes=tuple(AppliedPass(p["name"], p["config"]) for p in man.get("passes", [])),
        structure=dict(man.get("structure") or {}),
        device=device,
        dtype=man.get("dtype", "float32"),
        arch=man.get("arch", ""),
        label_names=tuple(man["label_names"]) if man.get("label_names") else None,
        extra={"manifest": man, "dims": man.get("dims") or {}},
    )
    if man["engine"] == "onnx":
        if not (path / "model.onnx").exists():
            raise BadInput(f"{path} has no model.onnx", hint="the folder is incomplete")
        return Model(engine="onnx", onnx_path=path / "model.onnx", **common)
    weights = path / "model.safetensors"
    if not weights.exists():
        raise BadInput(f"{path} has no model.safetensors", hint="the folder is incomplete")
    config = read_config(path)
    module = build_module(config, with_head=man["output"] == "logits")
    _match_shapes(module, weights)
    import torch
    from safetensors.torch import load_model

    if man.get("dtype") in ("float16", "bfloat16"):
        module.to(getattr(torch, man["dtype"]))
    load_model(module, str(weights), device="cpu")
    module.eval().to(device)
    model = Model(engine="torch", module=module, source=module, **common)
    for step in man.get("replay", []):
        from frugalml.passes import registry

        model = registry.run(model, registry.config_from(step["name"], step["config"]))
    replay = tuple(AppliedPass(p["name"], p["config"]) for p in man.get("replay", []))
    return model.evolve(passes=common["passes"], replay=replay)


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


def weights_size_bytes(model: Model) -> int:
    """Bytes of the weight files ``save`` writes (ONNX graph, or safetensors tensors)."""
    if model.engine == "onnx":
        if model.onnx_path is None:
            return 0
        total = model.onnx_path.stat().st_size
        data = Path(str(model.onnx_path) + ".data")
        return total + (data.stat().st_size if data.exists() else 0)
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


def folder_weights_bytes(path: Path) -> int:
    return sum((path / n).stat().st_size for n in WEIGHT_FILES if (path / n).exists())
