#!/usr/bin/env bash
# Set up kdlab's project-local virtual environment (.venv) — idempotent, fast when already done.
#
#   bash tools/bootstrap.sh                  # default: torch 2.13.0 (CPU), mmcv 2.1.0 without its compiled
#                                            # extension (pure Python, seconds); kdlab provides the ops the
#                                            # seed tables' detectors call (kdlab/ops; torchvision kernels
#                                            # where torchvision loads beside torch, plain torch elsewhere)
#   bash tools/bootstrap.sh --compiled-ops   # mmcv 2.1.0 with its compiled ops: CPU, or CUDA with FORCE_CUDA=1
#                                            # after installing a CUDA torch into .venv (~11-33 min on 2 cores
#                                            # once per machine; the wheel is cached)
#   bash tools/bootstrap.sh --compiler-free  # back to the default
#
# The choice is remembered in .venv (make test / make demo keep it). Built wheels are cached outside the
# repository, in $KDLAB_CACHE/wheels (default ~/.cache/kdlab/wheels), keyed by what they were built for.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${KDLAB_VENV:-$ROOT/.venv}
CACHE=${KDLAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kdlab}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${KDLAB_TORCH:-torch==2.13.0}
MMCV_VERSION=2.1.0

mode_file=$VENV/.kdlab-mmcv-ops
mode=$(cat "$mode_file" 2>/dev/null || echo compiler-free)
for arg in "$@"; do
  case $arg in
    --compiled-ops) mode=compiled ;;
    --compiler-free) mode=compiler-free ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "bootstrap.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

# The stamp records what was installed; a change to the pins, to this script or to the mode re-runs the install.
key=$(cat "$ROOT/pyproject.toml" "$ROOT/tools/bootstrap.sh" "$ROOT/tools/constraints.txt" | sha256sum | cut -c1-16)
stamp=$VENV/.kdlab-$key-$mode-${FORCE_CUDA:-0}
if [ -f "$stamp" ]; then exit 0; fi

log() { printf '[kdlab setup] %s\n' "$*" >&2; }
t0=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PY=$VENV/bin/python
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }
# Applied to every pip call here and to the build environments pip makes (PIP_BUILD_CONSTRAINT: pip >= 25.3).
export PIP_CONSTRAINT=$ROOT/tools/constraints.txt PIP_BUILD_CONSTRAINT=$ROOT/tools/constraints.txt

# pkg_resources (setuptools<81) is needed by mmcv's setup.py and by mmengine at run time: see constraints.txt.
pip install -q setuptools wheel
if ! "$PY" -c "import torch" 2>/dev/null; then
  log "installing $TORCH_SPEC"
  pip install -q "$TORCH_SPEC"
fi

# torchvision's kernels serve nms / roi_align / deform_conv2d (kdlab/ops) where its wheel loads beside torch.
# The registry's torchvision wheels are built against the CUDA builds of torch: beside a CPU build (+cpu) they
# fail to import ("operator torchvision::nms does not exist"), so there kdlab's plain-torch kernels serve.
torch_version=$("$PY" -c "import torch; print(torch.__version__)" 2>/dev/null)
if ! "$PY" -c "import torchvision.ops" 2>/dev/null; then
  if [[ $torch_version == *+cpu* ]]; then
    log "torch $torch_version is a CPU build: no registry torchvision loads beside it; mmcv's ops run in plain torch"
  else
    tv_spec=$("$PY" -c "import torch; v = torch.__version__.split('+')[0].split('.'); print(f'torchvision==0.{int(v[1]) + 15}.*')")
    log "installing $tv_spec (its kernels serve mmcv's nms, roi_align and deform_conv2d)"
    if ! pip install -q --no-deps "$tv_spec" || ! "$PY" -c "import torchvision.ops" 2>/dev/null; then
      log "$tv_spec does not load beside torch $torch_version; removed, mmcv's ops run in plain torch"
      pip uninstall -q -y torchvision || true
    fi
  fi
fi

# Which mmcv build this environment needs.
if [ "$mode" = compiled ]; then
  tag=$("$PY" - <<'PY'
import sys, torch, os
cuda = torch.version.cuda if (torch.version.cuda and os.environ.get('FORCE_CUDA') == '1') else None
print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__.split('+')[0]}-{'cu' + cuda.replace('.', '') if cuda else 'cpu'}")
PY
)
else
  tag=compiler-free
fi
if [ "$(cat "$VENV/.mmcv-build" 2>/dev/null)" != "$tag" ] || ! "$PY" -c "import mmcv" 2>/dev/null; then
  wheeldir=$CACHE/wheels/mmcv-$MMCV_VERSION-$tag
  if ls "$wheeldir"/mmcv-$MMCV_VERSION-*.whl >/dev/null 2>&1; then
    log "using cached mmcv wheel from $wheeldir"
  elif [ "$mode" = compiled ]; then
    log "building mmcv $MMCV_VERSION with compiled ops ($tag); this happens once per machine and takes ~11-33 min on 2 cores"
    mkdir -p "$wheeldir"
    pip install -q ninja packaging numpy pyyaml addict yapf opencv-python-headless
    tmp=$(mktemp -d)
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} pip wheel --no-build-isolation --no-deps -w "$tmp" "mmcv==$MMCV_VERSION"
    mv "$tmp"/mmcv-*.whl "$wheeldir"/ && rmdir "$tmp"
  else
    # Built in pip's isolated build environment (--use-pep517: without it, where the wheel package is
    # installed, pip runs setup.py in this environment and torch is importable), where torch is absent:
    # mmcv's setup.py then skips its extension ("Skip building ext ops due to the absence of torch") and keeps
    # the distribution name mmcv, which mmdet and mmrazor require (MMCV_WITH_OPS=0 would rename it mmcv-lite).
    log "building mmcv $MMCV_VERSION without its compiled extension (pure Python, seconds)"
    mkdir -p "$wheeldir"
    tmp=$(mktemp -d)
    pip wheel -q --no-deps --use-pep517 -w "$tmp" "mmcv==$MMCV_VERSION"
    if "$PY" -c "import sys, zipfile; sys.exit(any('/_ext' in n for n in zipfile.ZipFile(sys.argv[1]).namelist()))" "$tmp"/mmcv-*.whl; then :; else
      log "error: the mmcv wheel holds a compiled extension although it was built without torch; see $tmp"; exit 1
    fi
    mv "$tmp"/mmcv-*.whl "$wheeldir"/ && rmdir "$tmp"
  fi
  pip install -q --no-deps --force-reinstall "$wheeldir"/mmcv-$MMCV_VERSION-*.whl
  echo "$tag" > "$VENV/.mmcv-build"
fi

log "installing kdlab and its pinned dependencies"
pip install -q -e "$ROOT[dev]"
# the notebooks' named kernel, in this environment (JupyterLab from it, `make lab`, and papermill find it)
"$PY" -m ipykernel install --sys-prefix --name kdlab --display-name "Python (kdlab)" >/dev/null

rm -f "$VENV"/.kdlab-[0-9a-f]*
echo "$mode" > "$mode_file"
touch "$stamp"
log "done in $(( $(date +%s) - t0 )) s (mmcv ops: $mode); check with: $VENV/bin/kdlab doctor"
