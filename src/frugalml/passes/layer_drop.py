"""Layer dropping + knowledge distillation: a shallower student taught by the original.

Keeps ``keep`` of the encoder's transformer blocks, spread evenly over the depth (first and
last included: 6 → 4 keeps blocks 0, 2, 3, 5), then distills the student from the original
model (the teacher = the model this pass receives, i.e. the baseline) on unlabelled text of
the task data's tune split (``passes.distill``). Compute falls roughly in proportion to the
blocks removed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from frugalml.errors import CandidateFailed
from frugalml.passes.distill import distill, teacher_outputs
from frugalml.passes.registry import PassContext, register
from frugalml.passes.structure import encoder_layers

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class LayerDrop:
    """Keep fewer transformer blocks, then distill from the original on the task's text."""

    keep: int = 4  # blocks kept
    epochs: int = 4  # distillation epochs over the tune split's texts
    lr: float = 1e-4
    batch_size: int = 32
    max_texts: int = 4000  # cap on distillation texts (time)


def kept_layers(total: int, keep: int) -> list[int]:
    """Evenly spread block indices, first and last included."""
    if keep >= total:
        return list(range(total))
    return sorted({round(float(x)) for x in np.linspace(0, total - 1, keep)})


@register(LayerDrop, stage=10, engines=("torch",), needs_data=True)
def layer_drop(model: Model, cfg: LayerDrop, ctx: PassContext) -> Model:
    import torch

    if model.replay or model.dtype != "float32":
        raise CandidateFailed("layer dropping needs the float32 PyTorch network")
    student = copy.deepcopy(model.source if model.source is not None else model.module)
    parent, attr, layers = encoder_layers(student)
    total = len(layers)
    if not 1 <= cfg.keep < total:
        raise CandidateFailed(
            f"keep={cfg.keep}: the encoder has {total} blocks; keep 1 to {total - 1}"
        )
    keep = kept_layers(total, cfg.keep)
    setattr(parent, attr, torch.nn.ModuleList([layers[i] for i in keep]))
    student.config.num_hidden_layers = len(keep)
    texts = list(ctx.texts)[: cfg.max_texts]
    ctx.log(f"layer drop: keeping blocks {keep} of {total}; distilling on {len(texts)} texts")
    target = teacher_outputs(model, texts)
    stats = distill(
        student,
        model,
        texts,
        target,
        epochs=cfg.epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seed=ctx.seed,
        log=ctx.log,
    )
    structure = {
        **model.structure,
        "layers_kept": [model.structure.get("layers_kept", list(range(total)))[i] for i in keep],
    }
    return model.evolve(
        module=student,
        source=student,
        structure=structure,
        extra={**{k: v for k, v in model.extra.items() if k != "_forward_names"}, "distill": stats},
    )
