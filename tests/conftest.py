"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest

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
