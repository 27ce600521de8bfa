"""The small interface every model shares: fit, recommend, similar_items, score.

Subclasses implement ``fit``, ``score_block`` (a block of users x all items) and
optionally ``score_pairs`` and ``item_vectors``; raw-id handling, seen-item
filtering, unknown-id policy and top-k live here, once, on top of :mod:`ncf.ranking`.

Evaluation, batch recommendation and the service score through :class:`Scorer`, the
index-level half of this interface (contiguous user/item indices in, scores out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

from ncf.checks import check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, NotFittedError
from ncf.ranking import chunk_size_for, topk

Unknown = Literal["error", "popular"]


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (str, bytes)) or np.ndim(x) == 0


@runtime_checkable
class Scorer(Protocol):
    """What evaluation, batch recommendation and the service need of a fitted model: index-level scores.

    ``score_block(users)`` scores the given user indices against every item, a
    ``(len(users), n_items)`` tensor on ``score_device()``; ``score_pairs`` scores index
    pairs; ``bytes_per_user`` sizes the user chunks a memory budget allows;
    ``check_fitted`` raises :class:`~ncf.errors.NotFittedError` when there is nothing to score.
    """

    train_: Interactions

    def score_block(self, users: torch.Tensor) -> torch.Tensor: ...

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor: ...

    def score_device(self) -> torch.device: ...

    def bytes_per_user(self) -> int: ...

    def check_fitted(self) -> None: ...


class Recommender:
    """Base class of :class:`ncf.NCF` and the baselines."""

    name = "recommender"
    train_: Interactions

    # -- to implement ----------------------------------------------------------------
    def fit(self, train: Interactions, *args: Any, **kwargs: Any) -> Recommender:
        raise NotImplementedError

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of the given user indices against every item: (len(users), n_items)."""
        raise NotImplementedError

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of (user, item) index pairs; default: gather from ``score_block``."""
        out = torch.empty(len(users), dtype=torch.float32, device=users.device)
        uniq, inv = torch.unique(users, return_inverse=True)
        step = chunk_size_for(self.bytes_per_user())
        for s in range(0, len(uniq), step):
            block = self.score_block(uniq[s : s + step]).float()
            sel = (inv >= s) & (inv < s + step)
            out[sel] = block[inv[sel] - s, items[sel]]
        return out

    def candidate_scores(self, users: torch.Tensor) -> torch.Tensor:
        """First-stage scores for two-stage ``recommend(candidates=M)``: (len(users), n_items)."""
        raise ConfigError(f"{type(self).__name__} has no cheap first-stage scorer; call recommend without candidates")

    def item_vectors(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no item embeddings for similar_items")

    def score_device(self) -> torch.device:
        return torch.device("cpu")

    def bytes_per_user(self) -> int:
        return self.train_.n_items * 4 * 4

    # -- shared behaviour ------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "train_")

    def check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(train) or load a saved model first"
            )

    @property
    def user_map_(self):  # noqa: ANN201
        return self.train_.user_map

    @property
    def item_map_(self):  # noqa: ANN201
        return self.train_.item_map

    def _popularity(self) -> np.ndarray:
        return self.train_.item_counts.astype(np.float32)

    def _raw_items(self, idx: np.ndarray) -> np.ndarray:
        """Raw item ids of an index array; -1 (padding) becomes None (int ids stay int64 when none)."""
        valid = idx >= 0
        if self.item_map_.kind == "int" and valid.all():
            return self.item_map_.raw(idx).astype(np.int64)
        ids = np.empty(idx.shape, dtype=object)
        ids[valid] = self.item_map_.raw(idx[valid])
        ids[~valid] = None
        return ids

    def recommend(
        self,
        user_ids: Any,
        k: int = 10,
        *,
        filter_seen: bool = True,
        items: Sequence[Any] | None = None,
        exclude: Sequence[Any] | None = None,
        unknown: Unknown = "error",
        candidates: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for users, as raw item ids and scores, best first.

        Parameters
        ----------
        user_ids:
            One raw user id (1-D results) or a sequence of them (2-D results, one row each).
        k:
            Number of items per user (>= 1).
        filter_seen:
            Leave out items the user interacted with in training (default).
        items:
            Rank only these raw item ids.
        exclude:
            Never recommend these raw item ids.
        unknown:
            ``"error"`` raises :class:`~ncf.errors.UnknownIdError` naming unknown users;
            ``"popular"`` answers them with the most popular training items.
        candidates:
            Two-stage ranking for big catalogues: take each user's top ``candidates``
            items by the model's cheap dot-product part (NeuMF's GMF), then re-rank them
            with the full model. ``None`` (default) ranks every item exactly.

        Returns
        -------
        (item_ids, scores)
            Arrays of shape (k,) for one user or (n_users, k). A user with fewer than
            ``k`` rankable items gets ``None`` ids and ``-inf`` scores in the tail.
        """
        self.check_fitted()
        k = check_int("k", k)
        scalar = _is_scalar(user_ids)
        raw = [user_ids] if scalar else list(user_ids)
        if unknown not in ("error", "popular"):
            raise ConfigError(f"unknown == {unknown!r}, must be 'error' or 'popular'")
        uidx = self.user_map_.index(raw, missing="error" if unknown == "error" else "negative")
        n_items = self.train_.n_items
        allowed = None
        if items is not None:
            allowed = np.zeros(n_items, dtype=bool)
            allowed[self.item_map_.index(list(items))] = True
        if exclude is not None and len(exclude):
            allowed = np.ones(n_items, dtype=bool) if allowed is None else allowed
            allowed[self.item_map_.index(list(exclude))] = False
        idx = np.full((len(uidx), k), -1, dtype=np.int64)
        scores = np.full((len(uidx), k), -np.inf, dtype=np.float32)
        known = uidx >= 0
        stage = {}
        if candidates is not None:
            check_int("candidates", candidates)
            stage = {"candidates": int(candidates), "rescore": self.score_pairs}
        if known.any():
            i, s = topk(
                self.candidate_scores if candidates is not None else self.score_block,
                uidx[known],
                k,
                n_items,
                exclude=self.train_.csr if filter_seen else None,
                allowed=allowed,
                chunk_size=chunk_size_for(self.bytes_per_user()),
                device=self.score_device(),
                **stage,
            )
            idx[known], scores[known] = i, s
        if not known.all():
            pop = torch.as_tensor(self._popularity())

            def pop_fn(u: torch.Tensor) -> torch.Tensor:
                return pop.expand(len(u), -1).clone()

            i, s = topk(pop_fn, np.zeros(int((~known).sum()), dtype=np.int64), k, n_items, allowed=allowed)
            idx[~known], scores[~known] = i, s
        ids = self._raw_items(idx)
        if scalar:
            return ids[0], scores[0]
        return ids, scores

    def score(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """Scores of (user, item) pairs given as two equal-length sequences of raw ids."""
        self.check_fitted()
        u = self.user_map_.index([user_ids] if _is_scalar(user_ids) else list(user_ids))
        i = self.item_map_.index([item_ids] if _is_scalar(item_ids) else list(item_ids))
        if len(u) != len(i):
            raise ConfigError(f"user_ids has {len(u)} ids but item_ids has {len(i)}; they must pair up one to one")
        dev = self.score_device()
        with torch.inference_mode():
            out = self.score_pairs(torch.as_tensor(u, device=dev), torch.as_tensor(i, device=dev))
        out = out.float().cpu().numpy()
        return out[0] if _is_scalar(user_ids) and _is_scalar(item_ids) else out

    def similar_items(self, item_ids: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Most similar items by cosine similarity of item embeddings (the item itself excluded)."""
        self.check_fitted()
        k = check_int("k", k)
        scalar = _is_scalar(item_ids)
        idx = self.item_map_.index([item_ids] if scalar else list(item_ids))
        vecs = torch.as_tensor(np.asarray(self.item_vectors(), dtype=np.float32))
        vecs = torch.nn.functional.normalize(vecs, dim=1)
        n = vecs.shape[0]
        self_mask = sp.csr_matrix(
            (np.ones(len(idx), dtype=np.float32), idx, np.arange(len(idx) + 1)), shape=(len(idx), n)
        )
        rows = torch.as_tensor(idx)

        def sim_fn(pos: torch.Tensor) -> torch.Tensor:
            return vecs[rows[pos]] @ vecs.T

        i, s = topk(sim_fn, np.arange(len(idx)), k, n, exclude=self_mask, chunk_size=chunk_size_for(n * 8))
        ids = self._raw_items(i)
        return (ids[0], s[0]) if scalar else (ids, s)
