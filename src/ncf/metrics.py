"""Ranking metrics computed from the ranks of each user's relevant items (pure numpy, vectorised).

Representation
--------------
Evaluation reduces every user's ranking to the *0-based ranks* of that user's relevant (held-out) items
among the candidate items scored for the user (rank 0 = top of the list):

``ranks``
    1-D integer array, grouped by user: user ``u``'s relevant items have ranks
    ``ranks[indptr[u]:indptr[u + 1]]``.  Ranks within a user must be distinct and non-negative; they need
    not be sorted (they are sorted here, per user, when a metric needs the order).
``indptr``
    1-D integer array of length ``n_users + 1`` (CSR style): ``indptr[0] == 0``, non-decreasing,
    ``indptr[-1] == len(ranks)``.  A user with ``indptr[u] == indptr[u + 1]`` has no relevant item.
``n_candidates``
    1-D integer array of length ``n_users``: how many items were ranked for each user, relevant ones
    included (only AUC needs it).

Notation used in the formulas below, for one user ``u``: ``R`` = number of relevant items,
``r_0 < r_1 < ... < r_{R-1}`` their ranks sorted ascending, ``[.]`` the indicator, ``k`` the cutoff.

Every per-user function returns a float64 array of length ``n_users`` holding NaN for users with no
relevant item; :func:`mean_over_users` averages such an array over the users with a value (NaN-mean), so
users without relevant items are excluded from the average.  :func:`compute` does both for a list of
metric names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ncf.checks import check_int
from ncf.errors import ConfigError

__all__ = [
    "METRIC_NAMES",
    "parse_metric",
    "RankGroups",
    "auc",
    "average_precision",
    "compute",
    "coverage",
    "hit_rate",
    "mean_over_users",
    "micro_precision_recall",
    "ndcg",
    "per_user",
    "precision",
    "recall",
    "reciprocal_rank",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------


def _as_int_array(values: ArrayLike, name: str) -> IntArray:
    """Convert to a 1-D int64 array; an empty sequence is accepted whatever its dtype."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------------
