"""Shared fixtures. Everything a test writes goes under pytest's tmp dirs, never into the repo or ~/.cache."""
from __future__ import annotations

import os

import pytest

import kdlab  # noqa: F401  (applies kdlab.compat before any OpenMMLab import)


@pytest.fixture(scope='session')
def kdlab_cache(tmp_path_factory):
    """A session-wide cache root for datasets and work dirs, isolated from the user's ~/.cache/kdlab."""
    root = tmp_path_factory.mktemp('kdlab-cache')
    old = {k: os.environ.get(k) for k in ('KDLAB_DATA', 'KDLAB_WORK', 'KDLAB_RESULTS')}
    os.environ['KDLAB_DATA'] = str(root / 'data')
    os.environ['KDLAB_WORK'] = str(root / 'work')
    os.environ['KDLAB_RESULTS'] = str(root / 'results')
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope='session')
def smoke_data(kdlab_cache):
    from kdlab.data import ensure_dataset
    return ensure_dataset('smoke')
