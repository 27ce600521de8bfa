"""ranking.topk / masked_scores: masks, allowed items, padding, chunking, order and ties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from ncf.ranking import chunk_size_for, masked_scores, topk

N_USERS, N_ITEMS = 9, 12


def _scores(seed: int = 0, levels: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if levels:  # few distinct values: lots of ties
        return torch.randint(0, levels, (N_USERS, N_ITEMS), generator=g).float()
    return torch.randn(N_USERS, N_ITEMS, generator=g)


def _fn(s: torch.Tensor):
    return lambda users: s[users].clone()


def _exclude(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = rng.random((N_USERS, N_ITEMS)) < 0.3
    m[0] = False  # a user with nothing excluded
    m[1, :] = True  # a user with everything excluded
    m[2, :] = True
    m[2, [4, 9]] = False  # a user with only two items left
    return sp.csr_matrix(m.astype(np.float32))


def _reference(s: np.ndarray, k: int, exclude=None, allowed=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-user: rankable items sorted by (score desc, item index asc), padded with -1 / -inf."""
    items = np.full((s.shape[0], k), -1, dtype=np.int64)
    scores = np.full((s.shape[0], k), -np.inf, dtype=np.float32)
    ex = np.zeros(s.shape, dtype=bool) if exclude is None else exclude.toarray() > 0
    for u in range(s.shape[0]):
        ok = ~ex[u] if allowed is None else ~ex[u] & allowed
        cand = np.flatnonzero(ok)
        cand = cand[np.lexsort((cand, -s[u, cand]))][:k]
        items[u, : len(cand)] = cand
        scores[u, : len(cand)] = s[u, cand]
    return items, scores


@pytest.mark.parametrize("levels", [None, 3], ids=["distinct", "ties"])
@pytest.mark.parametrize("k", [1, 5, N_ITEMS, N_ITEMS + 4])
def test_topk_matches_reference_with_exclude(k, levels):
    s = _scores(levels=levels)
    ex = _exclude()
    users = np.arange(N_USERS)
    items, scores = topk(_fn(s), users, k, N_ITEMS, exclude=ex)
    ref_i, ref_s = _reference(s.numpy(), k, ex)
    assert items.shape == scores.shape == (N_USERS, k)
    np.testing.assert_array_equal(items, ref_i)
    np.testing.assert_array_equal(scores, ref_s)
    dense_ex = ex.toarray() > 0
    for u in users:
        got = items[u][items[u] >= 0]
        assert not dense_ex[u, got].any()  # excluded items never come back


def test_excluded_everything_pads_with_minus_one_and_neg_inf():
    s = _scores()
    items, scores = topk(_fn(s), np.array([1, 2]), 4, N_ITEMS, exclude=_exclude())
    assert (items[0] == -1).all() and np.isneginf(scores[0]).all()
    # user 2 has items 4 and 9 left: both come first (by score), then padding
    assert set(items[1, :2]) == {4, 9} and (items[1, 2:] == -1).all()
    assert np.isfinite(scores[1, :2]).all() and np.isneginf(scores[1, 2:]).all()


def test_k_larger_than_catalogue_pads():
    s = _scores()
    items, scores = topk(_fn(s), np.array([0]), N_ITEMS + 3, N_ITEMS)
    assert sorted(items[0, :N_ITEMS].tolist()) == list(range(N_ITEMS))
    assert (items[0, N_ITEMS:] == -1).all() and np.isneginf(scores[0, N_ITEMS:]).all()
    assert scores.dtype == np.float32 and items.dtype == np.int64


def test_allowed_mask_is_respected():
    s = _scores(1)
    allowed = np.zeros(N_ITEMS, dtype=bool)
    allowed[[0, 3, 5, 11]] = True
    ex = _exclude(1)
    items, scores = topk(_fn(s), np.arange(N_USERS), 6, N_ITEMS, exclude=ex, allowed=allowed)
    ref_i, ref_s = _reference(s.numpy(), 6, ex, allowed)
    np.testing.assert_array_equal(items, ref_i)
    np.testing.assert_array_equal(scores, ref_s)
    assert set(items[items >= 0].tolist()) <= {0, 3, 5, 11}
    assert (items[:, 4:] == -1).all()  # at most 4 allowed items


@pytest.mark.parametrize("levels", [None, 2], ids=["distinct", "ties"])
def test_identical_across_chunk_sizes(levels):
    s = _scores(2, levels=levels)
    ex = _exclude(2)
    users = np.array([8, 0, 3, 3, 5, 1, 7, 2, 6, 4])  # unsorted, with a repeat
    allowed = np.ones(N_ITEMS, dtype=bool)
    allowed[6] = False
    results = [topk(_fn(s), users, 5, N_ITEMS, exclude=ex, allowed=allowed, chunk_size=c) for c in (1, 3, 1000)]
    for items, scores in results[1:]:
        np.testing.assert_array_equal(items, results[0][0])
        np.testing.assert_array_equal(scores, results[0][1])
    np.testing.assert_array_equal(results[0][0][2], results[0][0][3])  # same user, same row


def test_sorted_descending_and_scores_match_items():
    s = _scores(3)
    items, scores = topk(_fn(s), np.arange(N_USERS), 7, N_ITEMS, exclude=_exclude(3))
    valid = items >= 0
    finite = np.where(valid, scores, np.float32(-1e30))  # -inf - -inf would be NaN
    assert (np.diff(finite, axis=1) <= 0).all()
    assert (valid[:, :-1] >= valid[:, 1:]).all()  # padding only at the tail
    np.testing.assert_array_equal(scores[valid], s.numpy()[np.nonzero(valid)[0], items[valid]])


@pytest.mark.parametrize("n_items", [5, 50, 3000])
def test_ties_broken_by_lower_item_index(n_items):
    # torch.topk picks an arbitrary subset among equal scores; ranking must not.
    s = torch.zeros(3, n_items)
    s[1, n_items // 2 :] = 1.0  # the upper half ties at the top
    items, _ = topk(_fn(s), np.arange(3), 4, n_items)
    np.testing.assert_array_equal(items[0], [0, 1, 2, 3])
    half = n_items // 2
    want = list(range(half, n_items))[:4]
    want += list(range(4 - len(want)))  # then the low-scored items, again by index
    np.testing.assert_array_equal(items[1], want)


def test_masked_scores_chunks_and_masks():
    s = _scores(4)
    ex = _exclude(4)
    allowed = np.ones(N_ITEMS, dtype=bool)
    allowed[0] = False
    users = np.arange(N_USERS)
    chunks = list(masked_scores(_fn(s), users, N_ITEMS, exclude=ex, allowed=allowed, chunk_size=4))
    assert [c[0] for c in chunks] == [slice(0, 4), slice(4, 8), slice(8, 9)]
    full = torch.cat([c[1] for c in chunks])
    want = s.clone()
    want[torch.as_tensor(ex.toarray() > 0)] = -torch.inf
    want[:, 0] = -torch.inf
    assert torch.equal(full, want)


def test_empty_users_and_chunk_size_for():
    items, scores = topk(_fn(_scores()), np.zeros(0, dtype=np.int64), 3, N_ITEMS)
    assert items.shape == scores.shape == (0, 3)
    assert chunk_size_for(10**12) == 1
    assert chunk_size_for(1) == 65536
    assert chunk_size_for(1000, budget=10_000) == 10
