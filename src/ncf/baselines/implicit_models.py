"""Matrix-factorisation baselines from the `implicit` library (Ben Frederickson), CPU models.

:class:`ImplicitALS` (Hu, Koren & Volinsky 2008) and :class:`ImplicitBPR` (Rendle et al.
2009) are trained by implicit; their user and item factors are then kept as tensors and
scored with a torch matmul, so recommend / evaluate go through ncf's own ranking (seen
filtering, tie-breaking) exactly as for :class:`ncf.NCF`.

implicit is optional: ``pip install "implicit>=0.7"``. Loading a saved model does not
need it. This module also holds :class:`_FactorModel`, the scoring and persistence shared
with the LightFM wrapper.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from typing import Any, ClassVar

import numpy as np
import torch

from ncf.baselines._base import (
    _Baseline,
    check_train,
    expect_shape,
    need_float,
    need_int,
    need_seed,
    resolve_seed,
)
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError

IMPLICIT_HINT = 'implicit is not installed: pip install "implicit>=0.7"'


def require_implicit() -> Any:
    """The ``implicit`` package, or a one-line ConfigError saying how to install it."""
    try:
        mod = importlib.import_module("implicit")
        importlib.import_module("implicit.cpu.als")
        importlib.import_module("implicit.cpu.bpr")
    except ImportError:
        raise ConfigError(IMPLICIT_HINT) from None
    return mod


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """implicit warns (and slows down) when BLAS is multithreaded; pin it to one thread while fitting."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with implicit
        return contextlib.nullcontext()
    return threadpool_limits(1, "blas")


class _FactorModel(_Baseline):
    """Scores ``user_factors_ @ item_factors_.T (+ item_bias_ + user_bias_)`` in torch."""

    WEIGHTS = {name: torch.float32 for name in ("user_factors", "item_factors", "user_bias", "item_bias")}

    user_bias_: torch.Tensor | None = None
    item_bias_: torch.Tensor | None = None
    HAS_BIAS: ClassVar[bool] = False

    def _set_factors(
        self,
        user: np.ndarray,
        item: np.ndarray,
        user_bias: np.ndarray | None = None,
        item_bias: np.ndarray | None = None,
    ) -> None:
        self.user_factors_ = torch.as_tensor(np.ascontiguousarray(user, dtype=np.float32))
        self.item_factors_ = torch.as_tensor(np.ascontiguousarray(item, dtype=np.float32))
        self.user_bias_ = (
            None if user_bias is None else torch.as_tensor(np.ascontiguousarray(user_bias, dtype=np.float32))
        )
        self.item_bias_ = (
            None if item_bias is None else torch.as_tensor(np.ascontiguousarray(item_bias, dtype=np.float32))
        )
        if not (torch.isfinite(self.user_factors_).all() and torch.isfinite(self.item_factors_).all()):
            from ncf.errors import ModelDivergedError

            raise ModelDivergedError(
                f"{type(self).__name__} produced non-finite factors; lower the learning rate or raise the regularisation"
            )

    def _score_users(self, users: torch.Tensor) -> torch.Tensor:
        users = users.cpu()
        out = self.user_factors_[users] @ self.item_factors_.T
        if self.item_bias_ is not None:
            out += self.item_bias_[None, :]
        if self.user_bias_ is not None:
            out += self.user_bias_[users, None]
        return out

    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        users, items = users.cpu(), items.cpu()
        out = (self.user_factors_[users] * self.item_factors_[items]).sum(1)
        if self.item_bias_ is not None:
            out += self.item_bias_[items]
        if self.user_bias_ is not None:
            out += self.user_bias_[users]
        return out

    def _bytes_per_user(self) -> int:
        return self.train_.n_items * 4 * 4 + self.item_factors_.shape[1] * 4

    def _item_vectors(self) -> np.ndarray:
        return self.item_factors_.numpy()

    def _weights(self) -> dict[str, torch.Tensor]:
        w = {"user_factors": self.user_factors_, "item_factors": self.item_factors_}
        if self.user_bias_ is not None:
            w["user_bias"] = self.user_bias_
        if self.item_bias_ is not None:
            w["item_bias"] = self.item_bias_
        return w

    def _restore(self, weights: dict[str, torch.Tensor], train: Interactions) -> None:
        n_users, n_items = train.shape
        if "user_factors" not in weights or "item_factors" not in weights:
            raise ValueError("user_factors / item_factors missing")
        f = weights["user_factors"].shape[-1]
        uf = expect_shape(weights, "user_factors", (n_users, f))
        itf = expect_shape(weights, "item_factors", (n_items, f))
        ub = expect_shape(weights, "user_bias", (n_users,)) if "user_bias" in weights else None
        ib = expect_shape(weights, "item_bias", (n_items,)) if "item_bias" in weights else None
        self._set_factors(
            uf.numpy(), itf.numpy(), None if ub is None else ub.numpy(), None if ib is None else ib.numpy()
        )

    def _extra(self) -> dict[str, Any]:
        return {**super()._extra(), "seed": getattr(self, "seed_", None)}


