"""A causal LM rebuilt for ONNX Runtime GenAI by its model builder (int4 MatMulNBits on CPU).

``OrtGenAIBuild(precision="int4", block_size=32)`` saves the model as a Hugging Face folder
(config + safetensors + tokenizer: the causal-LM runtime's ``save``, which also works for a
GGUF-loaded model), runs ``python -m onnxruntime_genai.models.builder`` on it in a child
process (``HF_HUB_OFFLINE=1``: nothing is downloaded) and loads the result with the
``ort_genai`` runtime. ``int4``: 4-bit weights in blocks of ``block_size`` inputs, with the
builder's own choices for everything else (``accuracy_level`` and the rest left at its
defaults: this is "the builder's int4" a user would get in one call); ``fp32``: the same
graph unquantized. A builder failure is a failed candidate, never a crash of the search.

The builder's own options are search parameters: ``symmetric`` (its default, int4 around
zero; ``False``: uint4 with a zero point per block), ``accuracy_level`` (None: its default,
4 on CPU, int8 activations; 1: float32 activations) and ``lm_head`` (``"default"``: int4
like the rest, shared with the input embeddings when the model ties them; ``"int8"``; or
``"fp32"``: not quantized). Asymmetric or a separate lm_head build the output projection as
its own tensor (``shared_embeddings=false``): the builder cannot share asymmetric blocks
with the embedding lookup.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model

PRECISIONS = ("int4", "fp32")
LM_HEADS = ("default", "int8", "fp32")


@dataclass(frozen=True)
class OrtGenAIBuild:
    """ONNX Runtime GenAI model builder: int4 (blocks of ``block_size``) or fp32, CPU."""

    precision: str = "int4"
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int | None = None
    lm_head: str = "default"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BadInput(f"ONNX Runtime GenAI precision must be one of {', '.join(PRECISIONS)}")
        if self.block_size not in (16, 32, 64, 128, 256):
            raise BadInput(f"int4 block size must be 16, 32, 64, 128 or 256, not {self.block_size}")
        if self.accuracy_level is not None and self.accuracy_level not in (1, 2, 3, 4):
            raise BadInput(f"accuracy_level must be 1, 2, 3 or 4, not {self.accuracy_level}")
        if self.lm_head not in LM_HEADS:
            raise BadInput(f"lm_head must be one of {', '.join(LM_HEADS)}, not {self.lm_head}")

    def builder_options(self) -> list[str]:
        """The builder's ``--extra_options`` for this config (int4 only)."""
        if self.precision != "int4":
            return []
        opts = [f"block_size={self.block_size}"]
        if not self.symmetric:
            opts.append("is_symmetric=false")
        if self.accuracy_level is not None:
            opts.append(f"accuracy_level={self.accuracy_level}")
        if self.lm_head == "int8":
            opts.append("matmul_mixed_precision=last_matmul:int8")
        elif self.lm_head == "fp32":
            opts.append("nodes_to_exclude=/lm_head/MatMul")
        if not self.symmetric or self.lm_head != "default":
            opts.append("shared_embeddings=false")
        return opts

    def device_problem(self, device: str) -> str | None:
        import importlib.util

        if device != "cpu":
            return "frugal builds ONNX Runtime GenAI models for cpu only"
        if importlib.util.find_spec("onnxruntime_genai") is None:
            return "onnxruntime-genai is not installed (pip install 'frugalml[llm]')"
        return None


@register(
    OrtGenAIBuild,
    stage=40,
    engines=("causal_lm",),
    group="precision",
    produces="ort_genai",
    name="ort_genai_build",
)
def ort_genai_build(model: Model, cfg: OrtGenAIBuild, ctx: PassContext) -> Model:
    from frugalml.models.registry import get
    from frugalml.models.runtimes.causal_lm import CausalLMRuntime

    if (why := cfg.device_problem(model.device)) is not None:
        raise CandidateFailed(why)
    # a new folder per build: two models built with one config in one work folder (an LM
    # search) must not share, or the first one's saved folder would be the second's files
    work = Path(
        tempfile.mkdtemp(prefix=f"ort-genai-{cfg.precision}-{cfg.block_size}-", dir=ctx.workdir())
    )
    hf_dir, out = work / "hf", work / "model"
    hf_dir.mkdir(parents=True, exist_ok=True)
    CausalLMRuntime().save(model, hf_dir)
    model.tokenizer.save_pretrained(str(hf_dir))
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir),
        "-o", str(out), "-p", cfg.precision, "-e", "cpu", "-c", str(work / "cache"),
    ]  # fmt: skip
    if cfg.precision == "int4":
        command += ["--extra_options", *cfg.builder_options()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not (out / "genai_config.json").exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CandidateFailed(f"the ONNX Runtime GenAI builder failed: {last[:300]}")
    model.tokenizer.save_pretrained(str(out))  # the same tokens as the original
    built = get("ort_genai").load(out, base=model.base, device=model.device)
    runtime = dataclasses.replace(model.runtime, max_length=built.runtime.max_length)
    return built.evolve(passes=model.passes, replay=model.replay, runtime=runtime)
