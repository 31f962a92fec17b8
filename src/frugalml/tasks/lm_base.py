"""What the language-model tasks share: they score a causal LM on text, window by window.

An ``LMTask`` is a ``Task`` whose rows are token windows (``perplexity``, ``fidelity``) or
prompts (``generation``) rather than data rows: ``score(model, text, reference)`` returns the
per-row ``items`` and the figures it states (window, stride, KL ...); ``quality_on(items,
indices)`` recomputes the metric on any subset or resample of rows, as for every task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from frugalml.errors import BadInput
from frugalml.tasks.base import TASKS, Context, Items, Task

if TYPE_CHECKING:
    from frugalml.data import Dataset
    from frugalml.data.lm_text import LMText
    from frugalml.models import Model

#: defaults: perplexity/fidelity windows of 512 tokens, stride 512, 8 windows; 32 new tokens
WINDOW = 512
WINDOWS = 8
NEW_TOKENS = 32
PROMPTS = 8
NOT_LM_HINT = "give a causal language model: a Hugging Face ...ForCausalLM folder or 'smollm2'"
#: the tasks a causal LM runs, by name (``fidelity`` here is ``LMFidelity``); ``TASKS`` holds
#: the LM-only ones (perplexity, generation) too, and the encoder ``fidelity``
LM_TASKS: dict[str, type[Task]] = {}
LM_ONLY = ("perplexity", "generation")


def require_lm(model: Model, task: str) -> None:
    """One-line ``BadInput`` when ``model`` is not a causal LM."""
    if model.output != "lm":
        kind = "encoder" if model.output == "embedding" else "classifier"
        raise BadInput(
            f"the {task} task needs a causal language model; this model is a "
            f"{model.arch or model.engine} {kind}",
            hint=NOT_LM_HINT,
        )


class LMTask(Task):
    """A task that runs a causal LM (``model.output == "lm"``)."""

    lm: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # not Task's registration: an LM task's name may be an encoder task's (fidelity)
        super(Task, cls).__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            LM_TASKS[cls.name] = cls
            if cls.name in LM_ONLY:
                TASKS[cls.name] = cls

    def __init__(
        self,
        metric: str | None = None,
        seed: int = 0,
        *,
        window: int = WINDOW,
        stride: int | None = None,
        windows: int = WINDOWS,
        new_tokens: int = NEW_TOKENS,
        prompts: int = PROMPTS,
    ) -> None:
        super().__init__(metric, seed)
        self.window = window
        self.stride = stride
        self.windows = windows
        self.new_tokens = new_tokens
        self.prompts = prompts

    def settings(self, model: Model) -> tuple[int, int]:
        """(window, stride) for ``model``: the window capped by its context length."""
        window = min(self.window, int(model.runtime.max_length))
        stride = min(self.stride or window, window)
        return window, stride

    # the encoder path (Dataset rows) does not apply to LM tasks
    def check(self, data: Dataset) -> None:
        raise BadInput(f"the {self.name} task needs a causal language model")

    def texts(self, data: Dataset) -> list[str]:
        return data.texts_all()

    def items(self, outputs: np.ndarray, data: Dataset, ctx: Context) -> Items:
        raise BadInput(f"the {self.name} task needs a causal language model")

    def score(
        self, model: Model, text: LMText, reference: Model | None
    ) -> tuple[Items, dict[str, Any]]:
        raise NotImplementedError

    def quality_on(self, items: Items, indices: Sequence[int] | np.ndarray | None = None) -> float:
        raise NotImplementedError


def log_probs(model: Model, ids: np.ndarray) -> Any:
    """log-softmax of the model's logits for one row of ids: (seq, vocab) float32 tensor."""
    import torch

    logits = model.engine_runtime.logits(model, ids[None, :])[0]
    return torch.log_softmax(logits.float(), dim=-1)
