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


def save_figure(fig, notebook: str, name: str, formats: Union[None, str, Iterable[str]] = DEFAULT_FORMATS, *,
                root: Union[None, str, Path] = None, dpi: int = 150) -> List[Path]:
    """Write ``fig`` as ``<root>/<notebook>/<name>.<fmt>`` for each format; returns the paths written.

    ``formats`` empty or None writes nothing (a notebook run that should not touch the disk). The figure is
    left open (a notebook still displays it).
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
             root: Union[None, str, Path] = None, dpi: int = 150, verbose: bool = True):
    """``save(fig, name)`` for one notebook: :func:`save_figure` with the notebook's formats and folder bound;
    prints where each figure went (``verbose``) and returns None (a notebook cell ending in ``save(...)`` shows
    the figure, not a list of paths)."""
    fmts = normalise_formats(formats)

    def save(fig, name: str) -> None:
        paths = save_figure(fig, notebook, name, fmts, root=root, dpi=dpi)
        if verbose and paths:
            print(f'saved {paths[0].parent}/{name}.{{{",".join(p.suffix[1:] for p in paths)}}}')

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
