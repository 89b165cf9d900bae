# `make search` and `make test` on a fresh Debian machine: system packages, a virtual environment, then the job.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: search test venv clean

search: venv  ## the main job: the dataset and the venv, then 100 trials into studies/resnet_like.db
	bash .ci/system-deps search
	$(BIN)/nas search --space resnet_like --trials 100

test: $(VENV)/.test-installed  ## the suite: also chromium, postgresql (started on loopback) and g++
	bash .ci/system-deps test
	bash .ci/postgres
	$(BIN)/python -m pytest

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
