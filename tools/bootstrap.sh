#!/usr/bin/env bash
# Set up kdlab's project-local virtual environment (.venv) — idempotent, fast when already done.
#
#   bash tools/bootstrap.sh            # CPU (default): torch 2.13.0+cpu, mmcv 2.1.0 with CPU ops
#   FORCE_CUDA=1 bash tools/bootstrap.sh  # after installing a CUDA torch 2.13.0 into .venv: mmcv CUDA ops
#
# mmcv 2.1.0 has no binary wheel for torch 2.13 and must be compiled (~11 min on 2 cores). The built wheel
# is cached outside the repository, in $KDLAB_CACHE/wheels (default ~/.cache/kdlab/wheels), keyed by
# python / torch / CPU-or-CUDA, so every later set-up (a fresh clone, a deleted .venv, CI) takes seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${KDLAB_VENV:-$ROOT/.venv}
CACHE=${KDLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdlab}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${KDLAB_TORCH:-torch==2.13.0}
MMCV_VERSION=2.1.0

# The stamp records what was installed; a change to the pins or to this script re-runs the install.
key=$(cat "$ROOT/pyproject.toml" "$ROOT/tools/bootstrap.sh" "$ROOT/tools/constraints.txt" | sha256sum | cut -c1-16)
stamp=$VENV/.kdlab-$key
if [ -f "$stamp" ]; then exit 0; fi

log() { printf '[kdlab setup] %s\n' "$*" >&2; }
t0=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }
export PIP_CONSTRAINT=$ROOT/tools/constraints.txt

# pkg_resources (setuptools<81) is needed by mmcv's setup.py and by mmengine at run time: see constraints.txt.
pip install -q setuptools wheel
if ! "$PY" -c "import torch" 2>/dev/null; then
  log "installing $TORCH_SPEC"
  pip install -q "$TORCH_SPEC"
fi

# Which mmcv build this environment needs: python, torch, and CPU or CUDA ops (FORCE_CUDA=1).
tag=$("$PY" - <<'PY'
import sys, torch, os
cuda = torch.version.cuda if (torch.version.cuda and os.environ.get('FORCE_CUDA') == '1') else None
print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.split('+')[0]}-{'cu' + cuda.replace('.', '') if cuda else 'cpu'}")
PY
)
if [ "$(cat "$VENV/.mmcv-build" 2>/dev/null)" != "$tag" ] || ! "$PY" -c "import mmcv.ops" 2>/dev/null; then
  wheeldir=$CACHE/wheels/mmcv-$MMCV_VERSION-$tag
  if ! ls "$wheeldir"/mmcv-$MMCV_VERSION-*.whl >/dev/null 2>&1; then
    log "building mmcv $MMCV_VERSION with compiled ops ($tag); this happens once per machine and takes ~11 min on 2 cores"
    mkdir -p "$wheeldir"
    pip install -q ninja packaging numpy pyyaml addict yapf opencv-python-headless
    tmp=$(mktemp -d)
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} pip wheel --no-build-isolation --no-deps -w "$tmp" "mmcv==$MMCV_VERSION"
    mv "$tmp"/mmcv-*.whl "$wheeldir"/ && rmdir "$tmp"
  else
    log "using cached mmcv wheel from $wheeldir"
  fi
  pip install -q --no-deps --force-reinstall "$wheeldir"/mmcv-$MMCV_VERSION-*.whl
  echo "$tag" > "$VENV/.mmcv-build"
fi

log "installing kdlab and its pinned dependencies"
pip install -q -e "$ROOT[dev]"

rm -f "$VENV"/.kdlab-*
touch "$stamp"
log "done in $(( $(date +%s) - t0 )) s; check with: $VENV/bin/kdlab doctor"
