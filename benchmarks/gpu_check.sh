#!/usr/bin/env bash
# On a CUDA machine, in this order: (1) the Triton backend's tests on the GPU (every op, level, policy and
# size byte-equal to the CPU's native kernels); (2) augmentation per backend at 224x224 B=256 and 32x32
# B=1024 with launches and syncs per batch, next to kornia (benchmarks/bench_augment.py); (3) the GPU
# distillation step against the usual DataLoader + Pillow loop (benchmarks/bench_gpu_step.py); (4) an AMP
# channels-last step and a 2-epoch distillation run (benchmarks/gpu_check.py).
# The Makefile's venv holds a CPU build of torch: on a GPU machine point PYTHON at a CUDA build, e.g.
#   PYTHON=python3 bash benchmarks/gpu_check.sh     (kdforaa is taken from src/; pydantic, tqdm, triton
#   and pytest needed; kornia and timm are compared when installed)
# SKIP_TESTS=1 skips (1).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-.venv/bin/python}"
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  "$PY" -m pytest -q -p no:cacheprovider tests/augment/test_triton.py
fi
"$PY" benchmarks/bench_augment.py --device cuda
"$PY" benchmarks/bench_gpu_step.py --device cuda
"$PY" benchmarks/gpu_check.py
