"""The real MiniLM (all-MiniLM-L6-v2): one short LoRA run on a few hundred SST-2 rows learns
(dev accuracy well above chance) and the saved model loads and predicts on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frugalml.data import load_data
from frugalml.train import FinetuneConfig, finetune


@pytest.mark.slow
def test_minilm_lora_learns_and_saved_model_predicts(
    shared_data: Path, tmp_path: Path, sqlite_url: str
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = load_data(shared_data / "sst2" / "stsa.binary.train").sample(480, seed=0)
    dev = load_data(shared_data / "sst2" / "stsa.binary.dev").sample(200, seed=0)
    majority = max(dev.labels.count(x) for x in set(dev.labels or ())) / len(dev) * 100
    out = tmp_path / "minilm-sst2"
    cfg = FinetuneConfig(recipe="lora", max_length=64, batch_size=16, eval_mode="none")
    r = finetune("minilm", train, dev, cfg, out=out, ledger=sqlite_url)
    assert r.steps == 30 and r.stopped == "completed"
    assert r.accuracy > majority + 10, (r.accuracy, majority)  # learned, not a constant guess
    assert r.trainable_params < 0.1 * r.total_params

    manifest = json.loads((out / "frugal.json").read_text())
    assert manifest["kind"] == "hf-sequence-classification" and manifest["merged"] is True
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    assert type(model).__name__ == "BertForSequenceClassification"
    enc = tok(list(dev.texts), truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        pred = model(**enc).logits.argmax(-1).tolist()
    names = [model.config.id2label[p] for p in pred]
    acc = 100 * sum(a == b for a, b in zip(names, dev.labels or (), strict=True)) / len(dev)
    assert acc == pytest.approx(r.accuracy)
