"""EASE (Steck, WWW 2019): a closed-form item-item linear model, a strong baseline.

``B = I - P diag(1/diag(P))`` with ``P = (X^T X + l2 I)^-1``, so ``diag(B) = 0``;
user ``u``'s scores are ``X_u B``. With recency weighting (``recency``, as for every model:
:mod:`ncf.weighting`) ``B`` is still fitted on the binary ``X``, and the user profile that
is scored is weighted: ``(w_u * X_u) B``, so a user's latest items vote most. Fitting inverts a dense items x items matrix, so it
is limited to catalogues of at most :attr:`EASE.MAX_ITEMS` items.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.baselines._base import _Baseline, check_train, expect_shape, weighted_csr
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError
from ncf.params import Float, param

#: Largest bound on the condition number of ``gram + l2 I`` solved in float32 (else float64). The
#: error of a float32 Cholesky inverse grows ~ condition x 6e-8: at this bound <= ~1e-3 relative.
#: On ML-100k's leave-one-out train (bound ~8,100 at L2 = 10, ~800 at 100) the float32 ``B`` was
#: within 1.5e-5 (L2 = 10) and 4.4e-6 (L2 = 100) of float64's, relative to its largest entry, its
#: top-10 lists 99.98-100 % identical, at ~2.3x the speed (benchmarks/RESULTS.md, "EASE in float32").
FLOAT32_MAX_COND = 1e4


def _solve(gram: np.ndarray, l2: float) -> np.ndarray:
    """``B`` for the Gram matrix ``gram`` (left unchanged) and ``l2``, as float32."""
    # The Gram matrix + l2 I is symmetric positive definite: invert it through its Cholesky
    # factor (torch's LAPACK: ~2x scipy's cho_factor + cho_solve(I) here). Its largest
    # eigenvalue is at most its largest absolute row sum (Gershgorin), its smallest at least l2.
    cond_bound = (float(np.abs(gram).sum(axis=1).max(initial=0.0)) + l2) / l2
    a = torch.from_numpy(gram).to(torch.float32 if cond_bound <= FLOAT32_MAX_COND else torch.float64)
    a.diagonal().add_(l2)
    p = torch.cholesky_inverse(torch.linalg.cholesky(a))
    b = p / -torch.diagonal(p)[None, :]  # B_ij = -P_ij / P_jj off the diagonal ...
    b.fill_diagonal_(0.0)  # ... and 1 - P_jj / P_jj = 0 on it
    return np.ascontiguousarray(b.numpy(), dtype=np.float32)


# -- EASE ----------------------------------------------------------------------------------
@dataclasses.dataclass(eq=False, repr=False)
class EASE(_Baseline):
    """Embarrassingly Shallow Autoencoder (Steck 2019).

    Parameters
    ----------
    l2:
        L2 regularisation added to the diagonal of the Gram matrix ``X^T X`` (> 0).
        A few hundred suits MovieLens-sized data; larger values for denser data.
    recency, recency_floor:
        Score a recency-weighted user profile (see :class:`ncf.NCF` and :mod:`ncf.weighting`);
        ``"auto"`` (default) is on when ``train`` has timestamps and is not a random holdout.
    """

    name = "ease"
    MODEL_CLASS = "EASE"
    WEIGHTS = {"B": torch.float32}
    MAX_ITEMS = 30000

    l2: float = param(500.0, Float(0.0, open_lo=True), "L2 added to the diagonal of the Gram matrix")

    def fit(self, train: Interactions, validation: Any = None) -> EASE:
        """Solve for ``B`` in closed form; ``validation`` is accepted for interface parity and ignored."""
        return next(self.fit_path(train, (self.l2,)))

    def fit_path(self, train: Interactions, l2s: Iterable[float]) -> Iterator[EASE]:
        """A fitted copy of this model for each L2 in ``l2s``, in order, sharing one Gram matrix and
        one set of profiles (what a search over L2 would otherwise recompute for every value)."""
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
        profiles = weighted_csr(train, self._recency_weights(train))  # the rows score_block scores
        shared = time.perf_counter() - t0
        for l2 in l2s:
            t1 = time.perf_counter()
            model = self if l2 == self.l2 else dataclasses.replace(self, l2=float(l2))
            model._validate()
            model.B_ = _solve(gram, float(l2))
            model.profiles_, model.train_ = profiles, train
            model.fit_seconds_ = shared + time.perf_counter() - t1
            yield model

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        # sparse rows @ dense B in scipy: each row is computed on its own, so a user's scores
        # do not depend on which other users share the block (batch == scalar, bit for bit).
        rows = self.profiles_[users.cpu().numpy()]
        return torch.from_numpy(np.asarray(rows @ self.B_, dtype=np.float32))

    def history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """``profiles @ B``, exactly as :meth:`score_block` scores a training user's profile row."""
        self.check_fitted()
        return torch.from_numpy(np.asarray(profiles @ self.B_, dtype=np.float32))

    def item_vectors(self) -> np.ndarray:
        # row i of B: how strongly item i votes for every other item
        return self.B_

    def _weights(self) -> dict[str, torch.Tensor]:
        return {"B": torch.from_numpy(self.B_)}

    def _restore(self, weights: dict[str, torch.Tensor], train: Interactions) -> None:
        n = train.n_items
        self.B_ = np.ascontiguousarray(expect_shape(weights, "B", (n, n)).numpy(), dtype=np.float32)
        self.profiles_ = weighted_csr(train, self._profile_weights(train))
