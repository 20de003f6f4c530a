"""Which implementation serves mmcv's compiled ops, and kdlab's compiler-free one.

mmcv 2.1.0 has no binary wheel for current torch releases: its compiled extension (``mmcv._ext``) is built
from source, 10-30 minutes on 2 cores, and on a GPU machine against the user's own torch and CUDA. The
detectors of the seed tables call only a handful of its functions (:mod:`kdlab.ops.ext` lists them), so
kdlab's default set-up installs mmcv without the extension and provides ``mmcv._ext`` itself:

- ``kdlab``: :class:`kdlab.ops.ext.MmcvExt`, torchvision's CPU/CUDA kernels where torchvision loads beside
  torch (``nms``, ``roi_align``, ``deform_conv2d``), plain torch elsewhere (:mod:`kdlab.ops.kernels`);
- ``compiled``: mmcv's own extension, when it was built (``bash tools/bootstrap.sh --compiled-ops``).

``KDLAB_MMCV_OPS`` chooses: ``auto`` (default: the compiled extension if it is installed, else kdlab's),
``kdlab`` (kdlab's even where the compiled one is installed) or ``compiled`` (mmcv's own; an error if absent).
The choice is made once per process, when ``mmcv._ext`` is first imported; :func:`install` (run by
``import kdlab``) puts a finder for it on ``sys.meta_path``, so import kdlab before ``mmcv.ops`` or mmdet's
models in a script of your own. ``kdlab doctor`` and every run's provenance (``mmcv_ops``) say which served.
:func:`use` swaps the implementation inside one process, for the equivalence tests and the benchmark.
"""
from __future__ import annotations

import contextlib
import glob
import importlib.machinery
import importlib.util
import os
import sys
from typing import Iterator, Optional

ENV = 'KDLAB_MMCV_OPS'
CHOICES = ('auto', 'kdlab', 'compiled')
EXT = 'mmcv._ext'


def choice() -> str:
    value = os.environ.get(ENV, 'auto').strip().lower() or 'auto'
    if value not in CHOICES:
        from kdlab.errors import KdlabError
        raise KdlabError(f'{ENV}={value!r} is not one of {", ".join(CHOICES)}',
                         f'unset {ENV} (auto: the compiled mmcv ops if installed, else kdlab\'s) or set one of '
                         f'{", ".join(CHOICES)}')
    return value


def compiled_extension_path() -> Optional[str]:
    """The file of mmcv's compiled extension in the installed mmcv, or None (a build without ops)."""
    spec = importlib.util.find_spec('mmcv')
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            hits = glob.glob(os.path.join(folder, '_ext' + suffix))
            if hits:
                return hits[0]
    return None


def _kdlab_ext(name: str):
    from kdlab.ops.ext import MmcvExt
    return MmcvExt(name)


def install() -> None:
    """Put a finder answering ``import mmcv._ext`` with :class:`kdlab.ops.ext.MmcvExt` where
    :envvar:`KDLAB_MMCV_OPS` says (idempotent): first for ``kdlab``, last for ``auto`` (Python's path finder then
    finds a compiled ``mmcv/_ext*.so`` first), nowhere for ``compiled``."""
    from kdlab.compat import StandInFinder, remove_stand_in
    remove_stand_in(EXT)
    which = choice()
    if which == 'kdlab':
        sys.meta_path.insert(0, StandInFinder(EXT, _kdlab_ext))
    elif which == 'auto':
        sys.meta_path.append(StandInFinder(EXT, _kdlab_ext))


def _is_kdlab(module) -> bool:
    return bool(getattr(module, 'kdlab_compiler_free', False))


def backend() -> str:
    """Which implementation serves ``mmcv._ext`` in this process: ``'kdlab (torchvision 0.26.0 kernels)'``,
    ``'kdlab (plain torch)'``, ``'compiled (CPU)'``, ``'compiled (CPU + CUDA 12.1)'``, or ``'none: <error>'``."""
    try:
        module = importlib.import_module(EXT)
    except Exception as err:  # compiled requested but not built, or a broken build
        return f'none: {type(err).__name__}: {err}'
    return describe(module)


def describe(module) -> str:
    if _is_kdlab(module):
        from kdlab.ops.kernels import torchvision_kernels
        tv = torchvision_kernels()
        return f'kdlab (torchvision {tv} kernels)' if tv else 'kdlab (plain torch)'
    try:
        cuda = module.get_compiling_cuda_version()
    except Exception:
        cuda = 'not available'
    return 'compiled (CPU)' if cuda in ('not available', '') else f'compiled (CPU + CUDA {cuda})'


_compiled_module = None


def compiled_module():
    """mmcv's compiled extension, loaded from its file even while kdlab's serves ``mmcv._ext``; None if absent."""
    global _compiled_module
    current = sys.modules.get(EXT)
    if current is not None and not _is_kdlab(current):
        return current
    if _compiled_module is None:
        path = compiled_extension_path()
        if path is None:
            return None
        spec = importlib.util.spec_from_file_location(EXT, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _compiled_module = module
    return _compiled_module


def kdlab_module():
    current = sys.modules.get(EXT)
    if current is not None and _is_kdlab(current):
        return current
    from kdlab.ops.ext import MmcvExt
    return MmcvExt()


@contextlib.contextmanager
def use(which: str) -> Iterator[object]:
    """Within the block, every loaded ``mmcv.ops`` module calls ``which`` (``'kdlab'`` or ``'compiled'``).

    Swaps the ``ext_module`` each of mmcv's op modules bound at import. Raises ``LookupError`` for
    ``'compiled'`` where mmcv's extension is not installed.
    """
    import mmcv.ops  # noqa: F401  (imports every op module, each binding ext_module)
    module = kdlab_module() if which == 'kdlab' else compiled_module()
    if module is None:
        raise LookupError("mmcv's compiled extension is not installed (bash tools/bootstrap.sh --compiled-ops)")
    swapped = [(m, m.ext_module) for name, m in list(sys.modules.items())
               if name.startswith('mmcv.ops.') and m is not None and hasattr(m, 'ext_module')]
    try:
        for m, _ in swapped:
            m.ext_module = module
        yield module
    finally:
        for m, old in swapped:
            m.ext_module = old
