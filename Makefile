# Every target creates .venv on first use and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest notebooks lab bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,notebooks,theatre,browser]'
	touch $(STAMP)

# The crash theatre on 127.0.0.1 (port 8866, or a free one): it prints the address, opens no
# browser, and stops with Ctrl-C. The terminal story is `$(BIN)/aegispay demo`.
demo: $(STAMP)
	$(BIN)/python -m aegispay.viz.theatre_app

test: lint typecheck pytest notebooks

lint: $(STAMP)
	$(BIN)/ruff check aegispay tests benchmarks
	$(BIN)/ruff format --check aegispay tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict aegispay

pytest: $(STAMP)
	$(BIN)/pytest

# Runs every notebook top to bottom; every cell must print what is saved, up to what
# notebooks/sanitize.cfg says legitimately varies (random ids, temp paths, SVG geometry).
notebooks: $(STAMP)
	$(BIN)/pytest --nbval notebooks --nbval-sanitize-with notebooks/sanitize.cfg

# Jupyter refuses to run as root without --allow-root; a Linux machine without a display has no
# browser to open, so Jupyter only prints the address to open (macOS has a browser and no DISPLAY).
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root) \
	$(if $(DISPLAY)$(WAYLAND_DISPLAY)$(filter Darwin,$(shell uname -s)),,--no-browser)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $(strip $(LAB_FLAGS))

# Ratios against baselines run beside them (raw sqlite3, eventsourcing, the base commit).
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
