# The README's commands. `make demo` and `make test` set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
# CPU build from local disk on these machines; override for a GPU build, e.g. `make setup TORCH=torch`.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.monai_em-installed

.PHONY: setup demo test test-all bench lint docs clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[test,dev,daisy]"
	@touch $@

demo: setup
	$(BIN)/python -m monai_em.demo

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

bench: setup
	$(BIN)/python -m bench

lint: setup
	$(BIN)/ruff check monai_em tests bench docs
	$(BIN)/ruff format --check monai_em tests bench docs

docs: setup
	$(BIN)/python docs/gallery.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
