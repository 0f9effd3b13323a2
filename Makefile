# make demo — create .venv, install mlwarden, run the audit of the embedded demo
# make test — install the dev extras (and Chromium for the browser test), run the whole suite
# make lint — mypy over src/ (settings in pyproject.toml) and ruff's error checks over src and tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint install dev chromium bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(DEVSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(STAMP)

install: $(STAMP)

dev: $(DEVSTAMP)

demo: $(STAMP)
	$(BIN)/mlwarden demo --workdir mlwarden-demo

# The browser test drives Debian's Chromium (no browser download: the machine has no network).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

test: $(DEVSTAMP) chromium
	$(BIN)/python -m pytest

lint: $(DEVSTAMP)
	$(BIN)/mypy
	$(BIN)/ruff check --select F,E9 src tests

bench: $(DEVSTAMP)
	$(BIN)/python bench/bench_engines.py

clean:
	rm -rf $(VENV) mlwarden-demo mlwarden-report build *.egg-info
