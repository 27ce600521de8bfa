"""Load any saved model bundle: read its ``model_class`` and hand it to that class's ``load``.

Only classes registered in :data:`LOADERS` can be loaded; a bundle naming any other
class is refused with :class:`~ncf.errors.BundleError`. Nothing in the file decides
what code runs beyond picking one of these known loaders.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ncf.base import Recommender
from ncf.errors import BundleError

__all__ = ["LOADERS", "bundle_model_class", "load_model"]

# model_class stored in a bundle -> "module:Class" whose ``load(path, **kwargs)`` rebuilds it.
LOADERS: dict[str, str] = {
    "NCF": "ncf.model:NCF",
    # Baselines: loading needs no optional library (implicit / lightfm), only the stored factors.
    "Popularity": "ncf.baselines.popularity:Popularity",
    "EASE": "ncf.baselines.ease:EASE",
    "ItemKNN": "ncf.baselines.itemknn:ItemKNN",
    "ImplicitALS": "ncf.baselines.implicit_models:ImplicitALS",
    "ImplicitBPR": "ncf.baselines.implicit_models:ImplicitBPR",
    "LightFM": "ncf.baselines.lightfm_model:LightFMModel",
}


def bundle_model_class(path: str | os.PathLike[str]) -> str:
    """The ``model_class`` a bundle declares, read from its header only (no tensors).

    The header's metadata is checked against the schema first (:func:`ncf.persist.check_metadata`),
    so a missing, foreign, damaged, newer or unverifiable bundle fails here, in milliseconds.
    """
    from ncf.persist import check_metadata, read_header

    f, meta = read_header(path)
    return check_metadata(f, meta)["model_class"]


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Recommender:
    """Load a model saved with ``save(path)`` whatever its class (``ncf.NCF`` or a baseline in :data:`LOADERS`).

    Keyword arguments (e.g. ``device="cuda"``) go to the class's ``load``.
    Raises :class:`~ncf.errors.BundleError` when the bundle is missing, corrupt, from a
    newer format, or holds a model class this version of ncf does not know.
    """
    cls_name = bundle_model_class(path)
    target = LOADERS.get(cls_name)
    if target is None:
        known = ", ".join(sorted(LOADERS))
        raise BundleError(
            f"{path} holds a model of class {cls_name!r}, which this ncf cannot load (known classes: {known}); "
            "it may have been written by a newer ncf"
        )
    module_name, attr = target.split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls.load(path, **kwargs)
