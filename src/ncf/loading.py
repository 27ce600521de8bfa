"""Load any saved model bundle: read its ``model_class`` and hand it to that class's ``load``.

Only classes registered in :data:`LOADERS` can be loaded; a bundle naming any other
class is refused with :class:`~ncf.errors.BundleError`. Nothing in the file decides
what code runs beyond picking one of these known loaders.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from ncf.base import Recommender
from ncf.errors import BundleError
from ncf.persist import (
    FORMAT_VERSION,
    _unverified_allowed,
    check_output_path,
    parse_format_version,
    read_header,
    tensor_digest,
    write_safetensors_atomic,
)

__all__ = ["LOADERS", "bundle_model_class", "load_model", "upgrade_bundle"]

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
    "Blend": "ncf.blend:Blend",
}


def _class(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def component_class(path: str | os.PathLike[str], model_class: Any, j: int) -> Any:
    """The class of a blend's component ``j`` (any loadable class but a blend). Raises BundleError."""
    target = LOADERS.get(model_class) if isinstance(model_class, str) and model_class != "Blend" else None
    if target is None:
        known = ", ".join(sorted(k for k in LOADERS if k != "Blend"))
        raise BundleError(
            f"{path}: blend component {j} names model class {str(model_class)[:80]!r}, which a blend cannot hold "
            f"(known: {known}); the file is corrupt or was written by a newer ncf"
        )
    return _class(target)


def bundle_model_class(path: str | os.PathLike[str]) -> str:
    """The ``model_class`` a bundle declares, read from its header only (no tensors).

    The header's metadata is checked against the schema first (:func:`ncf.persist.check_metadata`),
    so a missing, foreign, damaged, newer or unverifiable bundle fails here, in milliseconds.
    """
    from ncf.persist import check_metadata

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
    return _class(target).load(path, **kwargs)


def upgrade_bundle(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Check an older bundle completely and re-save it in the current format (with its checksum).

    ``out`` defaults to ``path`` (replaced atomically). The model is loaded with every check
    of :func:`ncf.load_model` (schema, shapes, finite weights, id maps); a format-1 bundle
    without a checksum is the one thing let through, since it never had one. Tensors and
    metadata are kept as they are; only ``format_version`` and ``tensors_sha256`` change.
    Returns the file written and a one-line note of what was checked.
    """
    f, meta = read_header(path)
    target = check_output_path(out if out is not None else f, kind="bundle")
    with _unverified_allowed():
        load_model(f)  # every check; raises BundleError naming what is wrong
    version = parse_format_version(meta["format_version"], f)
    if version == FORMAT_VERSION and target.resolve() == f.resolve():
        return f, f"already bundle format {FORMAT_VERSION} and verified; nothing to do"
    from safetensors.torch import load_file

    tensors = load_file(str(f))
    had = "tensors_sha256" in meta
    meta = {**meta, "format_version": str(FORMAT_VERSION), "tensors_sha256": tensor_digest(tensors)}
    write_safetensors_atomic(target, tensors, meta)
    load_model(target)  # the result loads with the checksum required
    if had:
        note = f"format {version} -> {FORMAT_VERSION}; its tensors matched their checksum"
    else:
        note = (
            f"format {version} -> {FORMAT_VERSION}; it had no checksum, so its tensors were checked for structure, "
            "shapes and finite values only, and are now covered by one"
        )
    return target, note
