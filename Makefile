# Metric Sentinel — every target sets up what it needs, idempotently, on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PRESET ?= air-quality
ENGINE ?= builtin
DEMO_ARGS ?=
CONSOLE_ARGS ?=
PYTEST_ARGS ?=

# jsii prints an end-of-life banner for Node 20 on every `import aws_cdk`; it takes the acknowledged major version.
NODE_MAJOR := $(shell node -p "process.versions.node.split('.')[0]" 2>/dev/null)
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := $(NODE_MAJOR)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := $(NODE_MAJOR)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help setup test demo console synth lint format typecheck bench nab clean broker browser web-vendor

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.stamp: requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

node_modules/.stamp: package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

# The publish tests run a real Mosquitto broker (mutual TLS on localhost); they fail, never skip, without it.
broker:
	@command -v mosquitto >/dev/null 2>&1 || ls /usr/sbin/mosquitto >/dev/null 2>&1 || { \
	  echo "installing mosquitto (Debian package) for the MQTT tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq mosquitto >/dev/null; }

# The console's browser test drives Debian's Chromium through its chromedriver (Selenium); it fails, never skips,
# without them. Only `make test` needs them: `make demo` and `make console` do not.
browser:
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || { \
	  echo "installing chromium and chromium-driver (Debian packages) for the console's browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

# The console's charting library, from npm (package.json pins it); the built file and its licence are committed
# in web/vendor/, so this is only needed to upgrade it.
web-vendor: node_modules/.stamp
	mkdir -p web/vendor
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css web/vendor/
	cp node_modules/uplot/LICENSE web/vendor/uPlot.LICENSE

setup: $(VENV)/.stamp node_modules/.stamp broker ## Create .venv, install the pinned tools and the local CDK CLI

test: setup browser lint typecheck ## Lint, type-check and run the whole offline test suite
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

demo: setup ## Run the whole pipeline offline (moto) and write out/demo/report.html
	$(PY) -m simulator demo --preset $(PRESET) $(DEMO_ARGS)

console: $(VENV)/.stamp ## Serve the anomaly console offline over the last demo (http://localhost:8321/)
	$(PY) -m simulator console $(CONSOLE_ARGS)

synth: setup ## Synthesize the stack: make synth PRESET=loyalty ENGINE=lookout
	npx cdk synth --quiet -c preset=$(PRESET) -c engine=$(ENGINE)

lint: $(VENV)/.stamp ## ruff check + ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.stamp ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(VENV)/.stamp ## mypy (strict) on infra/, lambdas/, simulator/, local_aws/
	$(VENV)/bin/mypy infra lambdas simulator local_aws app.py

bench: setup ## Print the speed, memory and detection-quality figures
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
	$(MAKE) nab

nab: setup ## Score the detector on ../shared/nab-dev (NAB scoring)
	@if [ -d ../shared/nab-dev ]; then $(PY) ../shared/nab-dev/score.py backtest $(PY); \
	 else echo "../shared/nab-dev not found: skipping the NAB score"; fi

clean: ## Remove generated files (keeps .venv and node_modules)
	rm -rf cdk.out out .pytest_cache .mypy_cache .ruff_cache .hypothesis
