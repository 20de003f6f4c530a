"""The committed notebooks are in the form JupyterLab saves them, with kdlab's named kernel, so that opening and
saving one changes nothing (git stays clean, runs trained meanwhile are not 'dirty')."""
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / 'notebooks').glob('*.ipynb'))


@pytest.mark.parametrize('path', NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_a_committed_notebook_is_in_jupyterlabs_saved_form(path, tmp_path):
    import json
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from kdlab.notebooks import KERNEL, canonical
    text = path.read_text()
    assert text == canonical(text), f'{path.name}: run python -c "from kdlab.notebooks import canonical" ... ' \
                                    '(tools/make_reproduce_notebooks.py writes the reproduce ones)'
    meta = json.loads(text)['metadata']
    assert meta['kernelspec']['name'] == KERNEL and meta['language_info']['pygments_lexer'] == 'ipython3'
    # what Jupyter's server does when a user opens the notebook and saves it: byte for byte the same
    copy = tmp_path / path.name
    copy.write_text(text)
    manager = FileContentsManager(root_dir=str(tmp_path))
    model = manager.get(path.name, content=True)
    manager.save(model, path.name)
    assert copy.read_text() == text


def test_the_kdlab_kernel_is_registered_in_this_environment():
    from jupyter_client.kernelspec import KernelSpecManager
    import sys
    from kdlab.notebooks import KERNEL, ensure_kernel
    ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()      # this environment's Python
    assert spec.display_name == 'Python (kdlab)'


def test_a_notebook_opened_and_changed_does_not_make_a_run_dirty(tmp_path, monkeypatch):
    import subprocess
    from kdlab.engine import runner
    git = lambda *a: subprocess.run(['git', *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git('init', '-q')
    (tmp_path / 'notebooks').mkdir()
    (tmp_path / 'notebooks' / 'a.ipynb').write_text('{}')
    (tmp_path / 'code.py').write_text('x = 1\n')
    git('add', '-A')
    git('-c', 'user.email=t@t', '-c', 'user.name=t', 'commit', '-q', '-m', 'init')
    monkeypatch.setattr(runner, 'repo_root', lambda: tmp_path)
    assert runner._git_revision()['dirty'] is False
    (tmp_path / 'notebooks' / 'a.ipynb').write_text('{"metadata": {}}')
    assert runner._git_revision()['dirty'] is False
    (tmp_path / 'code.py').write_text('x = 2\n')
    assert runner._git_revision()['dirty'] is True


def test_a_run_in_a_notebook_prints_its_progress_not_mmengines_dumps(smoke_data, tmp_path, capfd):
    """progress=True (the notebooks, the CLI): the console gets the bar and warnings; mmengine's environment and
    config dump, its notices about its own internals and pycocotools' chatter go to the run's log file only."""
    from kdlab.engine.runner import execute
    from kdlab.engine.store import RunStore
    from kdlab.zoo import detector_config
    cfg = detector_config('retinanet_r18', 'smoke', data_root=str(smoke_data))
    store = RunStore(tmp_path / 'runs', tmp_path / 'work')
    record = execute(cfg, name='quiet', store=store, progress=True)
    out, err = capfd.readouterr()
    for noise in ('System environment', 'Config:', 'loading annotations into memory', 'index created!',
                  '"FileClient" will be deprecated', 'IProgress not found', 'torch.jit.script'):
        assert noise not in out + err, noise
    assert 'quiet' in err + out        # the progress bar (tqdm: stderr; its notebook form, in a test process that
                                       # imported IPython's kernel, prints its text form to stdout)
    log = (store.run_dir(record['key']) / 'train.log').read_text()
    assert 'System environment' in log and 'Config:' in log            # nothing lost: it is in the log
