"""The runtime registry (see ``frugalml.models.runtimes`` for what a runtime is).

Kept apart from the runtime modules so ``Model`` can look up its engine without importing
them (they import ``Model``): the built-in ones are imported by name on first lookup.
"""

from __future__ import annotations

import importlib
from typing import Any

from frugalml.errors import BadInput
from frugalml.measure.hardware import usable_cpus

#: runtime modules imported on first use, in the order ``find`` tries them
BUILTIN = (
    "frugalml.models.runtimes.causal_lm",
    "frugalml.models.runtimes.ort_genai",  # before onnxruntime: its folders hold a model.onnx
    "frugalml.models.runtimes.llama_cpp",
    "frugalml.models.runtimes.torch",
    "frugalml.models.runtimes.openvino",  # before onnxruntime: a folder may hold both
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
