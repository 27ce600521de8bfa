"""Exceptions raised by ncf. Every message says what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable


class NcfError(Exception):
    """Base class of every error ncf raises on purpose."""


class DataError(NcfError, ValueError):
    """Input data cannot be used: missing file or column, empty data, bad values."""


class ConfigError(NcfError, ValueError):
    """A parameter is out of its allowed range or of the wrong type."""


class UnknownIdError(NcfError, KeyError):
    """Raw user or item ids that the model has never seen."""

    def __init__(self, kind: str, ids: Iterable[object], hint: str = "") -> None:
        self.kind = kind
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:10])
        more = f" (and {len(self.ids) - 10} more)" if len(self.ids) > 10 else ""
        msg = f"unknown {kind} id(s): {shown}{more}"
        if hint:
            msg += f"; {hint}"
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class NotFittedError(NcfError, AttributeError):
    """The estimator is used before `fit` (or `load`)."""


class ModelDivergedError(NcfError, RuntimeError):
    """Training produced a non-finite loss or non-finite weights."""


class BundleError(NcfError, ValueError):
    """A saved model bundle is missing, corrupt, or from an incompatible version."""


def one_line(e: object) -> str:
    """An exception's (or any object's) text on one line, for one-line error messages."""
    return " ".join(str(e).split())
