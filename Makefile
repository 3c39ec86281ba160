# Two entry points for a fresh machine: `make example` and `make test`.
# Both create .venv with everything needed first (torch, blowtorch and its test dependencies).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build used on our machines and in CI; set TORCH=torch (or a CUDA wheel spec) to choose another.
TORCH ?= torch==2.13.0

.PHONY: example test setup clean

example: $(VENV)/.installed
	$(BIN)/python examples/minimal.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: a plain dependency on torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

clean:
	rm -rf $(VENV) train_logs