# grouped ranks
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankGroups:
    """Validated ``(ranks, indptr)`` pair with the per-entry user ids and lazily sorted ranks.

    Build it with :meth:`from_arrays`; the per-user metric functions accept either this object (pass it
    as ``ranks`` and leave ``indptr`` as None) or the raw arrays, so :func:`compute` validates and sorts
    only once for many metrics.
    """

    ranks: IntArray
    indptr: IntArray

    @classmethod
    def from_arrays(cls, ranks: ArrayLike, indptr: ArrayLike) -> RankGroups:
        """Validate and wrap.  Raises ConfigError when:

        * ``indptr`` is not 1-D integer of length >= 1, does not start at 0, decreases somewhere, or its
          last value differs from ``len(ranks)``;
        * ``ranks`` is not 1-D integer, holds a negative value, or repeats a rank within one user.
        """
        ranks_arr = _as_int_array(ranks, "ranks")
        indptr_arr = _as_int_array(indptr, "indptr")
        if indptr_arr.size == 0:
            raise ConfigError("indptr is empty, must have length n_users + 1 (>= 1) and start at 0")
        if indptr_arr[0] != 0:
            raise ConfigError(f"indptr[0] == {int(indptr_arr[0])}, must be 0")
        steps = np.diff(indptr_arr)
        if steps.size and steps.min() < 0:
            bad = int(np.flatnonzero(steps < 0)[0])
            raise ConfigError(
                f"indptr is not monotone non-decreasing: indptr[{bad}] == {int(indptr_arr[bad])} > "
                f"indptr[{bad + 1}] == {int(indptr_arr[bad + 1])}"
            )
        if indptr_arr[-1] != ranks_arr.size:
            raise ConfigError(f"indptr[-1] == {int(indptr_arr[-1])}, must equal len(ranks) == {ranks_arr.size}")
        if ranks_arr.size and ranks_arr.min() < 0:
            bad = int(np.flatnonzero(ranks_arr < 0)[0])
            raise ConfigError(f"ranks[{bad}] == {int(ranks_arr[bad])}, ranks must be >= 0 (0 = top of the list)")
        groups = cls(ranks_arr, indptr_arr)
        srt = groups.sorted_ranks
        same_user = groups.user_of_entry[1:] == groups.user_of_entry[:-1]
        dup = same_user & (srt[1:] == srt[:-1])
        if dup.any():
            pos = int(np.flatnonzero(dup)[0])
            user = int(groups.user_of_entry[pos])
            raise ConfigError(
                f"user {user} has rank {int(srt[pos])} more than once; ranks within a user must be distinct"
            )
        return groups

    @property
    def n_users(self) -> int:
        return self.indptr.size - 1

    @cached_property
    def n_relevant(self) -> IntArray:
        """Number of relevant items R of each user (length n_users)."""
        return np.diff(self.indptr)

    @cached_property
    def has_relevant(self) -> NDArray[np.bool_]:
        return self.n_relevant > 0

    @cached_property
    def user_of_entry(self) -> IntArray:
        """User id of each entry of ``ranks``."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.n_relevant)

    @cached_property
    def sorted_ranks(self) -> IntArray:
        """``ranks`` sorted ascending within each user (users stay in place)."""
        r, u = self.ranks, self.user_of_entry
        if r.size < 2:
            return r
        ascending_within_user = (r[1:] > r[:-1]) | (u[1:] != u[:-1])
        if ascending_within_user.all():
            return r
        return r[np.lexsort((r, u))]

    @cached_property
    def position_in_user(self) -> IntArray:
        """0-based position j of each entry of :attr:`sorted_ranks` within its user."""
        return np.arange(self.ranks.size, dtype=np.int64) - self.indptr[self.user_of_entry]

    def per_user_sum(self, values: ArrayLike) -> FloatArray:
        """Sum ``values`` (one per entry, in either entry order) within each user -> length n_users."""
        return np.bincount(self.user_of_entry, weights=values, minlength=self.n_users).astype(np.float64)

    def per_user_count(self, mask: NDArray[np.bool_]) -> IntArray:
        """Count the True entries of ``mask`` within each user -> length n_users."""
        return np.bincount(self.user_of_entry[mask], minlength=self.n_users).astype(np.int64)

    def finish(self, values: ArrayLike) -> FloatArray:
        """Cast to float64 and put NaN for users without relevant items."""
        out = np.array(values, dtype=np.float64, copy=True)
        out[~self.has_relevant] = np.nan
        return out


def _groups(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None) -> RankGroups:
    if isinstance(ranks, RankGroups):
        if indptr is not None:
            raise ConfigError("pass indptr=None when ranks is already a RankGroups")
        return ranks
    if indptr is None:
        raise ConfigError("indptr is required when ranks is an array")
    return RankGroups.from_arrays(ranks, indptr)


# --------------------------------------------------------------------------------------------------
# per-user metrics
# --------------------------------------------------------------------------------------------------


def hit_rate(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None, k: int) -> FloatArray:
    """Hit rate HR@k per user: ``HR = [min_i r_i < k]`` (1 when any relevant item is in the top k).

    Returns a float64 array of length n_users, NaN for users without relevant items.
    """
    k = check_int("k", k)
    g = _groups(ranks, indptr)
    hits = g.per_user_count(g.ranks < k)
    return g.finish(hits > 0)


def precision(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None, k: int) -> FloatArray:
    """Precision@k per user: ``P = (sum_i [r_i < k]) / k``.

    The denominator is always k, even when fewer than k candidates were ranked.
    Returns a float64 array of length n_users, NaN for users without relevant items.
    """
    k = check_int("k", k)
    g = _groups(ranks, indptr)
    return g.finish(g.per_user_count(g.ranks < k) / k)


def recall(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None, k: int) -> FloatArray:
    """Recall@k per user: ``Rec = (sum_i [r_i < k]) / R``.

    Returns a float64 array of length n_users, NaN for users without relevant items.
    """
    k = check_int("k", k)
    g = _groups(ranks, indptr)
    hits = g.per_user_count(g.ranks < k)
    n_rel = np.maximum(g.n_relevant, 1)  # users with R == 0 are set to NaN by finish()
    return g.finish(hits / n_rel)


def _idcg_table(max_len: int) -> FloatArray:
    """``table[m] = sum_{j<m} 1/log2(j+2)`` for m = 0..max_len."""
    table = np.zeros(max_len + 1, dtype=np.float64)
    if max_len:
        table[1:] = np.cumsum(1.0 / np.log2(np.arange(max_len, dtype=np.float64) + 2.0))
    return table


def ndcg(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None, k: int) -> FloatArray:
    """Normalised discounted cumulative gain NDCG@k per user, binary relevance.

    ``DCG = sum_i [r_i < k] / log2(r_i + 2)``,
    ``IDCG = sum_{j < min(R, k)} 1 / log2(j + 2)`` (all relevant items at the top),
    ``NDCG = DCG / IDCG``.

    Returns a float64 array of length n_users, NaN for users without relevant items.
    """
    k = check_int("k", k)
    g = _groups(ranks, indptr)
    srt = g.sorted_ranks  # sum in rank order so the result does not depend on the input order
    gains = np.where(srt < k, 1.0 / np.log2(srt.astype(np.float64) + 2.0), 0.0)
    dcg = g.per_user_sum(gains)
    ideal_len = np.minimum(g.n_relevant, k)
    table = _idcg_table(int(ideal_len.max()) if ideal_len.size else 0)
    idcg = table[ideal_len]
    idcg[idcg == 0.0] = 1.0  # only users with R == 0; set to NaN by finish()
    return g.finish(dcg / idcg)


def average_precision(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None, k: int) -> FloatArray:
    """Average precision AP@k per user (its mean over users is MAP@k).

    With the ranks sorted ascending ``r_0 < r_1 < ...``, the j-th relevant item (0-based) sits at list
    position ``r_j``, where precision is ``(j + 1) / (r_j + 1)``:
    ``AP = (sum_j [r_j < k] * (j + 1) / (r_j + 1)) / min(R, k)``.

    Returns a float64 array of length n_users, NaN for users without relevant items.
    """
    k = check_int("k", k)
    g = _groups(ranks, indptr)
    srt = g.sorted_ranks
    terms = np.where(srt < k, (g.position_in_user + 1.0) / (srt + 1.0), 0.0)
    denom = np.maximum(np.minimum(g.n_relevant, k), 1)
    return g.finish(g.per_user_sum(terms) / denom)


def reciprocal_rank(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None, k: int | None = None) -> FloatArray:
    """Reciprocal rank per user (its mean over users is MRR, or MRR@k).

    ``RR = 1 / (r_0 + 1)`` with ``r_0 = min_i r_i`` the best-ranked relevant item; with a cutoff k,
    ``RR@k = [r_0 < k] / (r_0 + 1)``.

    Returns a float64 array of length n_users, NaN for users without relevant items.
    """
    if k is not None:
        k = check_int("k", k)
    g = _groups(ranks, indptr)
    best = np.zeros(g.n_users, dtype=np.int64)
    has = g.has_relevant
    best[has] = g.sorted_ranks[g.indptr[:-1][has]]
    rr = 1.0 / (best + 1.0)
    if k is not None:
        rr[best >= k] = 0.0
    return g.finish(rr)


def auc(ranks: ArrayLike | RankGroups, indptr: ArrayLike | None, n_candidates: ArrayLike) -> FloatArray:
    """Area under the ROC curve per user: the fraction of (relevant, non-relevant) pairs ordered correctly.

    With ``N = n_candidates - R`` non-relevant candidates, the j-th relevant item in sorted order
    (0-based) at rank ``r_j`` has ``r_j - j`` non-relevant items ranked above it, so
    ``AUC = (1/R) * sum_j (N - (r_j - j)) / N``.
    Because ``sum_j j = R(R-1)/2`` whatever the order, this is computed exactly in integers as
    ``AUC = (R*N - sum_i r_i + R(R-1)/2) / (R*N)``.

    AUC is NaN for users with no relevant item or no non-relevant candidate (N == 0).
    Raises ConfigError unless ``n_candidates`` has length n_users and every rank is < its user's
    ``n_candidates``.
    """
    g = _groups(ranks, indptr)
    n_cand = _as_int_array(n_candidates, "n_candidates")
    if n_cand.size != g.n_users:
        raise ConfigError(f"n_candidates has length {n_cand.size}, must have one entry per user ({g.n_users})")
    too_big = g.ranks >= n_cand[g.user_of_entry]
    if too_big.any():
        pos = int(np.flatnonzero(too_big)[0])
        user = int(g.user_of_entry[pos])
        raise ConfigError(
            f"user {user} has a relevant item at rank {int(g.ranks[pos])} but n_candidates[{user}] == "
            f"{int(n_cand[user])}; every rank must be < that user's number of candidates"
        )
    n_rel = g.n_relevant
    n_neg = n_cand - n_rel
    cum = np.concatenate(([0], np.cumsum(g.ranks, dtype=np.int64)))
    rank_sum = cum[g.indptr[1:]] - cum[g.indptr[:-1]]  # exact integer sum_i r_i per user
    correct = n_rel * n_neg - rank_sum + n_rel * (n_rel - 1) // 2
    total = n_rel * n_neg
    out = np.full(g.n_users, np.nan, dtype=np.float64)
    ok = total > 0
    out[ok] = correct[ok] / total[ok]
    return out


# --------------------------------------------------------------------------------------------------
# list-level metrics
# --------------------------------------------------------------------------------------------------


def coverage(topk_items: ArrayLike, n_items: int) -> float:
    """Catalogue coverage: ``|{distinct items >= 0 in topk_items}| / n_items``.

    ``topk_items`` is a 2-D integer array (users x k) of recommended item indices; -1 marks padding (a
    user who got fewer than k recommendations) and is ignored.
    Raises ConfigError for a non-2-D or non-integer array, ``n_items < 1``, or items outside
    ``[-1, n_items)``.
    """
    n_items = check_int("n_items", n_items)
    items = np.asarray(topk_items)
    if items.ndim != 2:
        raise ConfigError(f"topk_items must be a 2-D array (users x k), got shape {items.shape}")
    if items.size == 0:
        return 0.0
    if items.dtype == np.bool_ or not np.issubdtype(items.dtype, np.integer):
        raise ConfigError(f"topk_items must hold integer item indices, got dtype {items.dtype}")
    flat = items.ravel().astype(np.int64, copy=False)
    if flat.min() < -1 or flat.max() >= n_items:
        raise ConfigError(
            f"topk_items holds values in [{int(flat.min())}, {int(flat.max())}], must be in [0, {n_items}) "
            "or -1 for padding"
        )
    seen = np.zeros(n_items, dtype=bool)
    seen[flat[flat >= 0]] = True
    return float(np.count_nonzero(seen)) / n_items


def micro_precision_recall(hits_in_topk: int, n_recommended: int, n_relevant: int) -> tuple[float, float]:
    """Micro-averaged precision and recall over a whole user x item matrix.

    ``precision = hits_in_topk / n_recommended`` and ``recall = hits_in_topk / n_relevant``, where the
    counts are summed over all users (e.g. ``n_recommended = n_users * k``).  This reproduces
    ``tf.keras.metrics.Precision(top_k=k)`` / ``Recall(top_k=k)`` evaluated on a full user x item
    score matrix against a 0/1 relevance matrix: Keras marks each row's top k predictions positive and
    accumulates true/false positives/negatives over all rows before dividing (micro-averaging), unlike
    :func:`precision` / :func:`recall` which average per-user values (macro-averaging).  Like Keras
    (``div_no_nan``), a zero denominator gives 0.0.

    Raises ConfigError for non-integer or negative counts, or ``hits_in_topk`` larger than either
    denominator.
    """
    counts = {"hits_in_topk": hits_in_topk, "n_recommended": n_recommended, "n_relevant": n_relevant}
    for name, value in counts.items():
        check_int(name, value, 0)
    if hits_in_topk > n_recommended or hits_in_topk > n_relevant:
        raise ConfigError(
            f"hits_in_topk == {hits_in_topk} exceeds n_recommended == {n_recommended} or "
            f"n_relevant == {n_relevant}; hits are counted among both"
        )
    prec = hits_in_topk / n_recommended if n_recommended else 0.0
    rec = hits_in_topk / n_relevant if n_relevant else 0.0
    return float(prec), float(rec)


# --------------------------------------------------------------------------------------------------
# averaging and the name registry
# --------------------------------------------------------------------------------------------------


def mean_over_users(values: ArrayLike) -> float:
    """Mean of the non-NaN entries (users with a defined value); NaN when there is none."""
    arr = np.asarray(values, dtype=np.float64)
    valid = ~np.isnan(arr)
    if not valid.any():
        return float("nan")
    return float(arr[valid].mean())


_AT_K: dict[str, Callable[[RankGroups, None, int], FloatArray]] = {
    "hr": hit_rate,
    "precision": precision,
    "recall": recall,
    "ndcg": ndcg,
    "map": average_precision,
}

#: The metrics with a cutoff, reported as ``"<name>@<k>"``.
CUTOFF_METRICS: tuple[str, ...] = tuple(_AT_K)
#: Every metric name :func:`compute`, :func:`ncf.evaluate` and ``NCF(metric=...)`` accept
#: (the one list; ``"mrr"`` and ``"auc"`` have no cutoff).
METRIC_NAMES: tuple[str, ...] = (*CUTOFF_METRICS, "mrr", "auc")


def parse_metric(name: str) -> tuple[str, int, str]:
    """``"ndcg@10"`` -> ``("ndcg", 10, "ndcg@10")``; ``"mrr"`` -> ``("mrr", 10, "mrr")``: the metric, its
    cutoff (10 when none is given) and its key in an evaluation result. Raises ConfigError for other names."""
    base, _, cut = str(name).partition("@")
    if base not in METRIC_NAMES or (cut and not cut.isdigit()):
        raise ConfigError(f"metric == {name!r}, must be like 'ndcg@10', 'hr@10', 'recall@20', 'mrr' or 'auc'")
    k = int(cut) if cut else 10
    return base, k, base if base not in CUTOFF_METRICS else f"{base}@{k}"


def compute(
    names: Sequence[str],
    ranks: ArrayLike,
    indptr: ArrayLike,
    n_candidates: ArrayLike | None = None,
    k: int = 10,
) -> dict[str, float]:
    """Mean-over-users value of each named metric.

    ``names`` are taken from :data:`METRIC_NAMES` (``"hr", "precision", "recall", "ndcg", "map", "mrr",
    "auc"``).  The cut-off metrics are keyed ``"<name>@<k>"`` (e.g. ``"ndcg@10"``); ``"mrr"`` (full
    reciprocal rank, no cut-off) and ``"auc"`` are keyed by their bare name.  Each value is
    :func:`mean_over_users` of the per-user function, i.e. averaged over users with >= 1 relevant item
    (and, for AUC, >= 1 non-relevant candidate).  ``n_candidates`` is required only for ``"auc"``.

    Raises ConfigError for an unknown name (listing the known ones), a bad k, bad arrays, or ``"auc"``
    without ``n_candidates``.
    """
    if isinstance(names, str):
        names = [names]
    unknown = [n for n in names if n not in METRIC_NAMES]
    if unknown:
        raise ConfigError(f"unknown metric name(s) {unknown}; known: {', '.join(METRIC_NAMES)}")
    k = check_int("k", k)
    if "auc" in names and n_candidates is None:
        raise ConfigError("metric 'auc' needs n_candidates (number of items ranked per user)")
    g = RankGroups.from_arrays(ranks, indptr)
    out: dict[str, float] = {}
    for name in names:
        if name in _AT_K:
            out[f"{name}@{k}"] = mean_over_users(_AT_K[name](g, None, k))
        elif name == "mrr":
            out["mrr"] = mean_over_users(reciprocal_rank(g, None))
        else:  # auc
            assert n_candidates is not None
            out["auc"] = mean_over_users(auc(g, None, n_candidates))
    return out


def per_user(
    name: str, ranks: ArrayLike, indptr: ArrayLike, n_candidates: ArrayLike | None = None, k: int | None = 10
) -> FloatArray:
    """Per-user values of one named metric (``k`` is ignored for "mrr" and "auc")."""
    if name not in METRIC_NAMES:
        raise ConfigError(f"unknown metric name {name!r}; known: {', '.join(METRIC_NAMES)}")
    g = RankGroups.from_arrays(ranks, indptr)
    if name in _AT_K:
        return _AT_K[name](g, None, check_int("k", k))
    if name == "mrr":
        return reciprocal_rank(g, None)
    if n_candidates is None:
        raise ConfigError("metric 'auc' needs n_candidates (number of items ranked per user)")
    return auc(g, None, n_candidates)
