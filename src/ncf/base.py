"""The small interface every model shares: fit, recommend, similar_items, score.

Subclasses implement ``fit``, ``score_block`` (a block of users x all items) and
optionally ``score_pairs`` and ``item_vectors``; raw-id handling, seen-item
filtering, unknown-id policy and top-k live here, once, on top of :mod:`ncf.ranking`.

Evaluation, batch recommendation and the service score through :class:`Scorer`, the
index-level half of this interface (contiguous user/item indices in, scores out).

Fold-in (users the model was not trained on): :meth:`Recommender.history_profiles` turns raw
item-id histories into profile rows weighted as the model weighs a training user's profile,
:meth:`Recommender.history_scores` (the one per-model hook) scores them against every item,
and :meth:`Recommender.recommend_history` / :meth:`Recommender.explain` build on those two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
import torch

from ncf.checks import check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, NotFittedError, UnknownIdError
from ncf.ranking import chunk_size_for, topk
from ncf.split import rank_from_end
from ncf.weighting import recency_curve, recency_weights

Unknown = Literal["error", "popular"]


def _is_scalar(x: Any) -> bool:
    return isinstance(x, (str, bytes)) or np.ndim(x) == 0


def _is_id(x: Any) -> bool:
    """One id (not a sequence of ids): text, bytes, a number or a 0-d array; no ragged-array trap."""
    if isinstance(x, (str, bytes)):
        return True
    if isinstance(x, np.ndarray):
        return x.ndim == 0
    return not hasattr(x, "__iter__")


def _as_histories(histories: Any) -> tuple[list[list[Any]], bool]:
    """``(list of histories, one?)``: a flat sequence of ids is one history, a sequence of sequences many."""
    if _is_id(histories):
        raise ConfigError(
            f"histories must be a list of item ids (one history) or a list of such lists, got {histories!r}"
        )
    hist = list(histories)
    if hist and all(_is_id(h) for h in hist):
        return [hist], True
    if not hist:
        return [[]], True
    if any(_is_id(h) for h in hist):
        raise ConfigError("histories mixes item ids and lists; give one list of ids, or a list of lists")
    return [list(h) for h in hist], False


def _parallel(values: Any, hist: list[list[Any]], one: bool, what: str) -> list[np.ndarray] | None:
    """``timestamps`` / ``weights`` as float arrays aligned with ``hist`` (same shapes), or None."""
    if values is None:
        return None
    vals = [list(values)] if one else [list(v) for v in values]
    if len(vals) != len(hist):
        raise ConfigError(f"{what} has {len(vals)} lists but there are {len(hist)} histories; give one per history")
    out = []
    for j, (v, h) in enumerate(zip(vals, hist)):
        if len(v) != len(h):
            raise ConfigError(f"{what}[{j}] has {len(v)} values but history {j} has {len(h)} items; give one per item")
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}[{j}] must be numbers, got {v[:3]!r}...") from None
        if not np.isfinite(arr).all():
            raise ConfigError(f"{what}[{j}] has a NaN or infinite value; give finite numbers")
        out.append(arr)
    if what == "weights" and any((a < 0).any() for a in out):
        raise ConfigError("weights must be >= 0")
    return out


def profile_rows(profiles: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """Rows of profile rows, with the same rows of any ``variants`` they carry: the profiles weighted
    by other rules (a blend's components that weigh a history differently, :mod:`ncf.blend`)."""
    out = profiles[rows]
    variants = getattr(profiles, "variants", None)
    if variants is not None:
        out.variants = {key: v[rows] for key, v in variants.items()}
    return out


def _leave_one_out(prof: sp.csr_matrix) -> sp.csr_matrix:
    """:meth:`Recommender.explain`'s stacked rows of ONE profile row: row 0 the full profile, row 1 + j
    the profile without its j-th item (and the same for each of its ``variants``, which share its items)."""
    hist = prof.indices.astype(np.int64)
    w = prof.data.astype(np.float32)
    n_h = len(hist)
    rows = np.concatenate([np.zeros(n_h, dtype=np.int64), np.repeat(np.arange(1, n_h + 1), n_h - 1)])
    keep = ~np.eye(n_h, dtype=bool)
    cols = np.concatenate([hist, np.tile(hist, (n_h, 1))[keep]])
    vals = np.concatenate([w, np.tile(w, (n_h, 1))[keep]])
    stacked = sp.csr_matrix((vals, (rows, cols)), shape=(n_h + 1, prof.shape[1]), dtype=np.float32)
    stacked.sort_indices()
    variants = getattr(prof, "variants", None)
    if variants is not None:
        stacked.variants = {key: _leave_one_out(v) for key, v in variants.items()}
    return stacked


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

    def _allowed(self, items: Sequence[Any] | None, exclude: Sequence[Any] | None) -> np.ndarray | None:
        """The item mask of ``recommend``'s ``items`` / ``exclude`` (raw ids), or None when neither is given."""
        allowed = None
        if items is not None:
            allowed = np.zeros(self.train_.n_items, dtype=bool)
            allowed[self.item_map_.index(list(items))] = True
        if exclude is not None and len(exclude):
            allowed = np.ones(self.train_.n_items, dtype=bool) if allowed is None else allowed
            allowed[self.item_map_.index(list(exclude))] = False
        return allowed

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
        allowed = self._allowed(items, exclude)
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

    # -- fold-in: users the model was not trained on --------------------------------------
    def history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """Scores of profile rows (histories over the item index) against every item: ``(n_rows, n_items)``.

        The one per-model hook of fold-in: each model scores a profile as it scores a training
        user's profile row (see :meth:`history_profiles` for how a profile is weighted).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot score histories (no history_scores)")

    def _recency_mean(self, half_life: float, floor: float) -> float:
        """Mean unnormalised recency weight over the training interactions: what
        :func:`ncf.weighting.recency_weights` divided by, so a history weighs as a training profile."""
        key = (float(half_life), float(floor))
        cache = self.__dict__.setdefault("_recency_mean_cache", {})
        if key not in cache:
            cache[key] = float(np.mean(recency_curve(rank_from_end(self.train_), half_life, floor)))
        return cache[key]

    def training_profiles(self, user_idx: np.ndarray) -> sp.csr_matrix:
        """The training profile rows of user indices, weighted as the model weighs them (recency or 1.0)."""
        x = self.train_.csr[np.asarray(user_idx, dtype=np.int64)]
        half = getattr(self, "recency_", None)
        if half is None:
            return sp.csr_matrix((np.ones(x.nnz, dtype=np.float32), x.indices, x.indptr), shape=x.shape)
        cache = self.__dict__.setdefault("_train_profiles_cache", {})
        key = (float(half), float(self.recency_floor))
        if key not in cache:
            w = recency_weights(self.train_, float(half), float(self.recency_floor)).astype(np.float32)
            full = self.train_.csr
            cache[key] = sp.csr_matrix((w, full.indices, full.indptr), shape=full.shape)
        return cache[key][np.asarray(user_idx, dtype=np.int64)]

    def history_profiles(
        self,
        histories: Any,
        *,
        timestamps: Any = None,
        weights: Any = None,
        names: Sequence[Any] | None = None,
    ) -> tuple[sp.csr_matrix, list[list[Any]]]:
        """Raw-id histories as profile rows over the model's item index, and each history's unknown ids.

        Parameters
        ----------
        histories:
            One history (a flat list of raw item ids) or a list of histories.
        timestamps:
            Optional, parallel to ``histories`` (one number per item). When the model was fitted
            with recency weights (``recency_`` is set), item ``h`` of a history weighs
            ``floor + (1 - floor) * 2 ** (-r / half_life)`` (``r``: how many of the history's known
            items are later; ties by item index), divided by the same mean as the training
            weights, exactly as a training user's profile row. Without them every item weighs 1.0.
        weights:
            Optional, parallel to ``histories``: multiplies each item's weight (>= 0).
        names:
            What to call each history in error messages (default: its position).

        Returns
        -------
        (profiles, unknown)
            A float32 CSR ``(n_histories, n_items)`` (duplicates collapse to one entry: the
            latest by timestamp, else the last one) and, per history, the raw ids the model does
            not know (ignored in the profile).

        Raises
        ------
        ConfigError
            A history is empty, or ``timestamps`` / ``weights`` do not line up with it.
        UnknownIdError
            A history has no item the model knows.
        """
        self.check_fitted()
        hist, one = _as_histories(histories)
        ts = _parallel(timestamps, hist, one, "timestamps")
        ws = _parallel(weights, hist, one, "weights")
        label = list(names) if names is not None else list(range(len(hist)))
        lens = np.array([len(h) for h in hist], dtype=np.int64)
        for j in np.flatnonzero(lens == 0)[:1]:
            raise ConfigError(f"history {label[j]!r} is empty; give at least one item id")
        flat = [x for h in hist for x in h]
        idx = self.item_map_.index(flat, missing="negative")
        row = np.repeat(np.arange(len(hist)), lens)
        pos = np.arange(len(flat))
        known = idx >= 0
        unknown: list[list[Any]] = [[] for _ in hist]
        for r, x in zip(row[~known], np.asarray(flat, dtype=object)[~known]):
            if x not in unknown[r]:
                unknown[r].append(x)
        n_known = np.bincount(row[known], minlength=len(hist))
        for j in np.flatnonzero(n_known == 0)[:1]:
            raise UnknownIdError(
                "item", unknown[j], f"history {label[j]!r} has no item this model knows, so it cannot be folded in"
            )
        t = None if ts is None else np.concatenate(ts)
        w = np.ones(len(flat)) if ws is None else np.concatenate(ws)
        row, idx, pos, w = row[known], idx[known], pos[known], w[known]
        t = None if t is None else t[known]
        # duplicates collapse to the latest (by timestamp, then position), as training data does
        order = np.lexsort((pos, idx, row) if t is None else (pos, t, idx, row))
        row, idx, w = row[order], idx[order], w[order]
        t = None if t is None else t[order]
        last = np.ones(len(row), dtype=bool)
        last[:-1] = (row[1:] != row[:-1]) | (idx[1:] != idx[:-1])
        row, idx, w = row[last], idx[last], w[last]
        t = None if t is None else t[last]
        half = getattr(self, "recency_", None)
        if half is not None and t is not None:
            floor = float(self.recency_floor)
            # rank from the end within each history: later time first, ties by item index (as training)
            o = np.lexsort((idx, t, row))
            starts = np.searchsorted(row[o], np.arange(len(hist) + 1))
            p = np.empty(len(row), dtype=np.int64)
            p[o] = np.arange(len(row)) - np.repeat(starts[:-1], np.diff(starts))
            r = np.bincount(row, minlength=len(hist))[row] - 1 - p
            w = w * recency_curve(r, half, floor) / self._recency_mean(half, floor)
        out = sp.csr_matrix(
            (w.astype(np.float32), (row, idx)), shape=(len(hist), self.train_.n_items), dtype=np.float32
        )
        out.sort_indices()
        return out, unknown

    def recommend_profiles(
        self,
        profiles: sp.csr_matrix,
        k: int = 10,
        *,
        filter_seen: bool = True,
        items: Sequence[Any] | None = None,
        exclude: Sequence[Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`recommend_history` for profiles :meth:`history_profiles` already built: 2-D raw ids and scores."""
        self.check_fitted()
        k = check_int("k", k)
        n_items = self.train_.n_items
        allowed = self._allowed(items, exclude)

        def score_fn(rows: torch.Tensor) -> torch.Tensor:
            return self.history_scores(profile_rows(profiles, rows.cpu().numpy()))

        idx, scores = topk(
            score_fn,
            np.arange(profiles.shape[0]),
            k,
            n_items,
            exclude=profiles if filter_seen else None,
            allowed=allowed,
            chunk_size=chunk_size_for(self.bytes_per_user()),
            device=self.score_device(),
        )
        return self._raw_items(idx), scores

    def recommend_history(
        self,
        histories: Any,
        k: int = 10,
        *,
        timestamps: Any = None,
        weights: Any = None,
        filter_seen: bool = True,
        items: Sequence[Any] | None = None,
        exclude: Sequence[Any] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for histories of raw item ids (users the model need not know), best first.

        Same conventions as :meth:`recommend`: one history (a flat list of ids) gives 1-D
        results, a list of histories 2-D; ``filter_seen`` leaves out the history's own items;
        ``items`` / ``exclude`` restrict the ranking. Unknown items in a history are ignored
        (:meth:`history_profiles` lists them); a history without any known item raises
        :class:`~ncf.errors.UnknownIdError`, an empty one :class:`~ncf.errors.ConfigError`.

        Notes
        -----
        Each model scores a history as it scores a training user (:meth:`history_scores`): EASE
        and item-kNN exactly; factor models and NCF fit a new user vector against the frozen item
        side first ("fold-in"), so a known user's folded-in history ranks close to, not exactly
        as, that user.
        """
        self.check_fitted()
        k = check_int("k", k)
        _, one = _as_histories(histories)
        profiles, _ = self.history_profiles(histories, timestamps=timestamps, weights=weights)
        ids, scores = self.recommend_profiles(profiles, k, filter_seen=filter_seen, items=items, exclude=exclude)
        return (ids[0], scores[0]) if one else (ids, scores)

    def _explain_scores(self, stacked: sp.csr_matrix) -> torch.Tensor:
        """Scores of :meth:`explain`'s stacked profiles (row 0: the full history; row 1 + j: without
        item j); :meth:`history_scores` unless a model's score is not additive in what it blends."""
        return self.history_scores(stacked)

    def explain(self, user_or_history: Any, items: Any, n: int = 3) -> list[list[tuple[Any, float]]]:
        """The history items that most support each of ``items``, with their share of the support.

        Parameters
        ----------
        user_or_history:
            A known raw user id (their training profile is the history) or one history (a list
            of raw item ids; unknown ones are ignored).
        items:
            One raw item id (returns one list) or a sequence of them (one list each).
        n:
            Most explaining items per item (>= 1).

        Returns
        -------
        list of lists of (raw_item_id, share)
            Per item, up to ``n`` history items, most supporting first. The attribution of history
            item ``h`` to item ``i`` is ``score(history)[i] - score(history without h)[i]``; a share
            is an item's positive attribution over the sum of all positive attributions, so shares
            lie in [0, 1] and sum to <= 1. Items nothing supports get an empty list.

        Notes
        -----
        All leave-one-out profiles are scored in ONE :meth:`history_scores` call. For EASE and
        item-kNN, which are linear in the profile, the attribution is exact: ``w_h * B[h, i]``.
        For NCF and the factor models the history is *folded in* with and without ``h`` (the
        user vector refitted each time), so the attribution is "what removing ``h`` from the
        fold-in changes", also for a known user, whose trained embedding is not used here.
        Popularity ignores the history: every list is empty.
        """
        self.check_fitted()
        n = check_int("n", n)
        one_item = _is_scalar(items)
        target = self.item_map_.index([items] if one_item else list(items))
        if _is_id(user_or_history):
            prof = self.training_profiles(self.user_map_.index([user_or_history]))
        else:
            prof, _ = self.history_profiles([list(user_or_history)])
        hist = prof.indices.astype(np.int64)
        scores = self._explain_scores(_leave_one_out(prof)).detach().float().cpu()[:, torch.as_tensor(target)]
        attr = (scores[0:1] - scores[1:]).numpy().astype(np.float64)  # (n_h, n_targets)
        pos = np.clip(attr, 0.0, None)
        total = pos.sum(0)
        share = np.divide(pos, total, out=np.zeros_like(pos), where=total > 0)
        order = np.lexsort((np.broadcast_to(hist[:, None], share.shape), -share), axis=0)
        raw = self._raw_items(hist)
        out = []
        for c in range(len(target)):
            top = [int(j) for j in order[:n, c] if share[j, c] > 0]
            out.append([(raw[j].item() if hasattr(raw[j], "item") else raw[j], float(share[j, c])) for j in top])
        return out[0] if one_item else out
