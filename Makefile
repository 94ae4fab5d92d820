# Metric Sentinel — every target sets up what it needs, idempotently, on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Empty: tools/find-python picks a working Python 3.12 (the Lambda runtime's), else a newer one with a note.
PYTHON ?=
PRESET ?= air-quality
ENGINE ?= builtin
DEMO_ARGS ?=
CONSOLE_ARGS ?=
PYTEST_ARGS ?=
export PYTHONDONTWRITEBYTECODE := 1

# Node.js: jsii (every `import aws_cdk`) and the CDK CLI need Node >= 22 (20 is end-of-life for jsii). Where the
# system Node is older or missing, `make setup` installs Node 22 LTS from the npm registry into tools/node/ (the
# `node` package ships the official binary) and every target runs with it first on PATH; the venv gets a `node`
# link too, so `source .venv/bin/activate` and `python -m simulator demo` find it.
NODE_MIN := 22
LOCAL_NODE := tools/node/node_modules/.bin/node
SYSTEM_NODE_MAJOR := $(shell PATH='$(subst $(CURDIR)/tools/node/node_modules/.bin:,,$(PATH))' node -p "process.versions.node.split('.')[0]" 2>/dev/null)
ifeq ($(shell [ "$(SYSTEM_NODE_MAJOR)" -ge $(NODE_MIN) ] 2>/dev/null && echo ok),ok)
NODE_READY :=
else
NODE_READY := tools/node/node_modules/.stamp
export PATH := $(CURDIR)/tools/node/node_modules/.bin:$(PATH)
endif

# Locks (requirements/*.lock, hashes for the whole tree) per use: deploy < simulator (+ demo) < dev (+ tests).
LOCKS := requirements/deploy.lock requirements/simulator.lock requirements/dev.lock
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --generate-hashes --universal --python-version 3.12 \
	--custom-compile-command "make lock"

.PHONY: help setup setup-deploy setup-simulator test demo console synth lint format typecheck bench nab clean broker browser web-vendor lock node

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-15s %s\n", $$1, $$2}'

# A venv of another Python than 3.12 (made before the switch) is rebuilt, not patched.
$(VENV)/.python:
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 12))' 2>/dev/null; then \
	  echo "$(VENV) runs $$($(PY) -V 2>&1); rebuilding it with Python 3.12"; rm -rf $(VENV); fi
	@if [ ! -x $(PY) ]; then \
	  boot="$(PYTHON)"; [ -n "$$boot" ] || boot=$$(tools/find-python) || exit 1; \
	  echo "creating $(VENV) with $$boot ($$($$boot -V 2>&1))"; $$boot -m venv $(VENV) || exit 1; fi
	@touch $@

# pip checks every file against the lock's hashes; the editable install (no dependencies, the locked setuptools
# as its build backend) maps the packages onto this tree (PYTHONWARNINGS: setuptools' generic notice on editables).
define install_lock
	$(PIP) install --quiet --require-hashes -r $(1)
	PYTHONWARNINGS=ignore $(PIP) install --quiet --no-deps --no-build-isolation -e .
endef

$(VENV)/.stamp-deploy: requirements/deploy.lock pyproject.toml $(VENV)/.python
	$(call install_lock,requirements/deploy.lock)
	@touch $@

$(VENV)/.stamp-simulator: requirements/simulator.lock pyproject.toml $(VENV)/.python
	$(call install_lock,requirements/simulator.lock)
	@touch $@

# The dev tree is the whole tree: packages the lock does not name (left from older pins) are removed.
$(VENV)/.stamp-dev: requirements/dev.lock pyproject.toml $(VENV)/.python
	$(call install_lock,requirements/dev.lock)
	@extra=$$(comm -23 <($(PIP) freeze --exclude-editable | sed -E 's/[=@ ].*//' | tr 'A-Z_.' 'a-z--' | sort -u) \
	  <(grep -E '^[a-z0-9]' requirements/dev.lock | sed -E 's/[=; ].*//' | sort -u)); \
	  if [ -n "$$extra" ]; then echo "removing packages the lock does not name:" $$extra; \
	  $(PIP) uninstall --quiet -y $$extra; fi
	$(PIP) check
	@touch $@ $(VENV)/.stamp-simulator $(VENV)/.stamp-deploy

