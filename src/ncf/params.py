"""Declared hyper-parameters: one list per estimator, with its constraints and help.

An estimator declares each hyper-parameter once, as a dataclass field made by
:func:`param` (scikit-learn's ``_parameter_constraints``, as data)::

    @dataclass(eq=False, repr=False)
    class NCF(Recommender):
        factors: int = param(32, Int(1), "predictive factors of the GMF part")

The dataclass ``__init__`` only stores the values (scikit-learn's rule); ``fit`` calls
:func:`validate`, which checks every declared parameter and raises one
:class:`~ncf.errors.ConfigError` naming the parameter, its value and the allowed range.
:func:`declared` lists them, so ``get_params``, the bundle's config and the CLI flags
(each constraint can ``parse`` its flag's text) are generated from the same list.
Fields made with :func:`setting` (device, verbosity, callbacks) are run-time settings:
stored, not hyper-parameters, not saved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ncf.errors import ConfigError
from ncf.metrics import parse_metric

__all__ = [
    "Bool",
    "Choice",
    "Constraint",
    "Float",
    "Int",
    "IntList",
    "Metric",
    "RECENCY",
    "RECENCY_HELP",
    "SEED",
    "declared",
    "param",
    "setting",
    "validate",
]


class Constraint:
    """What values a parameter takes: ``ok(value)``, a phrase for the message, a CLI parser."""

    #: the phrase after "must be" in an error message
    text = "valid"
    #: a short form for a CLI flag's metavar
    metavar: str | None = None

    def ok(self, value: Any) -> bool:
        raise NotImplementedError

    def parse(self, text: str) -> Any:
        """The value a command-line flag's text stands for (ValueError if none)."""
        return text

    def check(self, name: str, value: Any) -> None:
        if not self.ok(value):
            raise ConfigError(f"{name} == {value!r}, must be {self.text}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


class Int(Constraint):
    """An integer ``>= lo``."""

    def __init__(self, lo: int) -> None:
        self.lo, self.text, self.metavar = lo, f"an integer >= {lo}", "INT"

    def ok(self, value: Any) -> bool:
        return _is_int(value) and value >= self.lo

    def parse(self, text: str) -> int:
        return int(text)


class Float(Constraint):
    """A finite number in an interval; ``open_lo`` / ``open_hi`` exclude the bounds."""

    def __init__(self, lo: float, hi: float = math.inf, *, open_lo: bool = False, open_hi: bool = False) -> None:
        self.lo, self.hi, self.open_lo, self.open_hi = lo, hi, open_lo, open_hi
        lb, rb = "(" if open_lo else "[", ")" if open_hi else "]"
        if hi == math.inf:
            self.text = f"a number {'>' if open_lo else '>='} {lo}"
        else:
            self.text = f"in {lb}{lo}, {hi}{rb}"
        self.metavar = "NUM"

    def ok(self, value: Any) -> bool:
        if not _is_real(value) or not math.isfinite(value):
            return False
        above = value > self.lo if self.open_lo else value >= self.lo
        below = value < self.hi if self.open_hi else value <= self.hi
        return above and below

    def parse(self, text: str) -> float:
        return float(text)


class Choice(Constraint):
    """One of a fixed set of strings."""

    def __init__(self, *values: str) -> None:
        self.values, self.text = values, "one of " + ", ".join(repr(v) for v in values)

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.values


class Bool(Constraint):
    text = "True or False"

    def ok(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))


class IntList(Constraint):
    """A non-empty sequence of positive integers (``even_first``: the first one even)."""

    def __init__(self, example: str, *, even_first: bool = False) -> None:
        self.even_first, self.metavar = even_first, "N,N,..."
        self.text = f"positive integers, e.g. ({example})" + (" with an even first entry" if even_first else "")

    def ok(self, value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not len(value):
            return False
        if not all(_is_int(v) and v >= 1 for v in value):
            return False
        return not self.even_first or value[0] % 2 == 0

    def parse(self, text: str) -> tuple[int, ...]:
        return tuple(int(v) for v in text.split(",") if v.strip())


class Either(Constraint):
    """Any of several constraints, or one of some literal values (e.g. ``None``, ``"auto"``)."""

    def __init__(
        self,
        *options: Constraint,
        literals: Sequence[Any] = (),
        text: str = "",
        parse_literals: dict[str, Any] | None = None,
    ) -> None:
        self.options, self.literals = options, tuple(literals)
        self.parse_literals = parse_literals or {}
        self.text = text or " or ".join([repr(v) for v in literals] + [o.text for o in options])
        self.metavar = "|".join(list(self.parse_literals) + [o.metavar or "VALUE" for o in options])

    def ok(self, value: Any) -> bool:
        if any(value is v or (isinstance(v, str) and value == v) for v in self.literals):
            return True
        return any(o.ok(value) for o in self.options)

    def parse(self, text: str) -> Any:
        key = text.strip().lower()
        if key in self.parse_literals:
            return self.parse_literals[key]
        for o in self.options:
            try:
                return o.parse(text)
            except ValueError:
                continue
        raise ValueError(f"expected {self.text}, got {text!r}")


class Metric(Constraint):
    """A ranking metric name, with a cutoff where it takes one: ``ndcg@10``, ``hr@20``, ``mrr``
    (:func:`ncf.metrics.parse_metric` decides)."""

    text = "like 'ndcg@10', 'hr@10', 'recall@20', 'mrr' or 'auc'"
    metavar = "NAME@K"

    def ok(self, value: Any) -> bool:
        try:
            parse_metric(value)
        except ConfigError:
            return False
        return isinstance(value, str)


#: A seed: an integer >= 0, or None (a fresh one is drawn and recorded).
SEED = Either(Int(0), literals=(None,))
#: Recency: a half-life > 0 (in interactions), None (off) or "auto" (:mod:`ncf.weighting`); every model's.
RECENCY = Either(Float(0.0, open_lo=True), literals=(None, "auto"), parse_literals={"auto": "auto", "none": None})
#: The help text of the recency parameter, the same for every model.
RECENCY_HELP = "half-life (in interactions) weighting each user's recent items more; 'auto' or 'none'"


def param(default: Any, constraint: Constraint, help: str, *, flag: bool = True, kw_only: bool = False) -> Any:  # noqa: A002 - argparse's word
    """A declared hyper-parameter: saved in bundles, checked by :func:`validate`, a CLI flag
    unless ``flag=False``. ``kw_only``: keyword-only in ``__init__`` (for parameters a base
    class declares, so they do not take the first positional places of every subclass)."""
    meta = {"param": True, "constraint": constraint, "help": help, "flag": flag}
    return dataclasses.field(default=default, metadata=meta, kw_only=kw_only)


def setting(default: Any) -> Any:
    """A run-time setting (device, verbosity, callbacks): stored by ``__init__``, never saved."""
    return dataclasses.field(default=default, metadata={"param": False})


def declared(cls_or_obj: Any) -> list[dataclasses.Field]:
    """The declared hyper-parameters, in declaration order."""
    return [f for f in dataclasses.fields(cls_or_obj) if f.metadata.get("param")]


def validate(obj: Any) -> None:
    """Check every declared hyper-parameter of ``obj`` (the first bad one raises ConfigError)."""
    for f in declared(obj):
        f.metadata["constraint"].check(f.name, getattr(obj, f.name))
