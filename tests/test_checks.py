"""ncf.checks: the one integer check (messages name the parameter, the value and the bound)."""

from __future__ import annotations

import numpy as np
import pytest

from ncf.checks import check_cutoffs, check_int
from ncf.errors import ConfigError


def test_check_int_accepts_ints_and_numpy_ints():
    assert check_int("k", 3) == 3
    v = check_int("n", np.int64(0), 0)
    assert v == 0 and type(v) is int
    assert check_int("k", 5, maximum=5) == 5


@pytest.mark.parametrize("bad", [True, 2.0, "3", None, np.bool_(True)])
def test_check_int_refuses_non_integers(bad):
    with pytest.raises(ConfigError, match=r"^k == .* must be an integer >= 1$"):
        check_int("k", bad)


def test_check_int_bounds_and_hint():
    with pytest.raises(ConfigError, match=r"^factors == 0, must be >= 1$"):
        check_int("factors", 0)
    with pytest.raises(ConfigError, match=r"^k == 6, must be <= 5$"):
        check_int("k", 6, maximum=5)
    with pytest.raises(ConfigError, match=r"cache_top == -1, must be >= 0 \(0 turns the cache off\)"):
        check_int("cache_top", -1, 0, hint="0 turns the cache off")


def test_check_cutoffs():
    assert check_cutoffs(10) == [10]
    assert check_cutoffs((5, np.int32(10))) == [5, 10]
    assert check_cutoffs(range(1, 3)) == [1, 2]
    with pytest.raises(ConfigError, match="k is empty"):
        check_cutoffs([])
    with pytest.raises(ConfigError, match="k == 0"):
        check_cutoffs([5, 0])
    with pytest.raises(ConfigError, match="integer"):
        check_cutoffs("10")
