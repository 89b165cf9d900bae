# `make test` on a fresh Debian machine: system packages, a virtual environment, the suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup system venv test search clean

setup: system venv

system:  ## Debian packages (dataset, chromium, postgresql) and, as root, a PostgreSQL server on loopback
	bash .ci/system-deps
	bash .ci/postgres

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: setup
	$(BIN)/python -m pytest

search: setup  ## the main job: 100 trials into studies/resnet_like.db, then the front
	$(BIN)/nas search --space resnet_like --trials 100

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
