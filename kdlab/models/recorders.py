"""``DataSamplesRecorder``: hands a batch's ``data_samples`` (GT boxes, image shapes) to a distillation loss.

mmrazor 1.0.0's recorders record module inputs/outputs (forward hooks without keyword arguments) or method
inputs/outputs patched on a *class* (so they would also fire for a teacher of the same class). FGD needs the
GT boxes and image shapes inside its loss; this recorder hooks the model's ``forward`` (the root module by
default) with keyword arguments and records the ``data_samples`` argument, wherever it was passed.

Config::

    student_recorders=dict(samples=dict(type='DataSamples'))          # RecorderManager adds 'Recorder'
    loss_forward_mappings=dict(loss_fgd_P3=dict(..., data_samples=dict(from_student=True, recorder='samples')))
"""
from __future__ import annotations

from typing import Optional

from mmrazor.models.task_modules.recorder.base_recorder import BaseRecorder
from mmrazor.registry import TASK_UTILS
from torch import nn

from kdlab.errors import KdlabError

#: Names under which mmdet / mmrazor pass the data samples.
SAMPLE_ARG_NAMES = ('data_samples', 'batch_data_samples')


@TASK_UTILS.register_module()
class DataSamplesRecorder(BaseRecorder):
    """Records the ``data_samples`` passed to the module named ``source`` (``''``: the model itself).

    Args:
        source (str): the module whose ``forward(inputs, data_samples, mode)`` is hooked. Defaults to ``''``.
    """

    def __init__(self, source: str = '') -> None:
        super().__init__(source)
        self._recording = False

    def prepare_from_model(self, model: Optional[nn.Module] = None) -> None:
        if model is None:
            raise KdlabError('DataSamplesRecorder needs the model to hook')
        modules = dict(model.named_modules())
        if self.source not in modules:
            raise KdlabError(f'DataSamplesRecorder: no module named {self.source!r} in the model',
                             "use source='' (the detector itself)")
        modules[self.source].register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        if not self._recording:
            return None
        samples = None
        for name in SAMPLE_ARG_NAMES:
            if name in kwargs:
                samples = kwargs[name]
                break
        else:
            if len(args) > 1:
                samples = args[1]
        self.data_buffer.append(samples)
        return None

    def __enter__(self):
        super().__enter__()
        self._recording = True

    def __exit__(self, exc_type, exc_value, traceback):
        super().__exit__(exc_type, exc_value, traceback)
        self._recording = False
