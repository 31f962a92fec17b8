"""The ``Model`` frugal runs: an engine (PyTorch or ONNX Runtime), a tokenizer, and how to batch.

A ``Model`` turns texts into one output row per text: a pooled sentence embedding (``output ==
"embedding"``) or class logits (``"logits"``). ``encode(texts)`` runs every text with the
model's ``Runtime`` settings (batch size, length-sorted batching, intra-op threads, max length)
and returns a float32 array ``(len(texts), dim)`` in the input order.

Passes (``frugalml.passes``) return a new ``Model``; ``passes`` records what was applied, in
order, and ``structure`` what changed in the network's shapes, so ``save``/``load`` can rebuild
any variant from safetensors or ONNX files (never pickle).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Engine = Literal["torch", "onnx"]
Output = Literal["embedding", "logits"]


@dataclass(frozen=True)
class Runtime:
    """How a model is run. Part of a candidate: the search tries several.

    ``threads``: intra-op threads (None: every usable core). ``batch_size``: texts per call.
    ``length_sort``: sort texts by length before batching so each batch pads to similar
    lengths (less padding = less work); outputs come back in input order. ``max_length``:
    tokens per text after truncation.
    """

    threads: int | None = None
    batch_size: int = 32
    length_sort: bool = True
    max_length: int = 256

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Runtime:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Pooling:
    """Sentence-embedding pooling over token states: ``mean`` (masked), ``cls`` or ``max``."""

    mode: Literal["mean", "cls", "max"] = "mean"
    normalize: bool = True

    def apply(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``hidden`` (batch, seq, dim) float, ``mask`` (batch, seq) 0/1 → (batch, dim)."""
        m = mask.astype(np.float32)[:, :, None]
        if self.mode == "cls":
            out = hidden[:, 0, :]
        elif self.mode == "max":
            out = np.where(m > 0, hidden, -np.inf).max(axis=1)
        else:
            out = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        out = out.astype(np.float32, copy=False)
        if self.normalize:
            out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out


@dataclass(frozen=True)
class AppliedPass:
    """One pass in a model's history: its registered name and its config as a dict."""

    name: str
    config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config}


@dataclass
class Model:
    """A runnable model. Build one with ``frugalml.load``; transform it with ``frugalml.apply``.

    ``engine == "torch"``: ``module`` is a ``transformers`` model (``source`` the last state that
    ``save`` writes as safetensors; runtime-only passes such as dynamic int8, bf16 or compile
    are in ``replay`` and re-applied on load). ``engine == "onnx"``: ``onnx_path`` is the graph
    file. ``base`` names the model the variant was made from (spec or path); ``label_names``
    lists class names for a model with a classification head.
    """

    engine: Engine
    output: Output
    tokenizer: Any
    base: str
    pooling: Pooling = field(default_factory=Pooling)
    runtime: Runtime = field(default_factory=Runtime)
    passes: tuple[AppliedPass, ...] = ()
    replay: tuple[AppliedPass, ...] = ()
    structure: dict[str, Any] = field(default_factory=dict)
    module: Any = None
    source: Any = None
    onnx_path: Path | None = None
    device: str = "cpu"
    dtype: str = "float32"
    label_names: tuple[str, ...] | None = None
    arch: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    _session: Any = field(default=None, repr=False)
    _session_key: Any = field(default=None, repr=False)

    # ---- identity -----------------------------------------------------------------------
    @property
    def has_head(self) -> bool:
        return self.output == "logits"

    def describe(self) -> str:
        chain = " + ".join(p.name for p in self.passes) or "original"
        return f"{chain} ({self.engine}, {self.dtype}, {self.device})"

    def evolve(self, **changes: Any) -> Model:
        """A copy with ``changes``; the ONNX session is not shared (settings may differ)."""
        changes.setdefault("_session", None)
        changes.setdefault("_session_key", None)
        return dataclasses.replace(self, **changes)

    # ---- running ------------------------------------------------------------------------
    def batches(self, texts: Sequence[str], batch_size: int | None = None) -> list[np.ndarray]:
        """Row indices of each batch, in the order they run (longest first when sorted)."""
        bs = batch_size or self.runtime.batch_size
        if self.runtime.length_sort:
            order = np.argsort([-len(t) for t in texts], kind="stable")
        else:
            order = np.arange(len(texts))
        return [order[i : i + bs] for i in range(0, len(texts), bs)]

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.runtime.max_length,
            return_tensors="np",
        )
        return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}

    def run_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Tokenize and run one batch; float32 (len(texts), dim)."""
        from frugalml.models import runners

        return runners.run_batch(self, texts)

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Outputs for every text, in input order, run with this model's runtime settings."""
        out: np.ndarray | None = None
        for idx in self.batches(texts, batch_size):
            rows = self.run_batch([texts[i] for i in idx])
            if out is None:
                out = np.empty((len(texts), rows.shape[1]), dtype=np.float32)
            out[idx] = rows
            if on_batch:
                on_batch(len(idx))
        if out is None:
            return np.empty((0, 0), dtype=np.float32)
        return out

    def iter_batches(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for idx in self.batches(texts):
            yield idx, self.run_batch([texts[i] for i in idx])

    # ---- size ---------------------------------------------------------------------------
    def size_bytes(self) -> int:
        """Bytes of weights on disk as ``save`` writes them (graph or safetensors)."""
        from frugalml.models import store

        return store.weights_size_bytes(self)

    def save(self, path: str | Path, **manifest_extra: Any) -> Path:
        from frugalml.models import store

        return store.save(self, Path(path), **manifest_extra)
