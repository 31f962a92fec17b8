"""``fidelity`` for causal LMs: agreement with the original model's next-token distributions.

On the same token windows as ``perplexity`` (see there), for every scored position: the KL
divergence KL(original || model) of the next-token distributions (nats) and whether both
pick the same most likely token (top-1 agreement). And per window, a greedy continuation of
``new_tokens`` tokens (default 32) from the window's first half (at most 64 tokens): a
"flip" when the model's continuation differs from the original's anywhere. These catch
damage that perplexity averages away. Quality = top-1 agreement x 100 (higher is better);
``mean_kl`` and ``flips`` (share of continuations that change) are stated with it. Items per
window: ``agreement``, ``kl``, ``flip``. The original scores 100, KL 0, no flips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from frugalml.data.lm_text import token_windows
from frugalml.errors import BadInput
from frugalml.tasks.base import Items, pick
from frugalml.tasks.lm_base import LMTask, log_probs, require_lm

if TYPE_CHECKING:
    from frugalml.data.lm_text import LMText
    from frugalml.models import Model

PROMPT_CAP = 64


def continuation(model: Model, ids: np.ndarray, new_tokens: int) -> np.ndarray:
    tokens, _prefill, _steps = model.engine_runtime.greedy(model, ids[None, :], new_tokens)
    return np.asarray(tokens[0])


class LMFidelity(LMTask):
    name = "fidelity"
    metrics = ("agreement",)
    summary = "causal LM, text → top-1 agreement, KL, flips vs the original"

    def score(
        self, model: Model, text: LMText, reference: Model | None = None
    ) -> tuple[Items, dict[str, Any]]:
        require_lm(model, self.name)
        if reference is None:
            raise BadInput("LM fidelity needs the original model to compare with")
        require_lm(reference, self.name)
        window, stride = self.settings(model)
        rows, scored = token_windows(
            model.tokenizer, text, window=window, stride=stride, max_windows=self.windows
        )
        n = len(rows)
        agreement, kl, flip = np.zeros(n), np.zeros(n), np.zeros(n)
        prompt_len = max(1, min(PROMPT_CAP, window // 2))
        new = max(1, min(self.new_tokens, window - prompt_len))
        for i, (ids, k) in enumerate(zip(rows, scored, strict=True)):
            lp = log_probs(model, ids)[:-1][-k:]
            ref = log_probs(reference, ids)[:-1][-k:]
            if lp.shape != ref.shape:
                raise BadInput(
                    f"the model's vocabulary ({lp.shape[-1]}) differs from the original's "
                    f"({ref.shape[-1]})"
                )
            kl[i] = float((ref.exp() * (ref - lp)).sum(dim=-1).clamp_min(0).mean())
            agreement[i] = float((lp.argmax(-1) == ref.argmax(-1)).double().mean())
            prompt = ids[:prompt_len]
            same = np.array_equal(
                continuation(model, prompt, new), continuation(reference, prompt, new)
            )
            flip[i] = 0.0 if same else 1.0
        items = {"agreement": agreement, "kl": kl, "flip": flip}
        figures = {
            "window": window,
            "stride": stride,
            "windows": n,
            "mean_kl": float(kl.mean()),
            "top1_agreement": float(agreement.mean()),
            "flips": float(flip.mean()),
            "flip_tokens": new,
        }
        return items, figures

    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        sub = pick(items, indices)["agreement"]
        return float(100.0 * sub.mean()) if len(sub) else float("nan")
