# Two entry points for a newcomer: `make demo` and `make test`. Each sets up
# .venv itself (only Python 3.10+ and make are needed), so both work from a
# fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .venv-tools

.PHONY: demo test lint tools bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The sandbox extra: moto (local SQS + Secrets Manager) and the SQLAlchemy source.
$(VENV)/.sandbox: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[sandbox]'
	touch $@

# Everything the test suite needs: sandbox, postgres source, the benchmarks' peers, pytest,
# ruff, mypy.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.sandbox $(VENV)/.bench

# The benchmarks' peers, Celery (kombu's SQS transport) and acryl-executor, and the sandbox.
$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.sandbox

# Linters of the deployment files (cfn-lint, checkov, hadolint), in a venv of their own.
$(TOOLS)/.installed: deploy/tools-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --upgrade pip
	$(TOOLS)/bin/pip install --quiet -r deploy/tools-requirements.txt
	touch $@

tools: $(TOOLS)/.installed

demo: $(VENV)/.sandbox
	$(BIN)/executor demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# All seven benchmarks, about 16 minutes (see bench/README.md); `make bench BENCH=dispatch` runs one.
bench: $(VENV)/.bench
	$(BIN)/python -m bench $(BENCH)

test: lint tools
	$(BIN)/pytest -p no:cacheprovider -ra

clean:
	rm -rf $(VENV) $(TOOLS) .demo .mypy_cache .ruff_cache
