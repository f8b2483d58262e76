# remit: `make run` starts the embedded stack, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when the package definition changes; otherwise reuse the virtualenv.
STAMP := $(VENV)/.installed-dev

.PHONY: run test lint install demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/remit up --demo-login

demo: $(STAMP)
	$(BIN)/remit demo --bills 8

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

clean:
	rm -rf stack-data .pytest_cache .mypy_cache .ruff_cache
