"""Full scale distils from the model zoo's released teachers (kdlab.zoo.released): read from the metafiles the
mmdet wheel ships, served from a local mirror by file name, listed by the plan; none is trained."""
import pytest


def test_the_released_checkpoint_of_a_full_scale_detector_comes_from_mmdets_metafile():
    from kdlab.zoo.released import released
    x101 = released('retinanet_x101', '1x')
    assert x101.config == 'mmdet::retinanet/retinanet_x101-64x4d_fpn_1x_coco.py'
    assert x101.url == ('https://download.openmmlab.com/mmdetection/v2.0/retinanet/retinanet_x101_64x4d_fpn_1x_coco/'
                        'retinanet_x101_64x4d_fpn_1x_coco_20200130-366f5af1.pth')
    assert x101.box_ap == 41.0 and x101.hash == '366f5af1' and x101.metafile.endswith('retinanet/metafile.yml')
    assert released('mask_rcnn_swin_s', '3x').box_ap == 48.2           # DFMSD's and PKD's Swin-S teacher
    assert released('retinanet_swin_t', '1x') is None                 # the zoo released no such checkpoint


def test_a_local_mirror_serves_a_checkpoint_by_file_name(tmp_path, monkeypatch):
    from kdlab.zoo.released import local_or_url, released
    url = released('reppoints_x101', '2x').url                        # its file name holds '%2B'
    assert local_or_url(url, tmp_path) == url                         # not mirrored: the URL (mmengine downloads)
    (tmp_path / 'reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck+head_2x_coco_20200329-f87da1ea.pth').write_bytes(b'x')
    monkeypatch.setenv('KDLAB_CHECKPOINTS', str(tmp_path))
    assert local_or_url(url).endswith('gn-neck+head_2x_coco_20200329-f87da1ea.pth')


def test_a_full_scale_plan_names_the_released_teachers_and_trains_none(tmp_path):
    from kdlab.engine.batch import released_lines
    from kdlab.engine.reproduce import reproduction
    from kdlab.engine.store import RunStore
    job = reproduction('pkd', None, 'full', store=RunStore(tmp_path / 'runs', tmp_path / 'work'))
    teachers = [r for r in job.runs().values() if r.role == 'teacher']
    assert teachers and all(r.cfg.get('kdlab_provided') and r.cfg.kdlab_released['url'].startswith('https://')
                            for r in teachers)
    assert all(r.cfg.load_from == r.cfg.kdlab_released['url'] for r in teachers)   # the key names the URL
    lines = released_lines(job.runs().values())
    assert sum(line.startswith('teacher ') and 'to fetch: https://' in line for line in lines) == len(teachers)
    assert lines[-1].startswith(f'{len(teachers)} checkpoint(s) to download') and '--checkpoint-dir' in lines[-1]


def test_a_released_teacher_must_score_its_zoo_box_ap_before_anything_is_stored():
    from kdlab.engine.runner import _released_gate
    from kdlab.errors import TeacherGateError
    from kdlab.zoo.released import released
    rel = released('retinanet_x101', '1x')
    info = dict(name=rel.name, url=rel.url, file=rel.file, hash=rel.hash, box_AP=rel.box_ap, metafile=rel.metafile)
    _released_gate(info, 41.2, '/mirror/' + rel.file)                   # within 0.5 of the zoo's 41.0
    with pytest.raises(TeacherGateError, match=r'scores 12\.3 mAP here; the model zoo reports 41\.0') as err:
        _released_gate(info, 12.3, '/mirror/' + rel.file)
    assert '366f5af1' in err.value.fix and 'val2017' in err.value.fix


def test_gpu_hours_before_starting_from_the_model_zoo_anchor(tmp_path):
    from kdlab.engine.batch import gpu_hours_table
    from kdlab.engine.reproduce import reproduction
    from kdlab.engine.store import RunStore
    from kdlab.zoo.throughput import gpu_hours
    # the anchor itself: 12 epochs x 118,287 images x 0.205 s / 2 images = 40.4 V100-hours
    assert gpu_hours('retinanet_r50', '1x') == pytest.approx(12 * 118_287 * 0.1025 / 3600)
    assert gpu_hours('retinanet_r50', '1x') < gpu_hours('retinanet_r101', '1x') < gpu_hours('retinanet_x101', '1x')
    distilled = gpu_hours('retinanet_r50', '1x', [('retinanet_x101', '1x')])
    assert distilled == pytest.approx(gpu_hours('retinanet_r50', '1x') * (1 + 114.94 / 52.63 / 3))
    assert gpu_hours('retinanet_x101', '1x', evaluate_only=True) < 0.5
    assert gpu_hours('tood_x101', '2x_ms') > gpu_hours('tood_r50', '2x_ms')   # no inference time listed: backbone ratio
    job = reproduction('pkd', ['abstract'], 'full', store=RunStore(tmp_path / 'runs', tmp_path / 'work'))
    table = gpu_hours_table(job.runs().values())
    assert len(table) == len(job.runs()) and set(table['does']) == {'train', 'evaluate'}
    assert table.attrs['total'] == pytest.approx(table['gpu_hours'].sum(), abs=0.2)


def test_the_imagenet_weights_of_a_plan_are_listed_and_served_from_the_mirror(tmp_path, monkeypatch):
    """The students' ImageNet weights as the official configs name them (torchvision://, open-mmlab://),
    resolved without torchvision; a distiller's teacher given its checkpoint reads none; a mirror file is linked
    where mmengine's own torchvision:// loader finds it, so it loads without a download."""
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader
    from kdlab.engine.reproduce import reproduction
    from kdlab.zoo import detector_config
    from kdlab.zoo.released import (backbone_weight_lines, backbone_weights, hub_checkpoints,
                                    stage_backbone_weights)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    r50 = 'https://download.pytorch.org/models/resnet50-0676ba61.pth'
    assert backbone_weights(detector_config('retinanet_r50', 'full').model) == [('torchvision://resnet50', r50)]
    assert backbone_weights(detector_config('fcos_r50', 'full').model)[0][0] == 'open-mmlab://detectron/resnet50_caffe'

    job = reproduction('pkd', ['abstract'], 'full')
    lines = '\n'.join(backbone_weight_lines(job.runs().values()))
    assert f'to fetch: torchvision://resnet50 = {r50}' in lines
    assert 'swin_small' not in lines                   # the released Swin teacher's checkpoint replaces its init
    distilled = next(r for r in job.runs().values() if r.role == 'distilled')
    assert [u for _, u in backbone_weights(distilled.cfg.model)] == [r50]

    mirror = tmp_path / 'mirror'
    mirror.mkdir()
    torch.save({'conv1.weight': torch.full((2, 2), 7.0)}, mirror / 'resnet50-0676ba61.pth')
    monkeypatch.setenv('KDLAB_CHECKPOINTS', str(mirror))
    made = stage_backbone_weights(detector_config('retinanet_r50', 'full').model)
    assert made == [hub_checkpoints() / 'resnet50-0676ba61.pth']
    loaded = CheckpointLoader.load_checkpoint('torchvision://resnet50', map_location='cpu')
    assert float(loaded['conv1.weight'][0, 0]) == 7.0                 # the mirror's file, no download
    assert 'to fetch: torchvision://resnet50' not in '\n'.join(backbone_weight_lines(job.runs().values()))
