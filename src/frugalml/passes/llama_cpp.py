"""A causal LM run by llama.cpp: its own GGUF file, or frugal's variant exported to one.

``LlamaCppGGUF()`` on a model whose weights are still those of the GGUF it was loaded from
(``smollm2``: the bundled Q4_1 file) runs that file with the ``llama_cpp`` runtime: the same
weights, no dequantizing to float32, llama.cpp's own 4-bit kernels. On any other
Llama-architecture causal LM (a Hugging Face folder, or ``smollm2`` after a weight-changing
pass) it first writes the model's current weights to a new GGUF in the pass's work folder
(``gguf_export``: F16 for ``source``). ``weights="q8_0"`` (or another of ``TYPES``) quantizes
with llama.cpp's own quantizer (``llama_model_quantize``): the source file requantized
(allowed: it may itself be quantized), or the exported F32 file; ``f32`` / ``f16`` keep float
weights. Nothing is written outside the work folder. llama.cpp keeps some tensors in other
types by its own rules (the output projection, rows whose width a K-quant cannot split), so
the model's ``dtype`` lists the types the file holds. Another architecture is a failed
candidate naming it, as is a machine without ``llama-cpp-python`` (``frugalml[llamacpp]``,
built from source).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes.gguf_export import FLOATS, export_gguf, llama_problem, loaded_gguf
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model


#: llama.cpp weight types ``weights`` may name (its ``LLAMA_FTYPE_MOSTLY_*``, lower case)
TYPES = ("q8_0", "q6_k", "q5_k_m", "q5_1", "q5_0", "q4_k_m", "q4_k_s", "q4_1", "q4_0")


@dataclass(frozen=True)
class LlamaCppGGUF:
    """Run the model with llama.cpp (llama-cpp-python), CPU; ``weights``: ``source`` (its own
    GGUF file as it is; a model not loaded from one: its weights exported at F16), a float
    type of ``FLOATS`` or a llama.cpp type of ``TYPES`` to (re)quantize to."""

    weights: str = "source"

    def __post_init__(self) -> None:
        if self.weights != "source" and self.weights not in (*FLOATS, *TYPES):
            raise BadInput(
                f"llama.cpp weights {self.weights!r} are not known here: "
                f"use 'source' or one of {', '.join((*FLOATS, *TYPES))}"
            )

    def device_problem(self, device: str) -> str | None:
        from frugalml.models.runtimes.llama_cpp import available

        if device != "cpu":
            return "frugal runs llama.cpp on cpu only"
        if not available():
            return "llama-cpp-python is not installed (pip install 'frugalml[llamacpp]')"
        return None


def source_gguf(model: Model) -> Path | None:
    """The GGUF file ``model``'s weights are still those of (None: they must be exported)."""
    if [p.name for p in model.passes if p.name != "runtime_settings"]:
        return None  # weights changed since loading
    return loaded_gguf(model)


def is_gguf_model(model: Model) -> bool:
    """Whether ``model`` was loaded from a GGUF file (what requantizing needs)."""
    return loaded_gguf(model) is not None


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
    kind = "ALL_F32" if weights == "f32" else f"MOSTLY_{weights.upper()}"
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_{kind}")
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
    if src is not None:  # one folder per type: the same file's requantization is kept
        folder = ctx.workdir() / f"llama-cpp-{os.getpid()}-{cfg.weights}"
        folder.mkdir(parents=True, exist_ok=True)
    elif (why := llama_problem(model)) is not None:
        raise CandidateFailed(why)
    else:  # exported weights: a new folder each time (two variants never share a file)
        folder = Path(tempfile.mkdtemp(prefix=f"llama-cpp-{cfg.weights}-", dir=ctx.workdir()))
    target = folder / WEIGHTS
    if not target.exists():
        _write(model, src, target, cfg.weights)
    model.tokenizer.save_pretrained(str(folder))  # the same token ids as the original
    built = get("llama_cpp").load(target, base=model.base, device=model.device)
    return built.evolve(passes=model.passes, replay=model.replay, runtime=built.runtime)


def _write(model: Model, src: Path | None, target: Path, weights: str) -> None:
    """``target``: the source GGUF linked or requantized, or the model's weights exported."""
    if src is None:  # exported: F16 as ``source``, else F32 and then quantized by llama.cpp
        floats = "f16" if weights == "source" else weights if weights in FLOATS else "f32"
        if floats == weights or weights == "source":
            export_gguf(model, target, floats=floats)
            return
        exported = export_gguf(model, target.with_name(f"export-{floats}.gguf"), floats=floats)
        try:
            requantize(exported, target, weights)
        finally:
            exported.unlink(missing_ok=True)  # the quantized file is what runs
    elif weights != "source":
        requantize(src, target, weights)
    else:
        try:
            target.symlink_to(src.resolve())
        except OSError:  # a file system without links
            shutil.copyfile(src, target)
