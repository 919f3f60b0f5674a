#!/usr/bin/env bash
# On a CUDA machine: augmentation at 224x224 (B=256), an AMP channels-last step, a 2-epoch distillation run.
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-.venv/bin/python}" benchmarks/gpu_check.py
