"""Passes: techniques that make a model cheaper to run, one file each.

Each technique is a frozen config dataclass plus one apply function registered next to it
(``registry.register``). Apply one or a pipeline through one verb::

    from frugalml.passes import OnnxExport, QuantizeDynamic, apply
    fast = apply(model, [OnnxExport(), QuantizeDynamic()])

=====================  =====================================================  ===========
config                 what it does                                           engine
=====================  =====================================================  ===========
``LayerDrop``          fewer transformer blocks + distillation from original  torch
``StructuredPrune``    remove attention heads / FFN neurons (+ recovery)      torch
``MagnitudePrune``     zero the smallest weights (+ recovery)                 torch
``OnnxExport``         export to ONNX, run with ONNX Runtime                  torch→onnx
``OnnxOptimize``       fuse attention / LayerNorm / GELU subgraphs            onnx
``QuantizeDynamic``    int8 weights, dynamic activations                      torch, onnx
``QuantizeStatic``     int8 weights + calibrated activations                  onnx
``OpenVINOInt8``       int8 calibrated (NNCF), run by OpenVINO (AMX/VNNI)     onnx→openvino
``HalfPrecision``      float16 / bfloat16                                     torch
``TorchCompile``       torch.compile (Inductor); an LM's static-cache decode  torch, causal_lm
``WeightOnlyQuant``    int8 / int4 (grouped) Linear weights, torchao          causal_lm
``OrtGenAIBuild``      ONNX Runtime GenAI builder: int4 MatMulNBits / fp32    causal_lm
``LlamaCppGGUF``       llama.cpp on its GGUF, or a Llama exported to one      causal_lm
``RuntimeSettings``    threads, batch size, length-sorted batching            any
=====================  =====================================================  ===========

``pipeline.problem(configs)`` says why an ordering is invalid (see ``passes.pipeline``).
"""

from frugalml.passes.compile import TorchCompile
from frugalml.passes.half import HalfPrecision, cpu_supports_bf16
from frugalml.passes.layer_drop import LayerDrop
from frugalml.passes.llama_cpp import LlamaCppGGUF
from frugalml.passes.onnx_export import OnnxExport
from frugalml.passes.onnx_optimize import OnnxOptimize
from frugalml.passes.openvino import OpenVINOInt8
from frugalml.passes.ort_genai import OrtGenAIBuild
from frugalml.passes.pipeline import Pipeline, apply, is_valid, problem
from frugalml.passes.prune_magnitude import MagnitudePrune
from frugalml.passes.prune_structured import StructuredPrune
from frugalml.passes.quantize_dynamic import QuantizeDynamic
from frugalml.passes.quantize_static import QuantizeStatic
from frugalml.passes.registry import PASSES, PassContext, config_from, describe, register
from frugalml.passes.runtime import RuntimeSettings
from frugalml.passes.weight_only import WeightOnlyQuant

__all__ = [
    "PASSES",
    "HalfPrecision",
    "LayerDrop",
    "LlamaCppGGUF",
    "MagnitudePrune",
    "OnnxExport",
    "OnnxOptimize",
    "OpenVINOInt8",
    "OrtGenAIBuild",
    "PassContext",
    "Pipeline",
    "QuantizeDynamic",
    "QuantizeStatic",
    "RuntimeSettings",
    "StructuredPrune",
    "TorchCompile",
    "WeightOnlyQuant",
    "apply",
    "config_from",
    "cpu_supports_bf16",
    "describe",
    "is_valid",
    "problem",
    "register",
]
