"""Errors that speak to the researcher: what was wrong, with which value, and what to do."""
from __future__ import annotations

import difflib
from typing import Iterable, Optional


class KdlabError(Exception):
    """Base class of kdlab's user-facing errors; ``fix`` says what to do about it."""

    def __init__(self, message: str, fix: Optional[str] = None):
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f'{message}\n  fix: {fix}')


class UnknownNameError(KdlabError, KeyError):
    """An unknown paper, table, method, detector, scale... ``kind`` names which."""

    def __init__(self, kind: str, name: str, known: Iterable[str], fix: Optional[str] = None):
        known = sorted(known)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f' Did you mean {close[0]!r}?' if close else ''
        super().__init__(f'unknown {kind} {name!r}.{hint} Known: {", ".join(known)}.',
                         fix or f'use one of the known {kind} names')

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class DataRootError(KdlabError, FileNotFoundError):
    """A dataset root or annotation file that is not where the config says."""


class CheckpointError(KdlabError):
    """A checkpoint that is missing or does not match its config."""


class ChannelMismatchError(KdlabError, ValueError):
    """Teacher and student features whose channels cannot be compared without a connector."""


class RegistryError(KdlabError, ValueError):
    """A file of the paper registry (``papers/<paper>/*.yaml``) that breaks its schema.

    ``problems`` lists each one as a string naming the file, the row and the field.
    """

    def __init__(self, problems: Iterable[str], fix: Optional[str] = None):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = (f'{len(self.problems)} problems in the paper registry:\n  - '
                       + '\n  - '.join(self.problems))
        super().__init__(message, fix or 'edit the file(s) named above to follow docs/papers.md, '
                                         'then run `kdlab papers --check`')


class NotebookError(KdlabError, RuntimeError):
    """A notebook that failed while being executed headless; names the notebook and the failing cell."""


class RunDivergedError(KdlabError, FloatingPointError):
    """A training loss that became NaN or infinite: the run stopped at that iteration.

    ``iteration``, ``epoch`` and ``terms`` (the non-finite loss entries, by name) say where."""

    def __init__(self, message: str, fix: str, *, iteration: int, epoch: int, terms: dict):
        super().__init__(message, fix)
        self.iteration, self.epoch, self.terms = iteration, epoch, dict(terms)


class CheckpointWriteError(KdlabError, OSError):
    """A checkpoint that could not be written (e.g. the disk is full); the previous one is intact."""


class TeacherGateError(KdlabError):
    """A distillation run whose teacher is not the teacher it names (weights not loaded, or overwritten)."""
