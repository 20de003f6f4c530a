"""One way to write a figure: ``save_figure(fig, notebook, name, formats)`` -> ``<root>/<notebook>/<name>.<fmt>``.

Every notebook figure goes through here, so names are stable (a notebook names each figure once, the file name
never depends on the data) and the formats are one parameter. ``root`` defaults to ``$KDLAB_FIGURES`` or
``<repo>/results/figures``. Nothing drawn is cropped: kdlab's figures use matplotlib's constrained layout (colour
bars and legends inside the figure) and are written with ``bbox_inches='tight'`` (the file holds everything drawn,
even a title wider than the canvas).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, List, Union

from kdlab.errors import KdlabError

FORMATS = ('png', 'pdf', 'svg')
DEFAULT_FORMATS = ('png', 'pdf')
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


def figures_root() -> Path:
    """``$KDLAB_FIGURES`` or ``<repo>/results/figures``."""
    env = os.environ.get('KDLAB_FIGURES')
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / 'results' / 'figures'


def normalise_formats(formats: Union[None, str, Iterable[str]]) -> tuple:
    """``'png,pdf'`` / ``['png', 'pdf']`` / None (nothing) -> a tuple of known formats, in order, no repeats."""
    if formats is None:
        return ()
    if isinstance(formats, str):
        formats = [f for f in re.split(r'[,\s]+', formats) if f]
    out = []
    for f in formats:
        f = str(f).lower().lstrip('.')
        if f not in FORMATS:
            raise KdlabError(f'unknown figure format {f!r}', f'use some of {", ".join(FORMATS)}')
        if f not in out:
            out.append(f)
    return tuple(out)


def scratch_root() -> Path:
    """Where a figure goes instead of a committed one it would replace: ``~/.cache/kdlab/figures``."""
    from kdlab.data.synthetic import cache_root
    return cache_root().parent / 'figures'


def _committed(path: Path) -> bool:
    """Whether git tracks ``path`` (a committed result)."""
    import subprocess
    try:
        return subprocess.run(['git', 'ls-files', '--error-unmatch', path.name], cwd=path.parent,
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def save_figure(fig, notebook: str, name: str, formats: Union[None, str, Iterable[str]] = DEFAULT_FORMATS, *,
                root: Union[None, str, Path] = None, dpi: int = 150, overwrite_committed: bool = False) -> List[Path]:
    """Write ``fig`` as ``<root>/<notebook>/<name>.<fmt>`` for each format; returns the paths written.

    ``formats`` empty or None writes nothing (a notebook run that should not touch the disk). The figure is
    left open (a notebook still displays it). With the default ``root`` a figure that would replace a committed
    one (``results/figures``, tracked by git) goes to :func:`scratch_root` instead, unless ``overwrite_committed``:
    an interactive run never overwrites the committed results by accident.
    """
    for what, value in (('notebook', notebook), ('figure name', name)):
        if not _NAME.match(str(value)):
            raise KdlabError(f'{what} {value!r} is not a stable file name',
                             'use letters, digits, "_", "-" and "." only (e.g. "fpn_maps_P3")')
    import matplotlib
    fmts = normalise_formats(formats)
    if not fmts:
        return []
    folder = Path(root).expanduser() if root is not None else figures_root()
    folder = folder / notebook
    if root is None and not overwrite_committed and any(
            _committed(folder / f'{name}.{fmt}') for fmt in fmts if (folder / f'{name}.{fmt}').is_file()):
        folder = scratch_root() / notebook
    folder.mkdir(parents=True, exist_ok=True)
    # 'tight': the file is cut to everything drawn (a title wider than the figure included), not to the canvas
    bbox = 'tight'
    paths = []
    for fmt in fmts:
        path = folder / f'{name}.{fmt}'
        kwargs = dict(dpi=dpi) if fmt == 'png' else {}
        # fixed metadata: re-running a notebook does not change a PDF/SVG's bytes only because of the date
        meta = {'pdf': {'CreationDate': None, 'Creator': 'kdlab'}, 'svg': {'Date': None, 'Creator': 'kdlab'},
                'png': {'Software': 'kdlab'}}[fmt]
        with matplotlib.rc_context({'svg.hashsalt': 'kdlab'}):     # SVG element ids: stable, not random
            fig.savefig(path, format=fmt, bbox_inches=bbox, pad_inches=0.08, facecolor='white', metadata=meta,
                        **kwargs)
        paths.append(path)
    return paths


def exporter(notebook: str, formats: Union[None, str, Iterable[str]] = DEFAULT_FORMATS, *,
             root: Union[None, str, Path] = None, dpi: int = 150, verbose: bool = True,
             overwrite_committed: bool = False):
    """``save(fig, name)`` for one notebook: :func:`save_figure` with the notebook's formats and folder bound;
    prints where each figure went (``verbose``) and returns None (a notebook cell ending in ``save(...)`` shows
    the figure, not a list of paths)."""
    fmts = normalise_formats(formats)

    def save(fig, name: str) -> None:
        paths = save_figure(fig, notebook, name, fmts, root=root, dpi=dpi, overwrite_committed=overwrite_committed)
        if verbose and paths:
            kept = ' (the committed figure is kept; overwrite_committed=True replaces it)' if (
                root is None and scratch_root() in paths[0].parents) else ''
            print(f'saved {paths[0].parent}/{name}.{{{",".join(p.suffix[1:] for p in paths)}}}{kept}')

    return save


def png_stats(path: Union[str, Path]) -> dict:
    """What a person would notice first about a PNG: size, pixel std, number of distinct colours, and the share
    of the most common colour (a blank figure: std 0, one colour)."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as im:
        arr = np.asarray(im.convert('RGB'))
    flat = arr.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    return {'width': arr.shape[1], 'height': arr.shape[0], 'std': float(arr.std()),
            'colours': int(len(colours)), 'top_colour_share': float(counts.max() / counts.sum())}
