"""Parameter checks shared across ncf; each error names the parameter, its value and the bound."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ncf.errors import ConfigError

__all__ = ["check_cutoffs", "check_int"]


def check_int(name: str, value: Any, minimum: int = 1, *, maximum: int | None = None, hint: str = "") -> int:
    """``value`` as a Python int, or :class:`ConfigError` unless it is an integer in ``[minimum, maximum]``.

    bool is refused (``True`` is no count); numpy integers are accepted. ``hint`` is appended
    to the message, e.g. ``"0 turns the cache off"``.
    """
    tail = f" ({hint})" if hint else ""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} == {value!r}, must be an integer >= {minimum}{tail}")
    if value < minimum:
        raise ConfigError(f"{name} == {value}, must be >= {minimum}{tail}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} == {value}, must be <= {maximum}{tail}")
    return int(value)


def check_cutoffs(k: int | Sequence[int], name: str = "k") -> list[int]:
    """One cutoff or several (list, tuple, array, range) as a list of ints >= 1."""
    # Anything but a list/tuple/array/range is one cutoff, so 2.5, True or "10" get a ConfigError, not a TypeError.
    ks = list(k) if isinstance(k, list | tuple | np.ndarray | range) else [k]
    if not ks:
        raise ConfigError(f"{name} is empty, give at least one cutoff >= 1")
    return [check_int(name, v) for v in ks]
