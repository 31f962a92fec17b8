"""``generation``: prompts in, ``new_tokens`` greedy tokens out (default 32), timed.

The prompts are the data's lines (plain text) or JSONL ``prompt``/``text`` fields, at most
``prompts`` of them (default 8), each cut to fit the context with its continuation. Quality
= the share of prompts whose greedy continuation is the same as the original model's, x 100
(``match``; the original scores 100); the timing (time to first token, inter-token latency,
decode tokens/s) is what ``lm.evaluate`` measures for every LM task. Items per prompt:
``match`` (0/1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.errors import BadInput
from frugalml.tasks.base import Items, pick
from frugalml.tasks.lm_base import LMTask, require_lm
from frugalml.tasks.lm_fidelity import continuation

if TYPE_CHECKING:
    from frugalml.data.lm_text import LMText
    from frugalml.models import Model


def prompt_ids(model: Model, text: LMText, count: int, new_tokens: int) -> list[np.ndarray]:
    """Token ids of the first ``count`` prompts that are not empty, cut to fit the context."""
    room = max(1, int(model.runtime.max_length) - new_tokens)
    out = []
    for p in text.prompts:
        ids = model.tokenizer(p, add_special_tokens=False)["input_ids"][:room]
        if ids:
            out.append(np.asarray(ids, dtype=np.int64))
        if len(out) == count:
            break
    if not out:
        raise BadInput(f"{text.source or 'the data'} has no prompt with any token")
    return out


class Generation(LMTask):
    name = "generation"
    metrics = ("match",)
    summary = "causal LM, prompts → greedy tokens, timed"

    def score(
        self, model: Model, text: LMText, reference: Model | None = None
    ) -> tuple[Items, dict[str, Any]]:
        require_lm(model, self.name)
        ref = reference if reference is not None else model
        prompts = prompt_ids(model, text, self.prompts, self.new_tokens)
        if ref is model:  # the original against itself: every continuation matches
            return {"match": np.ones(len(prompts))}, {
                "prompts": len(prompts),
                "new_tokens": self.new_tokens,
            }
        match = np.asarray(
            [
                float(
                    np.array_equal(
                        continuation(model, ids, self.new_tokens),
                        continuation(ref, ids, self.new_tokens),
                    )
                )
                for ids in prompts
            ]
        )
        return {"match": match}, {"prompts": len(prompts), "new_tokens": self.new_tokens}

    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        sub = pick(items, indices)["match"]
        return float(100.0 * sub.mean()) if len(sub) else float("nan")
