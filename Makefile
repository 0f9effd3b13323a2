# make demo — create .venv, install mlwarden, run the audit of the embedded demo
# make test — install the dev extras (and Chromium for the browser test, MLServer in .venv-mlserver
#             for the endpoint tests), run the whole suite
# make lint — mypy over src/ (settings in pyproject.toml) and ruff's error checks over src and tests
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
MLSVENV := .venv-mlserver
MLSSTAMP := $(MLSVENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint install dev chromium mlserver redis bench clean

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

# The endpoint tests serve models with a real third-party OIP v2 server, MLServer 1.7. Its pins
# (protobuf<7, fastapi<0.116) clash with ours, so it lives in its own venv; scikit-learn there is
# pinned to ours so the models the tests train load and predict identically.
$(MLSSTAMP): | $(DEVSTAMP)
	$(PY) -m venv $(MLSVENV)
	$(MLSVENV)/bin/python -m pip install -q --upgrade pip
	$(MLSVENV)/bin/python -m pip install -q 'mlserver==1.7.*' 'mlserver-sklearn==1.7.*' \
	  "scikit-learn==$$($(BIN)/python -c 'import sklearn; print(sklearn.__version__)')"
	touch $@

mlserver: $(MLSSTAMP)

# The guard's shared-state tests start Debian's redis-server on a free loopback port (no network
# needed at test time; the package comes from the Debian mirror like Chromium).
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq redis-server >/dev/null; }

test: $(DEVSTAMP) chromium mlserver redis
	$(BIN)/python -m pytest

lint: $(DEVSTAMP)
	$(BIN)/mypy
	$(BIN)/ruff check --select F,E9 src tests

bench: $(DEVSTAMP)
	$(BIN)/python bench/bench_engines.py

clean:
	rm -rf $(VENV) $(MLSVENV) mlwarden-demo mlwarden-report build *.egg-info
