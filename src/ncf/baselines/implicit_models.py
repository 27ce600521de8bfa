"""Matrix-factorisation baselines from the `implicit` library (Ben Frederickson), CPU models.

:class:`ImplicitALS` (Hu, Koren & Volinsky 2008) and :class:`ImplicitBPR` (Rendle et al.
2009) are trained by implicit; their user and item factors are then kept as tensors and
scored with a torch matmul, so recommend / evaluate go through ncf's own ranking (seen
filtering, tie-breaking) exactly as for :class:`ncf.NCF`.

implicit is optional: ``pip install "implicit>=0.7"``. Loading a saved model does not
need it. Scoring and persistence are :class:`ncf.baselines._base.FactorModel`'s.

Recency (``recency``, as for every model: :mod:`ncf.weighting`): ALS takes each
interaction's weight as its confidence value (implicit multiplies it by ``alpha``). BPR
samples (user, positive, negative) triples and has no per-interaction weight, so
``recency="auto"`` stays off for it (``recency_`` is None) and an explicit half-life is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.baselines._base import FactorModel, check_train, resolve_seed, weighted_csr
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError
from ncf.foldin import als_user_factors
from ncf.params import SEED, Float, Int, param
from ncf.update import Merged, apply_update, check_epochs, fit_seed, grow_rows, model_recency

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


@dataclasses.dataclass(eq=False, repr=False)
class _ImplicitModel(FactorModel):
    @classmethod
    def require(cls) -> None:
        require_implicit()

    def _fit_implicit(self, train: Interactions, make: Any) -> None:
        self._validate()
        train = check_train(train, type(self).__name__)
        require_implicit()
        weights = self._recency_weights(train)  # None for BPR, which cannot use them
        self.seed_ = resolve_seed(self.seed)
        t0 = time.perf_counter()
        with _one_blas_thread():  # implicit checks the BLAS threads when the model is built
            model = make(self.seed_)
            model.fit(weighted_csr(train, weights), show_progress=False)  # implicit >= 0.5: user x item
        self.fit_seconds_ = time.perf_counter() - t0
        self._set_factors(np.asarray(model.user_factors), np.asarray(model.item_factors))
        self.train_ = train


@dataclasses.dataclass(eq=False, repr=False)
class ImplicitALS(_ImplicitModel):
    """Weighted ALS for implicit feedback (``implicit.cpu.als.AlternatingLeastSquares``).

    Parameters
    ----------
    factors:
        Latent dimensions (>= 1).
    regularization:
        L2 penalty on the factors (>= 0).
    alpha:
        Confidence weight: an interaction counts as ``1 + alpha`` (> 0); with recency
        weighting, ``1 + alpha * w`` for an interaction of weight ``w``.
    iterations:
        ALS sweeps (>= 1).
    seed:
        Seed of the factor initialisation; None draws one (recorded in ``seed_``).
    num_threads:
        implicit's threads (>= 1). ALS solves each user / item independently, so results
        do not depend on it.
    recency, recency_floor:
        Per-interaction confidence favouring each user's latest interactions (see
        :class:`ncf.NCF` and :mod:`ncf.weighting`); ``"auto"`` (default) is on when ``train``
        has timestamps and is not a random holdout.
    """

    name = "implicit-als"
    MODEL_CLASS = "ImplicitALS"

    factors: int = param(64, Int(1), "latent dimensions")
    regularization: float = param(0.01, Float(0.0), "L2 penalty on the factors")
    alpha: float = param(1.0, Float(0.0, open_lo=True), "confidence weight of an interaction")
    iterations: int = param(15, Int(1), "ALS sweeps")
    seed: int | None = param(None, SEED, "seed of the factor initialisation")
    num_threads: int = param(1, Int(1), "implicit's threads")

    def fit(self, train: Interactions, validation: Any = None) -> ImplicitALS:
        """Train on ``train.csr`` (values: the recency weights when on); ``validation`` is accepted
        for interface parity and ignored."""
        self._fit_implicit(train, self._make)
        return self

    def fold_in_users(self, profiles: sp.csr_matrix) -> tuple[torch.Tensor, None]:
        """Closed-form least-squares user factors against the item factors, as implicit's
        ``recalculate_user`` (:func:`ncf.foldin.als_user_factors`); the profile values (recency
        weights, or 1) are the confidences, as in fit."""
        key = (id(self.item_factors_), float(self.regularization))
        cached = self.__dict__.get("_gram_cache")
        if cached is None or cached[0] != key:  # Y^T Y + reg I: once per fitted / loaded model
            y = self.item_factors_.double()
            cached = (key, y.T @ y + float(self.regularization) * torch.eye(y.shape[1], dtype=y.dtype))
            self.__dict__["_gram_cache"] = cached
        u = als_user_factors(
            self.item_factors_,
            profiles,
            alpha=float(self.alpha),
            regularization=float(self.regularization),
            gram=cached[1],
        )
        return u, None

    def _make(self, seed: int) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=int(self.factors),
            regularization=float(self.regularization),
            alpha=float(self.alpha),
            iterations=int(self.iterations),
            num_threads=int(self.num_threads),
            random_state=seed,
            calculate_training_loss=False,
        )

    def update(self, new_interactions: Interactions, epochs: int | None = None) -> ImplicitALS:
        """Add new interactions (new users and items welcome); returns self, updated in place.

        implicit's ``partial_fit_users`` for the users with new interactions, ``partial_fit_items``
        for the items with new interactions, then the users once more (so a new user's factors see
        the new items); every other row keeps its factors. New rows start at zero. ``epochs`` is
        ignored (each partial fit is an exact least-squares solve). See :mod:`ncf.update`.
        """
        self._validate()
        require_implicit()

        def body(m: Merged) -> str:
            data = m.data
            x = weighted_csr(data, self._recency_weights(data))
            users, items = np.unique(data.user_idx[m.is_new]), np.unique(data.item_idx[m.is_new])
            rng = np.random.default_rng(0)
            with _one_blas_thread():
                als = self._make(fit_seed(self))
                als.user_factors = grow_rows(self.user_factors_, data.n_users, rng, fill=0.0)
                als.item_factors = grow_rows(self.item_factors_, data.n_items, rng, fill=0.0)
                als.partial_fit_users(users, x[users])
                als.partial_fit_items(items, x.T.tocsr()[items])
                als.partial_fit_users(users, x[users])
            self._set_factors(np.asarray(als.user_factors), np.asarray(als.item_factors))
            self.train_ = data
            return f"partial_fit_users ({len(users)}), partial_fit_items ({len(items)}), partial_fit_users"

        return apply_update(self, new_interactions, body, uses_recency=model_recency(self) is not None)


@dataclasses.dataclass(eq=False, repr=False)
class ImplicitBPR(_ImplicitModel):
    """Bayesian Personalised Ranking by SGD (``implicit.cpu.bpr.BayesianPersonalizedRanking``).

    implicit adds an item-bias column to the factors (users get a constant 1 there), so the
    stored factors have ``factors + 1`` columns. With ``num_threads > 1`` implicit's SGD
    threads race on shared factors (Hogwild): results then vary run to run even with a seed.
    ``num_threads=1`` (default) is deterministic.

    BPR cannot weigh single interactions: ``recency="auto"`` stays off (``recency_`` is
    None), an explicit half-life raises :class:`~ncf.errors.ConfigError`.
    """

    name = "implicit-bpr"
    MODEL_CLASS = "ImplicitBPR"
    USES_WEIGHTS = False
    FIXED_USER_COLUMNS = 1  # implicit's users have a constant 1 against the item-bias column

    factors: int = param(64, Int(1), "latent dimensions")
    learning_rate: float = param(0.01, Float(0.0, open_lo=True), "SGD step size")
    regularization: float = param(0.01, Float(0.0), "L2 penalty on the factors")
    iterations: int = param(100, Int(1), "passes over the interactions")
    seed: int | None = param(None, SEED, "seed of the initialisation and sampling")
    num_threads: int = param(1, Int(1), "implicit's threads (> 1 is not reproducible)")

    def fit(self, train: Interactions, validation: Any = None) -> ImplicitBPR:
        """Train on ``train.csr``; ``validation`` is accepted for interface parity and ignored."""
        self._fit_implicit(train, self._make)
        return self

    def _make(self, seed: int, iterations: int | None = None) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(
            factors=int(self.factors),
            learning_rate=float(self.learning_rate),
            regularization=float(self.regularization),
            iterations=int(self.iterations if iterations is None else iterations),
            num_threads=int(self.num_threads),
            random_state=seed,
        )

    def update(self, new_interactions: Interactions, epochs: int | None = None) -> ImplicitBPR:
        """Add new interactions (new users and items welcome); returns self, updated in place.

        implicit's BPR has no partial fit: SGD continues from the current factors (new rows start
        like implicit's own init) on the merged data for ``epochs`` iterations (default: a quarter
        of ``iterations``). See :mod:`ncf.update`.
        """
        self._validate()
        require_implicit()
        iterations = check_epochs(epochs, max(1, int(self.iterations) // 4))

        def body(m: Merged) -> str:
            data, seed = m.data, fit_seed(self)
            rng = np.random.default_rng(seed)
            scale = 1.0 / int(self.factors)
            uf = grow_rows(self.user_factors_, data.n_users, rng, scale=scale)
            itf = grow_rows(self.item_factors_, data.n_items, rng, scale=scale)
            uf[len(self.user_factors_) :, -1] = 1.0  # the item-bias column: users hold a constant 1 there
            itf[len(self.item_factors_) :, -1] = 0.0
            with _one_blas_thread():
                bpr = self._make(seed, iterations)
                bpr.user_factors, bpr.item_factors = uf, itf  # set: fit continues from them, no fresh init
                bpr.fit(data.csr, show_progress=False)
            self._set_factors(np.asarray(bpr.user_factors), np.asarray(bpr.item_factors))
            self.train_ = data
            return f"SGD continued from the current factors: {iterations} iterations on the merged data"

        return apply_update(self, new_interactions, body, uses_recency=False)
