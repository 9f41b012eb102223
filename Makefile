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
# Where `make demo` serves the map at the end (DEMO_SERVE=0: stop after printing the results instead).
DEMO_PORT ?= 8000
DEMO_SERVE ?= 1
# Extra options for `geo-monitor sample-data`, e.g. SAMPLE_ARGS='--preset small'.
SAMPLE_ARGS ?=
# Extra options for pytest, e.g. PYTEST_ARGS='-k cli -x'.
PYTEST_ARGS ?=
NPM ?= npm
# The viewer's npm libraries (maplibre-gl): `npm ci` again only when package-lock.json changes.
NODE_INSTALLED := node_modules/.geo-monitor-installed
# The viewer's translations, compiled from the .po files kept in git.
MO_FILES := $(patsubst %.po,%.mo,$(wildcard web/translations/*/LC_MESSAGES/messages.po))

.PHONY: demo test install clean messages

## demo: build the SYNTHETIC sample area, run the detection pipeline on it, score it, print where the results are,
## then serve the map with the alerts on http://localhost:$(DEMO_PORT)/ (Ctrl+C stops; a login is printed).
demo: install
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
	@echo
ifeq ($(DEMO_SERVE),1)
	@echo "Map of the alerts: open http://localhost:$(DEMO_PORT)/ and log in with the user and password printed below."
	$(GEO) serve --port $(DEMO_PORT) --demo-user demo
endif

## test: install what the tests need and run the whole suite (fails when pytest fails).
test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

## install: create .venv and install geo-monitor with the dev extras, the viewer's npm libraries, its translations.
install: $(INSTALLED) $(NODE_INSTALLED) $(MO_FILES)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	@touch $@

$(NODE_INSTALLED): package-lock.json package.json
	$(NPM) ci --no-audit --no-fund --ignore-scripts
	@touch $@

web/translations/%/LC_MESSAGES/messages.mo: web/translations/%/LC_MESSAGES/messages.po | $(INSTALLED)
	$(BIN)/pybabel compile -l $* -i $< -o $@

## messages: extract the viewer's strings and merge them into each language's .po (then translate the new ones).
messages: $(INSTALLED)
	$(BIN)/pybabel extract -F web/babel.cfg --no-location -o web/translations/messages.pot .
	$(BIN)/pybabel update -i web/translations/messages.pot -d web/translations --no-fuzzy-matching

## clean: remove .venv, caches, build leftovers, the sample area in var/sample and the demo's output.
## Other data under var/ (the alert store, change state, jobs: later issues) is kept.
clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info var/sample $(DEMO_DIR) node_modules
	rm -f $(MO_FILES)
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
