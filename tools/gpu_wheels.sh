#!/usr/bin/env bash
# The wheels tools/gpu_check.sh installs on a GPU machine that has Python 3.12 and a CUDA torch but no internet
# (this project's lent machine: torch 2.11 + CUDA 13, torchvision 0.26, numpy, scipy, pandas, matplotlib,
# opencv-python-headless, ... already there). Run it here, where the registry is reachable:
#   bash tools/gpu_wheels.sh [DIR]     (default .whl, git-ignored through .git/info/exclude; about 10 MB)
# torch and torchvision are never among them: the machine's own stay.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$ROOT/.whl}
CACHE=${KDLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdlab}
mkdir -p "$DIR"
grep -qx '/.whl/' "$ROOT/.git/info/exclude" 2>/dev/null || echo '/.whl/' >> "$ROOT/.git/info/exclude"
# the stack's pure-Python packages and the compiled ones the GPU image lacks (cp312 builds)
PACKAGES=(mmengine==0.10.7 mmdet==3.3.0 mmrazor==1.0.0 'setuptools==80.10.2' addict yapf termcolor terminaltables
          pycocotools shapely platformdirs tomli)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DIR" "${PACKAGES[@]}"
# mmcv 2.1.0 without its compiled extension: the wheel tools/bootstrap.sh builds (pure Python, any Python 3)
wheel=$(ls "$CACHE"/wheels/mmcv-2.1.0-compiler-free/mmcv-2.1.0-*.whl 2>/dev/null | head -1)
if [ -z "$wheel" ]; then bash "$ROOT/tools/bootstrap.sh" >/dev/null; wheel=$(ls "$CACHE"/wheels/mmcv-2.1.0-compiler-free/*.whl | head -1); fi
cp "$wheel" "$DIR"/
du -sh "$DIR"; ls "$DIR"
