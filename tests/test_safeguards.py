"""Safeguards against silent failures: a run that diverges stops at once, says where, stores a 'diverged'
record (never over a finished one) and keeps its last good checkpoint."""
import json

import pytest

from kdlab.engine.store import RunStore


def _smoke(smoke_data, lr, epochs=2):
    from kdlab.zoo import detector_config
    cfg = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data))
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.optim_wrapper.clip_grad = None
    cfg.train_cfg.max_epochs = epochs
    cfg.param_scheduler = []
    return cfg


def test_a_diverging_run_stops_names_the_iteration_and_term_and_is_stored_as_diverged(smoke_data, tmp_path):
    import math
    from kdlab.engine.runner import execute, run_key
    from kdlab.errors import RunDivergedError
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    cfg = _smoke(smoke_data, lr=1e12)
    key = run_key(cfg)
    with pytest.raises(RunDivergedError, match=r'diverged at iteration \d+ \(epoch 1\): .*loss') as err:
        execute(cfg, name='diverging', store=store, progress=False)
    assert err.value.terms and not any(math.isfinite(v) for v in err.value.terms.values())
    assert store.load(key) is None                                # not a finished run: the next call trains again
    record = json.loads((store.run_dir(key) / 'run.json').read_text())
    assert record['status'] == 'diverged' and record['diverged']['iteration'] == err.value.iteration
    assert set(record['diverged']['terms']) == set(err.value.terms)
    assert record['checks']['lr_batch']['lr'] == pytest.approx(1e12)
    assert 'fix' not in record and 'lower the learning rate' in err.value.fix
