# Two entry points for a fresh machine: `make example` and `make test`.
# For development: `make test-fast` (unit and loop tests, seconds) and `make lint` (ruff and mypy).
# Both create .venv with everything needed first (torch, blowtorch and its test dependencies);
# `make test` also installs what the MongoDB/Omniboard tests drive: Debian's chromium (Omniboard
# itself comes from npm, installed by the tests into mongo/.omniboard on first use).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build used on our machines and in CI; set TORCH=torch (or a CUDA wheel spec) to choose another.
TORCH ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: example test test-fast lint setup test-tools clean

example: $(VENV)/.installed
	$(BIN)/python examples/minimal.py

test: $(VENV)/.installed test-tools
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m fast -n 0 -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first: a plain dependency on torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

test-tools:
	@command -v npm >/dev/null || { echo "The Omniboard tests need Node.js and npm: install them (Debian: apt-get install nodejs npm)"; exit 1; }
	@command -v chromium >/dev/null || { \
		echo "Installing Debian's chromium for the Omniboard browser test"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) train_logs test-artifacts
