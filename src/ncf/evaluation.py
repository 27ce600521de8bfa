"""Evaluation protocols. Every result is stamped with the protocol that produced it.

- ``"full"``: each held-out item is ranked against every item the user did not interact
  with in training (seen items excluded). This is the honest number for a recommender
  that ranks the whole catalogue.
- ``"sampled"``: the NCF paper's protocol: each held-out item is ranked among ``negatives``
  (default 99) sampled items the user never interacted with. Sampled numbers are much
  higher and *not comparable* with full-ranking ones (Krichene & Rendle, KDD 2020).
- ``"full-unfiltered"``: like "full" but seen items stay in the ranking, as the seed
  notebook did. Only for reproducing that notebook; it punishes nothing wrong.

Ties are broken by item index (a lower index ranks first) in every protocol, so a model
that scores every item the same gets an index-order ranking, never a perfect one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf import metrics as M
from ncf.checks import check_cutoffs, check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError
from ncf.ranking import ScoreFn, chunk_size_for, masked_scores, topk_rows

if TYPE_CHECKING:
    from ncf.base import Scorer

PROTOCOLS = ("full", "sampled", "full-unfiltered")
PairFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


#: Up to this many held-out items per user, ranks come from direct comparisons, not a sort.
#: Measured on ML-100k validation (one thread): with 1 item per user direct is 4x faster
#: (GMF 0.03 vs 0.12 s), with 10 per user the sort is 2x faster (0.08 vs 0.15 s).
DIRECT_MAX_POSITIVES = 4
#: Scores compared at once on the direct path (x ~6 bytes of temporaries each).
DIRECT_BLOCK = 1 << 22


def _ties_before(cand: torch.Tensor, pos: torch.Tensor, cols: torch.Tensor, item_ar: torch.Tensor) -> torch.Tensor:
    """Per row, how many items tie with the held-out item's score and have a lower index."""
    return ((cand == pos[:, None]) & (item_ar[None, :] < cols[:, None])).sum(1)


