#!/usr/bin/env bash
# On a CUDA machine: augmentation at 224x224 (B=256), an AMP channels-last step, a 2-epoch distillation run.
# The Makefile's venv holds a CPU build of torch: on a GPU machine point PYTHON at a CUDA build, e.g.
#   PYTHON=python3 bash benchmarks/gpu_check.sh     (kdforaa is taken from src/; pydantic and tqdm needed)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
"${PYTHON:-.venv/bin/python}" benchmarks/gpu_check.py
