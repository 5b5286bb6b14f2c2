# Two entry points for a newcomer: `make demo` and `make test`. Each sets up
# .venv itself (only Python 3.10+ and make are needed), so both work from a
# fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The sandbox extra: moto (local SQS + Secrets Manager) and the SQLAlchemy source.
$(VENV)/.sandbox: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[sandbox]'
	touch $@

# Everything the test suite needs: sandbox, postgres source, pytest, ruff, mypy.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.sandbox

demo: $(VENV)/.sandbox
	$(BIN)/executor demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -p no:cacheprovider -ra

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache
