"""``perplexity``: token-level perplexity of a causal LM on text (lower is better).

The text's tokens (no special tokens) are cut into windows of ``window`` tokens (default 512,
capped by the model's context length) starting every ``stride`` tokens (default: the window,
so windows do not overlap), at most ``windows`` of them (default 8). Each token a window
scores is predicted from the tokens before it in that window; a window scores the tokens the
previous one did not. Perplexity = exp(total negative log-likelihood / tokens scored). Items
per window: ``nll`` (summed, nats) and ``tokens``; ``quality_on`` pools them, so a resample
of windows gives that resample's perplexity. Both settings are stated in the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.data.lm_text import token_windows
from frugalml.tasks.base import Items, pick
from frugalml.tasks.lm_base import LMTask, log_probs, require_lm

if TYPE_CHECKING:
    from frugalml.data.lm_text import LMText
    from frugalml.models import Model


class Perplexity(LMTask):
    name = "perplexity"
    metrics = ("perplexity",)
    summary = "causal LM, text → perplexity, lower is better"
    higher_is_better = False

    def score(
        self, model: Model, text: LMText, reference: Model | None = None
    ) -> tuple[Items, dict[str, Any]]:
        import torch

        require_lm(model, self.name)
        window, stride = self.settings(model)
        rows, scored = token_windows(
            model.tokenizer, text, window=window, stride=stride, max_windows=self.windows
        )
        nll = np.zeros(len(rows))
        for i, (ids, k) in enumerate(zip(rows, scored, strict=True)):
            lp = log_probs(model, ids)[:-1]  # predictions for ids[1:]
            target = torch.as_tensor(ids[1:])
            token_lp = lp.gather(1, target[:, None])[:, 0][-k:]
            nll[i] = float(-token_lp.double().sum())
        items = {"nll": nll, "tokens": np.asarray(scored, dtype=np.float64)}
        return items, {"window": window, "stride": stride, "windows": len(rows)}

    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        sub = pick(items, indices)
        total = float(sub["tokens"].sum())
        return math.exp(float(sub["nll"].sum()) / total) if total else float("nan")
