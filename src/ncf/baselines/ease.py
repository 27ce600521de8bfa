"""EASE (Steck, WWW 2019): a closed-form item-item linear model, a strong baseline.

``B = I - P diag(1/diag(P))`` with ``P = (X^T X + l2 I)^-1``, so ``diag(B) = 0``;
user ``u``'s scores are ``X_u B``. Fitting inverts a dense items x items matrix, so it
is limited to catalogues of at most :attr:`EASE.MAX_ITEMS` items.

This module also holds :class:`_Baseline`, the parameter, validation and save/load
plumbing the saveable baselines share.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import torch

from ncf.base import Recommender
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError


# -- shared plumbing -----------------------------------------------------------------------
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
        if not all(torch.isfinite(t).all() for t in b.weights.values() if t.is_floating_point()):
            raise BundleError(f"{b.path}: weights contain NaN or inf; the bundle is corrupt")
        try:
            est._restore(b.weights, b.train)
        except (KeyError, ValueError) as e:
            raise BundleError(
                f"{b.path}: weights do not match the id maps ({b.train.n_users} users, {b.train.n_items} items): {e}"
            ) from None
        est.train_ = b.train
        est.fit_seconds_ = float(b.extra.get("fit_seconds", 0.0))
        est.bundle_extra_ = b.extra
        return est


def expect_shape(weights: dict[str, torch.Tensor], name: str, shape: tuple[int, ...]) -> torch.Tensor:
    t = weights[name]
    if tuple(t.shape) != shape:
        raise ValueError(f"weights.{name} has shape {tuple(t.shape)}, expected {shape}")
    return t


# -- EASE ----------------------------------------------------------------------------------
class EASE(_Baseline):
    """Embarrassingly Shallow Autoencoder (Steck 2019).

    Parameters
    ----------
    l2:
        L2 regularisation added to the diagonal of the Gram matrix ``X^T X`` (> 0).
        A few hundred suits MovieLens-sized data; larger values for denser data.
    """

    name = "ease"
    PARAMS = ("l2",)
    MODEL_CLASS = "EASE"
    MAX_ITEMS = 30000

    def __init__(self, l2: float = 500.0) -> None:
        self._set_params(l2=l2)

    def _validate(self) -> None:
        need_float("l2", self.l2, 0.0, open_low=True)

    def fit(self, train: Interactions, validation: Any = None) -> EASE:
        """Solve for ``B`` in closed form; ``validation`` is accepted for interface parity and ignored."""
        self._validate()
        train = check_train(train, "EASE")
        n = train.n_items
        if n > self.MAX_ITEMS:
            raise ConfigError(
                f"EASE inverts a dense {n} x {n} item-item matrix ({n * n * 8 / 2**30:.1f} GiB in float64, "
                f"several times that while solving); it is limited to {self.MAX_ITEMS} items. Filter rare items "
                "first, or use ItemKNN or an implicit/LightFM factor model"
            )
        t0 = time.perf_counter()
        x = train.csr
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices(n)] += float(self.l2)
        # The Gram matrix + l2 I is symmetric positive definite: invert it through its Cholesky factor.
        factor = scipy.linalg.cho_factor(gram, overwrite_a=True, check_finite=False)
        p = scipy.linalg.cho_solve(factor, np.eye(n), overwrite_b=True, check_finite=False)
        b = p / -np.diag(p)[None, :]  # B_ij = -P_ij / P_jj off the diagonal ...
        b[np.diag_indices(n)] = 0.0  # ... and 1 - P_jj / P_jj = 0 on it
        self.B_ = np.ascontiguousarray(b, dtype=np.float32)
        self.train_ = train
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _score_users(self, users: torch.Tensor) -> torch.Tensor:
        # sparse rows @ dense B in scipy: each row is computed on its own, so a user's scores
        # do not depend on which other users share the block (batch == scalar, bit for bit).
        rows = self.train_.csr[users.cpu().numpy()]
        return torch.from_numpy(np.asarray(rows @ self.B_, dtype=np.float32))

    def _item_vectors(self) -> np.ndarray:
        # row i of B: how strongly item i votes for every other item
        return self.B_

    def _weights(self) -> dict[str, torch.Tensor]:
        return {"B": torch.from_numpy(self.B_)}

    def _restore(self, weights: dict[str, torch.Tensor], train: Interactions) -> None:
        n = train.n_items
        self.B_ = np.ascontiguousarray(expect_shape(weights, "B", (n, n)).numpy(), dtype=np.float32)
