"""Make the pinned OpenMMLab stack (mmengine 0.10.7, mmdet 3.3.0, mmrazor 1.0.0) work on torch 2.13.

Nothing here edits site-packages; :func:`apply` is idempotent and runs when :mod:`kdlab` is imported.
Each fix is narrow and says why it exists:

1. **mmrazor's quantization subpackage** (``mmrazor.structures.quantization``) calls torch APIs that
   torch >= 2.0 removed, at import time, so ``import mmrazor.models`` fails with "`torch>=1.13` is not
   installed properly" (upstream issues #615, #632). kdlab never quantizes: a meta-path finder stands a
   placeholder module in for that subpackage. Importing it works; *using* anything from it raises an
   ImportError that says why.
2. **Checkpoints under ``weights_only``**: torch >= 2.6 loads with ``weights_only=True`` by default and
   mmengine 0.10.7 passes nothing, so its own checkpoints (which hold the message hub's numpy scalars,
   ``HistoryBuffer`` objects, ...) no longer load or resume. kdlab re-registers mmengine's loader for
   local files so that it loads inside ``torch.serialization.safe_globals(...)`` with exactly the types
   mmengine writes into a checkpoint (:func:`checkpoint_safe_globals`; numpy 2 pickles dtypes through
   ``builtins.getattr``). The allow-list is scoped to mmengine's checkpoint loading — every other
   ``torch.load`` in the process keeps torch's defaults — and loading stays ``weights_only``: a
   checkpoint that holds anything else still fails, as torch intends.
3. **Several CPU processes** (torchrun with gloo; ``kdlab reproduce --gpus 2`` on a machine without a GPU, and the
   tests): mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` before it initialises the process
   group, which a CPU build of torch cannot do, and its runner wraps the model with ``device_ids=[LOCAL_RANK]``,
   which torch's DistributedDataParallel rejects for a model on the CPU. Where torch sees no GPU, kdlab
   initialises the process group without ``set_device``; a model whose parameters are all on the CPU is
   wrapped with ``device_ids=None``. With a GPU both paths are mmengine's own.
4. **pkg_resources' deprecation notice**: mmengine and mmcv import ``pkg_resources`` (hence setuptools < 81 in
   ``tools/constraints.txt``), and setuptools warns about it once per importing module: ten identical
   lines before any command's output. kdlab silences exactly that ``UserWarning`` message; every other
   warning is shown as before.
5. **mmcv's compiled ops without a compiler**: the default set-up installs mmcv 2.1.0 without its compiled
   extension (it has no binary wheel for torch 2.13 and compiles for 10-30 min). :func:`kdlab.ops.install`
   puts a finder for ``mmcv._ext`` on ``sys.meta_path`` that answers with :mod:`kdlab.ops.ext`: the ops the
   seed tables' detectors call (nms, RoIAlign, deformable convolutions, sigmoid focal loss, multi-scale
   deformable attention) on torchvision's kernels where torchvision loads, in plain torch elsewhere; every
   other op raises an error naming the fix (``bash tools/bootstrap.sh --compiled-ops``). Where mmcv's compiled
   extension is installed it is used instead (``KDLAB_MMCV_OPS`` chooses; see :mod:`kdlab.ops`).
6. **``torchvision://`` without torchvision**: the official configs start their ResNet backbones from
   ``torchvision://resnet50`` / ``resnet101``, and mmengine resolves those names by importing torchvision, which
   the CPU set-up lacks (the registry's torchvision wheels are built for CUDA torch and do not load beside
   the CPU build), so a full-scale config fails at initialisation on a CPU machine. Where torchvision cannot be
   imported, kdlab answers mmengine's ``get_torchvision_models()`` with the table mmengine itself uses for those
   names (``mmengine/hub/torchvision_0.12.json``: the ImageNet-1k V1 weights the configs were written for);
   with torchvision it is mmengine's own.
7. **A config formatted seven times per run**: mmengine formats ``Config.pretty_text`` with yapf on every read
   (about 0.65 s for a distillation config here), and one run reads it seven times (the runner's log and
   config dump, its visualisation backend, the runtime-info hook at train and at test, the checkpoint's meta,
   kdlab's stored copy): 4.5 s of a 6.3 s smoke-scale run, measured. kdlab keeps the text of the last configs
   it formatted, keyed by the config's content (``repr(cfg.to_dict())``, which is what the text is made from,
   and the format switch); a changed config is a new key, so the text is always the config's own.
8. **A full garbage collection per dataset**: mmengine's ``BaseDataset`` serialises its annotations and then calls
   ``gc.collect()`` to free the list it pickled. A full collection walks every object the process tracks, which
   after importing torch, mmdet and mmrazor is 0.2-0.4 s, three datasets per run: a fifth of a smoke-scale run,
   measured. The freed list holds plain dicts of numbers and strings, which reference counting frees at once
   (a collection only finds reference cycles), so kdlab makes that one call a no-op in that module only; the
   interpreter's own automatic collection is unchanged.
9. **``kdlab://`` checkpoint names in every process**: the mini-v2 detectors start from
   ``kdlab://pretrained/<file>`` (:mod:`kdlab.zoo.pretrain`); the scheme is registered with mmengine here, so that
   a torchrun worker (``-w N``, ``--gpus N``), which builds its model before anything imports that module, resolves
   it too.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import List

QUANTIZATION_PACKAGE = 'mmrazor.structures.quantization'

_applied = False


class _QuantizationPlaceholder(types.ModuleType):
    """Stands in for :data:`QUANTIZATION_PACKAGE` and every module below it."""

    __all__: List[str] = []  # ``from ... import *`` imports nothing
    __path__: List[str] = []  # a package: submodules resolve through the finder too

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)

        def unavailable(*args, **kwargs):
            raise ImportError(
                f'{self.__name__}.{name} is unavailable: mmrazor 1.0.0 quantization does not run on '
                'torch >= 2.0 and kdlab replaces that subpackage with a placeholder (see kdlab.compat). '
                'Distillation does not need it.')

        placeholder = type(name, (), {'__init__': unavailable, '__module__': self.__name__})
        setattr(self, name, placeholder)
        return placeholder


class StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """A ``sys.meta_path`` finder that answers the import of ``name`` (and, for a package, every module below
    it) with ``create(fullname)``: a module kdlab stands in for one that does not import or is not installed
    (fix 1 and fix 5). ``name`` also tells the finders apart."""

    def __init__(self, name: str, create, *, package: bool = False):
        self.name, self.create, self.package = name, create, package

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name or (self.package and fullname.startswith(self.name + '.')):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=self.package)
        return None

    def create_module(self, spec):
        return self.create(spec.name)

    def exec_module(self, module):
        pass


def remove_stand_in(name: str) -> None:
    """Take the :class:`StandInFinder` for ``name`` off ``sys.meta_path`` (if there is one)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not (isinstance(f, StandInFinder) and f.name == name)]


