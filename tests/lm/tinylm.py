"""A tiny real causal LM for fast tests: a seeded random 2-block Llama with MiniLM's tokenizer."""

from __future__ import annotations

from pathlib import Path


def tiny_llama(
    folder: Path, *, seed: int = 0, layers: int = 2, context: int = 256, tied: bool = True
) -> Path:
    """Write a random ``LlamaForCausalLM`` (vocab of the bundled MiniLM tokenizer) to ``folder``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from frugalml.models import resolve_path

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_path("minilm")))
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
        tie_word_embeddings=tied,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder
