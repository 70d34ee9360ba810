# Two commands matter: `make demo` and `make test`. Each creates (or reuses) .venv and installs
# what it needs from pyproject.toml; nothing else has to be on the machine but python3.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint package bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mlops-kit demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src functions infra tests bench

package: $(STAMP)
	$(PY) -m infra.lambda_zips --out build/lambda

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
