"""Plumbing the saveable baselines share: parameter checks, get_params, bundle save/load."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ncf.base import Recommender
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError


# -- parameter checks -----------------------------------------------------------------------
def need_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ConfigError(f"{name} == {value!r}, must be an integer >= {lo}")


def need_float(name: str, value: Any, lo: float, *, open_low: bool = False) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > lo if open_low else value >= lo)
    if not ok:
        raise ConfigError(f"{name} == {value!r}, must be a finite number {'>' if open_low else '>='} {lo}")


def need_seed(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
        raise ConfigError(f"seed == {value!r}, must be None or an integer >= 0")


def resolve_seed(seed: int | None) -> int:
    """The seed a fit uses: ``seed`` itself, or a fresh random one (recorded, so a saved model says which)."""
    return int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**31 - 1))


def check_train(train: Any, who: str) -> Interactions:
    if not isinstance(train, Interactions):
        raise DataError(
            f"{who}.fit expects an ncf Interactions (e.g. from ncf.load_interactions), got {type(train).__name__}"
        )
    if len(train) == 0:
        raise DataError(f"train has no interactions; {who} has nothing to learn from")
    return train


class _Baseline(Recommender):
    """Parameters (``PARAMS``), ``get_params``, validation and bundle save/load.

    Subclasses set ``PARAMS`` and ``MODEL_CLASS`` and implement ``_validate``,
    ``_weights`` (name -> tensor) and ``_restore(weights, train)`` (raise ``ValueError``
    on a shape mismatch).
    """

    PARAMS: ClassVar[tuple[str, ...]] = ()
    MODEL_CLASS: ClassVar[str] = ""
    #: Every weight a bundle of this class may hold, with its dtype (shapes: ``_restore``).
    WEIGHTS: ClassVar[dict[str, torch.dtype]] = {}

    def _set_params(self, **params: Any) -> None:
        for k in self.PARAMS:
            setattr(self, k, params[k])
        self._validate()

    def _validate(self) -> None:
        pass

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.PARAMS}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def _weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _restore(self, weights: dict[str, torch.Tensor], train: Interactions) -> None:
        raise NotImplementedError

    def _extra(self) -> dict[str, Any]:
        return {"data_fingerprint": self.train_.fingerprint(), "fit_seconds": getattr(self, "fit_seconds_", 0.0)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save params, id maps, seen interactions and weights to ``path`` (a folder); atomic."""
        from ncf.persist import save_bundle

        self._check_fitted()
        return save_bundle(
            path, model_class=self.MODEL_CLASS, config=self.get_params(), weights=self._weights(),
            train=self.train_, extra=self._extra(),
        )  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: Any = None) -> Any:
        """Load a bundle written by :meth:`save`; runs no code from the file and needs no optional library.

        ``device`` is accepted so :func:`ncf.load_model` can pass it to any model; baselines score on the CPU.
        """
        from ncf.persist import load_bundle

        b = load_bundle(path)
        if b.model_class != cls.MODEL_CLASS:
            raise BundleError(
                f"{b.path} holds a {b.model_class} model, not {cls.MODEL_CLASS}; load it with ncf.load_model()"
            )
        missing = [k for k in cls.PARAMS if k not in b.config]
        if missing:
            raise BundleError(f"{b.path}: stored config lacks {missing}; the bundle is corrupt")
        est = cls.__new__(cls)  # skips __init__: loading a factor model must not need implicit/lightfm
        try:
            est._set_params(**b.config)
        except ConfigError as e:
            raise BundleError(f"{b.path}: stored config is invalid ({e})") from None
        unexpected = sorted(set(b.weights) - set(cls.WEIGHTS))
        if unexpected:
            raise BundleError(
                f"{b.path}: weights {unexpected[:5]} are not part of a {cls.MODEL_CLASS} model; the bundle is corrupt"
            )
        for name, t in b.weights.items():  # a cast would silently change the model (an int tensor truncates)
            if t.dtype != cls.WEIGHTS[name]:
                raise BundleError(f"{b.path}: weight {name!r} has dtype {t.dtype}, expected {cls.WEIGHTS[name]}")
        if not all(torch.isfinite(t).all() for t in b.weights.values() if t.is_floating_point()):
            raise BundleError(f"{b.path}: weights contain NaN or inf; the bundle is corrupt")
        try:
            est._restore(b.weights, b.train)
        except (KeyError, ValueError) as e:
            raise BundleError(
                f"{b.path}: weights do not match the id maps ({b.train.n_users} users, {b.train.n_items} items): {e}"
            ) from None
        est.train_ = b.train
        est.fit_seconds_ = float(b.extra.get("fit_seconds") or 0.0)
        est.bundle_extra_ = b.extra
        return est


def expect_shape(weights: dict[str, torch.Tensor], name: str, shape: tuple[int, ...]) -> torch.Tensor:
    t = weights[name]
    if tuple(t.shape) != shape:
        raise ValueError(f"weights.{name} has shape {tuple(t.shape)}, expected {shape}")
    return t
