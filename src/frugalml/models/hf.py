"""Reading and writing the Hugging Face / sentence-transformers folder layout.

Every runtime shares these: the config (``config.json``, checked to be a text encoder), the
tokenizer files, the sentence-transformers pooling (``modules.json`` + ``1_Pooling``) and the
layout ``write_layout`` gives every folder frugal saves, so sentence-transformers, Optimum and
transformers read it as they read any model on the Hub.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from frugalml.errors import BadInput
from frugalml.models.base import Pooling

ENCODERS_HINT = (
    "frugal optimizes transformer encoders (BERT, RoBERTa, MiniLM, MPNet, DistilBERT, ELECTRA, ...)"
)
#: where the ONNX graph goes in a saved folder (sentence-transformers' and Optimum's place)
ONNX_FILE = "onnx/model.onnx"


def quiet_transformers() -> None:
    """No per-load progress bars or advisory warnings on the user's terminal; no torchao.

    Called before any model code of transformers is imported (``load_path`` starts with it).
    """
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    _modeling_without_torchao()


def _modeling_without_torchao() -> None:
    """Import transformers' model code with torchao reported absent, then restore the truth.

    transformers imports torchao whenever it is installed (its torchao quantizer, imported by
    ``modeling_utils``), and torchao's import prints failed native-library loads and torch
    deprecation warnings on stderr and costs seconds. No frugal path loads a torchao-quantized
    Hugging Face checkpoint: encoders never need torchao, and the causal-LM weight-only pass
    imports it itself (``frugalml.passes.weight_only``, quietly).
    """
    if "transformers.modeling_utils" in sys.modules:
        return  # already imported (by the caller's own code): nothing left to spare
    import transformers.utils as hf_utils
    from transformers.utils import import_utils

    real = import_utils.is_torchao_available

    def absent(*_args: Any, **_kwargs: Any) -> bool:
        return False

    import_utils.is_torchao_available = hf_utils.is_torchao_available = absent
    try:
        import transformers.modeling_utils  # noqa: F401
    finally:
        import_utils.is_torchao_available = hf_utils.is_torchao_available = real
        for name in (
            "transformers.quantizers.quantizer_torchao",
            "transformers.integrations.torchao",
        ):
            module: Any = sys.modules.get(name)
            if module is not None and getattr(module, "is_torchao_available", None) is absent:
                module.is_torchao_available = real


def first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of an error, cut to ``limit`` characters at a word boundary.

    A longer first line keeps the sentence that says what went wrong (PyTorch's weights-only
    refusal ends "... can result in arbitrary code execution"): the cut is never before it.
    """
    line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    if "arbitrary code execution" in line:
        limit = max(limit, line.index("arbitrary code execution") + len("arbitrary code execution"))
    return line if len(line) <= limit else line[:limit].rsplit(" ", 1)[0] + " ..."


def read_config_dict(path: Path) -> dict[str, Any]:
    """``config.json`` of a folder as a dict; one-line ``BadInput`` when it is unreadable."""
    try:
        raw = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(
            f"cannot read {path / 'config.json'}: {first_line(e)}",
            hint="the model folder is damaged; copy config.json from the original model",
        ) from e
    if not isinstance(raw, dict):
        raise BadInput(f"{path / 'config.json'} is not a JSON object", hint=ENCODERS_HINT)
    return raw


def read_config(path: Path) -> Any:
    """The transformers config of a folder; ``BadInput`` for an architecture we cannot run."""
    raw = read_config_dict(path)
    model_type = raw.get("model_type")
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if model_type not in CONFIG_MAPPING_NAMES:
        raise BadInput(
            f"unsupported architecture '{model_type}' in {path / 'config.json'}",
            hint=ENCODERS_HINT,
        )
    if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES or raw.get("is_encoder_decoder"):
        raise BadInput(
            f"unsupported architecture '{model_type}': not a text encoder", hint=ENCODERS_HINT
        )
    try:
        return AutoConfig.from_pretrained(str(path))
    except Exception as e:
        raise BadInput(f"cannot load the model config in {path}: {first_line(e)}") from e


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    if (path / "config.json").exists():
        read_config_dict(path)  # the tokenizer reads it too: a broken one is named as such
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as e:
        raise BadInput(
            f"no usable tokenizer in {path}: {first_line(e, 200)}",
            hint="keep the tokenizer files (tokenizer.json / vocab.txt) next to the model",
        ) from e


def st_pooling(path: Path) -> tuple[Pooling, int | None]:
    """Pooling and max length from a sentence-transformers folder (defaults for plain HF)."""
    modules_file = path / "modules.json"
    max_len = None
    try:
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError) as e:
        raise BadInput(
            f"cannot read the sentence-transformers files in {path}: {first_line(e)}",
            hint="modules.json, sentence_bert_config.json and 1_Pooling/config.json must be "
            "valid JSON",
        ) from e
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


def max_length_of(tokenizer: Any, max_len: int | None, config: Any = None) -> int:
    """Tokens per text: the folder's max_seq_length, capped by the tokenizer, positions, 512."""
    return min(
        int(max_len or getattr(tokenizer, "model_max_length", 512) or 512),
        int(getattr(config, "max_position_embeddings", 512) or 512) if config else 512,
        512,
    )


def write_layout(
    folder: Path,
    *,
    pooling: Pooling,
    max_length: int,
    dim: int,
    embedding: bool,
) -> list[str]:
    """The sentence-transformers files for an embedding model; the relative paths written.

    ``modules.json`` (Transformer → Pooling → Normalize when normalized),
    ``sentence_bert_config.json`` (max_seq_length), ``1_Pooling/config.json`` (the pooling
    mode). A classifier (``embedding=False``) is a plain transformers folder: nothing written.
    """
    if not embedding:
        return []
    modules: list[dict[str, Any]] = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    written = ["modules.json", "sentence_bert_config.json", "1_Pooling/config.json"]
    if pooling.normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n", encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_length, "do_lower_case": False}, indent=2) + "\n",
        encoding="utf-8",
    )
    (folder / "1_Pooling").mkdir(exist_ok=True)
    pool = {
        "word_embedding_dimension": dim,
        "pooling_mode_cls_token": pooling.mode == "cls",
        "pooling_mode_mean_tokens": pooling.mode == "mean",
        "pooling_mode_max_tokens": pooling.mode == "max",
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(pool, indent=2) + "\n", encoding="utf-8"
    )
    return written


def lm_tokenizer(where: str, path: Path, **kwargs: Any) -> Any:
    """A causal LM's tokenizer from ``where`` (``kwargs``: ``gguf_file=`` for a GGUF file's
    own), with a pad token (its end-of-text token when it has none); one line if unusable."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
    except Exception as e:
        raise BadInput(
            f"no usable tokenizer for {path}: {first_line(e, 200)}",
            hint="keep the tokenizer files next to the model (a GGUF file carries its own)",
        ) from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
