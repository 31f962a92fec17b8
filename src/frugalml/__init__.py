"""frugal: make AI models cheaper to train and to serve, and prove it.

The package follows the flow measure → ledger → cut → search → prove → scale:

- ``frugalml.measure``: ``track`` a block or function, ``run_command`` another program, time
  repeated calls; every figure with units, energy labelled read or estimated, priced in $.
- ``frugalml.ledger``: ``Ledger`` keeps every run (SQLite by default, PostgreSQL by URL).
- ``frugalml.data``: read evaluation/training data (CSV, TSV, JSONL, STS-B, ``label text``).
- ``frugalml.models``: ``load`` a model (HF / sentence-transformers folder, ONNX, frugal output,
  ``minilm``), run it, save any variant (safetensors / ONNX + ``frugal.json``).
- ``frugalml.tasks``: quality in points (similarity, classification, fidelity).
- ``frugalml.passes``: ``apply(model, Config)`` — one file per technique (ONNX, int8, fp16/bf16,
  pruning, layer dropping + distillation, torch.compile, runtime settings).
- ``frugalml.search``: ``evaluate`` (the one measurement), ``optimize`` (Pareto search for the
  cheapest model within a quality bound); a causal LM (``smollm2``, a GGUF file, a
  ``...ForCausalLM`` folder) is measured per token and searched by its own path.

Heavy dependencies (torch, transformers, onnxruntime) are imported only when used, so
``import frugalml`` stays fast and never initialises CUDA. They come with extras: the core
(``pip install frugalml``) is ``track`` and the ledger; ``[optimize]``, ``[train]``, ``[data]``,
``[postgres]``, ``[mlflow]`` or ``[all]`` add the rest. Which layer may import which:
docs/architecture.md (checked by ``scripts/lint.sh``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first use)
_LAZY = {
    "track": "frugalml.measure.track",
    "Run": "frugalml.measure.track",
    "Ledger": "frugalml.ledger.store",
    "Usage": "frugalml.records",
    "RunRecord": "frugalml.records",
    "Hardware": "frugalml.records",
    "FrugalError": "frugalml.errors",
    "load_data": "frugalml.data",
    "time_calls": "frugalml.measure.timing",
    "load": "frugalml.passes.persist",
    "evaluate": "frugalml.search.api",  # an encoder's evaluate or a causal LM's
    "apply": "frugalml.passes",
    "optimize": "frugalml.report.markdown",  # the search, with its reports written
    "compare": "frugalml.report.compare",
}

__all__ = [
    "FrugalError",
    "Hardware",
    "Ledger",
    "Run",
    "RunRecord",
    "Usage",
    "__version__",
    "apply",
    "compare",
    "evaluate",
    "load",
    "load_data",
    "optimize",
    "time_calls",
    "track",
]

if TYPE_CHECKING:
    from frugalml.data import load_data
    from frugalml.errors import FrugalError
    from frugalml.ledger.store import Ledger
    from frugalml.measure.timing import time_calls
    from frugalml.measure.track import Run, track
    from frugalml.passes import apply
    from frugalml.passes.persist import load
    from frugalml.records import Hardware, RunRecord, Usage
    from frugalml.report.markdown import optimize
    from frugalml.search.api import evaluate


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'frugalml' has no attribute {name!r}")
