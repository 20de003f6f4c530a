"""The torch 2.13 compatibility layer: mmrazor's distillation stack imports, checkpoints save/load/resume."""
import sys

import pytest
import torch


def test_mmrazor_distillation_stack_imports():
    import kdlab  # noqa: F401
    from mmrazor.models import ConfigurableDistiller, FpnTeacherDistill, MGDLoss, PKDLoss  # noqa: F401
    from mmrazor.models.task_modules import ModuleOutputsRecorder  # noqa: F401
    assert 'mmrazor.structures.quantization' in sys.modules


def test_quantization_placeholder_says_why_when_used():
    import kdlab  # noqa: F401
    from mmrazor.structures.quantization import QConfigHandler
    with pytest.raises(ImportError, match='kdlab.compat'):
        QConfigHandler()


def test_other_torch_loads_keep_the_default_allow_list(tmp_path):
    """The allow-list is scoped to mmengine's loader, not added to torch globally."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    import kdlab  # noqa: F401
    path = tmp_path / 'x.pth'
    torch.save({'hb': HistoryBuffer([np.float64(1.0)], [1])}, path)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path)


def test_mmengine_checkpoint_save_load_and_resume(tmp_path, smoke_data):
    """Train 1 epoch, then resume to 2: the resumed run continues from the saved epoch and its state."""
    from mmengine.runner import Runner, load_checkpoint
    from kdlab.zoo import detector_config
    cfg = detector_config('retinanet_r18', 'smoke')
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.is_file()

    model = Runner.from_cfg(cfg).model
    state = load_checkpoint(model, str(ckpt), map_location='cpu')  # weights_only default of torch 2.13
    assert state['meta']['epoch'] == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, runner.model.state_dict()[k]), k

    cfg2 = cfg.copy()
    cfg2.train_cfg.max_epochs = 2
    cfg2.resume = True
    resumed = Runner.from_cfg(cfg2)
    resumed.train()
    assert resumed.epoch == 2 and (tmp_path / 'epoch_2.pth').is_file()
    assert resumed.message_hub.get_info('epoch') is not None


def test_only_the_pkg_resources_notice_is_silenced():
    import warnings
    import kdlab  # noqa: F401
    with warnings.catch_warnings(record=True) as seen:
        warnings.warn('pkg_resources is deprecated as an API. See https://setuptools.pypa.io', UserWarning)
        warnings.warn('something else a user should see', UserWarning)
    assert [str(w.message) for w in seen] == ['something else a user should see']


def test_a_config_is_formatted_once_and_its_text_follows_its_content(monkeypatch):
    """Fix 7: repeated reads of pretty_text format once; the text is mmengine's; a changed config is formatted
    again (a stale text would store a config that is not the run's)."""
    import yapf.yapflib.yapf_api as yapf_api
    from mmengine.config import Config
    from kdlab.zoo import detector_config
    import mmengine.config.config as config_module
    calls = []
    original = yapf_api.FormatCode

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(config_module, 'FormatCode', counting)
    cfg = detector_config('retinanet_r18', 'smoke')
    cfg.kdlab_probe = 'a unique value 1'
    first = cfg.pretty_text
    assert [cfg.pretty_text for _ in range(5)] == [first] * 5 and len(calls) == 1
    cfg.kdlab_probe = 'a unique value 2'
    second = cfg.pretty_text
    assert len(calls) == 2 and "kdlab_probe = 'a unique value 2'" in second and second != first
    assert second == Config.pretty_text.fget.__wrapped__(cfg)          # mmengine's text, formatted afresh


def test_a_dataset_skips_the_full_collection_and_frees_its_annotations(smoke_data):
    """Fix 8: mmengine's dataset module sees a ``gc`` whose ``collect`` does nothing (the rest is :mod:`gc`), the
    interpreter's collection is untouched, and a dataset still serialises its annotations as before."""
    import gc
    from mmengine.dataset import base_dataset
    from mmdet.datasets import CocoDataset
    assert base_dataset.gc.collect() == 0 and base_dataset.gc.isenabled() == gc.isenabled()
    assert gc.collect is not base_dataset.gc.collect and gc.isenabled()
    root = str(smoke_data) + '/'
    ds = CocoDataset(data_root=root, ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                     pipeline=[], test_mode=True)
    assert len(ds) > 0 and ds.data_list == [] and ds.serialize_data       # the list freed, the bytes kept
    assert ds.get_data_info(0)['img_path'].startswith(root)
