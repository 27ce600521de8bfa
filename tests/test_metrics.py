"""Tests of ncf.metrics: hand-computed values, invariances, errors, and a randomized reference cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ncf import metrics as M
from ncf.errors import ConfigError

# --------------------------------------------------------------------------------------------------
# A small hand-computed case, k = 5.
#
#   user 0: ranks [3, 0] (unsorted on purpose), n_candidates 10 -> R = 2, N = 8
#   user 1: no relevant item,                    n_candidates 5 -> excluded from every mean
#   user 2: ranks [1],                           n_candidates 3 -> R = 1, N = 2
#   user 3: ranks [7, 2, 5],                     n_candidates 8 -> R = 3, N = 5
#   user 4: ranks [9, 6],                        n_candidates 10 -> R = 2, N = 8 (no hit in the top 5)
# --------------------------------------------------------------------------------------------------

RANKS = np.array([3, 0, 1, 7, 2, 5, 9, 6], dtype=np.int64)
INDPTR = np.array([0, 2, 2, 3, 6, 8], dtype=np.int64)
N_CAND = np.array([10, 5, 3, 8, 10], dtype=np.int64)
K = 5
NAN = float("nan")
L2 = math.log2

# HR@5: any rank < 5?   u0 yes (0, 3), u2 yes (1), u3 yes (2), u4 no (6, 9)
HR = [1.0, NAN, 1.0, 1.0, 0.0]
# P@5 = #hits / 5:     u0 2/5, u2 1/5, u3 1/5 (only rank 2), u4 0/5
PREC = [2 / 5, NAN, 1 / 5, 1 / 5, 0.0]
# R@5 = #hits / R:     u0 2/2, u2 1/1, u3 1/3, u4 0/2
REC = [1.0, NAN, 1.0, 1 / 3, 0.0]
# NDCG@5:
#   u0: DCG = 1/log2(0+2) + 1/log2(3+2) = 1 + 1/log2(5);  IDCG (min(2,5)=2 slots) = 1 + 1/log2(3)
#   u2: DCG = 1/log2(1+2) = 1/log2(3);                     IDCG (1 slot)          = 1
#   u3: DCG = 1/log2(2+2) = 1/2;                           IDCG (3 slots)         = 1 + 1/log2(3) + 1/log2(4)
#   u4: DCG = 0
NDCG = [
    (1 + 1 / L2(5)) / (1 + 1 / L2(3)),
    NAN,
    1 / L2(3),
    0.5 / (1 + 1 / L2(3) + 0.5),
    0.0,
]
# AP@5 (sorted ranks r_j, term (j+1)/(r_j+1) for r_j < 5, divided by min(R, 5)):
#   u0: [0, 3] -> (1/1 + 2/4) / 2 = 1.5 / 2 = 0.75
#   u2: [1]    -> (1/2) / 1 = 0.5
#   u3: [2, 5, 7] -> (1/3) / 3 = 1/9     (5 and 7 are outside the top 5)
#   u4: [6, 9] -> 0 / 2 = 0
AP = [0.75, NAN, 0.5, 1 / 9, 0.0]
# RR = 1/(min rank + 1):  u0 1/1, u2 1/2, u3 1/3, u4 1/7;  RR@5 sets u4 (min rank 6 >= 5) to 0
RR = [1.0, NAN, 1 / 2, 1 / 3, 1 / 7]
RR_AT5 = [1.0, NAN, 1 / 2, 1 / 3, 0.0]
# AUC: j-th relevant (sorted) at rank r has r - j non-relevant items above it; term (N - (r - j)) / N
#   u0: N=8, [0, 3]:    (8-0)/8, (8-2)/8          -> mean (8 + 6)/16 = 0.875
#   u2: N=2, [1]:       (2-1)/2                   -> 0.5
#   u3: N=5, [2, 5, 7]: (5-2)/5, (5-4)/5, (5-5)/5 -> mean (3 + 1 + 0)/15 = 4/15
#   u4: N=8, [6, 9]:    (8-6)/8, (8-8)/8          -> mean (2 + 0)/16 = 0.125
AUC = [0.875, NAN, 0.5, 4 / 15, 0.125]


def _close(actual: np.ndarray, expected: list[float]) -> None:
    np.testing.assert_allclose(actual, np.array(expected, dtype=np.float64), rtol=0, atol=1e-12, equal_nan=True)


def test_hand_computed_per_user_values() -> None:
    _close(M.hit_rate(RANKS, INDPTR, K), HR)
    _close(M.precision(RANKS, INDPTR, K), PREC)
    _close(M.recall(RANKS, INDPTR, K), REC)
    _close(M.ndcg(RANKS, INDPTR, K), NDCG)
    _close(M.average_precision(RANKS, INDPTR, K), AP)
    _close(M.reciprocal_rank(RANKS, INDPTR), RR)
    _close(M.reciprocal_rank(RANKS, INDPTR, K), RR_AT5)
    _close(M.auc(RANKS, INDPTR, N_CAND), AUC)


def test_per_user_output_dtype_and_length() -> None:
    for fn in (M.hit_rate, M.precision, M.recall, M.ndcg, M.average_precision, M.reciprocal_rank):
        out = fn(RANKS, INDPTR, K)
        assert out.dtype == np.float64
        assert out.shape == (5,)
    assert M.auc(RANKS, INDPTR, N_CAND).shape == (5,)


def test_ndcg_two_hits_example_from_brief() -> None:
    # relevant at ranks [0, 3], k = 5: (1 + 1/log2(5)) / (1 + 1/log2(3)) = 1.4307 / 1.6309 = 0.87722
    out = M.ndcg(np.array([0, 3]), np.array([0, 2]), 5)
    assert out[0] == pytest.approx((1 + 1 / L2(5)) / (1 + 1 / L2(3)), abs=1e-15)
    assert out[0] == pytest.approx(0.8772153153380493, abs=1e-12)


def test_compute_means_exclude_users_without_relevant() -> None:
    out = M.compute(list(M.METRIC_NAMES), RANKS, INDPTR, N_CAND, k=K)
    assert list(out) == ["hr@5", "precision@5", "recall@5", "ndcg@5", "map@5", "mrr", "auc"]
    # Means over the 4 users with relevant items (user 1 excluded), e.g. HR = (1 + 1 + 1 + 0) / 4 = 0.75
    assert out["hr@5"] == pytest.approx(3 / 4, abs=1e-12)
    assert out["precision@5"] == pytest.approx((2 / 5 + 1 / 5 + 1 / 5 + 0) / 4, abs=1e-12)  # 0.2
    assert out["recall@5"] == pytest.approx((1 + 1 + 1 / 3 + 0) / 4, abs=1e-12)  # 7/12
    assert out["ndcg@5"] == pytest.approx(np.nanmean(NDCG), abs=1e-12)
    assert out["map@5"] == pytest.approx((0.75 + 0.5 + 1 / 9 + 0) / 4, abs=1e-12)
    assert out["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 7) / 4, abs=1e-12)  # no cut-off
    assert out["auc"] == pytest.approx((0.875 + 0.5 + 4 / 15 + 0.125) / 4, abs=1e-12)


def test_compute_subset_and_keys() -> None:
    out = M.compute(["ndcg", "hr"], RANKS, INDPTR, k=10)
    assert list(out) == ["ndcg@10", "hr@10"]
    assert M.compute("mrr", RANKS, INDPTR) == {"mrr": pytest.approx(np.nanmean(RR))}


def test_unsorted_ranks_equal_sorted() -> None:
    rng = np.random.default_rng(7)
    sorted_ranks = np.concatenate([np.sort(RANKS[a:b]) for a, b in zip(INDPTR[:-1], INDPTR[1:], strict=True)])
    shuffled = np.concatenate([rng.permutation(RANKS[a:b]) for a, b in zip(INDPTR[:-1], INDPTR[1:], strict=True)])
    for ranks in (sorted_ranks, shuffled):
        for k in (1, 3, 5, 100):
            for fn in (M.hit_rate, M.precision, M.recall, M.ndcg, M.average_precision, M.reciprocal_rank):
                np.testing.assert_array_equal(fn(ranks, INDPTR, k), fn(RANKS, INDPTR, k))
        np.testing.assert_array_equal(M.auc(ranks, INDPTR, N_CAND), M.auc(RANKS, INDPTR, N_CAND))


def test_k_larger_than_candidate_count() -> None:
    # one user, 3 candidates, all relevant at ranks [2, 0, 1], k = 10
    ranks, indptr = np.array([2, 0, 1]), np.array([0, 3])
    assert M.hit_rate(ranks, indptr, 10)[0] == 1.0
    assert M.precision(ranks, indptr, 10)[0] == pytest.approx(3 / 10)  # denominator stays k
    assert M.recall(ranks, indptr, 10)[0] == 1.0
    assert M.ndcg(ranks, indptr, 10)[0] == pytest.approx(1.0, abs=1e-15)  # IDCG uses min(R=3, k=10) slots
    assert M.average_precision(ranks, indptr, 10)[0] == pytest.approx(1.0)  # (1/1 + 2/2 + 3/3) / min(3, 10)
    assert M.reciprocal_rank(ranks, indptr, 10)[0] == 1.0
    # no non-relevant candidate: AUC undefined -> NaN, and the mean over users is NaN too
    assert np.isnan(M.auc(ranks, indptr, [3])[0])
    assert math.isnan(M.compute(["auc"], ranks, indptr, [3])["auc"])


def test_k_smaller_than_relevant_count() -> None:
    # ranks [0, 1, 2, 3], k = 2: IDCG and AP denominators use min(R=4, k=2) = 2
    ranks, indptr = np.array([0, 1, 2, 3]), np.array([0, 4])
    assert M.ndcg(ranks, indptr, 2)[0] == pytest.approx(1.0, abs=1e-15)
    assert M.average_precision(ranks, indptr, 2)[0] == pytest.approx((1 / 1 + 2 / 2) / 2)
    assert M.recall(ranks, indptr, 2)[0] == pytest.approx(2 / 4)
    assert M.precision(ranks, indptr, 2)[0] == pytest.approx(1.0)


def test_auc_extremes() -> None:
    # user 0: 3 relevant at the top of 10 candidates -> no negative above any -> AUC 1
    # user 1: 3 relevant at the bottom (ranks 7, 8, 9) of 10 -> r - j = 7 = N for each -> AUC 0
    # user 2: 1 relevant at rank 2 of 5 (N = 4) -> (4 - 2) / 4 = 0.5
    ranks = np.array([1, 0, 2, 9, 7, 8, 2])
    indptr = np.array([0, 3, 6, 7])
    _close(M.auc(ranks, indptr, [10, 10, 5]), [1.0, 0.0, 0.5])


def test_mean_over_users() -> None:
    assert M.mean_over_users([1.0, NAN, 0.0]) == 0.5
    assert math.isnan(M.mean_over_users([NAN, NAN]))
    assert math.isnan(M.mean_over_users([]))
    assert isinstance(M.mean_over_users(np.array([1.0])), float)


def test_all_users_without_relevant_and_no_users() -> None:
    ranks = np.array([], dtype=np.int64)
    out = M.compute(list(M.METRIC_NAMES), ranks, np.array([0, 0, 0]), np.array([4, 4]), k=3)
    assert all(math.isnan(v) for v in out.values())
    assert M.ndcg(ranks, [0, 0, 0], 3).shape == (2,)
    # zero users
    assert M.hit_rate([], [0], 3).shape == (0,)
    assert math.isnan(M.compute(["ndcg", "auc"], [], [0], [], k=3)["ndcg@3"])


def test_rankgroups_can_be_passed_directly() -> None:
    g = M.RankGroups.from_arrays(RANKS, INDPTR)
    _close(M.ndcg(g, None, K), NDCG)
    _close(M.auc(g, None, N_CAND), AUC)
    with pytest.raises(ConfigError, match="indptr=None"):
        M.ndcg(g, INDPTR, K)
    with pytest.raises(ConfigError, match="indptr is required"):
        M.ndcg(RANKS, None, K)


def test_numpy_integer_k_and_other_int_dtypes() -> None:
    _close(M.ndcg(RANKS.astype(np.int32), INDPTR.astype(np.uint32), np.int64(K)), NDCG)


# --------------------------------------------------------------------------------------------------
# coverage and micro precision / recall
# --------------------------------------------------------------------------------------------------


def test_coverage_with_padding() -> None:
    # distinct non-padding items {0, 2, 3} out of 10 -> 0.3
    topk = np.array([[0, 2, -1], [2, 3, -1], [-1, -1, -1]])
    assert M.coverage(topk, 10) == pytest.approx(0.3)
    assert M.coverage(np.full((2, 3), -1), 10) == 0.0
    assert M.coverage(np.zeros((0, 5), dtype=np.int64), 10) == 0.0
    assert M.coverage(np.array([[0, 1], [2, 3]]), 4) == 1.0


def test_coverage_errors() -> None:
    with pytest.raises(ConfigError, match="2-D"):
        M.coverage(np.array([0, 1]), 5)
    with pytest.raises(ConfigError, match=r"must be in \[0, 5\)"):
        M.coverage(np.array([[0, 5]]), 5)
    with pytest.raises(ConfigError, match=r"must be in \[0, 5\)"):
        M.coverage(np.array([[0, -2]]), 5)
    with pytest.raises(ConfigError, match="n_items == 0"):
        M.coverage(np.array([[0]]), 0)
    with pytest.raises(ConfigError, match="integer"):
        M.coverage(np.array([[0.0, 1.0]]), 5)


def test_micro_precision_recall_matches_keras_style_counting() -> None:
    # 3 users x 6 items; top_k = 2 per row marked positive (as tf.keras Precision/Recall(top_k=2) do),
    # then true positives summed over the whole matrix before dividing (micro-averaging).
    scores = np.array(
        [
            [0.9, 0.8, 0.1, 0.2, 0.3, 0.0],  # top-2 = items 0, 1
            [0.1, 0.2, 0.9, 0.3, 0.8, 0.0],  # top-2 = items 2, 4
            [0.5, 0.1, 0.2, 0.3, 0.4, 0.9],  # top-2 = items 5, 0
        ]
    )
    relevant = np.array(
        [
            [1, 0, 0, 1, 0, 0],  # hit: 0        -> 1 hit, 2 relevant
            [0, 0, 1, 0, 1, 1],  # hits: 2, 4    -> 2 hits, 3 relevant
            [0, 1, 0, 0, 0, 0],  # no hit        -> 0 hits, 1 relevant
        ],
        dtype=bool,
    )
    k = 2
    top = np.argsort(-scores, axis=1)[:, :k]
    predicted = np.zeros_like(relevant)
    np.put_along_axis(predicted, top, True, axis=1)
    tp = int((predicted & relevant).sum())  # 1 + 2 + 0 = 3
    fp = int((predicted & ~relevant).sum())  # 6 - 3 = 3
    fn = int((~predicted & relevant).sum())  # 6 - 3 = 3
    assert (tp, fp, fn) == (3, 3, 3)
    prec, rec = M.micro_precision_recall(tp, int(predicted.sum()), int(relevant.sum()))
    assert prec == pytest.approx(tp / (tp + fp))  # 3 / 6 = 0.5
    assert rec == pytest.approx(tp / (tp + fn))  # 3 / 6 = 0.5
    # A case where they differ: hits 3, 6 recommended, 4 relevant -> (0.5, 0.75)
    assert M.micro_precision_recall(3, 6, 4) == (0.5, 0.75)


def test_micro_precision_recall_edges_and_errors() -> None:
    assert M.micro_precision_recall(0, 0, 0) == (0.0, 0.0)  # div_no_nan like Keras
    with pytest.raises(ConfigError, match="must be >= 0"):
        M.micro_precision_recall(0, -1, 3)
    with pytest.raises(ConfigError, match="exceeds"):
        M.micro_precision_recall(5, 4, 10)
    with pytest.raises(ConfigError, match="integer"):
        M.micro_precision_recall(1.0, 4, 10)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "pattern"),
    [(0, "k == 0, must be >= 1"), (-3, "k == -3, must be >= 1"), (2.5, "integer"), (True, "integer"), ("5", "integer")],
)
def test_bad_k(k: object, pattern: str) -> None:
    for fn in (M.hit_rate, M.precision, M.recall, M.ndcg, M.average_precision, M.reciprocal_rank):
        with pytest.raises(ConfigError, match=pattern):
            fn(RANKS, INDPTR, k)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=pattern):
        M.compute(["ndcg"], RANKS, INDPTR, k=k)  # type: ignore[arg-type]


def test_bad_indptr() -> None:
    with pytest.raises(ConfigError, match="not monotone"):
        M.ndcg(np.array([0, 1, 2]), np.array([0, 2, 1, 3]), 5)
    with pytest.raises(ConfigError, match=r"indptr\[-1\] == 2, must equal len\(ranks\) == 3"):
        M.ndcg(np.array([0, 1, 2]), np.array([0, 1, 2]), 5)
    with pytest.raises(ConfigError, match=r"indptr\[0\] == 1, must be 0"):
        M.ndcg(np.array([0, 1, 2]), np.array([1, 3]), 5)
    with pytest.raises(ConfigError, match="indptr is empty"):
        M.ndcg(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 5)
    with pytest.raises(ConfigError, match="1-D"):
        M.ndcg(np.array([0, 1]), np.array([[0, 2]]), 5)


def test_bad_ranks() -> None:
    with pytest.raises(ConfigError, match=r"ranks\[1\] == -1, ranks must be >= 0"):
        M.ndcg(np.array([0, -1]), np.array([0, 2]), 5)
    with pytest.raises(ConfigError, match="user 1 has rank 4 more than once"):
        M.ndcg(np.array([0, 4, 2, 4]), np.array([0, 1, 4]), 5)
    with pytest.raises(ConfigError, match="integers"):
        M.ndcg(np.array([0.0, 1.0]), np.array([0, 2]), 5)
    # the same rank for two different users is fine
    _close(M.hit_rate(np.array([3, 3]), np.array([0, 1, 2]), 5), [1.0, 1.0])


def test_bad_auc_inputs() -> None:
    with pytest.raises(ConfigError, match="one entry per user"):
        M.auc(RANKS, INDPTR, N_CAND[:-1])
    with pytest.raises(ConfigError, match=r"user 3 has a relevant item at rank 7 but n_candidates\[3\] == 7"):
        M.auc(RANKS, INDPTR, np.array([10, 5, 3, 7, 10]))
    with pytest.raises(ConfigError, match="needs n_candidates"):
        M.compute(["auc"], RANKS, INDPTR)


def test_unknown_metric_name_lists_known() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric name\(s\) \['ndgc'\]; known: hr, precision, recall, ndcg"):
        M.compute(["ndcg", "ndgc"], RANKS, INDPTR)


def test_module_does_not_import_torch() -> None:
    # The package's __init__ imports torch for the models, so check the module's own imports.
    import ast

    import ncf.metrics

    tree = ast.parse(open(ncf.metrics.__file__, encoding="utf-8").read())
    names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "torch" not in names


# --------------------------------------------------------------------------------------------------
# randomized cross-check against a plain per-user reference
# --------------------------------------------------------------------------------------------------


def _reference(user_ranks: list[int], n_cand: int, k: int) -> dict[str, float]:
    """Straightforward per-user definitions, written independently of the vectorised code."""
    if not user_ranks:
        return dict.fromkeys(("hr", "precision", "recall", "ndcg", "map", "mrr", "mrr@k", "auc"), NAN)
    rs = sorted(user_ranks)
    n_rel = len(rs)
    hits = [r for r in rs if r < k]
    dcg = sum(1.0 / math.log2(r + 2) for r in hits)
    idcg = sum(1.0 / math.log2(j + 2) for j in range(min(n_rel, k)))
    ap = 0.0
    for j, r in enumerate(rs):
        if r < k:
            ap += (j + 1) / (r + 1)
    ap /= min(n_rel, k)
    # AUC by explicit pair counting over the full ranked list
    relevant = set(rs)
    negatives = [p for p in range(n_cand) if p not in relevant]
    if negatives:
        correct = sum(1 for r in rs for p in negatives if r < p)
        auc_val = correct / (n_rel * len(negatives))
    else:
        auc_val = NAN
    return {
        "hr": 1.0 if hits else 0.0,
        "precision": len(hits) / k,
        "recall": len(hits) / n_rel,
        "ndcg": dcg / idcg,
        "map": ap,
        "mrr": 1.0 / (rs[0] + 1),
        "mrr@k": 1.0 / (rs[0] + 1) if rs[0] < k else 0.0,
        "auc": auc_val,
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cross_check_against_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users = 200
    n_cand = rng.integers(1, 60, size=n_users)
    n_rel = np.array([rng.integers(0, min(int(c), 8) + 1) for c in n_cand])
    n_rel[:5] = 0  # some users without relevant items
    n_rel[5:10] = np.minimum(n_cand[5:10], 3)
    n_cand[5:10] = n_rel[5:10]  # some users with no negatives (AUC NaN)
    per_user = [rng.choice(int(c), size=int(r), replace=False).tolist() for c, r in zip(n_cand, n_rel, strict=True)]
    ranks = np.array([r for rs in per_user for r in rs], dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum(n_rel))).astype(np.int64)

    for k in (1, 3, 10, 100):
        ref = [_reference(rs, int(c), k) for rs, c in zip(per_user, n_cand, strict=True)]

        def col(name: str, ref: list[dict[str, float]] = ref) -> np.ndarray:
            return np.array([d[name] for d in ref])

        got = {
            "hr": M.hit_rate(ranks, indptr, k),
            "precision": M.precision(ranks, indptr, k),
            "recall": M.recall(ranks, indptr, k),
            "ndcg": M.ndcg(ranks, indptr, k),
            "map": M.average_precision(ranks, indptr, k),
            "mrr": M.reciprocal_rank(ranks, indptr),
            "mrr@k": M.reciprocal_rank(ranks, indptr, k),
            "auc": M.auc(ranks, indptr, n_cand),
        }
        for name, values in got.items():
            np.testing.assert_allclose(values, col(name), rtol=0, atol=1e-12, equal_nan=True, err_msg=f"{name}@{k}")

        means = M.compute(list(M.METRIC_NAMES), ranks, indptr, n_cand, k=k)
        for name in ("hr", "precision", "recall", "ndcg", "map"):
            assert means[f"{name}@{k}"] == pytest.approx(float(np.nanmean(col(name))), abs=1e-12)
        assert means["mrr"] == pytest.approx(float(np.nanmean(col("mrr"))), abs=1e-12)
        assert means["auc"] == pytest.approx(float(np.nanmean(col("auc"))), abs=1e-12)
