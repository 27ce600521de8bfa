"""Interactions: implicit feedback as a CSR user x item matrix plus the id maps.

The per-interaction arrays (``user_idx``, ``item_idx``, ``timestamps``, ``ratings``,
``source_row``) are kept sorted by (user, item), so they line up one-to-one with the
CSR's data array; ``source_row`` remembers where each row was in the source, for
splits defined by file order (:func:`ncf.split.allbut`). Splits share the id maps of the data they came from, so indices agree
between train, validation and test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ncf.data.ids import IdMap
from ncf.errors import DataError


@dataclass(frozen=True)
class SplitInfo:
    """How a part of a split was made (:mod:`ncf.split` sets it; subsets keep it).

    ``protocol`` is "holdout", "leave-one-out" or "temporal"; ``by`` is "random" or
    "timestamp" for the per-user protocols (None for temporal); ``n`` / ``fraction`` are
    the items held out per user. :meth:`ncf.NCF.fit` reads it to carve its validation part
    by the same rule and to decide whether recency weighting applies.
    """

    protocol: str
    by: str | None = None
    n: int | None = None
    fraction: float | None = None

    @property
    def random(self) -> bool:
        """A random per-user holdout: the held-out items are random past ones, not the future."""
        return self.protocol == "holdout" and self.by == "random"


@dataclass(frozen=True, eq=False)
class Interactions:
    """Positive user-item interactions with their raw-id maps.

    Build one with :func:`ncf.load_interactions` or :meth:`from_indices`.

    ``source_row``, where known, is each interaction's 0-based data row in the source
    it was loaded from (header excluded, counted before ``min_rating`` filtering), so
    the source's row order survives the (user, item) sort.
    :func:`ncf.data.movielens.movielens_100k` keeps it (``u.data`` order) and
    ``load_interactions(..., keep_source_row=True)`` does; otherwise it is ``None``.
    """

    user_map: IdMap
    item_map: IdMap
    user_idx: np.ndarray
    item_idx: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    report: dict[str, Any] = field(default_factory=dict)
    item_metadata: pd.DataFrame | None = None
    source_row: np.ndarray | None = None
    split: SplitInfo | None = None

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_indices(
        cls,
        user_map: IdMap,
        item_map: IdMap,
        user_idx: Any,
        item_idx: Any,
        timestamps: Any = None,
        ratings: Any = None,
        *,
        report: dict[str, Any] | None = None,
        item_metadata: pd.DataFrame | None = None,
        source_row: Any = None,
        split: SplitInfo | None = None,
    ) -> Interactions:
        """Build from index arrays; duplicates are merged (latest timestamp wins).

        ``source_row`` (optional, one integer per input row): where each row sits in its
        source, e.g. its line in the file; it is kept aligned with the sorted rows.
        """
        u = np.asarray(user_idx, dtype=np.int64)
        i = np.asarray(item_idx, dtype=np.int64)
        if u.shape != i.shape or u.ndim != 1:
            raise DataError("user_idx and item_idx must be 1-D arrays of the same length")
        src = None if source_row is None else np.asarray(source_row, dtype=np.int64)
        if src is not None and src.shape != u.shape:
            raise DataError(f"source_row has shape {src.shape}, must be one integer per row ({len(u)},)")
        if u.size and (u.min() < 0 or u.max() >= len(user_map)):
            raise DataError(f"user_idx out of range [0, {len(user_map)})")
        if i.size and (i.min() < 0 or i.max() >= len(item_map)):
            raise DataError(f"item_idx out of range [0, {len(item_map)})")
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        rt = None if ratings is None else np.asarray(ratings, dtype=np.float32)
        # Sort by (user, item, timestamp) and keep the last row of each (user, item):
        # with timestamps that is the latest one.
        keys = [i, u] if ts is None else [ts, i, u]
        order = np.lexsort(keys)
        u, i = u[order], i[order]
        ts = None if ts is None else ts[order]
        rt = None if rt is None else rt[order]
        src = None if src is None else src[order]
        last = np.ones(len(u), dtype=bool)
        if len(u) > 1:
            last[:-1] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        n_dup = int((~last).sum())
        if n_dup:
            u, i = u[last], i[last]
            ts = None if ts is None else ts[last]
            rt = None if rt is None else rt[last]
            src = None if src is None else src[last]
        rep = dict(report or {})
        rep["duplicates_merged"] = rep.get("duplicates_merged", 0) + n_dup
        return cls(user_map, item_map, u, i, ts, rt, rep, item_metadata, source_row=src, split=split)

    def _subset(self, mask: np.ndarray, split_info: SplitInfo | None = None, **report: Any) -> Interactions:
        """A new Interactions with the rows where ``mask`` holds; maps are shared. The subset
        keeps how its rows were split unless ``split_info`` says otherwise."""
        rep = {k: v for k, v in self.report.items() if k != "split"}
        rep.update(report)
        return Interactions(
            self.user_map,
            self.item_map,
            self.user_idx[mask],
            self.item_idx[mask],
            None if self.timestamps is None else self.timestamps[mask],
            None if self.ratings is None else self.ratings[mask],
            rep,
            self.item_metadata,
            source_row=None if self.source_row is None else self.source_row[mask],
            split=split_info or self.split,
        )

    # -- shape -----------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    def __len__(self) -> int:
        return len(self.user_idx)

    def __repr__(self) -> str:
        return (
            f"Interactions(users={self.n_users}, items={self.n_items}, interactions={len(self)}, "
            f"timestamps={self.timestamps is not None})"
        )

    @cached_property
    def indptr(self) -> np.ndarray:
        """CSR row pointer: user ``u``'s rows are ``indptr[u]:indptr[u+1]``."""
        counts = np.bincount(self.user_idx, minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr

    @cached_property
    def csr(self) -> sp.csr_matrix:
        """Binary user x item matrix (float32 ones)."""
        data = np.ones(len(self), dtype=np.float32)
        m = sp.csr_matrix((data, self.item_idx, self.indptr), shape=self.shape)
        return m

    @property
    def user_counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def item_counts(self) -> np.ndarray:
        return np.bincount(self.item_idx, minlength=self.n_items)

    def active_users(self) -> np.ndarray:
        """Indices of users with at least one interaction."""
        return np.flatnonzero(self.user_counts > 0)

    # -- conversion ------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        """Rows with raw ids: user, item (and timestamp, rating where known)."""
        df = pd.DataFrame({"user": self.user_map.raw(self.user_idx), "item": self.item_map.raw(self.item_idx)})
        if self.timestamps is not None:
            df["timestamp"] = self.timestamps
        if self.ratings is not None:
            df["rating"] = self.ratings
        return df

    def reindex(self, user_map: IdMap, item_map: IdMap) -> Interactions:
        """The same interactions expressed in other id maps (e.g. a trained model's).

        Rows whose user or item the target maps do not know are dropped and counted
        in ``report["unknown_users_dropped"]`` / ``report["unknown_items_dropped"]``.
        """
        if user_map == self.user_map and item_map == self.item_map:
            return self
        u = user_map.index(self.user_map.raw(self.user_idx), missing="negative")
        i = item_map.index(self.item_map.raw(self.item_idx), missing="negative")
        keep = (u >= 0) & (i >= 0)
        rep = dict(self.report)
        rep["unknown_users_dropped"] = int((u < 0).sum())
        rep["unknown_items_dropped"] = int(((i < 0) & (u >= 0)).sum())
        rep["unknown_user_ids"] = int(len(np.unique(self.user_idx[u < 0])))  # distinct ids behind those rows
        rep["unknown_item_ids"] = int(len(np.unique(self.item_idx[(i < 0) & (u >= 0)])))
        return Interactions.from_indices(
            user_map,
            item_map,
            u[keep],
            i[keep],
            None if self.timestamps is None else self.timestamps[keep],
            None if self.ratings is None else self.ratings[keep],
            report=rep,
            item_metadata=self.item_metadata,
            source_row=None if self.source_row is None else self.source_row[keep],
            split=self.split,
        )

    def fingerprint(self) -> str:
        """A short content hash of the interactions (index pairs and id maps); computed once."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.user_idx).tobytes())
        h.update(np.ascontiguousarray(self.item_idx).tobytes())
        for m in (self.user_map, self.item_map):
            for arr in m.to_arrays().values():
                h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]
