# Two commands do all the set-up on a fresh machine with Python 3.11 and make:
#   make demo   runs the main job end to end
#   make test   runs the test suite
# Both create .venv when it is missing. No PostgreSQL needed: an embedded one starts.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test dev lint format clean db-stop

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# Debian's Chromium for the page tests (alphaplus_mlops_tests/test_report_pages.py), where
# apt and root are at hand; elsewhere set ALPHAPLUS_CHROMIUM, or those tests skip.
$(VENV)/.browser: $(STAMP)
	@command -v chromium >/dev/null || \
	  { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } || \
	  echo "no Chromium: the page tests will skip (install chromium or set ALPHAPLUS_CHROMIUM)"
	@touch $@

install: $(STAMP) $(VENV)/.browser

demo: install
	$(BIN)/alphaplus-mlops demo

# PYTEST_ARGS narrows a run, e.g. make test PYTEST_ARGS='-m "database and not daemon"'.
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

dev: install
	$(BIN)/alphaplus-mlops dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

db-stop: install
	$(BIN)/alphaplus-mlops db stop

clean:
	-$(BIN)/alphaplus-mlops db stop
	rm -rf $(VENV) .alphaplus *.egg-info .pytest_cache .ruff_cache .hypothesis
