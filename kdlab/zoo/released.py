"""The released checkpoints of the full-scale detectors: the teachers the papers distilled from.

The papers distil from released teachers, not from teachers they trained (mmrazor's PKD configs name mmdet
model-zoo checkpoints; DFMSD section 4.5: "teachers ... from the MMDetection model zoo"). Every full-scale
detector of :data:`kdlab.zoo.FAMILIES` is an official mmdet config; the mmdet wheel ships the model zoo's
metafiles (``mmdet/.mim/configs/<collection>/metafile.yml``), which give each config's released weights (URL),
its COCO box AP and, in the file name, the hash prefix mmdet puts there. :func:`released` reads them; a
detector no metafile lists (or lists without weights) has no released checkpoint and is trained.

Offline use: ``KDLAB_CHECKPOINTS=DIR`` (``kdlab reproduce --checkpoint-dir DIR``) is a local mirror served by
file name: a released checkpoint whose file is in ``DIR`` is loaded from there (:func:`local_or_url`);
otherwise mmengine downloads the URL. The run's config (and key) names the URL either way.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

CHECKPOINTS_ENV = 'KDLAB_CHECKPOINTS'


@dataclasses.dataclass(frozen=True)
class Released:
    """One released checkpoint of the mmdet model zoo."""

    name: str          # the metafile's model name (the config's file stem)
    config: str        # mmdet::<collection>/<file>.py
    url: str
    box_ap: Optional[float]
    metafile: str      # where it was read: configs/<collection>/metafile.yml in the mmdet wheel

    @property
    def file(self) -> str:
        return self.url.rsplit('/', 1)[-1]

    @property
    def hash(self) -> Optional[str]:
        """The sha256 prefix mmdet puts at the end of the file name (``..._20200130-366f5af1.pth``)."""
        m = re.search(r'-([0-9a-f]{8})\.pth$', self.file)
        return m.group(1) if m else None


def _mim_configs() -> Path:
    import mmdet
    return Path(mmdet.__file__).resolve().parent / '.mim' / 'configs'


@functools.lru_cache(maxsize=1)
def metafile_models() -> List[Tuple[str, dict, str]]:
    """Every model entry of every metafile the mmdet wheel ships, read once: ``(mmdet::<collection>/<file>.py,
    the entry, the metafile's path inside the wheel)``."""
    import yaml
    out = []
    root = _mim_configs()
    for path in sorted(root.glob('*/metafile.yml')):
        data = yaml.safe_load(path.read_text())
        models = data.get('Models', []) if isinstance(data, dict) else [m for m in data or [] if isinstance(m, dict)]
        for m in models:
            config = m.get('Config')
            if config:
                key = 'mmdet::' + (config[len('configs/'):] if config.startswith('configs/') else config)
                out.append((key, m, str(path.relative_to(root.parent.parent.parent))))
    return out


@functools.lru_cache(maxsize=1)
def metafile_index() -> Dict[str, Released]:
    """``mmdet::<collection>/<file>.py`` -> its released checkpoint (:func:`metafile_models`)."""
    out: Dict[str, Released] = {}
    for key, m, metafile in metafile_models():
        url = m.get('Weights')
        if not url:
            continue
        ap = None
        for result in m.get('Results') or []:
            if result.get('Dataset') == 'COCO' and 'box AP' in (result.get('Metrics') or {}):
                ap = float(result['Metrics']['box AP'])
                break
        out[key] = Released(m.get('Name', Path(key).stem), key, url, ap, metafile)
    return out


def released(detector: str, schedule: str) -> Optional[Released]:
    """The released checkpoint of the zoo's full-scale ``detector`` at ``schedule``, or None (trained then)."""
    from kdlab.zoo import parse_detector
    family, backbone = parse_detector(detector)
    config = family.full.get((backbone, schedule))
    return metafile_index().get(config) if config else None


def checkpoint_dir(given: Optional[str] = None) -> Optional[Path]:
    """The local mirror of checkpoints: ``given``, else ``$KDLAB_CHECKPOINTS``, else None."""
    chosen = given or os.environ.get(CHECKPOINTS_ENV)
    return Path(chosen).expanduser() if chosen else None


def local_or_url(url: str, directory: Optional[Path] = None) -> str:
    """The mirror's copy of ``url`` (by file name) when it has one, else ``url``."""
    from urllib.parse import unquote
    directory = directory or checkpoint_dir()
    if directory is not None:
        name = url.rsplit('/', 1)[-1]
        for candidate in dict.fromkeys((name, unquote(name))):     # as downloaded, or with %2B read as '+'
            local = Path(directory) / candidate
            if local.is_file():
                return str(local)
    return url


# ----------------------------------------------------------------------------------- the ImageNet weights
#: mmengine's schemes for the backbone weights the official configs name (``init_cfg=dict(type='Pretrained',
#: checkpoint=...)``) and the tables that turn a name into its URL.
_SCHEMES = {'torchvision://': 'get_torchvision_models', 'modelzoo://': 'get_torchvision_models',
            'open-mmlab://': 'get_external_models', 'openmmlab://': 'get_external_models',
            'mmcls://': 'get_mmcls_models'}


def backbone_weights(model_cfg) -> List[Tuple[str, str]]:
    """Every pretrained checkpoint a model config initialises from, as ``(as the config names it, URL)``: the
    ImageNet weights of its backbone(s), mmengine's schemes resolved with mmengine's own tables (a name that is not
    a URL and has no scheme, a local file, is left out; so is a distiller's teacher given its checkpoint)."""
    from mmengine.runner import checkpoint as ckpt
    found: List[str] = []

    def walk(node):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained' and isinstance(init.get('checkpoint'), str):
                found.append(init['checkpoint'])
            for k, v in node.items():
                # a distiller loads its teacher's checkpoint when it is built and marks the teacher initialised
                # (mmrazor's SingleTeacherDistill): the teacher's own ImageNet weights are never read
                if k in ('teacher', 'box_teacher') and node.get(f'{k}_ckpt'):
                    continue
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)
    walk(model_cfg.to_dict() if hasattr(model_cfg, 'to_dict') else model_cfg)
    out = []
    for name in dict.fromkeys(found):
        if name.startswith(('http://', 'https://')):
            out.append((name, name))
            continue
        for prefix, table in _SCHEMES.items():
            if name.startswith(prefix):
                key = name[len(prefix):]
                if table == 'get_external_models':
                    key = ckpt.get_deprecated_model_names().get(key, key)
                url = getattr(ckpt, table)().get(key)
                if url and url.startswith(('http://', 'https://')):
                    out.append((name, url))
    return out


