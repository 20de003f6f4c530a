"""Kill a run mid-training and start it again: it resumes, and the result equals an uninterrupted run.

The same check as ``kdlab resume-check --scale mini`` (kdlab.engine.resume_check), at smoke scale.
"""
import pytest

from kdlab.engine.resume_check import check_resume
from kdlab.errors import KdlabError


def test_killed_run_resumes_and_matches_uninterrupted(smoke_data, tmp_path):
    result = check_resume('retinanet_r18', 'smoke', root=tmp_path, seed=7, epochs=3, kill_after_epoch=1,
                          timeout_s=240, say=lambda _: None)
    assert result['killed_record_before_restart'] is False      # nothing half-stored
    assert result['final_checkpoint_before_restart'] is False
    assert result['resumed'] is True and result['uninterrupted_resumed'] is False
    assert result['attempts'] == 2 and result['log_attempts'] == 2   # both processes' time and log are kept
    assert result['wall_s']['killed'] > 0
    assert result['metrics_resumed'] == result['metrics_uninterrupted']
    assert result['curve_epochs_resumed'] == [1, 2, 3] and result['curves_equal']   # epoch 1 survived the kill
    assert result['same_tensors'] and result['weights_equal'], result['max_weight_abs_diff']
    assert result['passed']


def test_resume_check_refuses_a_kill_epoch_outside_the_schedule(smoke_data, tmp_path):
    with pytest.raises(KdlabError, match='1..2'):
        check_resume('retinanet_r18', 'smoke', root=tmp_path, epochs=3, kill_after_epoch=3, say=lambda _: None)
