"""The papers overview notebook runs headless (papermill) and writes only where it is told to."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip('papermill')
pytest.importorskip('pandas')

from kdlab import papers  # noqa: E402
from kdlab.errors import NotebookError  # noqa: E402
from kdlab.notebooks import execute  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / 'notebooks' / 'papers_overview.ipynb'


def _outputs(nb_path: Path):
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    return [o for c in nb['cells'] if c['cell_type'] == 'code' for o in c.get('outputs', [])]


def _stream_text(outputs) -> str:
    return ''.join(''.join(o.get('text', '')) for o in outputs if o.get('output_type') == 'stream')


@pytest.mark.slow
def test_papers_overview_runs_headless(tmp_path):
    work = tmp_path / 'work'
    executed = execute(NOTEBOOK, {'papers_root': str(REPO / 'papers'), 'output_dir': str(work / 'csv')},
                       work / 'papers_overview.out.ipynb', cwd=work)
    outputs = _outputs(executed)
    assert not [o for o in outputs if o.get('output_type') == 'error']
    text = _stream_text(outputs)
    n_tables = sum(len(papers.list_tables(p)) for p in papers.list_papers())
    assert f'rendered {n_tables} tables' in text
    assert 'gains' in text and 'FAILING' not in text
    html = ''.join(''.join(o.get('data', {}).get('text/html', '')) for o in outputs)
    assert html.count('DFMSD paper, seed 003, Table') >= 11          # every DFMSD table rendered
    assert 'Faster R-CNN-R101 -&gt; Faster R-CNN-R50' in html or 'Faster R-CNN-R101 -> Faster R-CNN-R50' in html
    # it wrote the executed copy and the CSVs it was asked for, nothing else
    assert sorted(p.name for p in work.iterdir()) == ['csv', 'papers_overview.out.ipynb']
    assert sorted(p.name for p in (work / 'csv').iterdir()) == ['compare_pairs_mAP.csv', 'registry_rows.csv']
    # the source notebook is untouched (no outputs)
    assert all(not c.get('outputs') for c in json.loads(NOTEBOOK.read_text())['cells'] if c['cell_type'] == 'code')


@pytest.mark.slow
def test_a_failing_notebook_names_the_cell(tmp_path):
    source = tmp_path / 'broken.ipynb'
    cell = {'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None}
    nb = {'cells': [dict(cell, id='a', metadata={'tags': ['parameters']}, source='x = 1'),
                    dict(cell, id='b', source='y = x + 1'),
                    dict(cell, id='c', source="raise ValueError('boom at y=%d' % y)")],
          'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}},
          'nbformat': 4, 'nbformat_minor': 5}
    source.write_text(json.dumps(nb))
    with pytest.raises(NotebookError) as err:
        execute(source, {'x': 2}, tmp_path / 'out' / 'broken.out.ipynb')
    message = str(err.value)
    assert 'broken.ipynb' in message and 'code cell 3' in message and 'ValueError: boom at y=3' in message


def test_an_interrupted_execution_leaves_the_previous_executed_copy_whole(tmp_path, monkeypatch):
    import papermill
    from kdlab.notebooks import running_copy
    out = tmp_path / 'reproduce_pkd_mini.ipynb'
    out.write_text('{"the": "previous executed copy"}')

    def killed_half_way(source, output, **kwargs):
        Path(output).write_text('{"half": "of an execution"}')
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, 'execute_notebook', killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        execute(NOTEBOOK, None, out)
    assert out.read_text() == '{"the": "previous executed copy"}'
    assert running_copy(out) == tmp_path / 'reproduce_pkd_mini.running.ipynb'
    assert running_copy(out).read_text() == '{"half": "of an execution"}'

    def finished(source, output, **kwargs):
        Path(output).write_text('{"a": "new executed copy"}')

    monkeypatch.setattr(papermill, 'execute_notebook', finished)
    assert execute(NOTEBOOK, None, out) == out
    assert out.read_text() == '{"a": "new executed copy"}' and not running_copy(out).exists()
