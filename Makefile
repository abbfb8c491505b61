# Hubbub developer commands. `make run` and `make test` are the two commands
# the README promises; both create .venv themselves on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

JS := clients/js

.PHONY: run test lint typecheck js-typecheck bench system-deps clean

$(VENV)/.run-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-deps: pyproject.toml $(VENV)/.run-deps
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(JS)/node_modules/.installed: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.run-deps  ## start a hub on the embedded store with dev tokens
	$(VENV)/bin/hubbub serve --dev

system-deps:  ## install redis-server (and redis-cli), chromium and haproxy from Debian packages when missing
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }
	@command -v redis-cli >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-tools; }
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	@command -v haproxy >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq haproxy; }

test: $(VENV)/.test-deps system-deps js-typecheck  ## lint, typecheck and the whole test suite
	$(VENV)/bin/ruff check protocol hub clients tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check protocol hub clients tests bench
	$(VENV)/bin/ruff format --check protocol hub clients tests bench

typecheck: $(VENV)/.test-deps js-typecheck
	$(VENV)/bin/mypy

js-typecheck: $(JS)/node_modules/.installed  ## the JS client's .d.ts, with TypeScript from npm
	cd $(JS) && ./node_modules/.bin/tsc -p .

bench: $(VENV)/.test-deps system-deps
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/protocol_bench.py
	$(PY) bench/block_fanout.py
	$(PY) bench/suite.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info $(JS)/node_modules
