"""Saving a model with its history and loading it back: ``frugal.json``, one versioned schema.

Every model folder frugal writes (``optimize``'s ``best/`` and candidates, any pass
family's variant, ``finetune``'s full and LoRA models) holds:

- the layout the ecosystem reads: ``config.json``, the tokenizer files, the weights
  (``model.safetensors`` for the PyTorch engine, ``onnx/model.onnx`` for ONNX Runtime) and,
  for sentence embedders, ``modules.json``, ``sentence_bert_config.json`` and
  ``1_Pooling/config.json`` — so ``SentenceTransformer(folder)`` (``backend="onnx"`` for an
  ONNX variant), Optimum's ``ORTModelForFeatureExtraction.from_pretrained(folder)`` and
  ``transformers.AutoModel`` load it;
- ``README.md``: a model card that says how the model was made, what it costs and at what
  quality (the figures its writer was given);
- ``frugal.json``, the manifest (``SCHEMA_VERSION``): ``schema_version``, ``engine``
  (``torch``/``onnx``), ``output`` (``embedding``/``logits``), ``base`` (the model it was
  made from), ``passes`` (each applied pass and its config), ``replay`` (runtime-only passes
  re-applied on load: PyTorch dynamic int8, torch.compile), ``structure`` (shape changes),
  ``runtime`` (threads, batch size, length-sorted batching, max length), ``pooling``,
  ``dtype``, ``device``, ``label_names``, ``dims``, ``files`` (what the save wrote),
  ``adapter`` (an unmerged LoRA: the base model it applies to) and the writer's own keys
  (``optimize_run_id``, ``candidate_id``, ``quality``, ``run_id``, ``recipe`` ...).

``read_manifest`` accepts every older manifest (``frugal_model: 1`` from optimize, the
``kind: hf-sequence-classification`` / ``peft-lora-...`` ones finetune wrote) and refuses a
newer or foreign one in one line. ``load`` (what ``frugalml.load`` is) rebuilds the model:
the base through ``frugalml.models``, then the recorded settings and the replayed passes.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput
from frugalml.models import AppliedPass, Model, Pooling, Runtime, hf
from frugalml.models.load import base_name, check_device, load_path, resolve_path
from frugalml.models.runtimes import get as get_runtime

MANIFEST = "frugal.json"
CARD = "README.md"
SCHEMA_VERSION = 2
COST_HEADING = "## What it costs, at what quality\n\n"
USE_HEADING = "## Use it\n"
#: weight files an earlier save may have left (removed when its manifest lists them)
WEIGHT_FILES = (
    "model.onnx",
    "model.onnx.data",
    hf.ONNX_FILE,
    hf.ONNX_FILE + ".data",
    "openvino/openvino_model.xml",
    "openvino/openvino_model.bin",
    "model.gguf",  # the llama_cpp runtime's: a stale one would be found first on load
)


# ---- the manifest -------------------------------------------------------------------------
def manifest_of(model: Model, **extra: Any) -> dict[str, Any]:
    """The manifest of ``model`` (schema ``SCHEMA_VERSION``) plus the writer's keys."""
    return {
        "schema_version": SCHEMA_VERSION,
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
        "dims": model.dims,
        **extra,
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write ``frugal.json`` (``schema_version`` set when the writer left it out)."""
    data = {"schema_version": SCHEMA_VERSION, **manifest}
    path = folder / MANIFEST
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """An older manifest in today's schema (see the module docstring)."""
    if "frugal_model" in data:  # optimize's first schema: the same fields, another version key
        return {**data, "schema_version": int(data.pop("frugal_model") or 1)}
    kind = data.get("kind")
    if kind in ("hf-sequence-classification", "peft-lora-sequence-classification"):
        labels = data.get("labels")
        max_length = data.get("max_length")
        up: dict[str, Any] = {
            "schema_version": 1,
            "engine": "torch",
            "output": "logits",
            "base": data.get("base_model", ""),
            "label_names": list(labels) if labels else None,
            "runtime": {"max_length": max_length} if max_length else {},
            **data,
        }
        if kind.startswith("peft-lora"):
            up["adapter"] = {"base_model_path": data.get("base_model_path")}
        return up
    return data


def read_manifest(folder: Path) -> dict[str, Any]:
    """``frugal.json`` of ``folder`` in today's schema; one-line ``BadInput`` when unusable."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(
            f"cannot read {path}: {hf.first_line(e)}",
            hint="the folder is not a complete frugal model",
        ) from e
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a frugal manifest (not a JSON object)")
    data = _upgrade(data)
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BadInput(
            f"{path} is not a frugal manifest (no schema_version)",
            hint="remove or rename it to load the folder as a plain model",
        )
    if version > SCHEMA_VERSION:
        raise BadInput(
            f"{path} has schema version {version}; this frugal reads up to {SCHEMA_VERSION}",
            hint="upgrade frugal",
        )
    for key in ("engine", "output"):
        if key not in data:
            raise BadInput(f"{path} has no '{key}'", hint="the folder is not a complete model")
    if data["output"] not in ("embedding", "logits", "lm"):
        raise BadInput(f"{path}: unknown output '{data['output']}'")
    return data


# ---- saving -------------------------------------------------------------------------------
def respect_umask(paths: Iterable[Path]) -> None:
    """Give files the mode the user's umask asks for (some writers create them 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in paths:
        if path.is_file():
            path.chmod((stat.S_IRUSR | stat.S_IWUSR | 0o066) & ~mask & 0o666)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def save(
    model: Model,
    folder: str | Path,
    *,
    card: str | None = None,
    how: Sequence[str] = (),
    **extra: Any,
) -> Path:
    """Write ``model`` to ``folder`` (created) in the layout above; returns the folder.

    ``card``: the cost-delta statement (markdown: how it compares with the original in cost
    and quality) for ``README.md``; without it the card says no figures were given. ``how``:
    lines the card adds about how the model was made (a training recipe).
    ``extra``: keys added to the manifest (``optimize_run_id``, ``candidate_id`` ...).
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for name in _weights_written_before(path):  # another engine's weights would be loaded
        (path / name).unlink(missing_ok=True)
    model.tokenizer.save_pretrained(str(path))
    get_runtime(model.engine).save(model, path)
    hf.write_layout(
        path,
        pooling=model.pooling,
        max_length=model.runtime.max_length,
        dim=int(model.dims.get("hidden_size") or model.config.get("hidden_size") or 0),
        embedding=model.output == "embedding",
    )
    write_card(path, model_card(model, statement=card, how=how))
    manifest = manifest_of(model, **extra)
    manifest["files"] = [*files_under(path), MANIFEST]
    write_manifest(path, manifest)
    respect_umask(path / f for f in manifest["files"])
    return path


def _weights_written_before(folder: Path) -> list[str]:
    """Weight files an earlier ``save`` listed in this folder's manifest (never a user's)."""
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in (*WEIGHT_FILES, "model.safetensors") if f in files]


def model_card(
    model: Model | None,
    *,
    statement: str | None,
    title: str | None = None,
    how: Sequence[str] = (),
) -> str:
    """A ``README.md`` for a saved model: what it is, how it was made, what it costs.

    ``statement``: the cost-delta statement its writer measured (markdown); ``how``: extra
    lines about how it was made (a training recipe).
    """
    lines = ["---", "library_name: " + _library(model), "tags:", "- frugal"]
    if model is not None and model.output == "embedding":
        lines += ["- sentence-transformers", "- feature-extraction"]
    if model is not None and model.engine == "onnx":
        lines.append("- onnx")
    lines += ["---", "", f"# {title or 'A model saved by frugal'}", "", "## How it was made", ""]
    if model is not None:
        chain = " → ".join(p.name for p in model.passes) or "no passes (the model as loaded)"
        lines += [
            f"- Base model: `{model.base}`",
            f"- Passes: {chain}",
            f"- Engine: {model.engine} ({_weights_file(model)}), {model.dtype}, "
            f"output: {model.output}",
        ]
        if model.output == "embedding":
            lines.append(
                f"- Pooling: {model.pooling.mode} over the token states (attention mask), "
                + ("then L2-normalised" if model.pooling.normalize else "not normalised")
            )
    lines += list(how)
    lines += ["", COST_HEADING.strip(), ""]
    lines.append(
        statement.strip()
        if statement
        else "No cost or quality figures were given when this folder was saved; "
        "`frugal eval` and `frugal compare` measure them."
    )
    lines += [
        "",
        USE_HEADING.strip(),
        "",
        "```python",
        "import frugalml",
        "",
        'model = frugalml.load("THIS_FOLDER")',
        'rows = model.encode(["a sentence"])',
        "```",
        "",
        "`frugal.json` records how it was made so `frugalml.load` rebuilds it exactly.",
        "",
    ]
    return "\n".join(lines)


def _library(model: Model | None) -> str:
    return (
        "sentence-transformers" if model is None or model.output == "embedding" else "transformers"
    )


def _weights_file(model: Model) -> str:
    if model.engine == "openvino":
        return "openvino/openvino_model.xml"
    return hf.ONNX_FILE if model.engine == "onnx" else "model.safetensors"


def cost_statement(chosen: Mapping[str, Any], baseline: Mapping[str, Any], run_id: str) -> str:
    """The card's cost-delta statement from two evaluation records (``frugal eval`` keys:
    ``quality``, ``metric``, ``throughput_per_s``, ``cost_usd_per_1m``, ``size_bytes`` ...)."""

    def usd(x: Any) -> str:
        return f"${float(x):.4g}"

    lines = [
        f"Measured by `frugal optimize` (run `{run_id}`), this model and the original on the "
        f"same data, machine and settings ({chosen.get('device', 'cpu')}):",
        "",
        "| | original | this model |",
        "|---|---|---|",
        f"| {chosen.get('metric', 'quality')} | {float(baseline['quality']):.2f} | "
        f"{float(chosen['quality']):.2f} |",
        f"| cost per 1M requests | {usd(baseline['cost_usd_per_1m'])} | "
        f"{usd(chosen['cost_usd_per_1m'])} |",
        f"| throughput (texts/s) | {float(baseline['throughput_per_s']):.1f} | "
        f"{float(chosen['throughput_per_s']):.1f} |",
    ]
    if baseline.get("size_bytes") and chosen.get("size_bytes"):
        lines.append(
            f"| weights (MiB) | {float(baseline['size_bytes']) / 2**20:.1f} | "
            f"{float(chosen['size_bytes']) / 2**20:.1f} |"
        )
    return "\n".join(lines)


def set_card_statement(folder: Path, statement: str) -> Path:
    """Put ``statement`` in the cost section of the card ``save`` wrote in ``folder``."""
    path = folder / CARD
    text = path.read_text(encoding="utf-8") if path.exists() else model_card(None, statement=None)
    head, sep, rest = text.partition(COST_HEADING)
    _old, sep2, tail = rest.partition(USE_HEADING)
    if not sep or not sep2:
        return write_card(folder, text.rstrip() + "\n\n" + COST_HEADING + statement + "\n")
    return write_card(folder, head + COST_HEADING + statement.strip() + "\n\n" + USE_HEADING + tail)


def write_card(folder: Path, text: str) -> Path:
    path = folder / CARD
    path.write_text(text, encoding="utf-8")
    return path


# ---- loading ------------------------------------------------------------------------------
def frugal_folder(path: Path) -> Path | None:
    """The frugal folder ``path`` is or whose graph it is; None for anything else."""
    if path.is_dir():
        return path if (path / MANIFEST).exists() else None
    for folder in (path.parent, path.parent.parent):
        if (folder / MANIFEST).exists() and path.suffix == ".onnx":
            return folder
    return None


def load(spec: str | Path | Model, *, device: str = "cpu", runtime: Runtime | None = None) -> Model:
    """A model from any MODEL spec: a frugal folder with its history, else the base model."""
    if isinstance(spec, Model):
        return spec if runtime is None else spec.evolve(runtime=runtime)
    device = check_device(device)
    path = resolve_path(spec)
    folder = frugal_folder(path)
    if folder is not None:
        model = load_saved(folder, device=device)
    else:
        model = load_path(path, base=base_name(spec, path), device=device)
    return model if runtime is None else model.evolve(runtime=runtime)


def load_saved(folder: Path, *, device: str = "cpu") -> Model:
    """A folder ``save`` (or finetune) wrote: its weights, settings and replayed passes."""
    man = read_manifest(folder)
    base = man.get("base") or str(folder.absolute())
    if man.get("adapter"):
        model = _load_adapter(folder, man, device)
    else:
        model = load_path(folder, base=base, device=device, exact=True)
        if model.engine != man["engine"]:
            raise BadInput(
                f"{folder} holds {model.engine} weights but its {MANIFEST} says {man['engine']}",
                hint="the folder is incomplete",
            )
    settings: dict[str, Any] = dict(
        output=man["output"],
        base=base,
        runtime=Runtime.from_dict({**model.runtime.to_dict(), **(man.get("runtime") or {})}),
        passes=tuple(AppliedPass(p["name"], p["config"]) for p in man.get("passes", [])),
        structure=dict(man.get("structure") or {}),
        dtype=man.get("dtype", model.dtype),
        arch=man.get("arch") or model.arch,
        dims=dict(man.get("dims") or model.dims),
    )
    if man.get("pooling"):
        settings["pooling"] = Pooling(**man["pooling"])
    if man.get("label_names"):
        settings["label_names"] = tuple(man["label_names"])
    model = model.evolve(**settings)
    steps = [AppliedPass(p["name"], p["config"]) for p in man.get("replay", [])]
    if steps:
        from frugalml.passes import registry

        for step in steps:
            model = registry.run(model, registry.config_from(step.name, step.config))
    return model.evolve(passes=settings["passes"], replay=tuple(steps))


def _load_adapter(folder: Path, man: dict[str, Any], device: str) -> Model:
    """An unmerged LoRA folder: its base classifier with the adapter merged in, in memory."""
    from frugalml.models.runtimes.torch import from_pretrained, weights_error

    base_path = (man.get("adapter") or {}).get("base_model_path")
    if not base_path or not Path(base_path).is_dir():
        raise BadInput(
            f"{folder} is a LoRA adapter whose base model {base_path or '(unrecorded)'} "
            "is not here",
            hint="finetune with the default --merge-lora to save a self-contained model",
        )
    labels = list(man.get("label_names") or [])
    module = from_pretrained(
        Path(base_path),
        with_head=True,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    try:
        from peft import PeftModel

        module = PeftModel.from_pretrained(module, str(folder)).merge_and_unload()
    except Exception as e:
        raise weights_error(folder, e) from e
    module.eval().to(device)
    tokenizer = hf.load_tokenizer(folder)
    return Model(
        engine="torch",
        output="logits",
        tokenizer=tokenizer,
        base=str(base_path),
        runtime=Runtime(max_length=hf.max_length_of(tokenizer, None, module.config)),
        module=module,
        source=module,
        device=device,
        label_names=tuple(labels),
        arch=str(module.config.model_type),
        config=module.config.to_dict(),
        dims=hf.dims_of(module.config),
    )
