#!/usr/bin/env bash
# One lint command for local runs and CI: formatting, lint rules, types.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff format --check src tests bench
ruff check src tests bench
mypy
