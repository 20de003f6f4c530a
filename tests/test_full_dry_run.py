"""Full-resolution dry runs (kdlab.engine.dry_run): a row's full-scale run, its official config at 1333 x 800,
trains two iterations and evaluates once on the CPU, with generated data and stand-in checkpoints (no download).

One row per method and per detector family of the seed tables (students: RetinaNet, FCOS, GFL, RepPoints, TOOD,
Faster R-CNN, Mask R-CNN; teachers also Cascade Mask R-CNN; DFMSD's two SAL stages). Each takes one to three
minutes on one core, so `make test` runs the first (CrossKD, FCOS-R50 <- R101) and `make test-full-dry` all of
them (README: their measured time)."""
from __future__ import annotations

import math

import pytest

ROWS = [
    ('crosskd', 'readme', 'fcos_r101.fcos_r50.crosskd'),                  # FCOS; in make test
    ('dcsf_kd', 'table1', 'gfl_r101.gfl_r50.pkd'),                          # PKD, GFL
    ('dcsf_kd', 'table1', 'tood_x101.tood_r50.dcsf_kd'),                    # DCSF-KD, TOOD
    ('icd', 'readme', 'mask_rcnn_r101.mask_rcnn_r50.icd'),                  # ICD, Mask R-CNN
    ('dcsf_kd', 'table1', 'faster_rcnn_r101.faster_rcnn_r50.fgd'),          # FGD, Faster R-CNN
    ('dfmsd', 'table6', 'reppoints_r101-x101.reppoints_r50.mgd'),           # MGD, RepPoints
    ('amd', 'abstract', 'retinanet_teacher.amd'),                           # AMD, RetinaNet
    ('dfmsd', 'table2', 'cmr_r101-x101.retinanet_r50.dmkd'),                # DMKD, Cascade Mask R-CNN teacher
    ('dsamkd', 'abstract', 'retinanet_teacher.dsamkd'),                     # DSAMKD
    ('dfmsd', 'table4', 'fcos_r101-x101.gfl_r50.dfmsd'),                    # DFMSD: stage 2 after stage 1
]
PARAMS = [pytest.param(*ROWS[0], id=ROWS[0][2])] + [
    pytest.param(*row, id=row[2], marks=pytest.mark.full_dry) for row in ROWS[1:]]


@pytest.fixture(scope='module')
def coco_1333(tmp_path_factory):
    from kdlab.engine.dry_run import full_resolution_coco
    return full_resolution_coco(tmp_path_factory.mktemp('coco_1333'))


@pytest.mark.parametrize('paper,table,row', PARAMS)
def test_a_full_scale_run_trains_and_evaluates_at_full_resolution(paper, table, row, coco_1333, tmp_path):
    from kdlab.engine.dry_run import dry_run, plan_row
    plan, key = plan_row(paper, table, row, coco_1333)
    run = plan.runs[key]
    assert run.role in ('distilled', 'stage') and run.cfg.model.type != 'mmdet.RetinaNet'
    out = dry_run(plan, key, tmp_path)
    assert len(out['losses']) == 2
    assert max(out['input_shape']) >= 1024 and min(out['input_shape']) >= 600     # resized as COCO is
    for losses in out['losses']:
        assert all(math.isfinite(v) for v in losses.values()), losses
        distill = {k: v for k, v in losses.items() if k.startswith('distill.')}
        assert distill, f'no distillation loss in {sorted(losses)}'
    if row.rsplit('.', 1)[-1] != 'crosskd':     # CrossKD's loss compares two untrained heads' outputs: ~0
        assert sum(distill.values()) > 0
    assert 'bbox_mAP' in out['metrics'] and 0.0 <= out['metrics']['bbox_mAP'] <= 1.0
    assert not list(tmp_path.rglob('epoch_*.pth'))         # a dry run writes no checkpoint


def test_the_dry_run_needs_no_checkpoint_download(coco_1333, tmp_path, monkeypatch):
    """Every checkpoint a dry run loads is a local stand-in: loading a URL fails the test."""
    import mmengine.runner.checkpoint as ckpt
    from kdlab.engine.dry_run import dry_config, plan_row

    def no_download(*args, **kwargs):
        raise AssertionError(f'download attempted: {args} {kwargs}')
    monkeypatch.setattr(ckpt, 'load_from_http', no_download)
    plan, key = plan_row('dfmsd', 'table4', 'fcos_r101-x101.gfl_r50.dfmsd', coco_1333)
    cfg = dry_config(plan, key, tmp_path)
    text = cfg.pretty_text
    assert 'https://' not in text and 'torchvision://' not in text and 'open-mmlab://' not in text
    assert str(tmp_path / 'stand_ins') in text           # the teacher and stage 1 are stand-ins
