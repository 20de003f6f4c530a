"""The conclusion check of a reproduced table (kdlab.engine.conclusions): signs, sizes, order, spread."""
import math

import pandas as pd
import pytest


def _frame(rows):
    cols = ['row', 'teacher', 'student', 'method', 'gain paper', 'gain kdlab', 'gain sd']
    frame = pd.DataFrame([dict(zip(cols, r)) for r in rows])
    frame.attrs.update(paper='p', table='t')
    return frame


def test_a_block_that_agrees_in_sign_and_order():
    from kdlab.engine.conclusions import conclusion_check
    frame = _frame([('b', 'none', 'S', 'baseline', math.nan, math.nan, math.nan),
                    ('1', 'T', 'S', 'a', 1.0, 2.0, 0.2), ('2', 'T', 'S', 'b', 2.0, 3.0, 0.2),
                    ('3', 'T', 'S', 'c', 3.0, 7.0, 0.4)])
    checks = conclusion_check(frame)
    assert len(checks) == 1                            # one block: it is the whole table
    c = checks.iloc[0]
    assert c['block'] == 'all (T -> S)' and c['rows'] == 3 and c['same sign'] == 3 and c['within spread'] == 0
    assert c['median ratio'] == pytest.approx(2.0) and c['rho'] == pytest.approx(1.0)
    assert c['gain sd'] == pytest.approx(0.2)
    assert c['verdict'].startswith('agrees: signs agree in 3/3') and 'order rho +1.00' in c['verdict']


def test_reversed_order_wrong_signs_and_gains_within_the_spread_are_said():
    from kdlab.engine.conclusions import conclusion_check
    frame = _frame([('1', 'T', 'S', 'a', 1.0, 3.0, 0.5), ('2', 'T', 'S', 'b', 2.0, 2.0, 0.5),
                    ('3', 'T', 'S', 'c', 3.0, -0.5, 0.5), ('4', 'U', 'S', 'a', 1.0, 0.3, math.nan)])
    checks = conclusion_check(frame).set_index('block')
    t = checks.loc['T -> S']
    assert t['same sign'] == 2 and t['within spread'] == 1 and t['rho'] == pytest.approx(-1.0)
    assert t['verdict'].startswith('disagrees') and '1/3 within 2 sd of zero (not results)' in t['verdict']
    u = checks.loc['U -> S']
    assert u['rows'] == 1 and math.isnan(u['rho']) and 'one seed: spread unknown' in u['verdict']
    whole = checks.loc['all']
    assert whole['rows'] == 4 and whole['same sign'] == 3
    assert math.isnan(whole['within spread'])          # one row without a spread: unknown for the table
    assert '1/4 rows of one seed: spread partly unknown' in whole['verdict']   # not 'one seed' for all


def test_the_summary_reads_every_reproduced_table_of_a_scale(tmp_path):
    from kdlab.engine.conclusions import summary
    for paper, gains in (('p1', [(1.0, 1.5), (2.0, 1.0)]), ('p2', [(1.0, -1.0)])):
        rows = [(str(i), 'T', 'S', f'm{i}', g, k, math.nan) for i, (g, k) in enumerate(gains)]
        (tmp_path / paper).mkdir()
        _frame(rows).to_csv(tmp_path / paper / 'table1_mini.csv', index=False)
    (tmp_path / 'leaderboard').mkdir()
    (tmp_path / 'leaderboard' / 'leaderboard_mini.csv').write_text('student,teacher\n')     # nothing to check yet
    result = summary('mini', tmp_path)
    assert list(result['paper']) == ['p1', 'p2'] and list(result['same sign']) == [2, 0]
    (tmp_path / 'leaderboard' / 'leaderboard_mini.csv').write_text(        # a board: checked against the papers
        'student,teacher,method,seeds,mAP,mAP_sd,gain,gain_sd\n'
        'retinanet_r50,retinanet_x101,baseline,1,50.0,,,\n'
        'retinanet_r50,retinanet_x101,pkd,1,52.0,,2.0,\n'
        'retinanet_r50,retinanet_x101,amd,1,49.0,,-1.0,\n')
    result = summary('mini', tmp_path)
    board = result[result['paper'] == 'leaderboard'].iloc[0]
    assert board['rows'] == 2 and board['same sign'] == 1 and board['table'] == 'mini'
    md = (tmp_path / 'summary_mini.md').read_text()
    assert '2 tables, 2 of 3 distilled rows with the paper\'s sign of gain (67%)' in md
    assert (tmp_path / 'summary_mini.csv').is_file()


def test_mini_v2_results_are_named_apart_from_v1s(tmp_path, monkeypatch):
    """A v2 table is written as <table>_mini_v2 and summarised on its own: v1's files are never overwritten."""
    from kdlab.engine.conclusions import summary
    from kdlab.engine.report import export
    from kdlab.zoo import scale_label
    monkeypatch.setenv('KDLAB_MINI', 'v2')
    assert (scale_label('mini'), scale_label('mini', 'v1'), scale_label('full')) == ('mini_v2', 'mini', 'full')
    rows = [('0', 'T', 'S', 'm0', 1.0, 2.0, math.nan)]
    (tmp_path / 'p1').mkdir()
    _frame(rows).to_csv(tmp_path / 'p1' / 'table1_mini.csv', index=False)         # v1's, left alone
    frame = _frame([('0', 'T', 'S', 'm0', 1.0, -1.0, math.nan)])
    frame.attrs.update(paper='p1', table='table1', scale='mini', label=scale_label('mini'), seeds=[0])
    paths = export(frame, tmp_path / 'p1', formats=['csv'], figure=False)
    assert [p.name for p in paths] == ['table1_mini_v2.csv', 'table1_mini_v2_conclusions.csv']
    assert list(summary('mini_v2', tmp_path)['same sign']) == [0]
    assert list(summary('mini', tmp_path)['same sign']) == [1]
