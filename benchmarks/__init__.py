"""kdlab's benchmarks, run with ``python -m benchmarks [name] [options]`` (``make bench``).

* ``feature_losses`` (default): forward+backward time of every feature-distillation loss on full-scale FPN
  shapes, as a ratio to mmrazor's ``PKDLoss`` measured in the same run, and the peak memory of each.
"""
