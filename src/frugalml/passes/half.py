"""Half precision: float16 (GPU) or bfloat16 (GPU; CPU with AVX512-BF16 or AMX) weights and math.

The weights are stored in the half type (``save`` writes them so: half the bytes), the network
runs in it, and outputs are cast back to float32 before pooling.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from frugalml.errors import CandidateFailed
from frugalml.passes.registry import PassContext, register

if TYPE_CHECKING:
    from frugalml.models import Model


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 dot products (AVX512-BF16 or AMX-BF16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class HalfPrecision:
    """Run in float16 (GPU) or bfloat16 (GPU, or CPU with native bf16)."""

    dtype: Literal["float16", "bfloat16"] = "bfloat16"

    def device_problem(self, device: str) -> str | None:
        if device.startswith("cuda"):
            return None
        if self.dtype == "float16":
            return "float16 needs a GPU"
        if not cpu_supports_bf16():
            return "this CPU has no native bfloat16 (AVX512-BF16 / AMX)"
        return None


@register(HalfPrecision, stage=30, engines=("torch",), group="precision")
def half_precision(model: Model, cfg: HalfPrecision, ctx: PassContext) -> Model:
    import torch

    why = cfg.device_problem(model.device)
    if why:
        raise CandidateFailed(why)
    dtype = getattr(torch, cfg.dtype)
    module = copy.deepcopy(model.source if model.source is not None else model.module)
    module = module.to(dtype).eval()
    return model.evolve(
        module=module,
        source=module,
        dtype=cfg.dtype,
    )
