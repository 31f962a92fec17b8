"""The ``Model`` frugal runs: an engine (a registered runtime), a tokenizer, and how to batch.

A ``Model`` turns texts into one output row per text: a pooled sentence embedding (``output ==
"embedding"``) or class logits (``"logits"``). ``encode(texts)`` runs every text with the
model's ``Runtime`` settings (batch size, length-sorted batching, intra-op threads, max length)
and returns a float32 array ``(len(texts), dim)`` in the input order.

Passes (``frugalml.passes``) return a new ``Model``; ``passes`` records what was applied, in
order, and ``structure`` what changed in the network's shapes, so ``frugalml.passes.persist``
can save and rebuild any variant from safetensors or ONNX files (never pickle).

How a batch runs, how weights are saved and sized is the engine's runtime module
(``frugalml.models.runtimes``); what a runtime caches between batches (an ONNX Runtime
session, the network's input names) lives in its own state object on the model, which
``evolve`` never shares with the copy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Engine = str  # a registered runtime's name: "torch", "onnx" (see frugalml.models.runtimes)
Output = Literal["embedding", "logits", "lm"]  # "lm": a causal LM (runtimes.causal_lm)


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
    lists class names for a model with a classification head. ``config`` is the network's
    Hugging Face config (a dict; what ``config.json`` of a saved folder holds), ``dims`` its
    head count and hidden size, ``stats`` figures passes report (distillation steps, fused
    operators); ``evolve`` copies them, so a variant never changes its original's.
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
    config: dict[str, Any] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    _state: Any = field(default=None, repr=False, compare=False)
    _fast: Any = field(default=None, repr=False, compare=False)  # see _fast_tokenizer

    # ---- identity -----------------------------------------------------------------------
    @property
    def has_head(self) -> bool:
        return self.output == "logits"

    def describe(self) -> str:
        chain = " + ".join(p.name for p in self.passes) or "original"
        return f"{chain} ({self.engine}, {self.dtype}, {self.device})"

    def evolve(self, **changes: Any) -> Model:
        """A copy with ``changes``; the runtime's state (session, caches) is never shared."""
        changes["_state"] = changes["_fast"] = None
        for name in ("config", "dims", "stats", "structure"):
            changes.setdefault(name, dict(getattr(self, name)))
        return dataclasses.replace(self, **changes)

    @property
    def engine_runtime(self) -> Any:
        """The registered runtime module that runs this model (``frugalml.models.runtimes``)."""
        from frugalml.models.registry import get

        return get(self.engine)

    def state(self, make: Callable[[], Any]) -> Any:
        """This model's runtime state, made by ``make`` on first use (never shared)."""
        if self._state is None:
            self._state = make()
        return self._state

    # ---- running ------------------------------------------------------------------------
    def batches(
        self,
        texts: Sequence[str],
        batch_size: int | None = None,
        *,
        tokens: dict[str, list[list[int]]] | None = None,
    ) -> list[np.ndarray]:
        """Row indices of each batch, in the order they run (most tokens first when sorted).

        Sorting by token count (not characters, as sentence-transformers does) groups texts
        that pad to the same length: on STS-B dev, batches of 32 sorted by characters are
        about a quarter padding. ``tokens``: the texts' unpadded tokenization when the
        caller has it (``encode``), else it is made here.
        """
        bs = batch_size or self.runtime.batch_size
        if self.runtime.length_sort:
            if tokens is None:
                tokens = self._tokenize_each(texts)
            lengths = np.fromiter(
                (len(t) for t in tokens["input_ids"]), dtype=np.int64, count=len(texts)
            )
            order = np.argsort(-lengths, kind="stable")
        else:
            order = np.arange(len(texts))
        return [order[i : i + bs] for i in range(0, len(texts), bs)]

    def _tokenize_each(self, texts: Sequence[str]) -> dict[str, list[list[int]]]:
        """Each text's token ids (and masks) after truncation, unpadded.

        A fast tokenizer's Rust core (``backend_tokenizer``) gives the same ids as the
        tokenizer's ``__call__`` without its per-call Python work (transformers 5's, a
        sizeable share of an int8 MiniLM's ``encode`` on short sentences; the optimize
        benchmark's rows gain from it). It runs on a private copy set up once for this model's
        ``max_length`` (``__call__`` resets the shared core's truncation and padding on every
        call, so sharing it with another thread is unsafe). Any other tokenizer: ``__call__``.
        """
        if (fast := self._fast_tokenizer()) is not None:
            core, keys = fast
            encs = core.encode_batch(list(texts), add_special_tokens=True)
            return {key: [getattr(e, attr) for e in encs] for key, attr in keys}
        enc = self.tokenizer(
            list(texts), padding=False, truncation=True, max_length=self.runtime.max_length
        )
        return {k: list(v) for k, v in enc.items()}

    def _fast_tokenizer(self) -> tuple[Any, list[tuple[str, str]]] | None:
        """The private Rust tokenizer and (output key, ``Encoding`` attribute) pairs, or None
        when the tokenizer has no Rust core or returns a key the core does not give."""
        if self._fast is None:
            self._fast = _rust_copy(self.tokenizer, self.runtime.max_length) or False
        return self._fast or None

    def tokenize(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """One padded batch (int64 arrays), as ``tokenizer(..., padding=True)`` returns it."""
        if self._fast_tokenizer() is not None:
            return _pad_batch(self._tokenize_each(texts), np.arange(len(texts)), self.tokenizer)
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
        return self.run_encoded(self.tokenize(texts))

    def run_encoded(self, enc: dict[str, np.ndarray]) -> np.ndarray:
        """Run one tokenized batch (``tokenize``'s arrays); float32 (batch, dim)."""
        raw = self.engine_runtime.run(self, enc)
        if self.output == "embedding" and raw.ndim == 3:
            return self.pooling.apply(raw, enc["attention_mask"])
        return np.asarray(raw, dtype=np.float32)

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Outputs for every text, in input order, run with this model's runtime settings.

        With ``length_sort`` the texts are tokenized once, ordered by token count and each
        batch is padded to its own longest text (``batches``); otherwise each batch is
        tokenized as it comes.
        """
        out: np.ndarray | None = None
        tokens = self._tokenize_each(texts) if self.runtime.length_sort else None
        for idx in self.batches(texts, batch_size, tokens=tokens):
            if tokens is None:
                rows = self.run_batch([texts[i] for i in idx])
            else:
                rows = self.run_encoded(_pad_batch(tokens, idx, self.tokenizer))
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
        return int(self.engine_runtime.size_bytes(self))


_ENCODING_ATTR = {
    "input_ids": "ids",
    "token_type_ids": "type_ids",
    "attention_mask": "attention_mask",
}


def rust_tokenizer(tokenizer: Any, max_length: int | None = None) -> Any | None:
    """A private copy of a fast tokenizer's Rust core (``backend_tokenizer``), unpadded,
    truncating at ``max_length`` on the tokenizer's side (None: untruncated); None if the
    tokenizer has no such core. Private because ``__call__`` resets the shared core's
    truncation and padding on every call: another thread's call would change this one's."""
    core = getattr(tokenizer, "backend_tokenizer", None)
    if core is None:
        return None
    try:
        from tokenizers import Tokenizer

        copy = Tokenizer.from_str(core.to_str())
        copy.no_padding()
        if max_length is None:
            copy.no_truncation()
        else:
            side = getattr(tokenizer, "truncation_side", "right") or "right"
            copy.enable_truncation(max_length, direction=side)
    except Exception:  # an unusual core: __call__ is always right
        return None
    return copy


def _rust_copy(tokenizer: Any, max_length: int) -> tuple[Any, list[tuple[str, str]]] | None:
    """``rust_tokenizer`` at ``max_length`` with the keys ``__call__`` returns, as
    (output key, ``Encoding`` attribute) pairs; None if a key is one the core does not give."""
    names = list(getattr(tokenizer, "model_input_names", ()) or ())
    if not names or any(n not in _ENCODING_ATTR for n in names):
        return None
    core = rust_tokenizer(tokenizer, max_length)
    return None if core is None else (core, [(n, _ENCODING_ATTR[n]) for n in names])


def _pad_batch(
    tokens: dict[str, list[list[int]]], idx: np.ndarray, tokenizer: Any
) -> dict[str, np.ndarray]:
    """Rows ``idx`` of an unpadded tokenization as int64 arrays padded to their longest row,
    on the tokenizer's padding side (what ``tokenizer(..., padding=True)`` returns)."""
    ids = [tokens["input_ids"][i] for i in idx]
    width = max((len(r) for r in ids), default=0)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    out: dict[str, np.ndarray] = {}
    for key, rows in tokens.items():
        fill = (getattr(tokenizer, "pad_token_id", None) or 0) if key == "input_ids" else 0
        arr = np.full((len(idx), width), fill, dtype=np.int64)
        for r, i in enumerate(idx):
            row = rows[i]
            if left:
                arr[r, width - len(row) :] = row
            else:
                arr[r, : len(row)] = row
        out[key] = arr
    return out
