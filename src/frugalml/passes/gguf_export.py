"""A Llama-architecture causal LM's current weights written as a GGUF file (``gguf`` package).

What llama.cpp's ``convert_hf_to_gguf.py`` does for ``LlamaForCausalLM``, on the weights the
model holds *now* (its torch module's state dict, after any weight-changing pass: pruned,
dropped blocks, torchao int8/int4 dequantized back to float), so the ``llama_cpp_gguf`` pass
can run and requantize frugal's own variants:

- tensors named by ``gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, blocks)``; the output
  projection is left out when it *is* the embedding table (tied), as llama.cpp expects;
- ``q_proj`` and ``k_proj`` rows permuted from Hugging Face's rotary layout (the two halves of
  each head) to llama.cpp's (interleaved pairs), ``k_proj`` with the key/value head count;
- 2-D weights in F32 or F16 (``file_type`` says which), 1-D norms always F32;
- the architecture figures from the module's config (context, widths, heads, RoPE base,
  RMS-norm epsilon) and its tensors (blocks, feed-forward width, vocabulary rows);
- vocabulary: the ``tokenizer.*`` fields of the GGUF the model was loaded from (``smollm2``),
  else one built from the Hugging Face tokenizer: tokens, their types (control, added,
  normal, unused padding rows) and bos/eos ids; a BPE tokenizer as llama.cpp's ``gpt2`` type
  with its merges, a WordPiece one as its ``bert`` type (llama.cpp needs merges for ``gpt2``,
  and the ``gguf`` package writes no empty array). frugal tokenizes with the Hugging Face
  tokenizer saved next to the file; llama.cpp only needs the vocabulary to load.

A model of another architecture, with RoPE scaling, with a tokenizer longer than its
embedding table or of another kind (Unigram) is refused as ``CandidateFailed`` in one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml.errors import CandidateFailed

if TYPE_CHECKING:
    from frugalml.models import Model

#: Hugging Face model types written here (llama.cpp's ``llama`` graph runs them as they are)
LLAMA_TYPES = ("llama",)
#: the float types a file is written in (2-D weights; norms are always F32)
FLOATS = ("f32", "f16")


def llama_problem(model: Model) -> str | None:
    """Why ``model``'s weights cannot be exported to a llama GGUF here (None: they can)."""
    if model.engine != "causal_lm" or model.module is None:
        return f"GGUF export needs a transformers causal LM, not a {model.engine} model"
    config = _network(model).config
    kind = str(getattr(config, "model_type", "?"))
    if kind not in LLAMA_TYPES:
        arch = ", ".join(getattr(config, "architectures", None) or []) or kind
        return f"GGUF export covers Llama-architecture models; this one is {kind} ({arch})"
    rope = _rope(config)
    if rope.get("rope_type", "default") not in ("default", None):
        return f"GGUF export of RoPE scaling {rope['rope_type']!r} is not done"
    return None


def _network(model: Model) -> Any:
    return getattr(model.module, "_orig_mod", model.module)  # a torch.compile wrapper's module


def _rope(config: Any) -> dict[str, Any]:
    """RoPE settings (transformers 5: ``rope_parameters``; 4: ``rope_theta`` + ``rope_scaling``)."""
    params = dict(getattr(config, "rope_parameters", None) or {})
    if not params:
        params = dict(getattr(config, "rope_scaling", None) or {})
        params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    return params


def permute(weights: Any, heads: int) -> Any:
    """Rows of a q/k projection (or bias) from Hugging Face's rotary layout to llama.cpp's:
    within each head, row i of the first half and row i of the second become rows 2i, 2i+1."""
    shape = weights.shape
    return (
        weights.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    )


def _float(tensor: Any) -> Any:
    """A float32 numpy copy of a weight (a torchao quantized tensor dequantized first)."""
    import torch

    if type(tensor) is not torch.Tensor and hasattr(tensor, "dequantize"):
        tensor = tensor.dequantize()
    return tensor.detach().to(device="cpu", dtype=torch.float32).numpy()


