"""Evaluation protocols on hand-made scores, with every expected number worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from ncf.baselines import Popularity
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.data.io import load_interactions
from ncf.errors import ConfigError, DataError, NotFittedError
from ncf.evaluation import evaluate, evaluate_scores, full_ranking_ranks

L2_3 = math.log2(3.0)

# 3 users x 6 items. Scores:
#   u0: 6 5 4 3 2 1   (lower index scores higher)
#   u1: 1 2 3 4 5 6   (higher index scores higher)
#   u2: 3 3 3 3 3 3   (all tied: the ranking falls back to item index)
SCORES = torch.tensor(
    [
        [6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],
    ]
)
USERS = IdMap(["a", "b", "c"], name="user")
ITEMS = IdMap([10, 11, 12, 13, 14, 15], name="item")
# train: u0 {0, 3}, u1 {5}, u2 {0};  test: u0 {1, 4}, u1 {0}, u2 {2}
TRAIN = Interactions.from_indices(USERS, ITEMS, [0, 0, 1, 2], [0, 3, 5, 0])
TEST = Interactions.from_indices(USERS, ITEMS, [0, 0, 1, 2], [1, 4, 0, 2])


def score_fn(users: torch.Tensor) -> torch.Tensor:
    return SCORES[users].clone()


def pair_fn(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    return SCORES[users, items]


def run(test=TEST, **kw):
    return evaluate_scores(score_fn, pair_fn, TRAIN, test, **kw)


def test_full_ranks_by_hand():
    # "full": seen items are excluded from the candidates.
    #   u0 candidates {1,2,4,5} scored 5,4,2,1 -> item 1 rank 0, item 4 rank 2 (n_cand 6-2 = 4)
    #   u1 candidates {0,1,2,3,4} scored 1,2,3,4,5 -> item 0 rank 4              (n_cand 5)
    #   u2 candidates {1..5} all tied -> item 2 has only item 1 (lower index) above: rank 1 (n_cand 5)
    users, ranks, indptr, n_cand, top = full_ranking_ranks(score_fn, TEST.csr, TRAIN.csr, coverage_k=2)
    np.testing.assert_array_equal(users, [0, 1, 2])
    np.testing.assert_array_equal(ranks, [0, 2, 4, 1])
    np.testing.assert_array_equal(indptr, [0, 2, 3, 4])
    np.testing.assert_array_equal(n_cand, [4, 5, 5])
    # top-2 with ties by index: u0 {1, 2}, u1 {4, 3}, u2 {1, 2}
    np.testing.assert_array_equal(top, [[1, 2], [4, 3], [1, 2]])


def test_full_metrics_by_hand():
    res = run(k=2)
    assert res["protocol"] == "full"
    assert res["users"] == 3 and res["test_interactions"] == 4
    # ranks: u0 [0, 2], u1 [4], u2 [1]; k = 2
    # hr@2:        u0 1 (rank 0 < 2), u1 0, u2 1                          -> 2/3
    assert res["hr@2"] == pytest.approx(2 / 3)
    # precision@2: u0 1 hit / 2, u1 0 / 2, u2 1 / 2                        -> (0.5 + 0 + 0.5) / 3
    assert res["precision@2"] == pytest.approx(1 / 3)
    # recall@2:    u0 1 hit of 2 relevant, u1 0 / 1, u2 1 / 1             -> (0.5 + 0 + 1) / 3
    assert res["recall@2"] == pytest.approx(0.5)
    # ndcg@2:      u0 DCG = 1/log2(2) = 1, IDCG = 1 + 1/log2(3); u1 0; u2 DCG = 1/log2(3), IDCG = 1
    assert res["ndcg@2"] == pytest.approx((1 / (1 + 1 / L2_3) + 0 + 1 / L2_3) / 3)
    # map@2:       u0 (1/1) / min(2, 2) = 0.5; u1 0; u2 (1 / 2) / 1 = 0.5 -> 1/3
    assert res["map@2"] == pytest.approx(1 / 3)
    # mrr:         u0 1/1, u1 1/5, u2 1/2                                 -> 1.7 / 3
    assert res["mrr"] == pytest.approx(1.7 / 3)
    # auc:  u0 R=2, N=4-2=2: pairs (1>2 ok, 1>5 ok, 4>2 no, 4>5 ok) = 3/4
    #       u1 R=1, N=4, rank 4: every negative above -> 0
    #       u2 R=1, N=4, rank 1: 3 of 4 negatives below -> 3/4             -> (0.75 + 0 + 0.75) / 3
    assert res["auc"] == pytest.approx(0.5)
    # coverage@2: top-2 lists {1,2}, {4,3}, {1,2} -> 4 distinct of 6 items
    assert res["coverage@2"] == pytest.approx(4 / 6)


def test_full_unfiltered_keeps_seen_items():
    # No exclusion, n_cand = 6 for everyone:
    #   u0: item 1 has item 0 above (rank 1); item 4 has items 0,1,2,3 above (rank 4)
    #   u1: item 0 scores lowest (rank 5)
    #   u2: all tied, item 2 has items 0, 1 above (rank 2)
    users, ranks, _, n_cand, _ = full_ranking_ranks(score_fn, TEST.csr, None)
    np.testing.assert_array_equal(ranks, [1, 4, 5, 2])
    np.testing.assert_array_equal(n_cand, [6, 6, 6])
    res = run(k=2, protocol="full-unfiltered")
    assert res["protocol"] == "full-unfiltered"
    # hr@2: only u0 (rank 1) -> 1/3
    assert res["hr@2"] == pytest.approx(1 / 3)
    # ndcg@2: u0 DCG = 1/log2(3), IDCG = 1 + 1/log2(3); others 0
    assert res["ndcg@2"] == pytest.approx((1 / L2_3) / (1 + 1 / L2_3) / 3)
    # auc: u0 R=2, N=4, (R N - sum r + R(R-1)/2) / (R N) = (8 - 5 + 1) / 8 = 0.5
    #      u1 N=5, rank 5 -> 0;  u2 N=5, rank 2 -> 3/5                    -> (0.5 + 0 + 0.6) / 3
    assert res["auc"] == pytest.approx(1.1 / 3)
    # and the filtered protocol scores strictly better here: the seen items were in the way
    assert run(k=2)["hr@2"] > res["hr@2"]


def test_multiple_cutoffs_and_metric_subset():
    res = run(k=[1, 3], metrics=["hr", "recall"])
    # ranks u0 [0, 2], u1 [4], u2 [1]
    # hr@1: only u0 -> 1/3;   hr@3: u0, u2 -> 2/3
    # recall@1: u0 1/2 -> 0.5/3;   recall@3: u0 2/2, u2 1/1 -> 2/3
    assert res["hr@1"] == pytest.approx(1 / 3) and res["hr@3"] == pytest.approx(2 / 3)
    assert res["recall@1"] == pytest.approx(0.5 / 3) and res["recall@3"] == pytest.approx(2 / 3)
    assert not any(key.startswith(("ndcg", "precision", "map", "mrr", "auc")) for key in res)
    assert {"coverage@1", "coverage@3", "protocol", "users", "test_interactions"} <= set(res)


def test_constant_scores_are_not_perfect():
    # A model that scores everything the same must get an index-order ranking, not rank 0 for
    # every held-out item (which a "count strictly greater scores" rank would give).
    rng = np.random.default_rng(0)
    n_users, n_items = 20, 30
    users = IdMap(np.arange(n_users))
    items = IdMap(np.arange(n_items))
    tr_u = np.repeat(np.arange(n_users), 3)
    tr_i = rng.integers(0, 10, len(tr_u))
    train = Interactions.from_indices(users, items, tr_u, tr_i)
    test = Interactions.from_indices(users, items, np.arange(n_users), rng.integers(10, n_items, n_users))

    def const_users(u):
        return torch.ones(len(u), n_items)

    def const_pairs(u, i):
        return torch.ones(len(u))

    for protocol in ("full", "full-unfiltered", "sampled"):
        res = evaluate_scores(const_users, const_pairs, train, test, k=1, protocol=protocol, negatives=50)
        assert res["hr@1"] < 0.5, (protocol, res)
        assert res["auc"] < 0.9, (protocol, res)
    # full: the held-out item i (>= 10) has every unseen item below it ranked above it
    res = evaluate_scores(const_users, const_pairs, train, test, k=n_items, protocol="full", metrics=["mrr"])
    seen_below = [(train.item_idx[train.user_idx == u] < i).sum() for u, i in zip(test.user_idx, test.item_idx)]
    want = np.mean([1 / (i - s + 1) for i, s in zip(test.item_idx, seen_below)])
    assert res["mrr"] == pytest.approx(want)


def test_test_pairs_also_in_train_are_dropped_and_counted():
    # add (u1, item 5) and (u2, item 0) to the test set: both are train pairs
    leaky = Interactions.from_indices(USERS, ITEMS, [0, 0, 1, 1, 2, 2], [1, 4, 0, 5, 2, 0])
    res = run(leaky, k=2)
    clean = run(k=2)
    assert res["test_pairs_in_train_dropped"] == 2
    assert "test_pairs_in_train_dropped" not in clean
    assert res["test_interactions"] == 4
    for key in ("hr@2", "ndcg@2", "auc", "mrr"):
        assert res[key] == pytest.approx(clean[key])
    only_leaky = Interactions.from_indices(USERS, ITEMS, [1], [5])
    with pytest.raises(DataError, match="empty"):
        run(only_leaky)


def _sampled_data(n_users=15, n_items=150, seed=0):
    rng = np.random.default_rng(seed)
    users, items = IdMap(np.arange(n_users)), IdMap(np.arange(n_items))
    tr_u = np.repeat(np.arange(n_users), 5)
    train = Interactions.from_indices(users, items, tr_u, rng.integers(0, n_items, len(tr_u)))
    te_u = np.repeat(np.arange(n_users), 2)
    test = Interactions.from_indices(users, items, te_u, rng.integers(0, n_items, len(te_u)))
    test = test._subset(~np.isin(test.user_idx * n_items + test.item_idx, train.user_idx * n_items + train.item_idx))
    return train, test


def test_sampled_oracle_and_reversed():
    train, test = _sampled_data()
    relevant = torch.zeros(train.n_users, train.n_items)
    relevant[test.user_idx, test.item_idx] = 1.0

    def oracle(u, i):
        return relevant[u, i]

    def reverse(u, i):
        return -relevant[u, i]

    def nothing(u):
        raise AssertionError("the sampled protocol scores pairs only")

    good = evaluate_scores(nothing, oracle, train, test, k=10, protocol="sampled", negatives=99)
    bad = evaluate_scores(nothing, reverse, train, test, k=10, protocol="sampled", negatives=99)
    assert good["protocol"] == bad["protocol"] == "sampled" and good["negatives"] == 99
    # Negatives never include the user's train or test items, so the oracle's positive (score 1)
    # beats all 99 negatives (score 0): rank 0 everywhere.
    assert good["hr@10"] == 1.0 and good["ndcg@10"] == pytest.approx(1.0)
    assert good["mrr"] == pytest.approx(1.0) and good["auc"] == pytest.approx(1.0)
    # Reversed: all 99 negatives (score 0) beat the positive (score -1): rank 99.
    assert bad["hr@10"] == 0.0 and bad["ndcg@10"] == 0.0
    assert bad["mrr"] == pytest.approx(1 / 100) and bad["auc"] == pytest.approx(0.0)
    assert good["users"] == len(np.unique(test.user_idx))


def test_sampled_deterministic_with_seed():
    train, test = _sampled_data(seed=1)
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(train.n_users, train.n_items, generator=g)

    def pairs(u, i):
        return noise[u, i]

    a = evaluate_scores(None, pairs, train, test, k=[5, 10], protocol="sampled", negatives=20, seed=7)
    b = evaluate_scores(None, pairs, train, test, k=[5, 10], protocol="sampled", negatives=20, seed=7)
    assert a == b
    others = [
        evaluate_scores(None, pairs, train, test, k=[5, 10], protocol="sampled", negatives=20, seed=s)
        for s in (1, 2, 3)
    ]
    assert any(o["mrr"] != a["mrr"] for o in others)  # the seed does drive the negatives


@pytest.mark.parametrize("k", [0, -1, [], [5, 0], True, 2.5, "10"])
def test_bad_k_raises(k):
    with pytest.raises(ConfigError, match="k"):
        run(k=k)


def test_bad_protocol_metric_and_negatives_raise():
    with pytest.raises(ConfigError, match="protocol"):
        run(protocol="leave-one-out")
    with pytest.raises(ConfigError, match="f1"):
        run(metrics=["hr", "f1"])
    with pytest.raises(ConfigError, match="negatives"):
        run(protocol="sampled", negatives=0)
    with pytest.raises(ConfigError, match="pairs"):
        evaluate_scores(score_fn, None, TRAIN, TEST, protocol="sampled")


def _popularity_train():
    # train a:{10,11}, b:{10,12}, c:{10,11}, with items 13..15 known but never seen
    return Interactions.from_indices(USERS, ITEMS, [0, 0, 1, 1, 2, 2], [0, 1, 0, 2, 0, 1])


def test_evaluate_reindexes_test_by_raw_ids():
    model = Popularity().fit(_popularity_train())  # scores = item counts: 10:3, 11:2, 12:1, others 0
    # A test set loaded on its own: its id maps differ from the model's.
    df = pd.DataFrame({"user": ["b", "a", "zz", "c"], "item": [11, 13, 10, 99]})
    test = load_interactions(df, user="user", item="item")
    assert test.user_map != model.train_.user_map
    res = evaluate(model, test, k=1, metrics=["hr", "mrr"])
    # "zz" is an unknown user, (c, 99) an unknown item: both dropped and counted.
    assert res["unknown_users_dropped"] == 1 and res["unknown_items_dropped"] == 1
    # a: candidates {12,13,14,15} scored 1,0,0,0 -> item 13 rank 1
    # b: candidates {11,13,14,15} scored 2,0,0,0 -> item 11 rank 0
    # hr@1 = (0 + 1) / 2, mrr = (1/2 + 1) / 2
    assert res["users"] == 2 and res["test_interactions"] == 2
    assert res["hr@1"] == pytest.approx(0.5) and res["mrr"] == pytest.approx(0.75)
    assert res["protocol"] == "full"
    # same answer as evaluating the already-aligned test set
    aligned = Interactions.from_indices(USERS, ITEMS, [0, 1], [3, 1])
    direct = evaluate(model, aligned, k=1, metrics=["hr", "mrr"])
    assert direct["hr@1"] == res["hr@1"] and direct["mrr"] == res["mrr"]
    assert "unknown_users_dropped" not in direct


def test_evaluate_needs_a_fitted_model():
    with pytest.raises(NotFittedError):
        evaluate(Popularity(), TEST)


@pytest.mark.parametrize("direct_max", [0, 10_000])  # 0: every chunk sorts; 10k: every chunk compares directly
def test_full_ranks_match_brute_force_on_both_paths(monkeypatch, direct_max):
    """Sorted-row search and direct comparison give the exact rank, ties broken by item index."""
    import scipy.sparse as sp

    import ncf.evaluation as E

    monkeypatch.setattr(E, "DIRECT_MAX_POSITIVES", direct_max)
    monkeypatch.setattr(E, "DIRECT_BLOCK", 64)  # several blocks per chunk
    rng = np.random.default_rng(0)
    n_users, n_items = 30, 40
    scores = torch.tensor(rng.integers(0, 6, (n_users, n_items)), dtype=torch.float32)  # many ties
    exclude = sp.random(n_users, n_items, density=0.2, format="csr", random_state=1)
    exclude.data[:] = 1
    test = sp.random(n_users, n_items, density=0.3, format="csr", random_state=2)  # up to ~20 per user
    test = (test - test.multiply(exclude > 0)).tocsr()
    test.eliminate_zeros()
    test.data[:] = 1
    users, ranks, indptr, _, _ = full_ranking_ranks(lambda u: scores[u].clone(), test, exclude)
    masked = scores.numpy().copy()
    masked[exclude.toarray() > 0] = -np.inf
    expected = []
    for u in users:
        row = masked[u]
        for i in test[u].indices:
            expected.append(int((row > row[i]).sum() + ((row == row[i]) & (np.arange(n_items) < i)).sum()))
    assert len(expected) > 100 and ranks.tolist() == expected


@pytest.mark.parametrize("levels", [6, 200])
@pytest.mark.parametrize("seed", range(4))
def test_cutoff_ranks_agree_with_full_ranks_below_the_cutoff(seed, levels):
    # Integer scores in a small range: many ties, also at each row's cut-off score and among the
    # top k above it (ranked from the top k alone); 200 levels: few ties, most ranks from the top k.
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 30, 40, 5
    scores = torch.as_tensor(rng.integers(0, levels, (n_users, n_items)).astype(np.float32))
    test = sp_random_csr(rng, n_users, n_items, 0.15)
    seen = sp_random_csr(rng, n_users, n_items, 0.2)
    seen = (seen - seen.multiply(test)).tocsr()  # test items are never seen items
    seen.eliminate_zeros()

    def fn(u):
        return scores[u]

    full = full_ranking_ranks(fn, test, seen)[1]
    cut = full_ranking_ranks(fn, test, seen, cutoff=k)[1]
    np.testing.assert_array_equal(np.minimum(cut, k), np.minimum(full, k))
    names = ["hr", "precision", "recall", "ndcg", "map"]
    train = Interactions.from_indices(IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), *seen.nonzero())
    held = Interactions.from_indices(IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), *test.nonzero())
    a = evaluate_scores(fn, None, train, held, k=[3, k], metrics=names)  # cut-off metrics only: the cutoff path
    b = evaluate_scores(fn, None, train, held, k=[3, k], metrics=[*names, "mrr"])  # full ranks
    assert {m: a[m] for m in a if "@" in m} == {m: b[m] for m in a if "@" in m}  # bit-identical, not close


def sp_random_csr(rng, n_rows, n_cols, density):
    import scipy.sparse as sp

    x = sp.random(n_rows, n_cols, density=density, random_state=rng, format="csr")
    x.data[:] = 1.0
    return x
