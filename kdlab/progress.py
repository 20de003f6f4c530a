"""Progress bars, in one place: tqdm's (``tqdm.auto``: a widget in JupyterLab where ipywidgets is installed, text
in a terminal), redrawn ten times a second where someone watches them (a terminal, a notebook) and once a
minute where they go to a file or a pipe (``nohup kdlab ... > log``, a Slurm job's output, CI): a bar
redrawn ten times a second writes ~100 kB a minute into such a log, most of a long run's log."""
from __future__ import annotations

import sys

#: Seconds between two redraws of a bar: watched, and written to a file or a pipe.
WATCHED_S, LOGGED_S = 0.1, 60.0


def watched() -> bool:
    """Whether bars are seen as they are drawn: stderr is a terminal, or tqdm.auto draws in a notebook (its own
    test: a Jupyter kernel's IPython)."""
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm
    return issubclass(tqdm, notebook_tqdm) or bool(getattr(sys.stderr, 'isatty', lambda: False)())


def progress_bar(*args, **kwargs):
    """``tqdm.auto.tqdm(*args, **kwargs)`` with the redraw interval of :func:`watched`."""
    from tqdm.auto import tqdm
    kwargs.setdefault('mininterval', WATCHED_S if watched() else LOGGED_S)
    return tqdm(*args, **kwargs)