tools/node/node_modules/.stamp: tools/node/package.json tools/node/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: Node.js $(NODE_MIN)+ is needed (CDK CLI, jsii) and there is no npm to install it with:" \
	  "install Node.js $(NODE_MIN) LTS (nodejs.org, brew install node@22, dnf install nodejs22, apt-get install nodejs)"; exit 1; }
	@echo "system Node is $(if $(SYSTEM_NODE_MAJOR),v$(SYSTEM_NODE_MAJOR),missing) (< $(NODE_MIN)): installing Node 22 LTS from the npm registry into tools/node/"
	cd tools/node && npm ci --no-audit --no-fund --loglevel=error
	@v=$$($(LOCAL_NODE) -p "process.versions.node.split('.')[0]") && [ "$$v" -ge $(NODE_MIN) ] || \
	  { echo "error: tools/node did not provide Node $(NODE_MIN)+"; exit 1; }
	@touch $@

# The venv's `node` link: a shell with .venv/bin on PATH (activate, python -m simulator demo) uses Node 22 too.
$(VENV)/bin/node: $(NODE_READY) $(VENV)/.python
	@if [ -n "$(NODE_READY)" ]; then ln -sf $(CURDIR)/$(LOCAL_NODE) $@; else rm -f $@; fi

node: $(NODE_READY) $(VENV)/bin/node

node_modules/.stamp: package.json package-lock.json $(NODE_READY)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The publish tests run a real Mosquitto broker (mutual TLS on localhost, MQTT 5); they fail, never skip, without
# it. Only `make test` needs it: the demo runs offline on moto and needs no system package.
broker:
	@command -v mosquitto >/dev/null 2>&1 || ls /usr/sbin/mosquitto >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  if command -v apt-get >/dev/null 2>&1; then echo "installing mosquitto (Debian package) for the MQTT tests"; \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq mosquitto >/dev/null; \
	  elif command -v dnf >/dev/null 2>&1; then $$SUDO dnf install -y -q mosquitto; \
	  elif command -v brew >/dev/null 2>&1; then brew install mosquitto; \
	  else echo "error: install mosquitto 2.x for the MQTT tests"; exit 1; fi; }

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

setup: $(VENV)/.stamp-dev node node_modules/.stamp ## .venv with the dev lock (tests, demo, deploy), Node 22+, the CDK CLI

setup-simulator: $(VENV)/.stamp-simulator node node_modules/.stamp ## .venv for the demo and the simulator CLI only

setup-deploy: $(VENV)/.stamp-deploy node node_modules/.stamp ## .venv for cdk synth/deploy only (no simulator, no test tools)

test: setup broker browser lint typecheck ## Lint, type-check and run the whole offline test suite
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

demo: setup-simulator ## Run the whole pipeline offline (moto) and write out/demo/report.html
	$(PY) -m simulator demo --preset $(PRESET) $(DEMO_ARGS)

console: setup-simulator ## Serve the anomaly console offline over the last demo (http://localhost:8321/)
	$(PY) -m simulator console $(CONSOLE_ARGS)

synth: setup-deploy ## Synthesize the stack: make synth PRESET=loyalty ENGINE=lookout
	npx cdk synth --quiet -c preset=$(PRESET) -c engine=$(ENGINE)

lock: $(VENV)/.stamp-dev ## Re-resolve requirements/*.in into the hashed locks (then make setup installs them)
	$(UV_COMPILE) requirements/deploy.in -o requirements/deploy.lock
	$(UV_COMPILE) requirements/simulator.in -o requirements/simulator.lock
	$(UV_COMPILE) requirements/dev.in -o requirements/dev.lock

lint: $(VENV)/.stamp-dev ## ruff check + ruff format --check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.stamp-dev ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(VENV)/.stamp-dev ## mypy (strict) on infra/, lambdas/, simulator/, local_aws/
	$(VENV)/bin/mypy infra lambdas simulator local_aws app.py

bench: setup ## Print the speed, memory and detection-quality figures
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
	$(MAKE) nab

nab: setup ## Score the detector on ../shared/nab-dev (NAB scoring)
	@if [ -d ../shared/nab-dev ]; then $(PY) ../shared/nab-dev/score.py backtest $(PY); \
	 else echo "../shared/nab-dev not found: skipping the NAB score"; fi

clean: ## Remove generated files (keeps .venv, node_modules and tools/node)
	rm -rf cdk.out out .pytest_cache .mypy_cache .ruff_cache .hypothesis
