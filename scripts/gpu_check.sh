#!/usr/bin/env bash
# The GPU check, for a bare CUDA machine (Python with torch, triton, timm, torchvision, safetensors, tqdm,
# PyYAML, hypothesis, pytest; no network, no data, no .venv). Made here first: `make gpu-kit` (gpu-kit/,
# copied with the working tree). Then, on the GPU machine, from the checkout:
#
#   bash scripts/gpu_check.sh [RESULTS]       (or GPU_CHECK_RESULTS=RESULTS; default gpu-results/<time>)
#
# It installs the kit offline into a temporary folder (pip --no-index --no-deps --target), puts the kit's
# prebuilt kernel library beside a copy of src/, points $KDFORAA_DATA at the kit's Fashion-MNIST, and runs
# independent stages, each in its own process with its own time limit, so that one failing stage never
# hides the others: the environment report (no GPU needed), then on CUDA: host syncs per training step
# and the kernels' registers, the Triton tests on the GPU, the real-timm tests, the augmentation backends
# (benchmarks/bench_augment.py), the distillation step (benchmarks/bench_gpu_step.py). Every stage's log
# goes to RESULTS/<stage>.log; one table is printed last. The limits add up to under 8 minutes.
#
# PYTHON (default python3) picks the interpreter; GPU_KIT (default gpu-kit) the kit; GPU_CHECK_ENV_SECONDS
# (default 60) the environment report's limit (the tests raise it on a loaded CPU machine). Without CUDA it stops
# after the environment report with a message and exit status 3; a failed stage makes the status 1.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
KIT=$(realpath -m "${GPU_KIT:-gpu-kit}")
RESULTS=$(realpath -m "${1:-${GPU_CHECK_RESULTS:-gpu-results/$(date -u +%Y%m%dT%H%M%SZ)}}")

die() { echo "gpu_check: error: $*" >&2; exit 2; }
[ -f "$KIT/kit.json" ] || die "no kit in $KIT: run 'make gpu-kit' where PyPI is reachable and copy gpu-kit/ here"
command -v "$PY" >/dev/null || die "no Python interpreter '$PY' (set PYTHON)"
kit_python=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['python'])" "$KIT/kit.json")
here_python=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$kit_python" = "$here_python" ] || die "the kit's wheels are for Python $kit_python, $PY is $here_python"
"$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip, which installs the kit"
mkdir -p "$RESULTS" || die "cannot create the results folder $RESULTS"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kdforaa-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$WORK/site" "$KIT"/wheels/*.whl \
  >"$RESULTS/install.log" 2>&1 || die "installing the kit failed (see $RESULTS/install.log)"
cp -r src "$WORK/src" && cp "$KIT"/lib/* "$WORK/src/kdforaa/augment/" || die "cannot copy src/ to $WORK"
export PYTHONPATH="$WORK/src:$WORK/site"
export KDFORAA_DATA="$KIT/data"
export PYTHONDONTWRITEBYTECODE=1
export HYPOTHESIS_MAX_EXAMPLES=${HYPOTHESIS_MAX_EXAMPLES:-5}  # tests/augment/test_triton.py caps its examples
: >"$RESULTS/stages.tsv"

# stage NAME SECONDS COMMAND...: runs it with a time limit, its output to RESULTS/NAME.log and the screen.
stage() {
  local name=$1 limit=$2 start rc
  shift 2
  echo "== $name (at most ${limit}s): $*"
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$RESULTS/$name.log"
  rc=${PIPESTATUS[0]}
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - start))" "$RESULTS/$name.log" >>"$RESULTS/stages.tsv"
  [ "$rc" = 0 ] || echo "== $name: exit status $rc (124: out of time)" >&2
}

stage env "${GPU_CHECK_ENV_SECONDS:-60}" "$PY" scripts/gpu_check.py env "$KIT/kit.json" "$RESULTS/env.json"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: FAILED: torch sees no CUDA device here, so nothing was measured" \
    "(the environment report is in $RESULTS/env.log)" >&2
  exit 3
fi
stage syncs 45 "$PY" scripts/gpu_check.py syncs "$RESULTS/syncs.json"
stage triton-tests 100 "$PY" -m pytest -q -p no:cacheprovider tests/augment/test_triton.py
stage timm-tests 45 "$PY" -m pytest -q -p no:cacheprovider tests/models/test_timm_real.py
stage augment 110 "$PY" benchmarks/bench_augment.py --device cuda --suite backends --json "$RESULTS/augment.json"
stage step 90 "$PY" benchmarks/bench_gpu_step.py --device cuda --steps 10 --repeats 3 --json "$RESULTS/step.json"
"$PY" scripts/gpu_check.py summary "$RESULTS" | tee "$RESULTS/summary.md"
exit "${PIPESTATUS[0]}"
