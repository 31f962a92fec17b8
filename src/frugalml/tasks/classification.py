"""``classification``: text + label → accuracy.

A model with its own classification head is scored by the argmax of its logits (its class
names must match the data's labels, or the labels must be class indices). A bare encoder is
scored by a logistic-regression probe fitted on its embeddings of the ``tune`` split (seeded,
scikit-learn) and applied to the ``score`` split — accuracy then says how well the embeddings
separate the classes. Items per text: ``correct`` (0/1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from frugalml.data import Dataset
from frugalml.errors import BadInput
from frugalml.tasks.base import Context, Items, Task, pick

if TYPE_CHECKING:
    from frugalml.models import Model


class Classification(Task):
    name = "classification"
    metric = "accuracy"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def check(self, data: Dataset) -> None:
        if data.labels is None:
            raise BadInput(f"{data.source or 'the data'} has no label column; the "
                           "classification task needs text + label",
                           hint="use 'label text' lines, or CSV/JSONL with text and label "
                           "(or --text-col/--label-col)")
        if len(set(data.labels)) < 2:
            raise BadInput(f"{data.source or 'the data'} has a single label; classification "
                           "needs at least two classes")

    def texts(self, data: Dataset) -> list[str]:
        return list(data.texts)

    def prepare(self, model: Model, tune: Dataset, score: Dataset,
                reference: np.ndarray | None = None) -> Context:
        assert tune.labels is not None and score.labels is not None  # check() ran
        if model.output == "logits":
            return Context(label_index=self._head_index(model, tune, score))
        from sklearn.linear_model import LogisticRegression

        x = model.encode(list(tune.texts))
        probe = LogisticRegression(max_iter=2000, random_state=self.seed)
        probe.fit(x, list(tune.labels))
        return Context(probe=probe, notes={"probe_rows": len(tune)})

    @staticmethod
    def _head_index(model: Model, tune: Dataset, score: Dataset) -> dict[str, int]:
        names = list(model.label_names or ())
        wanted = set(tune.labels or ()) | set(score.labels or ())
        if wanted <= set(names):
            return {n: i for i, n in enumerate(names)}
        if all(w.isdigit() and int(w) < max(len(names), 1) for w in wanted):
            return {w: int(w) for w in wanted}
        raise BadInput(f"the model's classes ({', '.join(names)}) do not match the data's "
                       f"labels ({', '.join(sorted(wanted)[:8])})",
                       hint="use data labelled with the model's class names or indices, or a "
                       "bare encoder (scored with a probe)")

    def items(self, outputs: np.ndarray, data: Dataset, ctx: Context) -> Items:
        assert data.labels is not None
        if ctx.probe is not None:
            pred = ctx.probe.predict(outputs)
            correct = np.asarray([p == g for p, g in zip(pred, data.labels, strict=True)])
        else:
            gold = np.asarray([ctx.label_index[g] for g in data.labels])
            correct = outputs.argmax(axis=1) == gold
        return {"correct": correct.astype(np.float64)}

    @staticmethod
    def quality_on(items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        sub = pick(items, indices)["correct"]
        return float(100.0 * sub.mean()) if len(sub) else float("nan")
