"""``frugalml.evaluate`` and the search behind ``frugalml.optimize``, for any model.

One verb per job whatever the model is: a causal language model (``smollm2``, a ``.gguf``
file, a ``...ForCausalLM`` folder, or a loaded ``Model`` with ``output == "lm"``) given an LM
task (``perplexity``, ``generation``, or ``fidelity``) goes to ``evaluate_lm`` /
``optimize_lm``; every other model to the encoder's ``evaluate`` / ``runner.optimize``,
exactly as before. ``frugal eval`` and ``frugal optimize`` call these.

``task_options`` (LM tasks only: ``window``, ``stride``, ``windows``, ``new_tokens``) is
refused for an encoder; the encoder-only settings (``length_sort``, ``warmup_batches``,
``on_batch``, ``split``; ``tiers``, ``runtime_variants``, ``engine`` ...) are ignored for an LM,
whose runtime decodes one prompt at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from frugalml.errors import BadInput

if TYPE_CHECKING:
    from frugalml.data import Dataset
    from frugalml.models import Model
    from frugalml.search.evaluate import EvalResult
    from frugalml.search.result import OptimizeResult
    from frugalml.tasks import Task

#: keyword arguments of the encoder's ``evaluate`` that an LM's measurement has no use for
_ENCODER_ONLY = ("length_sort", "warmup_batches", "on_batch", "split")


def is_lm_job(model: Any, task: Any) -> bool:
    """True when ``model`` + ``task`` are a causal-LM job (a task object never is)."""
    from frugalml.models.load import wants_lm_data

    return isinstance(task, str) and wants_lm_data(model, task)


def evaluate(
    model: str | Path | Model,
    task: str | Task,
    data: str | Path | Dataset | list[str],
    *,
    task_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> EvalResult:
    """Measure ``model`` on ``task`` over ``data`` (``search.evaluate.evaluate``'s arguments).

    For a causal LM the result is an ``LMEvalResult`` (an ``EvalResult`` plus the per-token
    keys; ``search.evaluate_lm``); ``data`` is then text (a file, a ``Dataset`` or a list of
    documents) and ``device``, ``threads``, ``batch_size`` set how it runs.
    """
    if not is_lm_job(model, task):
        from frugalml.search.evaluate import evaluate as evaluate_encoder

        if task_options:
            raise BadInput(
                f"{', '.join(task_options)}: settings of causal-LM tasks",
                hint="give them only with a causal language model",
            )
        return evaluate_encoder(model, task, data, **kwargs)  # type: ignore[arg-type]
    from frugalml.passes.persist import load
    from frugalml.search.evaluate import with_runtime
    from frugalml.search.evaluate_lm import evaluate_lm

    for key in _ENCODER_ONLY:
        kwargs.pop(key, None)
    device = kwargs.pop("device", "cpu")
    threads = kwargs.pop("threads", None)
    batch_size = kwargs.pop("batch_size", None)
    lm = load(model, device=device) if isinstance(model, (str, Path)) else model
    lm = with_runtime(lm, threads=threads, batch_size=batch_size)
    return evaluate_lm(lm, str(task), data, task_options=task_options, **kwargs)


def optimize(
    model: str | Path | Model,
    task: str,
    data: str | Path | Dataset,
    *,
    task_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> OptimizeResult:
    """The search (``search.runner.optimize``'s arguments); ``search.optimize_lm`` for an LM."""
    if is_lm_job(model, task):
        from frugalml.search.optimize_lm import optimize_lm

        if kwargs.get("extra_text") is not None:
            raise BadInput(
                "--extra-text feeds an encoder's distillation; a causal LM's search has none",
                hint="leave --extra-text out for a causal language model",
            )
        if kwargs.get("final_confidence") is not None:
            raise BadInput(
                "--final-confidence sets an encoder search's final check; a causal LM's "
                "search scores one text and has no final split",
                hint="leave --final-confidence out for a causal language model",
            )

        return optimize_lm(model, task, data, task_options=task_options, **kwargs)
    from frugalml.search.runner import optimize as optimize_encoder

    if task_options:
        raise BadInput(
            f"{', '.join(task_options)}: settings of causal-LM tasks",
            hint="give them only with a causal language model",
        )
    return optimize_encoder(model, task, data, **kwargs)
