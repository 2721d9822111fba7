# DeepOxyMap: `make run` and `make test` do everything on a fresh machine (Python 3.11).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   := data/demo
PORT   ?= 8501

.PHONY: setup demo model run test bench lint clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The shipped model is committed under assets/models; this verifies its hash.
model: setup
	$(PY) -m deepoxymap model-check

$(DEMO)/manifest.csv: $(STAMP)
	$(PY) -m deepoxymap generate --cohort demo --seed 0 --out $(DEMO)

demo: $(DEMO)/manifest.csv

run: setup model demo
	$(PY) -m deepoxymap.ui.serve --port $(PORT)

test: setup model demo
	$(PY) -m pytest

bench: setup demo
	$(PY) -m bench

lint: setup
	$(VENV)/bin/ruff check deepoxymap pages app.py tests bench tools
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) data .pytest_cache
