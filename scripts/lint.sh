#!/usr/bin/env bash
# One lint command for local runs and CI: formatting, lint rules, types, and the layer order
# (import-linter; the contracts are in pyproject.toml, the picture in docs/architecture.md).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff format --check src tests bench
ruff check src tests bench
mypy
# src/ first on the path: the contracts are checked against this checkout's code, installed or not
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" lint-imports
