"""Tiny real transformer encoders for fast tests of frugal's model machinery.

``tiny_bert(folder)`` writes a randomly initialised (seeded) 3-block BERT with the bundled
MiniLM's real tokenizer as a sentence-transformers folder: the same files a user's model folder
has, small enough that export, quantization and distillation take well under a second. Used
where the behaviour is generic; tests about MiniLM itself use the real model.
"""

from __future__ import annotations

import json
from pathlib import Path


def tiny_bert(folder: Path, *, layers: int = 3, head: int = 0, seed: int = 0) -> Path:
    """Write the tiny model to ``folder``; ``head`` > 0 adds a classification head."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
        BertModel,
    )

    from frugalml.models import resolve_path

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    if head:
        config.num_labels = head
        config.id2label = {i: f"class{i}" for i in range(head)}
        config.label2id = {v: k for k, v in config.id2label.items()}
        model = BertForSequenceClassification(config)
    else:
        model = BertModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    AutoTokenizer.from_pretrained(str(resolve_path("minilm"))).save_pretrained(str(folder))
    if not head:
        (folder / "modules.json").write_text(
            json.dumps(
                [
                    {
                        "idx": 0,
                        "name": "0",
                        "path": "",
                        "type": "sentence_transformers.models.Transformer",
                    },
                    {
                        "idx": 1,
                        "name": "1",
                        "path": "1_Pooling",
                        "type": "sentence_transformers.models.Pooling",
                    },
                    {
                        "idx": 2,
                        "name": "2",
                        "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize",
                    },
                ]
            )
        )
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(
            json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
        )
        (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
