"""The leaderboard notebook runs headless on the stored runs: the board, its conclusion check against the papers'
gains for the pair, the figure; it writes only where it is told to and trains nothing unless told to."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip('papermill')

from kdlab.notebooks import execute  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / 'notebooks' / 'leaderboard.ipynb'


@pytest.mark.slow
def test_the_leaderboard_notebook_reads_the_stored_v1_cell_against_the_papers(tmp_path, monkeypatch):
    monkeypatch.delenv('KDLAB_RESULTS', raising=False)        # the committed run store, not a test session's
    work = tmp_path / 'work'
    params = {'protocol': 'v1', 'pairs': ['retinanet_r50:retinanet_x101'], 'methods': ['amd', 'dmkd', 'dsamkd'],
              'seeds': [0, 1, 2], 'output_dir': str(work / 'out')}
    executed = execute(NOTEBOOK, params, work / 'leaderboard.out.ipynb', cwd=work)
    cells = json.loads(Path(executed).read_text())['cells']
    outputs = [o for c in cells if c['cell_type'] == 'code' for o in c.get('outputs', [])]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    text = ''.join(''.join(o.get('text', '')) for o in outputs if o.get('output_type') == 'stream')
    # the committed v1 runs: AMD +0.6, DMKD +11.2, DSAMKD +13.7 against the papers' +3.9, +4.1, +4.1
    assert 'signs agree in 3/3' in text
    assert sorted(p.name for p in (work / 'out').iterdir()) == [
        'curves_mini_retinanet_r50_retinanet_x101.png', 'leaderboard_mini.csv', 'leaderboard_mini.png',
        'leaderboard_mini_conclusions.csv']
    assert all(not c.get('outputs') for c in json.loads(NOTEBOOK.read_text())['cells'] if c['cell_type'] == 'code')
