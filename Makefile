# Thin wrappers over the commands in README. ARGS passes Hydra overrides: make train ARGS="loss=dice_ce"
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: install train test test-full lint format bench bench-quick notebook clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev,export]"
	touch $@

train: install
	$(PY) -m seglight.train $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

test-full: install
	$(PY) -m pytest -q -m "slow or not slow" $(ARGS)

lint: install  ## ruff (lint, format check) and mypy; tests/test_layout.py runs the same and checks the layering
	$(VENV)/bin/ruff check seglight tests experiments notebooks
	$(VENV)/bin/ruff format --check seglight tests experiments notebooks
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix seglight tests experiments notebooks
	$(VENV)/bin/ruff format seglight tests experiments notebooks

bench: install  ## full benchmark (~15 min on 2 cores); the JSON goes to experiments/bench/results/run.json
	$(PY) experiments/bench/run.py --out experiments/bench/results/run.json $(ARGS)

bench-quick: install
	$(PY) experiments/bench/run.py --quick --out experiments/bench/results/run_quick.json $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache

notebook: install  ## re-create notebooks/quickstart.ipynb and execute it in place, keeping its outputs
	$(PY) notebooks/make_quickstart.py --execute
