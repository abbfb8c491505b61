# Hubbub developer commands. `make run` and `make test` are the two commands
# the README promises; both create .venv themselves on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck bench system-deps clean

$(VENV)/.run-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.run-deps
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.run-deps  ## start a hub on the embedded store with dev tokens
	$(VENV)/bin/hubbub serve --dev

system-deps:  ## install redis-server and chromium from Debian packages when missing
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

test: $(VENV)/.test-deps system-deps  ## lint, typecheck and the whole test suite
	$(VENV)/bin/ruff check protocol hub clients tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check protocol hub clients tests bench
	$(VENV)/bin/ruff format --check protocol hub clients tests bench

typecheck: $(VENV)/.test-deps
	$(VENV)/bin/mypy

bench: $(VENV)/.test-deps system-deps
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/protocol_bench.py
	$(PY) bench/suite.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
