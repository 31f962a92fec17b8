"""The runner's tokenization (the fast tokenizer's Rust core, ``Model._tokenize_each`` and
``Model.tokenize``) gives exactly what the tokenizer's own ``__call__`` gives: same keys, same
ids, same truncation, same padding, on the bundled MiniLM and real sentences."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import frugalml
from frugalml.data import stdlib_sentences
from frugalml.models.base import Runtime

LONG = " ".join(stdlib_sentences(60, seed=3))  # hundreds of tokens: over every max_length here
TEXTS = [*stdlib_sentences(40, seed=1), "", "  ", "naïve café — 東京 🙂", LONG, "a"]


@pytest.fixture(scope="module")
def minilm() -> frugalml.Model:
    return frugalml.load("minilm")


@pytest.mark.parametrize("max_length", [256, 16])
def test_unpadded_tokens_equal_the_tokenizers_own_call(
    minilm: frugalml.Model, max_length: int
) -> None:
    model = minilm.evolve(runtime=Runtime(max_length=max_length))
    assert model._fast_tokenizer() is not None  # the bundled tokenizer is a fast one
    want = model.tokenizer(TEXTS, padding=False, truncation=True, max_length=max_length)
    got = model._tokenize_each(TEXTS)
    assert set(got) == set(want.keys())
    for key in want:
        assert got[key] == [list(r) for r in want[key]], key
    assert max(len(r) for r in got["input_ids"]) == max_length  # LONG was truncated


@pytest.mark.parametrize("max_length", [256, 16])
def test_a_padded_batch_equals_the_tokenizers_own_call(
    minilm: frugalml.Model, max_length: int
) -> None:
    model = minilm.evolve(runtime=Runtime(max_length=max_length))
    want = model.tokenizer(
        TEXTS, padding=True, truncation=True, max_length=max_length, return_tensors="np"
    )
    got = model.tokenize(TEXTS)
    assert set(got) == set(want.keys())
    for key in want:
        assert got[key].dtype == np.int64
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_a_copy_with_another_max_length_truncates_at_its_own(minilm: frugalml.Model) -> None:
    long16 = minilm.evolve(runtime=Runtime(max_length=16))
    long16.tokenize(["warm the copy"])
    again = long16.evolve(runtime=Runtime(max_length=32))
    assert again.tokenize([LONG])["input_ids"].shape == (1, 32)
    assert long16.tokenize([LONG])["input_ids"].shape == (1, 16)


def test_threads_sharing_a_model_get_their_own_rows(minilm: frugalml.Model) -> None:
    """The serve worker and an evaluation may tokenize on one model at once."""
    model = minilm.evolve(runtime=Runtime(max_length=64))
    want = {
        i: model.tokenizer([t], truncation=True, max_length=64)["input_ids"][0]
        for i, t in enumerate(TEXTS)
    }
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(20):
            got = model.tokenize([TEXTS[i]])["input_ids"][0].tolist()
            if got != list(want[i]):
                errors.append(f"text {i}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(TEXTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
