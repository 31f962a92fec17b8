"""A causal LM loaded from a GGUF file, run by llama.cpp on that file's own weights.

``LlamaCppGGUF()`` takes the GGUF the model was dequantized from (``smollm2``: the bundled
Q4_1 file) and runs it with the ``llama_cpp`` runtime: the same weights, no dequantizing to
float32, llama.cpp's own 4-bit kernels. ``LlamaCppGGUF(weights="q8_0")`` (or another of
``TYPES``) first requantizes that file with llama.cpp's own quantizer
(``llama_model_quantize``, requantizing allowed: the source may itself be quantized) into a
new file in the pass's work folder, never touching the source; llama.cpp keeps some tensors
in other types by its own rules (the output projection, rows whose width a K-quant cannot
split), so the model's ``dtype`` lists the types the file holds. Only a model whose weights
are still the file's qualifies (loaded from a ``.gguf``, no weight-changing pass before);
GGUF export of a folder model is not done, and such a model is a failed candidate saying
so, as is a machine without ``llama-cpp-python`` (``frugalml[llamacpp]``, built from source).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model


#: llama.cpp weight types ``weights`` may name (its ``LLAMA_FTYPE_MOSTLY_*``, lower case)
TYPES = ("q8_0", "q6_k", "q5_k_m", "q5_1", "q5_0", "q4_k_m", "q4_k_s", "q4_1", "q4_0")


@dataclass(frozen=True)
class LlamaCppGGUF:
    """Run the model's own GGUF file with llama.cpp (llama-cpp-python), CPU; ``weights``:
    ``source`` (the file as it is) or a llama.cpp type of ``TYPES`` to requantize it to."""

    weights: str = "source"

    def __post_init__(self) -> None:
        if self.weights != "source" and self.weights not in TYPES:
            raise BadInput(
                f"llama.cpp weights {self.weights!r} are not known here: "
                f"use 'source' or one of {', '.join(TYPES)}"
            )

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


def is_gguf_model(model: Model) -> bool:
    """Whether ``model`` was loaded from a GGUF file (what requantizing needs)."""
    from frugalml.models.load import resolve_path

    try:
        path = resolve_path(model.base)
    except BadInput:
        return False
    return path.is_file() and path.suffix.lower() == ".gguf"


@contextlib.contextmanager
def _quiet_fds() -> Iterator[None]:
    """Point file descriptors 1 and 2 at /dev/null for the duration (C code's prints)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def requantize(src: Path, target: Path, weights: str) -> None:
    """Write ``src`` requantized to llama.cpp type ``weights`` as ``target`` (a new file)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{weights.upper()}")
    params.allow_requantize = True  # the source is itself quantized (smollm2: Q4_1)
    params.nthread = max(1, os.cpu_count() or 1)
    partial = target.with_name(target.name + ".partial")
    with _quiet_fds():  # llama.cpp prints a line per tensor on the C streams
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(partial).encode(), params)
    if rc != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise CandidateFailed(f"llama.cpp could not requantize {src.name} to {weights} (code {rc})")
    partial.replace(target)


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
    folder = ctx.workdir() / f"llama-cpp-{os.getpid()}-{cfg.weights}"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / WEIGHTS
    if not target.exists():
        if cfg.weights != "source":
            requantize(src, target, cfg.weights)
        else:
            try:
                target.symlink_to(src.resolve())
            except OSError:  # a file system without links
                shutil.copyfile(src, target)
    model.tokenizer.save_pretrained(str(folder))  # the same token ids as the original
    built = get("llama_cpp").load(target, base=model.base, device=model.device)
    return built.evolve(passes=model.passes, replay=model.replay, runtime=built.runtime)
