"""Training: fine-tune with less compute, tune with early stopping, every run in the ledger.

- ``finetune(model, train, dev, FinetuneConfig(...))``: full or LoRA fine-tuning of an encoder
  with a classification head; mixed precision, gradient checkpointing, ``torch.compile``,
  curricula; checkpoints evaluated by a separate process while training goes on; early stop
  at a target accuracy. One ledger run (kind ``finetune``) per call.
- ``tune(model, train, dev, TuneConfig(...))``: an Optuna study (TPE or random sampler;
  Hyperband, median or no pruner), each trial a ledger run (kind ``trial``) under a ``tune``
  run; the summary states the compute pruning saved.
- Recipes (``Full``, ``Lora``) and curricula (``Shuffled``, ``ByLength``, ``ByLoss``) are
  registered configs (``frugalml.train.registry``): one module each.
- ``frugalml.train.data``: audit, clean and select training data.

Modules: ``config`` (the types), ``finetuning`` (``finetune``), ``loop`` (the trainer),
``tuning`` (``tune``); no module shares a name with a function here. All are light at import
(torch, transformers, peft and optuna load when a run starts).
"""

from __future__ import annotations

from frugalml.train.config import (
    FinetuneConfig,
    FinetuneResult,
    OutOfMemory,
    TrainingDiverged,
)
from frugalml.train.curriculum import ByLength, ByLoss, Shuffled
from frugalml.train.finetuning import finetune
from frugalml.train.recipe_full import Full
from frugalml.train.recipe_lora import Lora
from frugalml.train.registry import Curriculum, Recipe
from frugalml.train.tuning import TuneConfig, TuneResult, tune

__all__ = [
    "ByLength",
    "ByLoss",
    "Curriculum",
    "FinetuneConfig",
    "FinetuneResult",
    "Full",
    "Lora",
    "OutOfMemory",
    "Recipe",
    "Shuffled",
    "TrainingDiverged",
    "TuneConfig",
    "TuneResult",
    "finetune",
    "tune",
]
