"""Training: fine-tune with less compute, tune with early stopping, every run in the ledger.

- ``finetune(model, train, dev, FinetuneConfig(...))``: full or LoRA fine-tuning of an encoder
  with a classification head; mixed precision, gradient checkpointing, ``torch.compile``,
  curricula; checkpoints evaluated by a separate process while training goes on; early stop
  at a target accuracy. One ledger run (kind ``finetune``) per call.
- ``tune(model, train, dev, TuneConfig(...))``: an Optuna study (TPE or random sampler;
  Hyperband, median or no pruner), each trial a ledger run (kind ``trial``) under a ``tune``
  run; the summary states the compute pruning saved.
- ``frugalml.train.data``: audit, clean and select training data.

The modules imported here are light (no torch, transformers, peft or optuna at import time:
those load when a run starts). They are imported eagerly so that ``frugalml.train.finetune``
and ``frugalml.train.tune`` name the functions, not the modules of the same name.
"""

from __future__ import annotations

from frugalml.train.finetune import (
    FinetuneConfig,
    FinetuneResult,
    OutOfMemory,
    TrainingDiverged,
    finetune,
)
from frugalml.train.tune import TuneConfig, TuneResult, tune

__all__ = [
    "FinetuneConfig",
    "FinetuneResult",
    "OutOfMemory",
    "TrainingDiverged",
    "TuneConfig",
    "TuneResult",
    "finetune",
    "tune",
]
