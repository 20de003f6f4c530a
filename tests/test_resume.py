"""Kill a run mid-training and start it again: it resumes, and the result equals an uninterrupted run."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import torch

from kdlab.engine.store import RunStore

SCRIPT = textwrap.dedent('''
    import sys, kdlab
    from kdlab.zoo import detector_config
    from kdlab.engine.runner import execute
    from kdlab.engine.store import RunStore
    cfg = detector_config('retinanet_r18', 'smoke')
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 3
    cfg.randomness = dict(seed=7, deterministic=True)
    execute(cfg, name='resume-test', store=RunStore(sys.argv[1], sys.argv[2]), progress=False)
''')


def _config():
    from kdlab.zoo import detector_config
    cfg = detector_config('retinanet_r18', 'smoke')
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 3
    cfg.randomness = dict(seed=7, deterministic=True)
    return cfg


def _weights(path):
    from kdlab.compat import load_local_checkpoint
    return load_local_checkpoint(path, 'cpu')['state_dict']


def test_killed_run_resumes_and_matches_uninterrupted(smoke_data, tmp_path):
    from kdlab.engine.runner import execute, run_key
    killed = RunStore(tmp_path / 'killed' / 'results', tmp_path / 'killed' / 'work')
    key = run_key(_config())
    marker = killed.work_dir(key) / 'last_checkpoint'
    proc = subprocess.Popen([sys.executable, '-c', SCRIPT, str(killed.root), str(killed.work_root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if marker.is_file() and 'epoch_1' in marker.read_text():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
    assert killed.load(key) is None                      # nothing half-stored
    assert not (killed.work_dir(key) / 'epoch_3.pth').exists()

    resumed = execute(_config(), name='resume-test', store=killed, progress=False)
    assert resumed['resumed'] is True

    clean = RunStore(tmp_path / 'clean' / 'results', tmp_path / 'clean' / 'work')
    uninterrupted = execute(_config(), name='resume-test', store=clean, progress=False)
    assert uninterrupted['resumed'] is False and uninterrupted['key'] == resumed['key']
    assert resumed['metrics'] == uninterrupted['metrics']
    a, b = _weights(resumed['checkpoint']), _weights(uninterrupted['checkpoint'])
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
