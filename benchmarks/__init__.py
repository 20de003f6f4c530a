"""kdlab's benchmarks, run with ``python -m benchmarks [name] [options]`` (``make bench``).

* ``feature_losses`` (default): forward+backward time of every feature-distillation loss on full-scale FPN
  shapes, as a ratio to mmrazor's ``PKDLoss`` measured in the same run, and the peak memory of each.
* ``train_step``: wall (and CPU) time of one distillation training step (``model.train_step(batch,
  optim_wrapper)``, built by mmengine's ``Runner``) per method on ``retinanet_r50 <- retinanet_x101`` at mini
  scale, as a ratio to the student-only step timed in the same process on the same batch, and peak memory;
  a method that cannot build on the pair shows why.
* ``registry_runs``: the whole paper registry planned at a scale (nothing trains): per paper and in total the
  table rows, the rows kdlab can run and skips, the unique content-addressed runs, and how many runs sharing
  teachers and baselines saves.
"""