def _install_quantization_placeholder() -> None:
    if not any(isinstance(f, StandInFinder) and f.name == QUANTIZATION_PACKAGE for f in sys.meta_path):
        sys.meta_path.insert(0, StandInFinder(QUANTIZATION_PACKAGE, _QuantizationPlaceholder, package=True))


def checkpoint_safe_globals() -> list:
    """The non-tensor types mmengine 0.10.7 writes into a checkpoint (meta, message hub, optimizer)."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.config.config import ConfigDict
    try:  # numpy >= 1.25 exposes the core under numpy._core
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core.multiarray import _reconstruct, scalar
    dtypes = [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return [HistoryBuffer, ConfigDict, np.ndarray, np.dtype, _reconstruct, scalar, getattr, *dtypes]


def load_local_checkpoint(filename, map_location=None):
    """mmengine's ``load_from_local`` with the checkpoint types allow-listed (still ``weights_only``)."""
    import os.path as osp
    import torch
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    with torch.serialization.safe_globals(checkpoint_safe_globals()):
        return torch.load(filename, map_location=map_location, weights_only=True)


def _allow_mmengine_checkpoints() -> None:
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)


def torchvision_model_urls(original=None) -> dict:
    """mmengine's ``get_torchvision_models()``; where torchvision cannot be imported, mmengine's table of the
    names torchvision 0.12 had (``resnet50`` -> its ImageNet-1k V1 URL), which is where mmengine reads them from
    too (fix 6)."""
    from mmengine.runner import checkpoint as ckpt
    try:
        return (original or _ORIGINAL_TORCHVISION_MODELS or ckpt.get_torchvision_models)()
    except ImportError:
        import os.path as osp
        import mmengine
        return mmengine.load(osp.join(mmengine.__path__[0], 'hub', 'torchvision_0.12.json'))


_ORIGINAL_TORCHVISION_MODELS = None


def _torchvision_names_without_torchvision() -> None:
    global _ORIGINAL_TORCHVISION_MODELS
    from mmengine.runner import checkpoint as ckpt
    if _ORIGINAL_TORCHVISION_MODELS is None:
        _ORIGINAL_TORCHVISION_MODELS = ckpt.get_torchvision_models
        ckpt.get_torchvision_models = torchvision_model_urls


#: Formatted config texts by content (fix 7), the most recent last; a few configs per run are live at once.
_PRETTY_TEXTS: dict = {}
_PRETTY_TEXTS_KEPT = 32


