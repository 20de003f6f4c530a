"""Primitives shared by losses, visualisations and tests: one place for each idea.

Every function here is pure (no module state), documents its shapes, and takes a single feature map
``(C, H, W)`` as well as a batch ``(N, C, H, W)`` unless it says otherwise.

* :mod:`kdlab.core.levels` — FPN level pairing of teacher and student.
* :mod:`kdlab.core.normalize` — channel z-scoring over ``(N, H, W)`` (PKD's), the z-scored MSE (= Pearson
  ``1 - r``; PKD, DCSF-KD, DFMSD's SFA), bilinear resizing of the student to the teacher.
* :mod:`kdlab.core.attention` — FGD's spatial ``A_S = H*W*softmax_hw(mean_c|F|/T)`` and channel
  ``A_C = C*softmax_c(mean_hw|F|/T)`` attention (FGD, AMD, DMKD, DFMSD, DSAMKD); DSAMKD's max-pooled scale pyramid.
* :mod:`kdlab.core.masks` — MGD's random mask, attention-guided top-ratio masks (spatial, channel), FGD's
  foreground/background masks from boxes, DSAMKD's logits-difference mask, DFMSD's box-area ratio and the
  masking-enhancement decision of its Eq. (4).
* :mod:`kdlab.core.enhance` — DFMSD's masking-enhancement augmentation (Gaussian noise / proportional crop).
"""
