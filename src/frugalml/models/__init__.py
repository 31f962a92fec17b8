"""Models: load a model from a MODEL spec, run batches of text, save and load every variant.

``load("minilm")`` (the bundled all-MiniLM-L6-v2), ``load("path/to/hf-or-st-folder")``,
``load("model.onnx")`` or ``load("frugal-out/best")`` return a ``Model``; ``model.encode(texts)``
gives one embedding (or logits) row per text; ``model.save(folder)`` writes safetensors or ONNX
plus a ``frugal.json`` manifest (``store``), never a pickle.
"""

from frugalml.models.base import AppliedPass, Model, Pooling, Runtime
from frugalml.models.load import ALIASES, load, resolve_path

__all__ = ["ALIASES", "AppliedPass", "Model", "Pooling", "Runtime", "load", "resolve_path"]
