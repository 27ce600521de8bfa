"""Matrix-factorisation baselines from the `implicit` library (Ben Frederickson), CPU models.

:class:`ImplicitALS` (Hu, Koren & Volinsky 2008) and :class:`ImplicitBPR` (Rendle et al.
2009) are trained by implicit; their user and item factors are then kept as tensors and
scored with a torch matmul, so recommend / evaluate go through ncf's own ranking (seen
filtering, tie-breaking) exactly as for :class:`ncf.NCF`.

implicit is optional: ``pip install "implicit>=0.7"``. Loading a saved model does not
need it. Scoring and persistence are :class:`ncf.baselines._base.FactorModel`'s.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from typing import Any

import numpy as np

from ncf.baselines._base import (
    FactorModel,
    check_train,
    need_float,
    need_seed,
    resolve_seed,
)
from ncf.checks import check_int
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


class _ImplicitModel(FactorModel):
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
        check_int("factors", self.factors)
        need_float("regularization", self.regularization, 0.0)
        need_float("alpha", self.alpha, 0.0, open_low=True)
        check_int("iterations", self.iterations)
        need_seed(self.seed)
        check_int("num_threads", self.num_threads)

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
        check_int("factors", self.factors)
        need_float("learning_rate", self.learning_rate, 0.0, open_low=True)
        need_float("regularization", self.regularization, 0.0)
        check_int("iterations", self.iterations)
        need_seed(self.seed)
        check_int("num_threads", self.num_threads)

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