def hub_checkpoints() -> Path:
    """Where mmengine's downloads look first and keep what they fetch (torch hub's ``checkpoints`` folder:
    ``$TORCH_HOME/hub/checkpoints``)."""
    import torch
    return Path(torch.hub.get_dir()) / 'checkpoints'


def stage_backbone_weights(model_cfg, directory: Optional[Path] = None) -> List[Path]:
    """Serve a config's ImageNet weights from the local mirror: each file the mirror holds (by the URL's file
    name) and torch hub's folder lacks is linked there, where mmengine's loader finds it instead of downloading
    (its schemes, and mmcls://'s key renaming, stay mmengine's). Returns the links made."""
    made = []
    for _, url in backbone_weights(model_cfg):
        local = local_or_url(url, directory)
        if local == url:
            continue
        target = hub_checkpoints() / url.rsplit('/', 1)[-1]
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(Path(local).resolve())
            made.append(target)
    return made


def backbone_weight_lines(runs) -> List[str]:
    """The ImageNet weights a plan's trained runs start from, and which of them neither torch hub's folder nor the
    local mirror holds (to fetch before anything trains offline)."""
    urls: Dict[str, str] = {}
    for run in runs:
        if run.cfg.get('kdlab_provided'):          # a released teacher: its own checkpoint replaces them
            continue
        for name, url in backbone_weights(run.cfg.model):
            urls.setdefault(url, name)
    fetch = [u for u in urls if local_or_url(u) == u and not (hub_checkpoints() / u.rsplit('/', 1)[-1]).is_file()]
    if not urls:
        return []
    lines = [f'ImageNet weights the trained runs start from: {len(urls)} file(s), '
             f'{len(urls) - len(fetch)} already here (torch hub: {hub_checkpoints()}, or the mirror)']
    lines += [f'  to fetch: {urls[u]} = {u}' for u in fetch]
    if fetch:
        lines.append('  with no internet, put these files in the --checkpoint-dir folder too (served by file name)')
    return lines
