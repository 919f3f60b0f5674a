# Every target creates .venv on first use and installs only what is missing.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdforaa-installed

.PHONY: demo test bench lint data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

data: $(STAMP)
	@bash scripts/ensure-fashion-mnist.sh $(BIN)/kdforaa

demo: $(STAMP) data
	$(BIN)/kdforaa demo

test: $(STAMP) data
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP) data
	$(BIN)/python benchmarks/bench_augment.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_step.py
	$(BIN)/python benchmarks/bench_scaling.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs
