# Every target creates .venv on first use and installs only what is missing.
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.kdforaa-installed

.PHONY: demo test bench study study-many lint typecheck data wheel gpu-kit clean

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

# Every benchmark of benchmarks/README.md that runs on a CPU, each at a quick size; `make bench-NAME` runs
# one. Not here: bench_gpu_step.py (its figures are a GPU's: scripts/gpu_check.sh runs it with the CUDA
# suite of bench_augment.py) and bench_outliers.py (it compares with a past commit on a trained teacher).
BENCHMARKS := augment profile-augment kernels train step epoch contention scaling
.PHONY: $(addprefix bench-,$(BENCHMARKS))
bench: $(addprefix bench-,$(BENCHMARKS))
bench-augment: $(STAMP) data
	$(BIN)/python benchmarks/bench_augment.py
bench-profile-augment: $(STAMP) data
	$(BIN)/python benchmarks/profile_augment.py
bench-kernels: $(STAMP) data
	$(BIN)/python benchmarks/bench_kernels.py
bench-train: $(STAMP) data
	$(BIN)/python benchmarks/bench_train.py
bench-step: $(STAMP) data
	$(BIN)/kdforaa bench step --threads 2
bench-epoch: $(STAMP) data
	$(BIN)/python benchmarks/bench_epoch.py --images 4096 --repeats 1
bench-contention: $(STAMP) data
	$(BIN)/python benchmarks/bench_contention.py --repeats 1 --epochs 2
bench-scaling: $(STAMP) data
	$(BIN)/python benchmarks/bench_scaling.py

# The reproduction study of docs/results.md (claims C1-C7, and issue 9's comparison c9): runs that two
# sweeps share are trained once and copied (--reuse-from).
SWEEPS := c1_magnitude c9_methods c2_topk_k c3_lambda c5_augment_off c4_weaker_teacher c6_c7_large_magnitude \
          c8_single_ops
study: $(STAMP) data
	for s in $(SWEEPS); do \
	  $(BIN)/kdforaa sweep configs/sweeps/$$s.yaml --out runs/study/$$s --jobs 2 --reuse-from runs/study || exit 1; \
	done

# The many-class study of docs/results.md ("Many classes"): 100 classes of Fashion-MNIST pairs, about two
# hours on 2 quiet cores. Resumable: run it again after an interruption and finished runs are skipped,
# killed ones resume. methods goes first: its CE runs train beside the shared teacher. The lambda sweep
# comes last, at the K the top-K sweep found best; then the teacher's outliers per level.
MANY_SWEEPS := methods topk_k k_schedule
MANY := runs/study-many
study-many: $(STAMP) data
	for s in $(MANY_SWEEPS); do \
	  $(BIN)/kdforaa sweep configs/sweeps/many_class/$$s.yaml --out $(MANY)/$$s --jobs 2 --reuse-from $(MANY) || exit 1; \
	done
	$(BIN)/python scripts/many_class_best_k.py $(MANY)/topk_k configs/sweeps/many_class/lambda.yaml \
	  $(MANY)/lambda_best_k.yaml
	$(BIN)/kdforaa sweep $(MANY)/lambda_best_k.yaml --out $(MANY)/lambda --jobs 2 --reuse-from $(MANY)
	test -f $(MANY)/outliers/policy_stats.csv || $(BIN)/kdforaa outliers --quiet \
	  --teacher $(MANY)/teachers/resnet20_pairs/best.pt --out $(MANY)/outliers --limit 1000 --levels 0,5,10,15 --k 5

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

# gpu-kit/: what a bare GPU machine lacks for scripts/gpu_check.sh (wheels for its Python 3.12, Fashion-MNIST,
# the prebuilt kernel library); needs PyPI and a C compiler here. Copy it with the working tree.
gpu-kit: $(STAMP)
	$(BIN)/python scripts/gpu_kit.py --out gpu-kit

clean:
	rm -rf $(VENV) runs build dist
