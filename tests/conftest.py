"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest
import torch

from ncf.errors import DataError


@pytest.fixture(scope="session")
def ml100k():
    """The real MovieLens-100k (cached after the first fetch); skipped when unobtainable, except in CI."""
    from ncf.data.movielens import movielens_100k

    try:
        return movielens_100k()
    except DataError as e:
        if os.environ.get("CI"):
            pytest.fail(f"MovieLens-100k is required in CI but could not be obtained: {e}")
        pytest.skip(f"MovieLens-100k not available: {e}")


@pytest.fixture(scope="module")
def one_thread():
    """One torch and one BLAS thread: small models run faster (no thread hand-offs), results do not
    depend on the core count, and a loaded 2-core machine does not make OpenBLAS spin (EASE's solve
    went from 0.2 s to 8 s). Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = None
    else:
        limits = threadpool_limits(1, "blas")
    yield
    if limits is not None:
        limits.restore_original_limits()
    torch.set_num_threads(before)
