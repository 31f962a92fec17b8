#!/usr/bin/env bash
# Build the environment bench/check_ecosystem.py loads frugal's saved models in:
# sentence-transformers with its ONNX backend and Hugging Face Optimum (ONNX Runtime).
#
# A *benchmark* dependency only, in its own virtual environment (bench/.venv-ecosystem,
# gitignored) as for bench/setup_optimum.sh: optimum-onnx pins transformers<5, which frugal's
# environment does not have. torch is pinned in the same pip command.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv-ecosystem"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip --disable-pip-version-check install -q --upgrade pip
"$VENV/bin/python" -m pip --disable-pip-version-check install -q torch==2.13.0 \
  "optimum-onnx[onnxruntime]>=0.1,<1" "sentence-transformers[onnx]>=3.2"
"$VENV/bin/python" -c "import optimum.onnxruntime, sentence_transformers, transformers; print('ok: sentence-transformers', sentence_transformers.__version__, 'transformers', transformers.__version__)"
