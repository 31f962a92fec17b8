"""``similarity``: sentence pairs with a gold score → Spearman correlation of cosine similarity.

Quality = 100 x Spearman rank correlation (``--metric pearson``: Pearson) between the cosine
similarity of the two sentences' embeddings and the gold score (STS-B style). Items per pair:
``pred`` (cosine), ``gold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frugalml.data import Dataset
from frugalml.errors import BadInput
from frugalml.tasks.base import Context, Items, Task, pick


class Similarity(Task):
    name = "similarity"
    metrics = ("spearman", "pearson")
    summary = "pairs + gold score → Spearman"

    def check(self, data: Dataset) -> None:
        if data.texts2 is None or data.scores is None:
            missing = [
                n
                for n, v in (
                    ("second sentence (text2/sentence2)", data.texts2),
                    ("gold score (score)", data.scores),
                )
                if v is None
            ]
            raise BadInput(
                f"{data.source or 'the data'} has no {' and no '.join(missing)} "
                "column; the similarity task needs sentence pairs with a gold score",
                hint="use STS-B TSV, or CSV/JSONL with sentence1, sentence2, score "
                "(or --text-col/--text2-col/--score-col)",
            )

    def texts(self, data: Dataset) -> list[str]:
        assert data.texts2 is not None  # check() ran
        return [*data.texts, *data.texts2]

    def items(self, outputs: np.ndarray, data: Dataset, ctx: Context) -> Items:
        n = len(data)
        a, b = outputs[:n], outputs[n:]
        a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
        b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
        return {
            "pred": (a * b).sum(axis=1).astype(np.float64),
            "gold": np.asarray(data.scores, dtype=np.float64),
        }

    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        from scipy.stats import pearsonr, spearmanr

        sub = pick(items, indices)
        if len(sub["pred"]) < 2 or np.ptp(sub["gold"]) == 0 or np.ptp(sub["pred"]) == 0:
            return float("nan")
        corr = spearmanr if self.metric == "spearman" else pearsonr
        return float(100.0 * corr(sub["pred"], sub["gold"]).statistic)
