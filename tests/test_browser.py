"""The notebooks as a researcher meets them: JupyterLab started from the project's environment on localhost, a
real headless Chromium (Debian's ``chromium`` package, driven by Playwright's Python package; no browser is
downloaded at run time) opens a notebook, finds the kdlab kernel, leaves the file unmodified, runs all cells and
shows their outputs without an error. Skipped, saying why, where Chromium or Playwright is not installed."""
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kdlab.engine.launch import _free_port  # a free localhost port, as torchrun gets one

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install Debian's package (apt-get install chromium)"),
    pytest.mark.slow,
]


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    """JupyterLab on a copy of the notebooks, with kdlab's caches and run store in a temporary folder."""
    pytest.importorskip('playwright', reason='Playwright is not installed (pip install playwright)')
    root = tmp_path_factory.mktemp('lab')
    shutil.copytree(REPO / 'notebooks', root / 'notebooks')
    port, token = _free_port(), 'kdlab-test'
    env = dict(os.environ, KDLAB_DATA=str(root / 'cache' / 'data'), KDLAB_WORK=str(root / 'cache' / 'work'),
               KDLAB_RESULTS=str(root / 'runs'), KDLAB_FIGURES=str(root / 'figures'),
               KDLAB_PAPERS=str(REPO / 'papers'), JUPYTER_RUNTIME_DIR=str(root / 'runtime'))
    args = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}',
            f'--IdentityProvider.token={token}', f'--notebook-dir={root / "notebooks"}',
            f'--LabApp.workspaces_dir={root / "workspaces"}',      # no tabs restored from another session
            f'--LabApp.user_settings_dir={root / "settings"}']
    if hasattr(os, 'geteuid') and os.geteuid() == 0:
        args.append('--allow-root')
    news = root / 'settings' / '@jupyterlab' / 'apputils-extension' / 'notification.jupyterlab-settings'
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')          # no "get notified about Jupyter news?" toast over cells
    log = open(root / 'lab.log', 'w')
    server = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{port}/api/status?token={token}', timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise RuntimeError(f'JupyterLab exited: {(root / "lab.log").read_text()[-2000:]}')
                time.sleep(0.5)
        yield dict(url=f'http://127.0.0.1:{port}', token=token, root=root / 'notebooks')
    finally:
        server.terminate()
        server.wait(30)
        log.close()


@pytest.fixture(scope='module')
def browser(lab):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=['--no-sandbox'])
        yield b
        b.close()


def _open_and_run_all(lab, browser, name: str, timeout_s: int):
    page = browser.new_page(viewport={'width': 1400, 'height': 1000})
    before = (lab['root'] / name).read_text()
    committed = (REPO / 'notebooks' / name).read_bytes()
    # a workspace of its own, reset: only this notebook open, whatever an earlier test left in the layout
    page.goto(f"{lab['url']}/lab/workspaces/{Path(name).stem}/tree/{name}?token={lab['token']}&reset")
    page.wait_for_function("() => { const k = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName');"
                           " return k && k.innerText.includes('kdlab'); }", timeout=90_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    assert page.query_selector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty') is None   # opening changed nothing
    assert (lab['root'] / name).read_text() == before
    page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').first.click()        # the notebook has focus
    page.locator('.lm-MenuBar-itemLabel', has_text=re.compile(r'^Run$')).click()      # the menu bar's Run menu
    page.locator('.lm-Menu-itemLabel', has_text=re.compile(r'^Run All Cells$')).click()
    # the kernel goes busy, then idle with no cell waiting ([*]) and the last code cell numbered
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        time.sleep(2)
        done = page.evaluate(
            "() => { const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');"
            " const ps = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]"
            ".map(p => p.innerText);"
            " return ind && ind.dataset.status === 'idle' && ps.length > 0 && !ps.some(t => t.includes('*'))"
            " && /\\[\\d+\\]/.test(ps[ps.length - 1]); }")   # cells out of view render no prompt text
        if done:
            break
    else:
        page.screenshot(path=str(lab['root'].parent / f'{name}.png'))
        raise AssertionError(f'{name}: Run All did not finish in {timeout_s} s (screenshot: '
                             f"{lab['root'].parent / (name + '.png')})")
    outputs = [o.inner_text() for o in page.query_selector_all('.jp-OutputArea-output')]
    errors = [t for t in outputs if 'Traceback' in t or 'Error:' in t.split('\n')[0]]
    last = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output').last
    if last.count():
        last.scroll_into_view_if_needed()                  # the screenshot shows the notebook's last output
    page.screenshot(path=str(lab['root'].parent / f'{Path(name).stem}.png'))           # as a user sees it
    assert (REPO / 'notebooks' / name).read_bytes() == committed                       # the committed file untouched
    return page, outputs, errors


def test_papers_overview_runs_all_in_jupyterlab(lab, browser):
    page, outputs, errors = _open_and_run_all(lab, browser, 'papers_overview.ipynb', timeout_s=180)
    assert not errors, errors[:2]
    assert len(outputs) >= 8 and any('FCOS-R101' in o for o in outputs)        # the cross-paper tables rendered
    page.close()


def test_a_reproduce_notebook_runs_all_without_training(lab, browser):
    """reproduce_pkd with its defaults (train=False) on the committed run store: nothing is trained, every table
    shows the stored runs' numbers beside the paper's, with its conclusion check."""
    from kdlab.notebooks import canonical
    path = lab['root'] / 'reproduce_pkd.ipynb'
    exports = lab['root'].parent / 'exports'
    text = (path.read_text().replace('export_dir = None', f'export_dir = {str(exports)!r}')   # not results/pkd
            .replace('results_dir = None', f"results_dir = {str(REPO / 'results' / 'runs')!r}")
            .replace('tables = None ', "tables = ['abstract']"))          # the table whose runs are all stored
    path.write_text(canonical(text))
    stored = sorted((REPO / 'results' / 'runs').iterdir())
    page, outputs, errors = _open_and_run_all(lab, browser, 'reproduce_pkd.ipynb', timeout_s=300)
    assert not errors, errors[:2]
    joined = '\n'.join(outputs)
    assert 'gain' in joined and 'verdict' in joined.lower()               # the tables and their conclusion check
    assert re.search(r'RetinaNet-R50.*\d+\.\d', joined)                  # stored numbers, not only pending rows
    assert sorted((REPO / 'results' / 'runs').iterdir()) == stored          # nothing trained into the store
    assert not list((lab['root'].parent / 'cache' / 'work').glob('*/last_checkpoint'))
    assert sorted(p.suffix for p in exports.iterdir()) and all(p.stat().st_size for p in exports.iterdir())
    page.close()


def test_an_analysis_notebook_runs_all_and_writes_no_committed_figure(lab, browser):
    """dft_spectra with its defaults: its figures go to the scratch folder, not over results/figures."""
    committed = {p: p.stat().st_mtime for p in (REPO / 'results' / 'figures').rglob('*') if p.is_file()}
    page, outputs, errors = _open_and_run_all(lab, browser, 'dft_spectra.ipynb', timeout_s=300)
    assert not errors, errors[:2]
    assert any(re.search(r'\d+/\d+ images', o) for o in outputs)        # the claims, counted
    assert {p: p.stat().st_mtime for p in (REPO / 'results' / 'figures').rglob('*') if p.is_file()} == committed
    assert list((lab['root'].parent / 'figures').rglob('*.png'))          # written where the fixture points
    page.close()
