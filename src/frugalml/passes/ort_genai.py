"""A causal LM rebuilt for ONNX Runtime GenAI by its model builder (int4 MatMulNBits on CPU).

``OrtGenAIBuild(precision="int4", block_size=32)`` saves the model as a Hugging Face folder
(config + safetensors + tokenizer: the causal-LM runtime's ``save``, which also works for a
GGUF-loaded model), runs ``python -m onnxruntime_genai.models.builder`` on it in a child
process (``HF_HUB_OFFLINE=1``: nothing is downloaded) and loads the result with the
``ort_genai`` runtime. ``int4``: 4-bit weights in blocks of ``block_size`` inputs, with the
builder's own choices for everything else (``accuracy_level`` and the rest left at its
defaults: this is "the builder's int4" a user would get in one call); ``fp32``: the same
graph unquantized. A builder failure is a failed candidate, never a crash of the search.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model

PRECISIONS = ("int4", "fp32")


@dataclass(frozen=True)
class OrtGenAIBuild:
    """ONNX Runtime GenAI model builder: int4 (blocks of ``block_size``) or fp32, CPU."""

    precision: str = "int4"
    block_size: int = 32

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise BadInput(f"ONNX Runtime GenAI precision must be one of {', '.join(PRECISIONS)}")
        if self.block_size not in (16, 32, 64, 128, 256):
            raise BadInput(f"int4 block size must be 16, 32, 64, 128 or 256, not {self.block_size}")

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
    work = ctx.workdir() / f"ort-genai-{cfg.precision}-{cfg.block_size}-{os.getpid()}"
    hf_dir, out = work / "hf", work / "model"
    hf_dir.mkdir(parents=True, exist_ok=True)
    CausalLMRuntime().save(model, hf_dir)
    model.tokenizer.save_pretrained(str(hf_dir))
    command = [
        sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir),
        "-o", str(out), "-p", cfg.precision, "-e", "cpu", "-c", str(work / "cache"),
    ]  # fmt: skip
    if cfg.precision == "int4":
        command += ["--extra_options", f"int4_block_size={cfg.block_size}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not (out / "genai_config.json").exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CandidateFailed(f"the ONNX Runtime GenAI builder failed: {last[:300]}")
    model.tokenizer.save_pretrained(str(out))  # the same tokens as the original
    built = get("ort_genai").load(out, base=model.base, device=model.device)
    runtime = dataclasses.replace(model.runtime, max_length=built.runtime.max_length)
    return built.evolve(passes=model.passes, replay=model.replay, runtime=runtime)
