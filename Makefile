# geo-monitor: the README's two commands, `make demo` and `make test`.
#
# Both create .venv with $(PYTHON) if it is missing and install the project
# (editable, with the dev extras) into it; the install is skipped while
# pyproject.toml is older than the stamp file. Nothing else is needed on the
# machine: GDAL comes inside the rasterio wheel.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
GEO := $(BIN)/geo-monitor
# Written after a successful install; remade when pyproject.toml changes.
INSTALLED := $(VENV)/.geo-monitor-installed
# Where `make demo` keeps what it printed (the sample area itself goes where settings say: var/sample by default).
DEMO_DIR ?= var/demo
# Extra options for `geo-monitor sample-data`, e.g. SAMPLE_ARGS='--preset small'.
SAMPLE_ARGS ?=
# Extra options for pytest, e.g. PYTEST_ARGS='-k cli -x'.
PYTEST_ARGS ?=

.PHONY: demo test install clean

## demo: build the SYNTHETIC sample area, run the detection pipeline on it, score it, print where the results are.
demo: $(INSTALLED)
	@mkdir -p $(DEMO_DIR)
	$(GEO) sample-data $(SAMPLE_ARGS) > $(DEMO_DIR)/sample-data.txt
	$(GEO) detect --out $(DEMO_DIR)/alerts.geojson > $(DEMO_DIR)/detect.txt
	$(GEO) evaluate --alerts $(DEMO_DIR)/alerts.geojson --clear-looks > $(DEMO_DIR)/evaluation.txt
	@echo
	@echo "==================== geo-monitor demo: done ===================="
	@cat $(DEMO_DIR)/sample-data.txt
	@echo
	@echo "Detection (mining-change pipeline on the sample):"
	@sed 's/^/  /' $(DEMO_DIR)/detect.txt
	@echo "  alerts GeoJSON    $(abspath $(DEMO_DIR))/alerts.geojson"
	@echo
	@echo "Scorecard against the sample's ground truth (SYNTHETIC data, not an accuracy on real imagery):"
	@sed 's/^/  /' $(DEMO_DIR)/evaluation.txt
	@echo "  settings, paths   $(GEO) info"
	@echo "Not yet: map viewer, partner API, jobs (issues 4-6)."

## test: install what the tests need and run the whole suite (fails when pytest fails).
test: $(INSTALLED)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## install: create .venv and install geo-monitor with the dev extras.
install: $(INSTALLED)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	@touch $@

## clean: remove .venv, caches, build leftovers, the sample area in var/sample and the demo's output.
## Other data under var/ (the alert store, change state, jobs: later issues) is kept.
clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info var/sample $(DEMO_DIR)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
