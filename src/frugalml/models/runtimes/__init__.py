"""Runtimes: how a model is loaded, run, saved and sized, one module per engine.

A runtime is an object registered under the engine name it gives models (``Model.engine``,
the ``engine`` of a saved manifest) with five methods:

- ``find(folder) -> Path | None``: the weights in ``folder`` it can load (None: none);
- ``load(path, *, base, device, exact) -> Model``: a model from what ``find`` returned
  (``exact``: a folder frugal saved, whose shapes may differ from its config: pruned);
- ``run(model, enc) -> ndarray``: raw outputs of one tokenized batch (``enc``: numpy int64
  arrays by input name), (batch, seq, dim) token states or (batch, dim) rows;
- ``save(model, folder) -> list[str]``: write the weights and ``config.json``; the relative
  paths written;
- ``size_bytes(model) -> int``: bytes of the weights as ``save`` writes them.

What a runtime caches between batches (a session, input names) lives in ``model.state(...)``,
which ``Model.evolve`` never hands to a copy. Adding a runtime is one module here that calls
``register`` (plus its name in ``BUILTIN`` so it is imported on first use) and the passes
that produce it.
"""

from __future__ import annotations

import importlib
from typing import Any

from frugalml.errors import BadInput
from frugalml.measure.hardware import usable_cpus

#: runtime modules imported on first use, in the order ``find`` tries them
BUILTIN = (
    "frugalml.models.runtimes.causal_lm",
    "frugalml.models.runtimes.torch",
    "frugalml.models.runtimes.onnxruntime",
)
RUNTIMES: dict[str, Any] = {}


def register(runtime: Any) -> Any:
    """Register ``runtime`` under ``runtime.name`` (a class decorator or a call on an instance)."""
    instance = runtime() if isinstance(runtime, type) else runtime
    RUNTIMES[instance.name] = instance
    return runtime


def all_runtimes() -> dict[str, Any]:
    order = [importlib.import_module(module).__name__ for module in BUILTIN]
    if list(RUNTIMES) != sorted(RUNTIMES, key=lambda n: _rank(n, order)):
        ranked = sorted(RUNTIMES.items(), key=lambda kv: _rank(kv[0], order))
        RUNTIMES.clear()
        RUNTIMES.update(ranked)  # ``find`` tries them in BUILTIN order, whatever was imported first
    return RUNTIMES


def _rank(name: str, order: list[str]) -> int:
    module = type(RUNTIMES[name]).__module__
    return order.index(module) if module in order else len(order)


def get(name: str) -> Any:
    runtimes = all_runtimes()
    if name not in runtimes:
        raise BadInput(
            f"unknown engine '{name}'", hint=f"known engines: {', '.join(sorted(runtimes))}"
        )
    return runtimes[name]


def threads_for(model: Any) -> int:
    """Intra-op threads a model runs with: its runtime setting, else every usable core."""
    return int(model.runtime.threads or usable_cpus())
