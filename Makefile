# Every target creates .venv on first use and installs only what is missing.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdforaa-installed

.PHONY: demo test bench study lint typecheck data wheel gpu-kit clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e '.[dev,gpu,plots]'
	touch $(STAMP)

data: $(STAMP)
	@bash scripts/ensure-fashion-mnist.sh $(BIN)/kdforaa

demo: $(STAMP) data
	$(BIN)/kdforaa demo

# CI (.ci/run) runs this: lint and types first (seconds), then the tests, which include the import contracts
test: lint typecheck $(STAMP) data
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: $(STAMP) data
	$(BIN)/python benchmarks/bench_augment.py
	$(BIN)/python benchmarks/bench_kernels.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_step.py
	$(BIN)/python benchmarks/bench_scaling.py

# The reproduction study of docs/results.md (claims C1-C7, and issue 9's comparison c9): runs that two
# sweeps share are trained once and copied (--reuse-from).
SWEEPS := c1_magnitude c9_methods c2_topk_k c3_lambda c5_augment_off c4_weaker_teacher c6_c7_large_magnitude \
          c8_single_ops
study: $(STAMP) data
	for s in $(SWEEPS); do \
	  $(BIN)/kdforaa sweep configs/sweeps/$$s.yaml --out runs/study/$$s --jobs 2 --reuse-from runs/study || exit 1; \
	done

# the same checks as .pre-commit-config.yaml
LINTED := src tests benchmarks scripts setup.py
lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/lint-imports

# mypy, configured in pyproject.toml ([tool.mypy]): zero errors in src/kdforaa
typecheck: $(STAMP)
	$(BIN)/python -m mypy

# dist/kdforaa-VERSION-py3-none-PLATFORM.whl with the prebuilt kernel library (fails without a C compiler)
wheel: $(STAMP)
	KDFORAA_PREBUILT=require $(BIN)/pip wheel -q --no-deps --no-build-isolation -w dist .

# gpu-kit/: what a bare GPU machine lacks for benchmarks/gpu_check.sh (wheels for its Python 3.12, Fashion-MNIST,
# the prebuilt kernel library); needs PyPI and a C compiler here. Copy it with the working tree.
gpu-kit: $(STAMP)
	$(BIN)/python scripts/gpu_kit.py --out gpu-kit

clean:
	rm -rf $(VENV) runs build dist
