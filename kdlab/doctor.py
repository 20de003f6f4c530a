"""``kdlab doctor``: what is installed, whether it works together, and the exact fix for what is not."""
from __future__ import annotations

import importlib
import platform
import sys
from typing import List, Tuple

#: The versions verified together (pyproject.toml pins the same).
PINNED = {'torch': '2.13.0', 'mmcv': '2.1.0', 'mmengine': '0.10.7', 'mmdet': '3.3.0', 'mmrazor': '1.0.0'}
SETUP = 'bash tools/bootstrap.sh   (or: make setup)'


def _version(module: str):
    try:
        return importlib.import_module(module).__version__, None
    except Exception as err:  # report, never crash: that is the doctor's job
        return None, f'{type(err).__name__}: {err}'


def checks() -> List[Tuple[str, bool, str, str]]:
    """Each check as ``(name, ok, what was found, fix)``."""
    out = []
    out.append(('python', sys.version_info[:2] in ((3, 10), (3, 11), (3, 12)), platform.python_version(),
                'use Python 3.10-3.12'))
    for pkg, want in PINNED.items():
        got, err = _version(pkg)
        ok = got is not None and got.split('+')[0] == want
        out.append((pkg, ok, got or err, f'{SETUP}  (pins {pkg}=={want})'))
    import kdlab.compat as compat
    compat.apply()
    try:
        import mmrazor.models  # noqa: F401  (fails on torch>=2 without kdlab.compat)
        from mmrazor.models import FpnTeacherDistill, PKDLoss  # noqa: F401
        out.append(('mmrazor distillation imports', True, 'FpnTeacherDistill, PKDLoss', ''))
    except Exception as err:
        out.append(('mmrazor distillation imports', False, f'{type(err).__name__}: {err}',
                    'import kdlab before mmrazor (kdlab.compat installs the quantization placeholder)'))
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pkg_resources  # noqa: F401
        out.append(('pkg_resources (mmdet:: config paths)', True, 'present', ''))
    except ImportError:
        out.append(('pkg_resources (mmdet:: config paths)', False, 'missing',
                    "pip install 'setuptools>=77.0.3,<81'"))
    out.append(_mmcv_ops())
    out.append(_device())
    return out


def _mmcv_ops() -> Tuple[str, bool, str, str]:
    """Which implementation serves mmcv's compiled ops (kdlab.ops), and whether nms runs on each device."""
    from kdlab import ops
    fix_compiled = ('bash tools/bootstrap.sh --compiled-ops  (FORCE_CUDA=1 for CUDA ops; or unset '
                    f'{ops.ENV} to use kdlab\'s compiler-free ops)')
    try:
        import torch
        from mmcv.ops import nms
        served = ops.backend()
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
        nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
        found = f'{served}; CPU: yes'
        if torch.cuda.is_available():
            try:
                nms(boxes.cuda(), torch.tensor([0.9, 0.8]).cuda(), 0.5)
                found += ', CUDA: yes'
            except Exception:  # a CPU-only compiled build on a GPU machine
                return ('mmcv ops', False, found + ', CUDA: no',
                        f'FORCE_CUDA=1 bash tools/bootstrap.sh --compiled-ops, or bash tools/bootstrap.sh '
                        f'--compiler-free (kdlab\'s ops run on CUDA tensors)')
            if served == 'kdlab (plain torch)':
                found += ' (torchvision would run nms / roi_align / deform_conv2d as CUDA kernels: pip install ' \
                         'the torchvision release built for this torch)'
        return ('mmcv ops', True, found, '')
    except Exception as err:
        return ('mmcv ops', False, f'{type(err).__name__}: {err}', fix_compiled)


def _device() -> Tuple[str, bool, str, str]:
    import torch
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return ('device', True, f'cuda x{len(names)}: {", ".join(names)} (CUDA {torch.version.cuda})', '')
    return ('device', True, f'cpu ({torch.get_num_threads()} threads); torch CUDA build: '
            f'{torch.version.cuda or "no"}', '')


def run(args=None) -> int:
    rows = checks()
    width = max(len(r[0]) for r in rows)
    failed = 0
    for name, ok, found, fix in rows:
        print(f'{"ok " if ok else "BAD"}  {name:<{width}}  {found}')
        if not ok:
            failed += 1
            print(f'     {"":<{width}}  fix: {fix}')
    print('all good' if not failed else f'{failed} problem(s) found')
    return 1 if failed else 0


def register(sub) -> None:
    p = sub.add_parser('doctor', help='check the installation; print the fix for anything missing')
    p.set_defaults(func=run)
