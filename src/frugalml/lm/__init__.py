"""Causal language models: their text data (``lm.text``) and their measurement (``lm.evaluate``).

The model runtime is ``frugalml.models.runtimes.causal_lm``; the tasks are
``frugalml.tasks.perplexity``, ``frugalml.tasks.lm_fidelity`` and ``frugalml.tasks.generation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: tasks only a causal LM can run; ``fidelity`` runs on both kinds of model
LM_TASKS = ("perplexity", "generation")


def is_lm_spec(spec: Any) -> bool:
    """True when a MODEL spec (alias, path, loaded ``Model``) is a causal language model."""
    from frugalml.errors import BadInput
    from frugalml.models import Model

    if isinstance(spec, Model):
        return spec.output == "lm"
    from frugalml.models.load import LM_ALIASES, resolve_path
    from frugalml.models.runtimes.causal_lm import CausalLMRuntime

    if str(spec).lower() in LM_ALIASES:
        return True
    try:
        path = resolve_path(spec)
    except BadInput:
        return False
    if path.is_dir() and (path / "frugal.json").exists():
        import json

        try:
            return json.loads((path / "frugal.json").read_text()).get("output") == "lm"
        except (OSError, ValueError):
            return False
    return CausalLMRuntime().find(Path(path)) is not None


def wants_lm_data(model: Any, task: str) -> bool:
    """True when ``eval``/``optimize`` should read ``--data`` as LM text (``lm.text``)."""
    return task in LM_TASKS or (task == "fidelity" and is_lm_spec(model))
