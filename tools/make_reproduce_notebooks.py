"""Write ``notebooks/reproduce_<paper_id>.ipynb`` for every paper with reported tables of its own.

The notebooks are thin and identical but for the paper: the work is in :mod:`kdlab.engine.reproduce` and
:mod:`kdlab.engine.report`. Run this after changing their layout (``python tools/make_reproduce_notebooks.py``);
``tests/test_reproduce_notebooks.py`` checks that the committed notebooks are what it writes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The seed papers, whose tables the test suite reproduces at smoke scale.
SEED_PAPERS = ('pkd', 'dcsf_kd', 'dsamkd', 'icd', 'dfmsd')
#: The baselines' own results (README tables, AMD's abstract): the same notebook, for `kdlab reproduce fgd` etc.
#: The suite does not run them at smoke scale (the template is the one the seed papers test; their pairs are
#: also rows of the seed tables).
BASELINE_PAPERS = ('mgd', 'fgd', 'crosskd', 'amd')
#: Every paper with reported tables of its own: one reproduction notebook each.
PAPERS = SEED_PAPERS + BASELINE_PAPERS


def _cell(kind: str, text: str, tags=()) -> dict:
    cell = {'cell_type': kind, 'metadata': {'tags': list(tags)} if tags else {},
            'source': text.strip('\n').splitlines(keepends=True)}
    if kind == 'code':
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(paper_id: str, title: str) -> dict:
    cells = [
        _cell('markdown', f'''
# Reproduce {title}

Every table kdlab has registered for `{paper_id}` (`papers/{paper_id}/`), reported and re-run side by side.
Each row becomes runs (its teachers, its baseline student, the distilled student; a run shared by rows,
tables or papers is trained once), trained and evaluated with COCO metrics, stored under `results/runs/`
with config and provenance. Rows not run yet show as *pending*; rows kdlab cannot run say why.

At `smoke` and `mini` scale the models are tiny detectors on the embedded synthetic data: compare the
**gain over the baseline** (`gain paper` vs `gain kdlab`), not the absolute numbers. At `full` scale (COCO,
GPUs) the per-cell `delta` is the reproduction error. Headless: `kdlab reproduce {paper_id} --scale mini`.
'''),
        _cell('code', f'''
# Parameters (papermill overrides these)
paper_id = {paper_id!r}
tables = None          # None: every table of the paper; e.g. ['table1']
rows = None            # None: every row; row ids as `kdlab papers {paper_id} --table ID` prints them
scale = 'mini'         # 'smoke' (seconds), 'mini' (CPU minutes per run), 'full' (COCO, GPUs)
data_root = None       # None: the embedded synthetic dataset (smoke, mini); the COCO root at full scale
work_dir = None        # checkpoints; None: $KDLAB_WORK or ~/.cache/kdlab/work
results_dir = None     # the run store; None: $KDLAB_RESULTS or results/runs
export_dir = None      # tables and figures; None: results/{paper_id}
teacher_ckpts = {{}}     # zoo name -> checkpoint path or URL of a teacher to evaluate instead of train (full)
teacher_input = 'student'  # 'student': the teacher is fed the student's batch (released code); 'own'
device = 'auto'        # 'auto', 'cpu' or 'cuda'
gpus = 1               # processes per run (torchrun, mmengine's pytorch launcher) when > 1
workers = 1            # runs trained at once on the CPU, each with cores // workers threads
seeds = [0]            # several seeds: mean and spread per cell
resume = True          # resume interrupted runs from their last checkpoint (False: restart them)
train = False          # True: train what is not stored (the cell below says what, and for how long)
formats = ['csv', 'md', 'tex', 'png']   # exported files per table ([] writes none)
''', tags=['parameters']),
        _cell('code', '''
from IPython.display import Markdown, display

from kdlab import papers
from kdlab.engine import conclusions, report, reproduce
from kdlab.engine.store import RunStore

meta = papers.load_paper(paper_id)
display(Markdown(f"**{meta['title']}** ({meta['venue']} {meta['year']}); code: {meta['code']['url'] or 'none'}"))
job = reproduce.reproduction(paper_id, tables, scale, rows=rows, seeds=seeds, data_root=data_root,
                             store=RunStore(results_dir, work_dir), teacher_ckpts=teacher_ckpts,
                             teacher_input=teacher_input)
job.summary()
'''),
        _cell('code', '''
if train:      # an interrupt stops cleanly: what finished is stored, running the cell again resumes
    job.run(resume=resume, gpus=gpus, device=device, workers=workers, interrupt='stop')
else:
    todo = job.estimate()
    if len(todo):
        display(Markdown(f'**{job.estimate_note(todo)}**; set `train = True` in the parameters cell to train them. '
                         'The tables below show what is stored.'))
        display(todo)
'''),
        _cell('code', '''
for table in job.tables:
    frame = job.compare(table)
    display(report.styled(frame))
    display(conclusions.styled(conclusions.conclusion_check(frame)))   # does this scale reach the paper's conclusion?
    if formats:
        for path in report.export(frame, export_dir, formats=formats):
            print('wrote', path)
'''),
    ]
    for i, cell in enumerate(cells):
        cell['id'] = f'cell-{i:02d}'
    return {'cells': cells, 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}


def render(paper_id: str) -> str:
    sys.path.insert(0, str(ROOT))
    from kdlab import notebooks, papers
    title = papers.load_paper(paper_id)['title']
    return notebooks.canonical(json.dumps(notebook(paper_id, title)))   # the form JupyterLab saves


def main() -> int:
    for pid in PAPERS:
        path = ROOT / 'notebooks' / f'reproduce_{pid}.ipynb'
        path.write_text(render(pid))
        print('wrote', path.relative_to(ROOT))
    return 0


if __name__ == '__main__':
    sys.exit(main())
