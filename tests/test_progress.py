"""Progress bars redraw ten times a second where they are watched and once a minute into a log file."""
from __future__ import annotations

import io
import sys

from kdlab import progress


def test_a_bar_written_to_a_file_redraws_once_a_minute(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, 'stderr', log)
    monkeypatch.delitem(sys.modules, 'ipykernel', raising=False)
    assert not progress.watched()
    assert _redraws(log) <= 12                     # 600 iterations of one second: once a minute


def _redraws(stream) -> int:
    """How often a bar over 600 iterations of one (simulated) second each is drawn on ``stream``."""
    clock = iter(range(100_000))
    bar = progress.progress_bar(total=600, desc='train', file=stream)
    bar._time = lambda: float(next(clock))         # tqdm reads its clock through this attribute
    bar.last_print_t = bar.start_t = bar._time()
    for _ in range(600):
        bar.update(1)
    bar.close()
    return stream.getvalue().count('\r')


def test_a_watched_bar_redraws_often(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.setattr(sys, 'stderr', Terminal())
    assert progress.watched()
    assert progress.progress_bar(total=1, file=io.StringIO()).mininterval == progress.WATCHED_S
    assert _redraws(io.StringIO()) >= 300
