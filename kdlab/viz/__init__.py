"""Plots of feature maps, attention, masks, spectra and feature statistics, on matplotlib.

Conventions (from mmengine's ``Visualizer.draw_featmap``): channel reduction ``'squeeze_mean'`` /
``'select_max'`` or the top-k channels in an ``arrangement``, bilinear resizing to the image, ``jet`` blended
over the image with ``alpha = 0.5`` — with one difference that matters for distillation: the colour scale is
*shared* across teacher and students (:func:`shared_norm`) and drawn as a colour bar, so colours compare across
models. Every figure is written by :func:`save_figure` (``results/figures/<notebook>/<name>.{png,pdf}``).

* :mod:`kdlab.viz.featmaps` — reductions, shared normalisation, overlays, FPN map grids (DFMSD Fig. 4);
* :mod:`kdlab.viz.masks` — teacher attention, every method's mask, ICD's per-instance attention;
* :mod:`kdlab.viz.spectra` — DFMSD Fig. 6 spectra, radial profiles, band shares, Eq. (4)'s decisions;
* :mod:`kdlab.viz.distributions` — feature-value distributions (Fig. 8), per-channel Pearson r and magnitudes;
* :mod:`kdlab.viz.export` — :func:`save_figure`, :func:`png_stats`.
"""
from kdlab.viz.export import DEFAULT_FORMATS, FORMATS, exporter, figures_root, png_stats, save_figure  # noqa: F401
from kdlab.viz.featmaps import (map_to_image, plot_featmap_grid, plot_topk_channels, reduce_featmap,  # noqa: F401
                                shared_norm, topk_channels)