class _ImplicitModel(_FactorModel):
    def _fit_implicit(self, train: Interactions, make: Any) -> None:
        self._validate()
        train = check_train(train, type(self).__name__)
        require_implicit()
        self.seed_ = resolve_seed(self.seed)
        t0 = time.perf_counter()
        with _one_blas_thread():  # implicit checks the BLAS threads when the model is built
            model = make(self.seed_)
            model.fit(train.csr, show_progress=False)  # implicit >= 0.5: user x item
        self.fit_seconds_ = time.perf_counter() - t0
        self._set_factors(np.asarray(model.user_factors), np.asarray(model.item_factors))
        self.train_ = train


class ImplicitALS(_ImplicitModel):
    """Weighted ALS for implicit feedback (``implicit.cpu.als.AlternatingLeastSquares``).

    Parameters
    ----------
    factors:
        Latent dimensions (>= 1).
    regularization:
        L2 penalty on the factors (>= 0).
    alpha:
        Confidence weight: an interaction counts as ``1 + alpha`` (> 0).
    iterations:
        ALS sweeps (>= 1).
    seed:
        Seed of the factor initialisation; None draws one (recorded in ``seed_``).
    num_threads:
        implicit's threads (>= 1). ALS solves each user / item independently, so results
        do not depend on it.
    """

    name = "implicit-als"
    PARAMS = ("factors", "regularization", "alpha", "iterations", "seed", "num_threads")
    MODEL_CLASS = "ImplicitALS"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int | None = None,
        num_threads: int = 1,
    ) -> None:
        require_implicit()
        self._set_params(
            factors=factors, regularization=regularization, alpha=alpha, iterations=iterations, seed=seed,
            num_threads=num_threads,
        )  # fmt: skip

    def _validate(self) -> None:
        need_int("factors", self.factors, 1)
        need_float("regularization", self.regularization, 0.0)
        need_float("alpha", self.alpha, 0.0, open_low=True)
        need_int("iterations", self.iterations, 1)
        need_seed(self.seed)
        need_int("num_threads", self.num_threads, 1)

    def fit(self, train: Interactions, validation: Any = None) -> ImplicitALS:
        """Train on ``train.csr``; ``validation`` is accepted for interface parity and ignored."""

        def make(seed: int) -> Any:
            from implicit.cpu.als import AlternatingLeastSquares

            return AlternatingLeastSquares(
                factors=int(self.factors), regularization=float(self.regularization), alpha=float(self.alpha),
                iterations=int(self.iterations), num_threads=int(self.num_threads), random_state=seed,
                calculate_training_loss=False,
            )  # fmt: skip

        self._fit_implicit(train, make)
        return self


class ImplicitBPR(_ImplicitModel):
    """Bayesian Personalised Ranking by SGD (``implicit.cpu.bpr.BayesianPersonalizedRanking``).

    implicit adds an item-bias column to the factors (users get a constant 1 there), so the
    stored factors have ``factors + 1`` columns. With ``num_threads > 1`` implicit's SGD
    threads race on shared factors (Hogwild): results then vary run to run even with a seed.
    ``num_threads=1`` (default) is deterministic.
    """

    name = "implicit-bpr"
    PARAMS = ("factors", "learning_rate", "regularization", "iterations", "seed", "num_threads")
    MODEL_CLASS = "ImplicitBPR"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        seed: int | None = None,
        num_threads: int = 1,
    ) -> None:
        require_implicit()
        self._set_params(
            factors=factors, learning_rate=learning_rate, regularization=regularization, iterations=iterations,
            seed=seed, num_threads=num_threads,
        )  # fmt: skip

    def _validate(self) -> None:
        need_int("factors", self.factors, 1)
        need_float("learning_rate", self.learning_rate, 0.0, open_low=True)
        need_float("regularization", self.regularization, 0.0)
        need_int("iterations", self.iterations, 1)
        need_seed(self.seed)
        need_int("num_threads", self.num_threads, 1)

    def fit(self, train: Interactions, validation: Any = None) -> ImplicitBPR:
        """Train on ``train.csr``; ``validation`` is accepted for interface parity and ignored."""

        def make(seed: int) -> Any:
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            return BayesianPersonalizedRanking(
                factors=int(self.factors), learning_rate=float(self.learning_rate),
                regularization=float(self.regularization), iterations=int(self.iterations),
                num_threads=int(self.num_threads), random_state=seed,
            )  # fmt: skip

        self._fit_implicit(train, make)
        return self
