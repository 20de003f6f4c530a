"""The feature-loss benchmark runs every case (on tiny shapes here) and reports time, ratio and memory."""
import pytest

from benchmarks import feature_losses as fl


def test_every_case_runs_and_reports(monkeypatch):
    monkeypatch.setattr(fl, 'FPN_SHAPES', [(8, 10), (4, 5), (2, 3), (1, 2), (1, 1)])
    monkeypatch.setattr(fl, 'CHANNELS', 16)
    monkeypatch.setattr(fl, 'CLASSES', 2)
    rows = [fl.worker(case, warmup=1, repeats=2) for case in fl.CASES]
    assert [r['case'] for r in rows] == list(fl.CASES)
    for r in rows:
        assert r['median_s'] > 0 and r['pkd_median_s'] > 0 and len(r['times_s']) == 2
        assert r['ratio'] == pytest.approx(r['median_s'] / r['pkd_median_s'])
        assert r['peak_mib'] >= 0
    assert rows[0]['ratio'] == 1.0                     # PKD against itself
    table = fl.format_table(rows)
    assert all(case in table for case in fl.CASES) and 'x PKD' in table


def test_unknown_case_is_refused():
    with pytest.raises(SystemExit):
        fl.main(['--only', 'pkd,nope'])
