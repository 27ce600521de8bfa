"""Plumbing the saveable baselines share: declared parameters, recency weights, bundle save/load, factor scoring."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from ncf.base import Recommender
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError, ModelDivergedError
from ncf.foldin import FoldIn, fold_in
from ncf.params import RECENCY, RECENCY_HELP, Float, declared, param, validate
from ncf.update import Merged, apply_update, model_recency, update_history
from ncf.weighting import RECENCY_TENSOR, recency_weights, resolve_recency

if TYPE_CHECKING:
    from ncf.persist import Bundle


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


def weighted_csr(train: Interactions, weights: np.ndarray | None) -> sp.csr_matrix:
    """``train.csr`` with ``weights`` (one per interaction, in train's row order) as its values;
    ``train.csr`` itself when ``weights`` is None."""
    if weights is None:
        return train.csr
    x = train.csr
    return sp.csr_matrix((np.asarray(weights, dtype=np.float32), x.indices, x.indptr), shape=x.shape)


@dataclasses.dataclass(eq=False, repr=False)
class _Baseline(Recommender):
    """Declared parameters (:mod:`ncf.params`), the recency signal, validation and bundle save/load.

    Every baseline is a dataclass whose fields are made by :func:`ncf.params.param`;
    ``__init__`` only stores them, ``fit`` calls :meth:`_validate`. Subclasses set
    ``MODEL_CLASS`` and implement ``_weights`` (name -> tensor) and ``_restore(weights,
    train)`` (raise ``ValueError`` on a shape mismatch); those that train with an optional
    library override :meth:`require` (loading never needs the library).

    ``recency`` and ``recency_floor`` mean exactly what they mean for :class:`ncf.NCF`
    (:mod:`ncf.weighting`): ``"auto"`` is on when ``train`` has timestamps and did not come
    from a random per-user holdout. :meth:`_recency_weights` resolves it once per fit into
    ``recency_`` (the half-life used, or None), saved with the model so loading does not
    resolve ``"auto"`` again.
    """

    MODEL_CLASS: ClassVar[str] = ""
    #: False for models that cannot weigh single interactions (implicit's BPR)
    USES_WEIGHTS: ClassVar[bool] = True
    #: Every weight a bundle of this class may hold, with its dtype (shapes: ``_restore``).
    WEIGHTS: ClassVar[dict[str, torch.dtype]] = {}

    recency: float | str | None = param(
        "auto",
        RECENCY,
        RECENCY_HELP,
        kw_only=True,
    )
    recency_floor: float = param(0.1, Float(0.0, 1.0), "the weight recency never goes below", kw_only=True)

    @classmethod
    def require(cls) -> None:
        """Raise a one-line ConfigError saying how to install the optional library this model trains with."""

    def _validate(self) -> None:
        validate(self)
        if not self._uses_weights() and self.recency not in (None, "auto"):
            raise ConfigError(
                f"{self._label()} cannot use per-interaction weights (recency={self.recency!r}); "
                "set recency=None or use implicit-als / lightfm-warp / ease"
            )

    def _uses_weights(self) -> bool:
        return self.USES_WEIGHTS

    def _label(self) -> str:
        return self.name

    def _recency_weights(self, train: Interactions) -> np.ndarray | None:
        """Resolve ``recency`` for ``train`` into ``recency_``; the weights (one per interaction, in
        train's row order, which is ``train.csr``'s data order), or None when off."""
        self.recency_ = resolve_recency(self.recency, train) if self._uses_weights() else None
        return self._profile_weights(train)

    def _profile_weights(self, train: Interactions) -> np.ndarray | None:
        """The weights of the half-life already resolved (``recency_``): what a loaded model rebuilds."""
        if self.recency_ is None:
            return None
        return recency_weights(train, self.recency_, float(self.recency_floor))

    def get_params(self) -> dict[str, Any]:
        # keyword-only fields (recency, declared here) last: the order of the constructor's signature
        return {f.name: getattr(self, f.name) for f in sorted(declared(self), key=lambda f: bool(f.kw_only))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def _weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _restore(self, weights: dict[str, torch.Tensor], train: Interactions) -> None:
        raise NotImplementedError

    def _extra(self) -> dict[str, Any]:
        board = getattr(self, "leaderboard_", None)  # set by ncf.auto.select_model
        return {
            "data_fingerprint": self.train_.fingerprint(),
            "fit_seconds": getattr(self, "fit_seconds_", 0.0),
            "recency": getattr(self, "recency_", None),
            **({"leaderboard": board} if board else {}),
            **({"updates": h} if (h := update_history(self)) else {}),
        }

    def update(self, new_interactions: Interactions, epochs: int | None = None) -> Any:
        """Add new interactions (new users and items welcome); returns self, updated in place.

        Here (EASE, item-kNN, popularity) a refit on the merged data: their fit is closed form,
        so refitting is the update and costs what a fit costs; ``epochs`` is ignored. Models
        trained by iterations override this (:mod:`ncf.update`). A saved bundle is not changed.
        """

        def body(m: Merged) -> str:
            self.fit(m.data)
            return "refit on the merged data (closed form)"

        return apply_update(self, new_interactions, body, uses_recency=model_recency(self) is not None)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save params, id maps, seen interactions and weights to ``path`` (a folder); atomic."""
        from ncf.persist import save_bundle

        return save_bundle(path, **self.bundle_parts(), train=self.train_)

    def bundle_parts(self) -> dict[str, Any]:
        """What :func:`ncf.persist.save_bundle` writes besides the data: model class, config, weights, extra."""
        self.check_fitted()
        return {
            "model_class": self.MODEL_CLASS,
            "config": self.get_params(),
            "weights": {**self._weights(), **self._recency_tensor()},
            "extra": self._extra(),
        }

    def _recency_tensor(self) -> dict[str, torch.Tensor]:
        """The resolved half-life, when recency was on, as a tensor: it shapes every score, so it is
        saved with the weights (under the bundle's checksum), not in the editable metadata."""
        h = getattr(self, "recency_", None)
        return {} if h is None else {RECENCY_TENSOR: torch.tensor([float(h)], dtype=torch.float64)}

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: Any = None) -> Any:
        """Load a bundle written by :meth:`save`; runs no code from the file and needs no optional library.

        ``device`` is accepted so :func:`ncf.load_model` can pass it to any model; baselines score on the CPU.
        A bundle from before baselines took ``recency`` loads as fitted without it (``recency=None``).
        """
        from ncf.persist import load_bundle

        return cls.from_bundle(load_bundle(path))

    @classmethod
    def from_bundle(cls, b: Bundle, *, device: Any = None) -> Any:
        """Build from a loaded, checksum-verified :class:`ncf.persist.Bundle` (or a blend's component of one)."""
        from ncf.persist import stored_half_life

        if b.model_class != cls.MODEL_CLASS:
            raise BundleError(
                f"{b.path} holds a {b.model_class} model, not {cls.MODEL_CLASS}; load it with ncf.load_model()"
            )
        names = [f.name for f in declared(cls)]
        config = dict(b.config)
        if "recency" not in config:  # saved before baselines took recency: fitted without it
            config["recency"] = None
        missing = [k for k in names if k not in config and k != "recency_floor"]
        if missing:
            raise BundleError(f"{b.path}: stored config lacks {missing}; the bundle is corrupt")
        est = cls(**{k: v for k, v in config.items() if k in names})  # stores only: needs no implicit/lightfm
        try:
            est._validate()
        except ConfigError as e:
            raise BundleError(f"{b.path}: stored config is invalid ({e})") from None
        allowed = {**cls.WEIGHTS, RECENCY_TENSOR: torch.float64}
        unexpected = sorted(set(b.weights) - set(allowed))
        if unexpected:
            raise BundleError(
                f"{b.path}: weights {unexpected[:5]} are not part of a {cls.MODEL_CLASS} model; the bundle is corrupt"
            )
        for name, t in b.weights.items():  # a cast would silently change the model (an int tensor truncates)
            if t.dtype != allowed[name]:
                raise BundleError(f"{b.path}: weight {name!r} has dtype {t.dtype}, expected {allowed[name]}")
        weights = dict(b.weights)
        est.recency_ = stored_half_life(b, weights.pop(RECENCY_TENSOR, None))
        if not all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point()):
            raise BundleError(f"{b.path}: weights contain NaN or inf; the bundle is corrupt")
        try:
            est._restore(weights, b.train)
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


