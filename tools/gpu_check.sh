#!/usr/bin/env bash
# The CUDA path, measured on a GPU machine (one script, about 9 minutes on an H200):
#   bash tools/gpu_check.sh [PYTHON]          results in $OUT (the device tool's folder) or results/gpu
# On the machine: kdlab is installed next to the torch already in PYTHON (default python3), never replacing it,
# from the wheels in .whl/ (made here beforehand by tools/gpu_wheels.sh; the machine has no internet), into
# /tmp/site on PYTHONPATH; kdlab itself runs from this checkout. Then:
#   (a) the GPU-marked tests (tests/test_gpu.py: smoke trainings of RetinaNet, Faster R-CNN and RepPoints and of
#       PKD, MGD, DMKD, DFMSD, ICD and CrossKD distillation, one with mixed precision; tests/test_mmcv_ops.py:
#       each op of kdlab's compiler-free ops on CUDA equals its CPU result, torchvision's kernels vs plain torch)
#   (b) the throughput benchmark at full scale (benchmarks/throughput.py: 1333x800, 2 images, random init).
# KDLAB_GPU_CHECK_INSTALL=0 skips the install (a machine where kdlab's stack is already importable: the CPU test
# of this script); KDLAB_GPU_CHECK_QUICK=1 runs (b) at smoke scale (seconds, any device).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${1:-python3}
OUT=${OUT:-$ROOT/results/gpu}
mkdir -p "$OUT"
cd "$ROOT"
log() { printf '[gpu check] %s\n' "$*" | tee -a "$OUT/gpu_check.log" >&2; }
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore

if [ "${KDLAB_GPU_CHECK_INSTALL:-1}" = 1 ]; then
  ls .whl/*.whl >/dev/null 2>&1 || { log "no wheels in .whl/: run bash tools/gpu_wheels.sh here first"; exit 2; }
  before=$("$PY" -c "import torch; print(torch.__version__)")
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { log "installing the wheels failed"; exit 2; }
  export PYTHONPATH=/tmp/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}
  after=$("$PY" -c "import torch; print(torch.__version__)")
  [ "$before" = "$after" ] || { log "torch changed ($before -> $after): stop"; exit 2; }
else
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -m kdlab.cli doctor 2>&1 | tee "$OUT/doctor.txt"
status=0

log "(a) GPU-marked tests"
"$PY" -m pytest -q -p no:cacheprovider -rs tests/test_gpu.py tests/test_mmcv_ops.py \
  --junitxml="$OUT/gpu_tests.xml" 2>&1 | tail -25 | tee "$OUT/gpu_tests.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

scale=full; [ "${KDLAB_GPU_CHECK_QUICK:-0}" = 1 ] && scale=smoke
log "(b) throughput at $scale scale"
"$PY" -m benchmarks throughput --scale "$scale" --json "$OUT/throughput_$scale.json" 2>&1 | tail -15 \
  | tee "$OUT/throughput_$scale.txt"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

log "done (status $status); results in $OUT"
exit $status
