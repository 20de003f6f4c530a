"""Analysis helpers behind the figure notebooks (``notebooks/attention_masks.ipynb``, ``dft_spectra.ipynb``,
``fpn_features.ipynb``): where the images come from, which models to look at, and the numbers the pictures claim.

* :mod:`kdlab.analysis.images` — sample images with their boxes: the synthetic data, scikit-image's shipped
  photographs, a folder of images, or a COCO-format dataset (``load_images``).
* :mod:`kdlab.analysis.features` — the embedded default teacher / baseline / distilled trio from the run store
  (trained on demand at smoke scale) or user-given ``(config, checkpoint)`` pairs; FPN features per level;
  per-channel teacher-student Pearson r and magnitudes (PKD's motivation); candidate boxes of a detector.
* :mod:`kdlab.analysis.masks` — every masking method's mask derived from the teacher's FGD attention (MGD,
  AMD, DMKD, DFMSD, DSAMKD) and ICD's per-instance attention, all built on :mod:`kdlab.core`.
* :mod:`kdlab.analysis.spectra` — DFMSD Fig. 6's numbers over a sample of images (band shares per
  augmentation, the masking-enhancement decision per image).

Plots live in :mod:`kdlab.viz`; these modules return arrays and data frames.
"""
from kdlab.analysis.images import SampleImage, load_images  # noqa: F401