def _remember_pretty_texts() -> None:
    from mmengine.config import Config
    original = Config.pretty_text
    if getattr(original.fget, 'kdlab_memo', False):
        return

    def pretty_text(self) -> str:
        try:
            key = (repr(self.to_dict()), bool(getattr(self, '_format_python_code', True)))
        except Exception:  # noqa: BLE001  (a content repr cannot make: format as mmengine does)
            return original.fget(self)
        text = _PRETTY_TEXTS.pop(key, None)
        if text is None:
            text = original.fget(self)
        _PRETTY_TEXTS[key] = text
        while len(_PRETTY_TEXTS) > _PRETTY_TEXTS_KEPT:
            _PRETTY_TEXTS.pop(next(iter(_PRETTY_TEXTS)))
        return text
    pretty_text.kdlab_memo = True
    pretty_text.__doc__ = original.fget.__doc__
    pretty_text.__wrapped__ = original.fget             # mmengine's own, for the test that compares them
    Config.pretty_text = property(pretty_text)


class _NoFullCollection(types.SimpleNamespace):
    """``gc`` as mmengine's dataset module sees it (fix 8): ``collect()`` does nothing, the rest is :mod:`gc`."""

    def __getattr__(self, name):
        import gc
        return getattr(gc, name)

    @staticmethod
    def collect(generation: int = 2) -> int:
        return 0


def _skip_full_collection_per_dataset() -> None:
    from mmengine.dataset import base_dataset
    if not isinstance(base_dataset.gc, _NoFullCollection):
        base_dataset.gc = _NoFullCollection()


def _allow_cpu_distributed() -> None:
    import torch
    from mmengine.dist import utils as dist_utils
    from mmengine.model.wrappers.distributed import MMDistributedDataParallel
    if getattr(dist_utils._init_dist_pytorch, '_kdlab', False):
        return
    original_init_dist = dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original_init_dist(backend, init_backend=init_backend, **kwargs)
        import torch.distributed as torch_dist
        torch_dist.init_process_group(backend=backend, **kwargs)   # rank, world size: torchrun's environment

    _init_dist_pytorch._kdlab = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch
    original_ddp_init = MMDistributedDataParallel.__init__

    def __init__(self, module, detect_anomalous_params: bool = False, **kwargs):
        if kwargs.get('device_ids') and all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs['device_ids'] = None
        original_ddp_init(self, module, detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = __init__


#: Third-party warnings the pinned stack raises whenever kdlab imports or trains it, each about code kdlab does not
#: own and cannot change (message prefix, category): shown once per process they only bury a notebook's output.
KNOWN_WARNINGS = (
    ('pkg_resources is deprecated as an API', UserWarning),                          # mmengine on setuptools
    ('`torch.jit.script` is deprecated', DeprecationWarning),                       # mmcv / mmdet imports
    ('`torch.jit.interface` is deprecated', DeprecationWarning),
    ('``MultiScaleDeformableAttention`` has been moved', ImportWarning),             # mmdet importing mmcv
    ('torch.meshgrid: in an upcoming release, it will be required to pass the indexing', UserWarning),  # anchors
    ('IProgress not found', Warning),                                                # tqdm.auto without ipywidgets
)


def _quiet_pkg_resources_notice() -> None:
    import re
    import warnings
    for message, category in KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=re.escape(message), category=category)


#: the scheme of kdlab's own checkpoint names (``kdlab://pretrained/<file>``: :mod:`kdlab.zoo.pretrain`)
KDLAB_SCHEME = 'kdlab://'


def _kdlab_checkpoint_scheme() -> None:
    """Fix 9: ``kdlab://pretrained/<file>`` (the mini-v2 backbones' committed weights, :mod:`kdlab.zoo.pretrain`)
    resolves in every process that imports kdlab. Registered where the scheme was defined, it was unknown in a
    process that builds a mini-v2 model before anything imports that module (a torchrun worker of ``-w N`` /
    ``--gpus N``: "kdlab://pretrained/r50-....pth can not be found")."""
    from mmengine.runner import CheckpointLoader

    def load(filename, map_location=None):
        from kdlab.zoo.pretrain import load_from_kdlab
        return load_from_kdlab(filename, map_location)
    CheckpointLoader.register_scheme(prefixes=KDLAB_SCHEME, loader=load, force=True)


def apply() -> None:
    """Apply every fix (idempotent). Called by ``import kdlab``."""
    global _applied
    if _applied:
        return
    _install_quantization_placeholder()
    _quiet_pkg_resources_notice()
    from kdlab import ops
    ops.install()
    try:
        _allow_mmengine_checkpoints()
        _kdlab_checkpoint_scheme()
        _allow_cpu_distributed()
        _torchvision_names_without_torchvision()
        _remember_pretty_texts()
        _skip_full_collection_per_dataset()
    except ImportError:  # mmengine not installed: `kdlab doctor` reports it
        pass
    _applied = True
