"""Weight-only int8 / int4 quantization of a causal LM's Linear layers, through torchao.

Decoding is memory-bound: each token reads every weight once, so fewer bytes per weight is
the lever. ``WeightOnlyQuant(bits=8)`` stores each Linear weight as int8 with a float scale
per output row (``group_size=None``) or per group of ``group_size`` inputs
(``Int8WeightOnlyConfig``); ``bits=4`` stores 4-bit values with a scale and zero point per
group of ``group_size`` (default 32; ``IntxWeightOnlyConfig(weight_dtype=int4)``, torchao's
CPU path, which keeps the 4-bit values one per byte: its quality is int4's, its bytes are
int8's). Activations stay in floating point. ``keep_lm_head`` (default) leaves the output
projection (tied to the embeddings in most small LMs) in its original precision; the
embeddings are never quantized.

``cpu_kernels=True`` runs the weights through PyTorch's CPU weight-only kernels, which are
fast on bfloat16 activations only, so the pass casts the network to bfloat16 first:

- 4 bits: torchao's CPU tinygemm layout (``PrototypeInt4WeightOnlyConfig``), two values a
  byte, matmuls by ``aten._weight_int4pack_mm_for_cpu`` (here, one token through a 576x576
  layer: 24 us on bf16, 400 us on fp32, against 51 us for the fp32 Linear). Its grid is
  asymmetric, a float scale and zero per group of ``group_size`` inputs: min and max of a
  group map to 0 and 15, which is exactly GGUF's Q4_1 grid at groups of 32, so weights
  already on that grid (the bundled ``smollm2``, dequantized from Q4_1) come back unchanged
  and only the bf16 activations move the outputs.
- 8 bits: ``Int8WeightOnlyConfig`` per row on the bf16 network; compiled, Inductor calls
  ``aten._weight_int8pack_mm``.

Eager, each call goes through torchao's tensor subclass (slower than fp32); with
``torch_compile`` after it, the compiled decode step calls the kernels directly, which is
how ``optimize`` tries them. CPU only: on another device the candidate fails saying so.

Only how the model runs changes: ``save`` keeps the unquantized weights and ``load``
re-applies the pass (``replay_on``), as for PyTorch dynamic int8.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from frugalml.errors import BadInput, CandidateFailed
from frugalml.passes.registry import PassContext, quiet_logs, register

if TYPE_CHECKING:
    from frugalml.models import Model


@dataclass(frozen=True)
class WeightOnlyQuant:
    """Weight-only int8 / int4 Linear weights of a causal LM (torchao quantize_)."""

    bits: int = 8
    group_size: int | None = None
    keep_lm_head: bool = True
    cpu_kernels: bool = False  # bf16 activations for PyTorch's CPU int4/int8 kernels

    def __post_init__(self) -> None:
        if self.bits not in (4, 8):
            raise BadInput(f"weight-only quantization takes 8 or 4 bits, not {self.bits}")
        if self.cpu_kernels and self.bits == 8 and self.group_size is not None:
            raise BadInput(
                "the CPU int8 kernel scales per row: cpu_kernels with bits=8 takes no group size"
            )
        if self.group_size is not None and self.group_size < 1:
            raise BadInput(f"group size must be positive, not {self.group_size}")

    def torchao_config(self) -> Any:
        import torch

        import_torchao()
        from torchao.quantization import Int8WeightOnlyConfig, IntxWeightOnlyConfig
        from torchao.quantization.granularity import PerGroup

        if self.cpu_kernels and self.bits == 4:
            from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig

            return PrototypeInt4WeightOnlyConfig(group_size=self.group_size or 32)
        if self.bits == 8:
            if self.group_size is None:
                return Int8WeightOnlyConfig()
            return Int8WeightOnlyConfig(granularity=PerGroup(self.group_size))
        return IntxWeightOnlyConfig(
            weight_dtype=torch.int4,  # type: ignore[attr-defined]
            granularity=PerGroup(self.group_size or 32),
        )


#: loggers torchao's import writes to: its native libraries that fail to load (CUDA-only ones
#: on a CPU build), torch's deprecation of its Enum pytree registrations
TORCHAO_IMPORT_LOGGERS = ("torchao", "torch.utils._pytree")


def import_torchao() -> Any:
    """``torchao.quantization``, imported without the lines its import logs on stderr.

    Only this pass imports torchao (encoders never do; ``models.hf`` keeps transformers from
    importing it). Missing, the candidate fails naming the extra that brings it.
    """
    try:
        with quiet_logs(*TORCHAO_IMPORT_LOGGERS):
            import torchao.quantization
    except ImportError as e:
        raise CandidateFailed(
            "weight-only quantization needs torchao, which is not installed: "
            "pip install 'frugalml[llm]'"
        ) from e
    return torchao.quantization


@register(
    WeightOnlyQuant,
    stage=30,
    engines=("causal_lm",),
    group="precision",
    replay_on=("causal_lm",),
)
def weight_only_quant(model: Model, cfg: WeightOnlyQuant, ctx: PassContext) -> Model:
    import torch

    if cfg.cpu_kernels and model.device != "cpu":  # before any copy of the network
        raise CandidateFailed(
            f"cpu_kernels: PyTorch CPU weight-only kernels, and the model is on {model.device}"
        )
    quantize_ = import_torchao().quantize_

    def wanted(module: Any, fqn: str) -> bool:
        if not isinstance(module, torch.nn.Linear):
            return False
        if cfg.keep_lm_head and fqn.split(".")[-1] == "lm_head":
            return False
        size = cfg.group_size or 32
        return (cfg.bits == 8 and cfg.group_size is None) or module.in_features % size == 0

    network = copy.deepcopy(model.module)
    if cfg.cpu_kernels:
        network = network.to(torch.bfloat16)  # the kernels' fast activations
    try:
        with quiet_logs("torchao"):
            quantize_(network, cfg.torchao_config(), filter_fn=wanted)
    except Exception as e:
        raise CandidateFailed(f"torchao quantize_ failed: {str(e).splitlines()[0][:300]}") from e
    return model.evolve(module=network.eval(), dtype=f"int{cfg.bits}")
