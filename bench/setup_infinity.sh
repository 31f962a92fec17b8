#!/usr/bin/env bash
# Build the Infinity peer for bench/serve_minilm.py --infinity (the embedding server a user
# would pick instead of `frugal serve`).
#
# Infinity is a *benchmark* dependency only: it lives in its own virtual environment
# (bench/.venv-infinity, gitignored), never in frugal's. torch is pinned in the same pip
# command so pip never fetches a multi-GB CUDA build (the CPU wheel is used where the machine
# offers it). Afterwards: python bench/serve_minilm.py --infinity
#   (it finds bench/.venv-infinity/bin/infinity_emb; --infinity-cmd PATH overrides).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv-infinity"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip --disable-pip-version-check install -q torch==2.13.0 \
  "infinity-emb[server,torch]==0.0.78"
"$VENV/bin/infinity_emb" v2 --help >/dev/null
"$VENV/bin/python" -c "import infinity_emb, torch; print('infinity', infinity_emb.__version__, 'torch', torch.__version__)"
