"""Models: the one loader. A MODEL spec in, a runnable ``Model`` out, by a registered runtime.

``load("minilm")`` (the bundled all-MiniLM-L6-v2), ``load("path/to/hf-or-st-folder")`` or
``load("model.onnx")`` return a ``Model``; ``model.encode(texts)`` gives one embedding (or
logits) row per text. Each engine is one module in ``runtimes/`` (PyTorch, ONNX Runtime) that
loads, runs a batch, saves the weights and sizes them; ``hf`` reads and writes the Hugging
Face / sentence-transformers layout they share. Saving a variant with its history
(``frugal.json``) and loading it back is ``frugalml.passes.persist``; models never import
passes.
"""

from frugalml.models.base import AppliedPass, Model, Pooling, Runtime
from frugalml.models.load import ALIASES, is_alias, load, resolve_path
from frugalml.models.registry import threads_for
from frugalml.models.runtimes.torch import forward_names

__all__ = [
    "ALIASES",
    "AppliedPass",
    "Model",
    "Pooling",
    "Runtime",
    "forward_names",
    "is_alias",
    "load",
    "resolve_path",
    "threads_for",
]
