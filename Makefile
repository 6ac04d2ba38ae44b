# Every target creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest notebooks lab bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,notebooks]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aegispay demo

test: lint typecheck pytest notebooks

lint: $(STAMP)
	$(BIN)/ruff check aegispay tests benchmarks
	$(BIN)/ruff format --check aegispay tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict aegispay

pytest: $(STAMP)
	$(BIN)/pytest

# Runs every notebook top to bottom; cells marked NBVAL_CHECK_OUTPUT must print what is saved.
notebooks: $(STAMP)
	$(BIN)/pytest --nbval-lax notebooks

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