@dataclasses.dataclass(eq=False, repr=False)
class FactorModel(_Baseline):
    """A model whose scores are ``user_factors_ @ item_factors_.T (+ item_bias_ + user_bias_)``, in torch.

    Subclasses train with their library, then call :meth:`_set_factors`; scoring, ranking and
    save/load come from here (implicit's ALS/BPR, LightFM).
    """

    WEIGHTS = {name: torch.float32 for name in ("user_factors", "item_factors", "user_bias", "item_bias")}

    user_bias_: torch.Tensor | None = None
    item_bias_: torch.Tensor | None = None

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
            raise ModelDivergedError(
                f"{type(self).__name__} produced non-finite factors; lower the learning rate or raise the regularisation"
            )

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        users = users.cpu()
        out = self.user_factors_[users] @ self.item_factors_.T
        if self.item_bias_ is not None:
            out += self.item_bias_[None, :]
        if self.user_bias_ is not None:
            out += self.user_bias_[users, None]
        return out

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        users, items = users.cpu(), items.cpu()
        out = (self.user_factors_[users] * self.item_factors_[items]).sum(1)
        if self.item_bias_ is not None:
            out += self.item_bias_[items]
        if self.user_bias_ is not None:
            out += self.user_bias_[users]
        return out

    def bytes_per_user(self) -> int:
        return self.train_.n_items * 4 * 4 + self.item_factors_.shape[1] * 4

    # -- fold-in -------------------------------------------------------------------------------
    #: the user factors' trailing columns that are constants, not learned (implicit's BPR: 1 for the item bias)
    FIXED_USER_COLUMNS: ClassVar[int] = 0

    def foldin_config(self) -> FoldIn:
        """The fold-in steps of :meth:`fold_in_users` (``foldin_`` when set, else from the model's L2)."""
        return getattr(self, "foldin_", None) or FoldIn(l2=float(getattr(self, "regularization", 0.01)))

    def fold_in_users(self, profiles: sp.csr_matrix) -> tuple[torch.Tensor, torch.Tensor | None]:
        """User factors (and biases) for profile rows, the item side frozen.

        Default (BPR-style models): :func:`ncf.foldin.fold_in` with the BPR loss against every
        item outside the history, from the mean training user vector, L2 toward it. The user
        bias (LightFM) does not change a user's ranking: new users get the mean one.
        """
        fixed = self.FIXED_USER_COLUMNS
        uf, itf = self.user_factors_, self.item_factors_
        d = uf.shape[1] - fixed
        v = itf[:, :d]
        const = itf[:, d:] @ uf[0, d:] if fixed else torch.zeros(itf.shape[0])
        bias = const + (self.item_bias_ if self.item_bias_ is not None else 0.0)

        def score_all(ps: list[torch.Tensor]) -> torch.Tensor:
            return ps[0] @ v.T + bias

        init = [uf[:, :d].mean(0, keepdim=True)]
        cfg = self.foldin_config()
        seed = int(getattr(self, "seed_", None) or 0)
        (u,) = fold_in(init, score_all, profiles, loss="bpr", negatives=1.0, cfg=cfg, seed=seed)
        if fixed:
            u = torch.cat([u, uf[:1, d:].expand(len(u), -1)], dim=1)
        ub = None if self.user_bias_ is None else self.user_bias_.mean().expand(len(u)).clone()
        return u, ub

    def history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """Fold the rows in (:meth:`fold_in_users`), then score every item as :meth:`score_block` does."""
        self.check_fitted()
        u, ub = self.fold_in_users(profiles)
        out = u @ self.item_factors_.T
        if self.item_bias_ is not None:
            out += self.item_bias_[None, :]
        if ub is not None:
            out += ub[:, None]
        return out

    def item_vectors(self) -> np.ndarray:
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