def _ranks_direct(
    scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, pos: torch.Tensor, item_ar: torch.Tensor
) -> torch.Tensor:
    """Rank = #(score > pos) + #(score == pos and lower index), comparing each held-out item
    with every item (P x I, a few cheap vector ops): for few held-out items per user."""
    above = torch.empty(len(pos), dtype=torch.int64, device=pos.device)
    step = max(1, DIRECT_BLOCK // max(1, scores.shape[1]))
    for b in range(0, len(pos), step):
        cand, p = scores[rows[b : b + step]], pos[b : b + step]
        above[b : b + step] = (cand > p[:, None]).sum(1) + _ties_before(cand, p, cols[b : b + step], item_ar)
    return above


def _ranks_in_top(
    scores: torch.Tensor,
    best: tuple[torch.Tensor, torch.Tensor],
    rows: torch.Tensor,
    cols: torch.Tensor,
    pos: torch.Tensor,
    item_ar: torch.Tensor,
) -> torch.Tensor:
    """:func:`_ranks_direct`'s ranks for held-out items scored above their row's ``k``-th best
    value, from the row's top ``k`` (``best``: values and indices) alone: every item scored at or
    above such an item is among them, so comparing with ``k`` entries instead of every item gives
    the same count. Items tied with the ``k``-th value (the top ``k`` may hold only some of a tie)
    take the direct path."""
    vals, idx = best[0][rows], best[1][rows]
    above = (vals > pos[:, None]).sum(1) + ((vals == pos[:, None]) & (idx < cols[:, None])).sum(1)
    at_kth = torch.nonzero(pos == vals[:, -1]).squeeze(1)
    if len(at_kth):
        above[at_kth] = _ranks_direct(scores, rows[at_kth], cols[at_kth], pos[at_kth], item_ar)
    return above


def _ranks_sorted(
    scores: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    pos: torch.Tensor,
    item_ar: torch.Tensor,
    indptr: np.ndarray,
) -> torch.Tensor:
    """The same ranks for many held-out items per user: sort each user's row once (I log I)
    and binary-search all their held-out items in it; only items tied with another score
    take the exact comparison path."""
    n_items, device, counts = scores.shape[1], scores.device, np.diff(indptr)
    slot = torch.as_tensor(np.arange(len(cols)) - np.repeat(indptr[:-1], counts), device=device)
    pad = torch.full(
        (scores.shape[0], max(1, int(counts.max()) if len(counts) else 1)), torch.inf, device=device, dtype=scores.dtype
    )
    pad[rows, slot] = pos
    srt = torch.sort(scores, dim=1).values
    gt = (n_items - torch.searchsorted(srt, pad, right=True))[rows, slot]
    ge = (n_items - torch.searchsorted(srt, pad, right=False))[rows, slot]
    above = gt.clone()
    tied = torch.nonzero(ge > gt + 1).squeeze(1)
    if len(tied):
        above[tied] += _ties_before(scores[rows[tied]], pos[tied], cols[tied], item_ar)
    return above


@torch.inference_mode()
def full_ranking_ranks(
    score_fn: ScoreFn,
    test_csr: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    *,
    users: np.ndarray | None = None,
    coverage_k: int | None = None,
    device: torch.device | str = "cpu",
    bytes_per_user: int | None = None,
    cutoff: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Rank of every held-out item among the user's candidates (vectorised, in chunks).

    Returns ``(users, ranks, indptr, n_candidates, topk_items)``: ``users`` are the
    evaluated users (those with held-out items), ``ranks[indptr[j]:indptr[j+1]]`` the
    0-based ranks of user ``users[j]``'s held-out items. With ``cutoff``, a rank of at least
    ``cutoff`` may be reported as another value of at least ``cutoff`` (distinct within the
    user; enough for the cut-off metrics at or below it): an item scored below the row's
    ``cutoff``-th best is not ranked further, which skips sorting every row.
    """
    n_items = test_csr.shape[1]
    counts = np.diff(test_csr.indptr)
    if users is None:
        users = np.flatnonzero(counts > 0)
    users = np.asarray(users, dtype=np.int64)
    max_pos = int(counts[users].max()) if len(users) else 0
    per_user = bytes_per_user or n_items * 4 * 4
    chunk = chunk_size_for(per_user + max_pos * n_items * 3)
    item_ar = torch.arange(n_items, device=device)
    ranks_out: list[np.ndarray] = []
    topk_out: list[np.ndarray] = []
    for sl, scores in masked_scores(score_fn, users, n_items, exclude=exclude, chunk_size=chunk, device=device):
        sub = test_csr[users[sl]]
        rows = torch.as_tensor(np.repeat(np.arange(sl.stop - sl.start), np.diff(sub.indptr)), device=device)
        cols = torch.as_tensor(sub.indices.astype(np.int64), device=device)
        pos = scores[rows, cols]
        top = topk_rows(scores, min(coverage_k, n_items)) if coverage_k else None  # what recommend() returns
        if cutoff is not None and cutoff < n_items:
            # below the row's cutoff-th best score, at least `cutoff` items rank above: clip there
            best = top if top is not None and top[0].shape[1] == cutoff else torch.topk(scores, cutoff, dim=1)
            kth = best[0][:, -1]
            # the clipped ones get distinct placeholder ranks past every real one (n_items + their slot)
            slot = np.arange(len(sub.indices)) - np.repeat(sub.indptr[:-1], np.diff(sub.indptr))
            above = torch.as_tensor(n_items + slot, device=cols.device)
            near = torch.nonzero(pos >= kth[rows]).squeeze(1)
            if len(near):
                above[near] = _ranks_in_top(scores, best, rows[near], cols[near], pos[near], item_ar)
        elif max_pos <= DIRECT_MAX_POSITIVES:
            above = _ranks_direct(scores, rows, cols, pos, item_ar)
        else:
            above = _ranks_sorted(scores, rows, cols, pos, item_ar, sub.indptr)
        ranks_out.append(above.cpu().numpy())
        if top is not None:
            vals, idx = top
            topk_out.append(torch.where(torch.isneginf(vals), -1, idx).cpu().numpy())
    ranks = np.concatenate(ranks_out) if ranks_out else np.zeros(0, dtype=np.int64)
    user_counts = counts[users]
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(user_counts, out=indptr[1:])
    if exclude is not None:
        n_cand = n_items - np.diff(exclude.indptr)[users]
    else:
        n_cand = np.full(len(users), n_items)
    topk_items = np.concatenate(topk_out) if topk_out else None
    return users, ranks.astype(np.int64), indptr, n_cand, topk_items


@torch.inference_mode()
def sampled_ranks(
    pair_fn: PairFn,
    test: Interactions,
    exclude: list[Interactions],
    *,
    negatives: int = 99,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each held-out pair among ``negatives`` sampled unseen items.

    Returns ``(query_users, ranks)``, one entry per held-out pair.
    """
    from ncf.sampling import NegativeSampler

    sampler = NegativeSampler(exclude[0], exclude=exclude[1:], device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    users = torch.as_tensor(test.user_idx, device=device)
    items = torch.as_tensor(test.item_idx, device=device)
    ranks = np.empty(len(test), dtype=np.int64)
    step = max(1, (1 << 20) // (negatives + 1))
    for s in range(0, len(test), step):
        u, pos = users[s : s + step], items[s : s + step]
        neg = sampler.sample(u, negatives, gen)
        cand = torch.cat([pos[:, None], neg], dim=1)
        sc = pair_fn(u[:, None].expand_as(cand).reshape(-1), cand.reshape(-1)).float().view(cand.shape)
        p = sc[:, :1]
        above = (sc[:, 1:] > p).sum(1) + ((sc[:, 1:] == p) & (cand[:, 1:] < pos[:, None])).sum(1)
        ranks[s : s + step] = above.cpu().numpy()
    return test.user_idx, ranks


def _aggregate(
    ranks: np.ndarray,
    indptr: np.ndarray,
    n_cand: np.ndarray,
    ks: list[int],
    names: Sequence[str],
) -> dict[str, float]:
    out: dict[str, float] = {}
    at_k = [n for n in names if n not in ("mrr", "auc")]
    for k in ks:
        out.update(M.compute(list(at_k), ranks, indptr, n_cand, k))
    if "mrr" in names:
        out.update(M.compute(["mrr"], ranks, indptr, n_cand, ks[0]))
    if "auc" in names:
        out.update(M.compute(["auc"], ranks, indptr, n_cand, ks[0]))
    return out


def evaluate_scores(
    score_fn: ScoreFn,
    pair_fn: PairFn | None,
    train: Interactions,
    test: Interactions,
    *,
    k: int | Sequence[int] = 10,
    protocol: str = "full",
    metrics: Sequence[str] = M.METRIC_NAMES,
    negatives: int = 99,
    seed: int = 0,
    device: torch.device | str = "cpu",
    bytes_per_user: int | None = None,
) -> dict[str, Any]:
    """Evaluate raw scoring functions; ``train`` and ``test`` must share id maps."""
    ks = check_cutoffs(k)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol == {protocol!r}, must be one of {', '.join(PROTOCOLS)}")
    unknown = [m for m in metrics if m not in M.METRIC_NAMES]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}; known: {', '.join(M.METRIC_NAMES)}")
    n_given = len(test)
    test, overlap = _drop_train_overlap(train, test)
    if len(test) == 0:
        if n_given == 0:
            raise DataError("the test set is empty; nothing to evaluate")
        raise DataError(
            f"the test set is empty once the pairs also in train are dropped: all {n_given} are training pairs "
            "(a model never ranks what a user already has); "
            "evaluate on held-out interactions, e.g. from ncf.split or `ncf train --test-protocol`"
        )
    result: dict[str, Any] = {"protocol": protocol}
    if protocol == "sampled":
        if pair_fn is None:
            raise ConfigError("this model cannot score pairs, so the sampled protocol is unavailable")
        negatives = check_int("negatives", negatives)
        q_users, q_ranks = sampled_ranks(pair_fn, test, [train, test], negatives=negatives, seed=seed, device=device)
        # Each held-out pair is its own query with one relevant item; average within a
        # user first, then over users, so heavy users do not dominate.
        per_q_indptr = np.arange(len(q_ranks) + 1, dtype=np.int64)
        n_cand = np.full(len(q_ranks), negatives + 1)
        per_q = {}
        for name in metrics:
            fn_ks = [None] if name in ("mrr", "auc") else ks
            for kk in fn_ks:
                vals = M.per_user(name, q_ranks, per_q_indptr, n_cand, kk)
                key = name if kk is None else f"{name}@{kk}"
                sums = np.bincount(q_users, weights=vals, minlength=train.n_users)
                cnt = np.bincount(q_users, minlength=train.n_users)
                per_q[key] = float(np.mean(sums[cnt > 0] / cnt[cnt > 0]))
        result.update(per_q)
        result["negatives"] = negatives
        n_users = int(len(np.unique(q_users)))
    else:
        exclude = train.csr if protocol == "full" else None
        # Only cut-off metrics asked for (early stopping, model selection): ranks past max(ks) are not needed.
        cutoff = max(ks) if all(m in M.CUTOFF_METRICS for m in metrics) else None
        users, ranks, indptr, n_cand, topk_items = full_ranking_ranks(
            score_fn,
            test.csr,
            exclude,
            coverage_k=max(ks),
            device=device,
            bytes_per_user=bytes_per_user,
            cutoff=cutoff,
        )
        result.update(_aggregate(ranks, indptr, n_cand, ks, metrics))
        if topk_items is not None:
            for kk in ks:
                result[f"coverage@{kk}"] = M.coverage(topk_items[:, :kk], train.n_items)
        n_users = len(users)
    result["users"] = n_users
    result["test_interactions"] = len(test)
    if overlap:
        result["test_pairs_in_train_dropped"] = overlap
    return result


def _drop_train_overlap(train: Interactions, test: Interactions) -> tuple[Interactions, int]:
    """Remove test pairs that are also train pairs (they would leak); count them."""
    keys_train = train.user_idx.astype(np.int64) * train.n_items + train.item_idx
    keys_test = test.user_idx.astype(np.int64) * test.n_items + test.item_idx
    if len(keys_train) and np.all(keys_train[1:] > keys_train[:-1]):
        # Interactions keep (user, item) order: a binary search per test pair, no hashing of
        # train (this runs once per validation epoch).
        at = np.searchsorted(keys_train, keys_test).clip(max=len(keys_train) - 1)
        overlap = keys_train[at] == keys_test
    else:
        overlap = np.isin(keys_test, keys_train)
    n = int(overlap.sum())
    return (test._subset(~overlap) if n else test), n


def evaluate(
    model: Scorer,
    test: Interactions,
    *,
    k: int | Sequence[int] = 10,
    protocol: str = "full",
    metrics: Sequence[str] = M.METRIC_NAMES,
    negatives: int = 99,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate a fitted model on held-out interactions.

    Parameters
    ----------
    model:
        A fitted :class:`ncf.NCF` or baseline.
    test:
        Held-out interactions; raw ids are matched to the model's id maps (pairs with
        unknown users or items are dropped and counted in the result).
    k:
        Cutoff, or several cutoffs, for the @k metrics.
    protocol:
        ``"full"`` (default), ``"sampled"`` or ``"full-unfiltered"``; see the module notes.

    Returns
    -------
    dict
        Metric values keyed like ``"ndcg@10"``, plus ``"protocol"``, ``"users"``,
        ``"test_interactions"``.
    """
    model.check_fitted()
    train = model.train_
    test_m = test.reindex(train.user_map, train.item_map)
    dropped = {k: int(test_m.report.get(k, 0)) for k in DROP_KEYS if test_m is not test}
    if len(test_m) == 0 and len(test):
        raise DataError(
            f"nothing left to evaluate: {describe_dropped(len(test), dropped, _kind_mismatch(train, test))}"
        )
    res = evaluate_scores(
        model.score_block,
        model.score_pairs,
        train,
        test_m,
        k=k,
        protocol=protocol,
        metrics=metrics,
        negatives=negatives,
        seed=seed,
        device=model.score_device(),
        bytes_per_user=model.bytes_per_user(),
    )
    res["test_rows"] = len(test)
    res.update({k: v for k, v in dropped.items() if v})
    return res


#: Counts ``evaluate`` reports when test rows had ids the model does not know (rows, distinct ids).
DROP_KEYS = ("unknown_users_dropped", "unknown_user_ids", "unknown_items_dropped", "unknown_item_ids")


def _kind_mismatch(train: Interactions, test: Interactions) -> str:
    kinds = {"int": "integers", "str": "strings"}
    parts = [
        f"the test data's {axis} ids are {kinds[getattr(test, axis + '_map').kind]} but the model's are "
        f"{kinds[getattr(train, axis + '_map').kind]}"
        for axis in ("user", "item")
        if getattr(test, axis + "_map").kind != getattr(train, axis + "_map").kind
    ]
    return "; ".join(parts)


def describe_dropped(n_rows: int, dropped: dict[str, int], why: str = "") -> str:
    """One line: how many test rows (and distinct ids) were dropped for ids the model does not know, and why."""
    parts = []
    if dropped.get("unknown_users_dropped"):
        parts.append(
            f"{dropped['unknown_users_dropped']} with a user the model does not know "
            f"({dropped.get('unknown_user_ids', '?')} distinct users)"
        )
    if dropped.get("unknown_items_dropped"):
        parts.append(
            f"{dropped['unknown_items_dropped']} with an unknown item "
            f"({dropped.get('unknown_item_ids', '?')} distinct items)"
        )
    n = dropped.get("unknown_users_dropped", 0) + dropped.get("unknown_items_dropped", 0)
    line = f"dropped {n} of {n_rows} test rows: " + ", ".join(parts) if parts else f"dropped none of {n_rows} test rows"
    return line + (f" ({why}; check the id columns)" if why else "")


def dropped_note(res: dict[str, Any]) -> str | None:
    """The drop line for an ``evaluate`` result, or None when every test row was used."""
    dropped = {k: res[k] for k in DROP_KEYS if res.get(k)}
    if not dropped:
        return None
    return describe_dropped(int(res.get("test_rows", 0)), dropped) + "; metrics are over the rest"
