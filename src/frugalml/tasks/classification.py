"""``classification``: text + label → accuracy.

A model with its own classification head is scored by the argmax of its logits (its class
names must match the data's labels, or the labels must be class indices). A bare encoder is
scored by a logistic-regression probe fitted on its embeddings of the ``tune`` split (seeded,
scikit-learn) and applied to the ``score`` split — accuracy then says how well the embeddings
separate the classes. ``--metric macro_f1``: macro-averaged F1 instead of accuracy. Items per
text: ``correct`` (0/1), ``pred`` and ``gold`` (class codes, sorted label order).
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
    metrics = ("accuracy", "macro_f1")
    summary = "text + label → accuracy"

    def learns_from_data(self, model: Model) -> bool:
        return model.output != "logits"  # a bare encoder is scored through a fitted probe

    def check(self, data: Dataset) -> None:
        if data.labels is None:
            raise BadInput(
                f"{data.source or 'the data'} has no label column; the "
                "classification task needs text + label",
                hint="use 'label text' lines, or CSV/JSONL with text and label "
                "(or --text-col/--label-col)",
            )
        if len(set(data.labels)) < 2:
            raise BadInput(
                f"{data.source or 'the data'} has a single label; classification "
                "needs at least two classes"
            )

    def texts(self, data: Dataset) -> list[str]:
        return list(data.texts)

    def prepare(
        self, model: Model, tune: Dataset, score: Dataset, reference: np.ndarray | None = None
    ) -> Context:
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
        raise BadInput(
            f"the model's classes ({', '.join(names)}) do not match the data's "
            f"labels ({', '.join(sorted(wanted)[:8])})",
            hint="use data labelled with the model's class names or indices, or a "
            "bare encoder (scored with a probe)",
        )

    def items(self, outputs: np.ndarray, data: Dataset, ctx: Context) -> Items:
        assert data.labels is not None
        names = sorted(set(data.labels))
        code = {n: i for i, n in enumerate(names)}
        gold = np.asarray([code[g] for g in data.labels])
        if ctx.probe is not None:
            pred_names = ctx.probe.predict(outputs)
        else:
            by_index = {v: k for k, v in ctx.label_index.items()}
            pred_names = [by_index.get(int(i), "") for i in outputs.argmax(axis=1)]
        pred = np.asarray([code.get(str(p), -1) for p in pred_names])
        return {
            "correct": (pred == gold).astype(np.float64),
            "pred": pred.astype(np.float64),
            "gold": gold.astype(np.float64),
        }

    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        sub = pick(items, indices)
        if not len(sub["correct"]):
            return float("nan")
        if self.metric == "macro_f1":
            from sklearn.metrics import f1_score

            return float(
                100.0 * f1_score(sub["gold"], sub["pred"], average="macro", zero_division=0)
            )
        return float(100.0 * sub["correct"].mean())
