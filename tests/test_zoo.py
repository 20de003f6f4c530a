"""Every zoo entry builds and takes one forward/backward step at smoke size; the ladder keeps its order."""
import pytest
import torch

from kdlab.errors import UnknownNameError
from kdlab.zoo import FAMILIES, MINI_BACKBONES, detector_config, list_detectors, parse_detector

DETECTORS = sorted(list_detectors())


def test_every_seed_table_family_is_in_the_zoo():
    assert set(FAMILIES) >= {'retinanet', 'fcos', 'gfl', 'reppoints', 'tood', 'faster_rcnn',
                             'cascade_mask_rcnn', 'mask_rcnn'}
    assert {'mask_rcnn_swin_t', 'mask_rcnn_swin_s', 'retinanet_x101', 'faster_rcnn_r101'} <= set(DETECTORS)


@pytest.mark.parametrize('name', DETECTORS)
def test_forward_backward_at_smoke_size(name, smoke_data, tmp_path):
    from mmengine.logging import MessageHub
    from mmengine.runner import Runner
    cfg = detector_config(name, 'smoke')
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    MessageHub.get_current_instance().update_info('epoch', 0)  # TOOD reads it (the train loop sets it)
    model = runner.model
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads[:3])
    # heads at mini width, classes of the synthetic data
    text = cfg.pretty_text
    assert 'num_classes=6' in text and 'num_classes=80' not in text


def _params(backbone):
    from mmdet.registry import MODELS
    import mmdet.models  # noqa: F401
    return sum(p.numel() for p in MODELS.build(MINI_BACKBONES[backbone][0]).parameters())


def test_backbone_ladder_grows_like_the_papers():
    assert _params('r18') < _params('r50') < _params('r101')
    assert _params('r50') < _params('x101')
    assert _params('swin_t') < _params('swin_s')
    assert MINI_BACKBONES['x101'][0]['type'] == 'ResNeXt' and MINI_BACKBONES['swin_s'][0]['type'] == 'SwinTransformer'


def test_mini_v2s_x101_stand_in_has_more_capacity_than_r101s():
    """v1's X101 stand-in (a ResNeXt-50 8x4d at base 16) had fewer parameters than the R101 one; v2's is a
    ResNeXt-50 16x4d at base 24 (1.5x the R101 one's), and v1 keeps its own (its stored runs' keys)."""
    from mmdet.registry import MODELS
    import mmdet.models  # noqa: F401
    from kdlab.zoo import MINI_V2_BACKBONES

    def params(table, name):
        return sum(p.numel() for p in MODELS.build(table[name][0]).parameters())
    assert params(MINI_V2_BACKBONES, 'r50') < params(MINI_V2_BACKBONES, 'r101') < params(MINI_V2_BACKBONES, 'x101')
    assert params(MINI_BACKBONES, 'x101') < params(MINI_BACKBONES, 'r101')          # v1's, measured so
    assert detector_config('retinanet_x101', 'mini', protocol='v1').model.backbone.depth == 50
    x101 = MINI_V2_BACKBONES['x101'][0]
    assert (x101['depth'], x101['groups'], x101['base_channels']) == (50, 16, 24)     # the depth the recipe trains
    assert params(MINI_V2_BACKBONES, 'x101') > 1.4 * params(MINI_V2_BACKBONES, 'r101')  # COCO: about twice
    out = MODELS.build(x101)(torch.zeros(1, 3, 64, 64))
    assert tuple(o.shape[1] for o in out) == MINI_V2_BACKBONES['x101'][1]          # the neck's inputs


def test_heterogeneous_pairs_keep_their_pyramids():
    assert FAMILIES['mask_rcnn'].levels[0] == 'P2' and FAMILIES['retinanet'].levels[0] == 'P3'


def test_full_scale_is_the_official_config():
    cfg = detector_config('retinanet_x101', 'full', schedule='2x')
    assert cfg.model.backbone.type == 'ResNeXt' and cfg.model.backbone.depth == 101
    assert cfg.model.neck.out_channels == 256 and cfg.model.bbox_head.num_classes == 80
    assert cfg.train_cfg.max_epochs == 24


def test_bad_names_name_the_fix():
    with pytest.raises(UnknownNameError, match="Did you mean 'retinanet_r50'"):
        parse_detector('retinanet_r5')
    with pytest.raises(UnknownNameError, match='scale'):
        detector_config('retinanet_r50', 'huge')
    with pytest.raises(UnknownNameError, match='schedule'):
        detector_config('retinanet_r50', 'full', schedule='9x')


def test_mini_two_stage_detectors_sample_a_mini_roi_budget():
    from kdlab.zoo import MINI_PROPOSALS_PER_IMAGE, MINI_ROIS_PER_IMAGE
    for name in ('faster_rcnn_r50', 'cascade_mask_rcnn_x101', 'mask_rcnn_swin_s'):
        model = detector_config(name, 'mini').model
        stages = model.train_cfg.rcnn if isinstance(model.train_cfg.rcnn, list) else [model.train_cfg.rcnn]
        assert [s.sampler.num for s in stages] == [MINI_ROIS_PER_IMAGE] * len(stages)
        assert model.train_cfg.rpn_proposal.max_per_img == MINI_PROPOSALS_PER_IMAGE
        assert model.test_cfg.rpn.max_per_img == MINI_PROPOSALS_PER_IMAGE
    full = detector_config('faster_rcnn_r50', 'full').model          # the official budget at full scale
    assert full.train_cfg.rcnn.sampler.num == 512 and full.train_cfg.rpn_proposal.max_per_img == 1000
    assert 'rpn_proposal' not in detector_config('retinanet_r50', 'mini').model.train_cfg


def test_smoke_detectors_keep_a_smaller_budget_and_mini_keeps_the_official_detections():
    from kdlab.zoo import SMOKE_DETECTIONS_PER_IMAGE, SMOKE_PROPOSALS_PER_IMAGE, SMOKE_ROIS_PER_IMAGE
    model = detector_config('cascade_mask_rcnn_x101', 'smoke').model
    assert [s.sampler.num for s in model.train_cfg.rcnn] == [SMOKE_ROIS_PER_IMAGE] * 3
    assert model.train_cfg.rpn_proposal.max_per_img == model.test_cfg.rpn.max_per_img == SMOKE_PROPOSALS_PER_IMAGE
    assert model.test_cfg.rcnn.max_per_img == SMOKE_DETECTIONS_PER_IMAGE
    assert detector_config('gfl_r50', 'smoke').model.test_cfg.max_per_img == SMOKE_DETECTIONS_PER_IMAGE
    assert detector_config('gfl_r50', 'mini').model.test_cfg.max_per_img == 100
    assert detector_config('mask_rcnn_r50', 'mini').model.test_cfg.rcnn.max_per_img == 100
