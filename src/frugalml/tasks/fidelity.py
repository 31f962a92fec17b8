"""``fidelity``: unlabelled text → agreement with the unoptimized model's outputs.

For an embedding model: mean cosine similarity between each text's embedding and the original
model's (x 100). For a model with a classification head: top-1 agreement of the logits (the
share of texts where both pick the same class, x 100). Items per text: ``agreement``.

The reference is the original (``base``) model's outputs on the same texts, computed with the
same tokenization; the original scores 100 against itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from frugalml.data import Dataset
from frugalml.tasks.base import Context, Items, Task, pick

if TYPE_CHECKING:
    from frugalml.models import Model


class Fidelity(Task):
    name = "fidelity"
    metrics = ("agreement",)
    summary = "text → agreement with the original model"
    needs_reference = True

    def check(self, data: Dataset) -> None:
        return None  # any text will do; load_data already refused files without a text column

    def texts(self, data: Dataset) -> list[str]:
        return data.texts_all()

    def prepare(
        self, model: Model, tune: Dataset, score: Dataset, reference: np.ndarray | None = None
    ) -> Context:
        return Context(reference=reference, notes={"output": model.output})

    def items(self, outputs: np.ndarray, data: Dataset, ctx: Context) -> Items:
        ref = ctx.reference
        if ref is None:
            raise ValueError("fidelity needs the original model's outputs (reference)")
        if ref.shape != outputs.shape:
            raise ValueError(
                f"reference outputs {ref.shape} and model outputs {outputs.shape} differ in shape"
            )
        if ctx.notes.get("output") == "logits":
            agree = (outputs.argmax(axis=1) == ref.argmax(axis=1)).astype(np.float64)
        else:
            a = outputs / np.clip(np.linalg.norm(outputs, axis=1, keepdims=True), 1e-12, None)
            b = ref / np.clip(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12, None)
            agree = (a * b).sum(axis=1).astype(np.float64)
        return {"agreement": agree}

    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        sub = pick(items, indices)["agreement"]
        return float(100.0 * sub.mean()) if len(sub) else float("nan")
