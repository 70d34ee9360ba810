# Two commands matter: `make demo` and `make test`. Each creates (or reuses) .venv and installs
# what it needs from pyproject.toml; nothing else has to be on the machine but python3.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install azurite demo test test-fast lint package bench clean mlflow-server

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Azurite (the Azure Storage emulator) for the azure test suites: npm installs azurite@3.35.0
# into ~/.cache/mlops-kit/azurite once (needs node 20 + npm); the tests start it themselves.
azurite: $(STAMP)
	@$(PY) -m mlops_kit.emulate.azurite install >/dev/null

demo: $(STAMP)
	$(VENV)/bin/mlops-kit demo

# The MLflow tracking server tests/adapters/test_mlflow_tracking.py starts: full mlflow pins
# pyarrow below the kit's, so it gets its own venv (the kit itself uses the [mlflow] client).
MLFLOW_VENV  ?= .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed
MLFLOW_SERVER_REQ ?= mlflow>=2.10,<4

$(MLFLOW_STAMP): Makefile
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet '$(MLFLOW_SERVER_REQ)'
	@touch $(MLFLOW_STAMP)

mlflow-server: $(MLFLOW_STAMP)

test: $(STAMP) azurite $(MLFLOW_STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile -q

test-fast: $(STAMP) azurite
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile -q -m "not slow"

# ruff (style), import-linter (the architecture's contracts, in pyproject.toml), mypy (src/)
lint: $(STAMP)
	$(VENV)/bin/ruff check src functions infra tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

package: $(STAMP)
	$(PY) -m infra.lambda_zips --out build/lambda

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) build .pytest_cache .ruff_cache