def _tensors(network: Any, blocks: int) -> dict[str, Any]:
    """GGUF name -> float32 array, q/k permuted, the tied output projection left out."""
    import gguf

    config = network.config
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, blocks)
    embed = network.get_input_embeddings().weight
    head = network.get_output_embeddings()
    tied = head is not None and head.weight is embed
    out: dict[str, Any] = {}
    for name, tensor in network.state_dict().items():
        if name.endswith("rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new is None:
            raise CandidateFailed(f"GGUF export: no llama.cpp name for tensor {name}")
        data = _float(tensor)
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute(data, heads)
        elif name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute(data, kv_heads)
        out[new] = data
    return out


def export_gguf(model: Model, target: Path, *, floats: str = "f32") -> Path:
    """Write ``model``'s current weights as a llama GGUF file ``target`` (F32 or F16)."""
    import gguf
    import numpy as np

    if (why := llama_problem(model)) is not None:
        raise CandidateFailed(why)
    network = _network(model)
    config = network.config
    blocks = len(network.model.layers)
    tensors = _tensors(network, blocks)
    vocab = int(tensors["token_embd.weight"].shape[0])
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    arch = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA]
    partial = target.with_name(target.name + ".partial")
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_name(str(model.base))
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(blocks)
    writer.add_feed_forward_length(int(tensors["blk.0.ffn_up.weight"].shape[0]) if blocks else 0)
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or heads))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(_rope(config).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(vocab)
    f16 = floats == "f16"
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32))
    _vocabulary(writer, model, vocab)
    for name, data in tensors.items():
        writer.add_tensor(name, data.astype(np.float16) if f16 and data.ndim > 1 else data)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)  # never a half-written file left behind
        raise
    partial.replace(target)
    return target


def loaded_gguf(model: Model) -> Path | None:
    """The GGUF file ``model`` was loaded from (its ``base``), or None."""
    from frugalml.errors import BadInput
    from frugalml.models.load import resolve_path

    try:
        path = resolve_path(model.base)
    except BadInput:
        return None
    return path if path.is_file() and path.suffix.lower() == ".gguf" else None


def _vocabulary(writer: Any, model: Model, vocab: int) -> None:
    """The ``tokenizer.*`` fields: the source GGUF's when there is one, else the tokenizer's."""
    if (path := loaded_gguf(model)) is not None:
        _copy_vocabulary(writer, path, vocab)
    else:
        _tokenizer_vocabulary(writer, model.tokenizer, vocab, _network(model).config)


def _copy_vocabulary(writer: Any, path: Path, vocab: int) -> None:
    import gguf

    reader = gguf.GGUFReader(str(path))
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            kind = field.types[0]
            sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(key, field.contents(), kind, sub_type=sub)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None or len(tokens.data) != vocab:
        raise CandidateFailed(f"GGUF export: {path.name}'s vocabulary does not fit {vocab} rows")


def _tokenizer_vocabulary(writer: Any, tokenizer: Any, vocab: int, config: Any) -> None:
    import gguf

    ids = tokenizer.get_vocab()
    if max(ids.values(), default=-1) >= vocab:
        raise CandidateFailed(
            f"GGUF export: the tokenizer has ids up to {max(ids.values())}, "
            f"the embedding table {vocab} rows"
        )
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    tokens = [f"[PAD{i}]" for i in range(vocab)]
    types = [int(gguf.TokenType.UNUSED)] * vocab
    for token, i in ids.items():
        tokens[i] = token
        types[i] = int(
            gguf.TokenType.CONTROL
            if i in special
            else gguf.TokenType.USER_DEFINED
            if i in added
            else gguf.TokenType.NORMAL
        )
    kind, merges = _bpe(tokenizer)
    if kind not in ("BPE", "WordPiece"):
        raise CandidateFailed(f"GGUF export writes BPE or WordPiece vocabularies, not {kind}")
    writer.add_tokenizer_model("gpt2" if kind == "BPE" else "bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    if merges:  # llama.cpp's gpt2 vocabulary needs them; an empty array is no GGUF value
        writer.add_token_merges(merges)
    for which, add in (
        ("bos", writer.add_bos_token_id),
        ("eos", writer.add_eos_token_id),
        ("pad", writer.add_pad_token_id),
        ("unk", writer.add_unk_token_id),
    ):  # the tokenizer's, else the model config's (a WordPiece tokenizer has no bos/eos)
        value = getattr(tokenizer, f"{which}_token_id", None)
        value = getattr(config, f"{which}_token_id", None) if value is None else value
        if isinstance(value, int) and 0 <= value < vocab:
            add(value)


def _bpe(tokenizer: Any) -> tuple[str, list[str]]:
    """(the tokenizer model's kind: BPE, WordPiece, Unigram ...; its merges as ``"a b"``)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return type(tokenizer).__name__, []
    spec = json.loads(backend.to_str()).get("model", {})
    merges = spec.get("merges") or []
    return str(spec.get("type")), [m if isinstance(m, str) else " ".join(m) for m in merges]
