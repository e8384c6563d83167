# Two commands matter: `make run` (the whole platform, embedded defaults) and `make test`.
# Both create .venv and install the project on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test unit integration browser screenshots console chromium lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) console
	$(VENV)/bin/roomhooks dev

# Unit and integration tests on two workers, each with its own broker, template database and
# temp folders (whole files per worker: a module's shared fixtures start once); then the
# chaos and browser tests alone, since they judge timing under load and drive Chromium.
test: $(STAMP) lint console chromium
	$(PY) -m pytest -n 2 --dist loadfile tests/unit tests/integration
	$(PY) -m pytest tests/chaos tests/browser

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration

# The console in Chromium (tests/browser); `make screenshots` also writes docs/screenshots/.
browser: $(STAMP) console chromium
	$(PY) -m pytest tests/browser

screenshots: $(STAMP) console chromium
	ROOMHOOKS_SCREENSHOTS=1 $(PY) -m pytest tests/browser

# The web console (console/, served by the registry at /console/): `npm ci` when the lock
# changed, `npm run build` when the lock or a source changed; dist/index.html is the stamp.
CONSOLE_MODULES := console/node_modules/.installed-stamp
CONSOLE_SOURCES := $(shell find console/src console/public -type f 2>/dev/null) \
	console/index.html console/package.json console/tsconfig.json console/vite.config.ts

console: console/dist/index.html

$(CONSOLE_MODULES): console/package-lock.json console/package.json
	cd console && npm ci --no-audit --no-fund
	touch $@

console/dist/index.html: $(CONSOLE_MODULES) $(CONSOLE_SOURCES)
	cd console && npm run build

# Debian packages the checks need, installed on first use (root, as on the dev machines and CI).
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
/usr/bin/promtool:
	$(APT_INSTALL) prometheus >/dev/null || (apt-get update -qq && $(APT_INSTALL) prometheus >/dev/null)
# The browser tests drive Debian's Chromium (tests/browser/conftest.py).
chromium: /usr/bin/chromium
/usr/bin/chromium:
	$(APT_INSTALL) chromium >/dev/null || (apt-get update -qq && $(APT_INSTALL) chromium >/dev/null)

lint: $(STAMP) /usr/bin/promtool
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) deploy/validate.py
	$(PY) -m tests.layers
	$(PY) -m devtool.asyncapi --check
	$(PY) deploy/monitoring/check.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .roomhooks .pytest_cache .ruff_cache *.egg-info console/node_modules console/dist
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# `make bench` (PART=delivery|raw|celery|latency|hol|fanout|workflows|registry|scale|ordered|
# broker, or soak, which runs only when named; comma-separated;
# QUICK=1 for a short smoke run; BENCH_ARGS for anything else, see `python -m tests.bench -h`).
BENCH_STAMP := $(VENV)/.bench-installed-stamp

.PHONY: bench

$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m tests.bench $(if $(PART),--part $(PART)) $(if $(QUICK),--quick) $(BENCH_ARGS)

# `make chaos` (tests/chaos/README.md): faults under load, every (webhook, event) pair checked;
# a table and .roomhooks/chaos/results.json. SCENARIO=crashes,poison for some; SHORT=1 for the
# CI versions.
.PHONY: chaos

chaos: $(STAMP)
	$(PY) -m tests.chaos $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(SHORT),--short) $(CHAOS_ARGS)
