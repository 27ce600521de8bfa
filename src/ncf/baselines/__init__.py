"""Baselines behind the same interface as :class:`ncf.NCF` (fit / recommend / score / save).

``Popularity``, ``EASE`` and ``ItemKNN`` need nothing beyond ncf's own dependencies.
``ImplicitALS`` / ``ImplicitBPR`` (the ``implicit`` library) and ``LightFMModel``
(``lightfm``) are imported on first use, so ``import ncf.baselines`` works without them;
their constructors only store parameters (scikit-learn's rule), and ``fit`` (or
:func:`make_baseline`, which checks early) without the library raises
:class:`~ncf.errors.ConfigError` saying how to install it.

Every baseline declares its hyper-parameters with :mod:`ncf.params`, as :class:`ncf.NCF`
does, and takes the same ``recency`` signal (:mod:`ncf.weighting`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ncf.baselines.ease import EASE
from ncf.baselines.itemknn import ItemKNN
from ncf.baselines.popularity import Popularity
from ncf.errors import ConfigError
from ncf.params import declared

if TYPE_CHECKING:
    from ncf.base import Recommender
    from ncf.baselines.implicit_models import ImplicitALS, ImplicitBPR
    from ncf.baselines.lightfm_model import LightFMModel

__all__ = ["BASELINES", "EASE", "ImplicitALS", "ImplicitBPR", "ItemKNN", "LightFMModel", "Popularity", "make_baseline"]

_LAZY = {
    "ImplicitALS": "ncf.baselines.implicit_models",
    "ImplicitBPR": "ncf.baselines.implicit_models",
    "LightFMModel": "ncf.baselines.lightfm_model",
}

# name -> (class name, fixed params)
BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "popularity": ("Popularity", {}),
    "ease": ("EASE", {}),
    "item-knn": ("ItemKNN", {}),
    "implicit-als": ("ImplicitALS", {}),
    "implicit-bpr": ("ImplicitBPR", {}),
    "lightfm-warp": ("LightFMModel", {"loss": "warp"}),
    "lightfm-bpr": ("LightFMModel", {"loss": "bpr"}),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_baseline(name: str, **params: Any) -> Recommender:
    """A baseline by name (see :data:`BASELINES`), e.g. ``make_baseline("ease", l2=200.0)``.

    Raises :class:`~ncf.errors.ConfigError` for an unknown name or parameter, and when an
    optional library the baseline needs is missing.
    """
    key = str(name).strip().lower().replace("_", "-")
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}")
    cls_name, fixed = BASELINES[key]
    cls = globals()[cls_name] if cls_name in globals() else __getattr__(cls_name)
    accepted = [f.name for f in declared(cls)]
    bad = sorted(set(params) - set(accepted))
    if bad:
        raise ConfigError(f"{key} does not take {bad}; its parameters: {', '.join(accepted) or '(none)'}")
    clash = {k: v for k, v in params.items() if k in fixed and v != fixed[k]}
    if clash:
        raise ConfigError(f"{key} fixes {fixed}; got {clash} (pick the baseline name that matches instead)")
    cls.require()  # the optional library, checked early (the constructor itself only stores)
    return cls(**{**params, **fixed})
