# Two commands matter: `make demo` and `make test`. Each creates (or reuses) .venv and installs
# from the committed locks in requirements/ (never a fresh resolution): a fresh machine gets
# exactly what CI proved. Nothing else has to be on the machine but python3 (and node/npm for
# Azurite, which `make test` installs itself).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
BASE_STAMP := $(VENV)/.installed-base
DEV_STAMP  := $(VENV)/.installed-dev
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest

.PHONY: install install-base azurite demo test check test-fast lint lint-types package package-azure \
        bench clean \
        mlflow-server lock

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade 'pip>=24'

# The demo needs only the base install (requirements/base.txt): no test tools, no cloud SDKs.
$(BASE_STAMP): requirements/base.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) -r requirements/base.txt
	$(PIP) --no-deps -e .
	@touch $@

# Tests and lint: every extra (requirements/dev.txt, a superset of base.txt).
$(DEV_STAMP): requirements/dev.txt pyproject.toml | $(VENV)/bin/python
	$(PIP) -r requirements/dev.txt
	$(PIP) --no-deps -e .
	@touch $@ $(BASE_STAMP)

install-base: $(BASE_STAMP)
install: $(DEV_STAMP)

# Re-resolve every lock from pyproject.toml (+ requirements/pins.in). Run it after editing a
# dependency in pyproject.toml, or to take upgrades (.github/workflows/deps.yml does it weekly);
# then `make test` and commit requirements/.
UV_COMPILE := $(VENV)/bin/uv pip compile --quiet --no-header
lock: $(DEV_STAMP)
	$(UV_COMPILE) pyproject.toml --extra dev --universal --python-version 3.11 \
	  -c requirements/pins.in -o requirements/dev.txt $(UPGRADE)
	$(UV_COMPILE) pyproject.toml --universal --python-version 3.11 \
	  -c requirements/dev.txt -o requirements/base.txt
	$(UV_COMPILE) requirements/lambda.in --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
	  -c requirements/dev.txt -o requirements/lambda.txt
	$(UV_COMPILE) pyproject.toml --extra aws --python-version 3.12 --python-platform x86_64-manylinux_2_28 \
	  -c requirements/dev.txt -o requirements/train.txt
	$(UV_COMPILE) pyproject.toml --extra azure --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  -c requirements/dev.txt -o requirements/azure-functions.txt

# Azurite (the Azure Storage emulator) for the azure test suites: npm installs azurite@3.35.0
# into ~/.cache/mlops-kit/azurite once (needs node 20 + npm); the tests start it themselves.
azurite: $(DEV_STAMP)
	@$(PY) -m mlops_kit.emulate.azurite install >/dev/null

demo: $(BASE_STAMP)
	$(VENV)/bin/mlops-kit demo

# The MLflow tracking server tests/adapters/test_mlflow_tracking.py starts: full mlflow pins
# pyarrow below the kit's, so it gets its own venv, from its own lock.
MLFLOW_VENV  ?= .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed

$(MLFLOW_STAMP): requirements/mlflow-server.txt
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/mlflow-server.txt
	@touch $(MLFLOW_STAMP)

mlflow-server: $(MLFLOW_STAMP)

# The full suite, what CI runs.
test: $(DEV_STAMP) azurite $(MLFLOW_STAMP)
	$(PYTEST) -n 2 --dist loadfile -q

# The inner loop (< 60 s on 2 cores): unit tests, the local contract suite, import contracts.
check: $(DEV_STAMP)
	$(VENV)/bin/lint-imports
	$(PYTEST) -n 2 -q -m check

test-fast: $(DEV_STAMP) azurite
	$(PYTEST) -n 2 --dist loadfile -q -m "not slow"

# ruff (style), import-linter (the architecture's contracts, in pyproject.toml), mypy
lint: $(DEV_STAMP) lint-types
	$(VENV)/bin/ruff check src functions infra tests bench
	$(VENV)/bin/lint-imports

# mypy over src/, functions/ and infra/ ([tool.mypy] files). The first run reads pulumi_aws's
# large typed API (about 3 min on 2 cores); .mypy_cache makes later runs take seconds.
lint-types: $(DEV_STAMP)
	$(VENV)/bin/mypy

package: $(DEV_STAMP)
	$(PY) -m infra.lambda_zips --out build/lambda

# The Azure Functions (Flex Consumption) package every app of an Azure stack runs: function_app.py,
# host.json and .python_packages/ (Linux x86_64 wheels of requirements/azure-functions.txt for the
# stack's Python, plus src/mlops_kit); its size is reported against the limit.
package-azure: $(DEV_STAMP)
	$(PY) -m infra.flex_package --out build/azure

bench: $(DEV_STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) build .pytest_cache .ruff_cache
