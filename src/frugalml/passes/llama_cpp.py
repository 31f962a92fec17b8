"""A causal LM loaded from a GGUF file, run by llama.cpp on that file's own weights.

``LlamaCppGGUF()`` takes the GGUF the model was dequantized from (``smollm2``: the bundled
Q4_1 file) and runs it with the ``llama_cpp`` runtime: the same weights, no dequantizing to
float32, llama.cpp's own 4-bit kernels. Only a model whose weights are still the file's
qualifies (loaded from a ``.gguf``, no weight-changing pass before); GGUF export of a
folder model is not done, and such a model is a failed candidate saying so, as is a machine
without ``llama-cpp-python`` (``frugalml[llamacpp]``, built from source).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class LlamaCppGGUF:
    """Run the model's own GGUF file with llama.cpp (llama-cpp-python), CPU."""

    weights: str = "source"

    def __post_init__(self) -> None:
        if self.weights != "source":
            raise BadInput("llama.cpp runs the model's own GGUF file: weights must be 'source'")

    def device_problem(self, device: str) -> str | None:
        from frugalml.models.runtimes.llama_cpp import available

        if device != "cpu":
            return "frugal runs llama.cpp on cpu only"
        if not available():
            return "llama-cpp-python is not installed (pip install 'frugalml[llamacpp]')"
        return None


def source_gguf(model: Model) -> Path:
    """The GGUF file ``model``'s weights are still those of; ``CandidateFailed`` otherwise."""
    from frugalml.models.load import resolve_path

    weight_passes = [p.name for p in model.passes if p.name != "runtime_settings"]
    if weight_passes:
        raise CandidateFailed(
            f"llama.cpp runs a GGUF file as it is; this model went through {weight_passes[0]}"
        )
    try:
        path = resolve_path(model.base)
    except BadInput as e:
        raise CandidateFailed(f"the model's GGUF file is not found: {e.message}") from e
    if not (path.is_file() and path.suffix.lower() == ".gguf"):
        raise CandidateFailed(
            "llama.cpp needs a GGUF file; this model was not loaded from one "
            "(GGUF export of a folder model is not done)"
        )
    return path


@register(
    LlamaCppGGUF,
    stage=40,
    engines=("causal_lm",),
    group="precision",
    produces="llama_cpp",
    name="llama_cpp_gguf",
)
def llama_cpp_gguf(model: Model, cfg: LlamaCppGGUF, ctx: PassContext) -> Model:
    from frugalml.models.registry import get
    from frugalml.models.runtimes.llama_cpp import WEIGHTS

    if (why := cfg.device_problem(model.device)) is not None:
        raise CandidateFailed(why)
    src = source_gguf(model)
    folder = ctx.workdir() / f"llama-cpp-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / WEIGHTS
    if not target.exists():
        try:
            target.symlink_to(src.resolve())
        except OSError:  # a file system without links
            shutil.copyfile(src, target)
    model.tokenizer.save_pretrained(str(folder))  # the same token ids as the original
    built = get("llama_cpp").load(target, base=model.base, device=model.device)
    return built.evolve(passes=model.passes, replay=model.replay, runtime=built.runtime)
