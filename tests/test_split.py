from __future__ import annotations

import numpy as np
import pytest

from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError
from ncf.split import allbut, carve_validation, holdout, leave_one_out, temporal


def make_data(n_users=30, n_items=50, seed=0, timestamps=True, min_count=1, max_count=25) -> Interactions:
    rng = np.random.default_rng(seed)
    us, its = [], []
    for u in range(n_users):
        c = rng.integers(min_count, max_count + 1)
        us.append(np.full(c, u))
        its.append(rng.choice(n_items, size=c, replace=False))
    u = np.concatenate(us)
    i = np.concatenate(its)
    ts = rng.integers(0, 1000, size=len(u)).astype(float) if timestamps else None
    return Interactions.from_indices(IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), u, i, ts)


def pairs(d: Interactions) -> set[tuple[int, int]]:
    return set(zip(d.user_idx.tolist(), d.item_idx.tolist(), strict=True))


def check_partition(data, train, test):
    assert train.user_map is data.user_map and test.item_map is data.item_map
    assert len(train) + len(test) == len(data)
    assert pairs(train) | pairs(test) == pairs(data)
    assert not pairs(train) & pairs(test)
    # rows stay sorted by (user, item), so indptr/csr line up
    for d in (train, test):
        order = np.lexsort((d.item_idx, d.user_idx))
        assert (order == np.arange(len(d))).all()


@pytest.mark.parametrize("by", ["random", "timestamp"])
def test_holdout_sizes_and_coverage(by):
    data = make_data()
    n, min_train = 3, 2
    train, test = holdout(data, n, by=by, seed=1, min_train=min_train)
    check_partition(data, train, test)
    counts = data.user_counts
    eligible = counts >= n + min_train
    assert (test.user_counts == np.where(eligible, n, 0)).all()
    assert (train.user_counts == np.where(eligible, counts - n, counts)).all()
    rep = test.report["split"]
    assert rep == train.report["split"]
    assert rep["protocol"] == "holdout"
    assert rep["params"]["n"] == n and rep["params"]["by"] == by and rep["params"]["min_train"] == min_train
    assert rep["users_held_out"] == int(eligible.sum())
    assert rep["users_train_only"] == int((~eligible & (counts > 0)).sum())
    assert rep["test_interactions"] == len(test)


def test_users_with_too_few_interactions_stay_in_train():
    um, im = IdMap(np.arange(4)), IdMap(np.arange(10))
    # user 0: 1 interaction, user 1: 2, user 2: 5, user 3: none
    u = [0, 1, 1, 2, 2, 2, 2, 2]
    i = [0, 0, 1, 0, 1, 2, 3, 4]
    data = Interactions.from_indices(um, im, u, i)
    train, test = holdout(data, 2, seed=0)  # needs >= 3 interactions
    assert set(test.user_idx.tolist()) == {2}
    assert (train.user_counts == [1, 2, 3, 0]).all()
    rep = test.report["split"]
    assert rep["users_held_out"] == 1 and rep["users_train_only"] == 2 and rep["test_interactions"] == 2


def test_latest_by_timestamp_with_tie_rule():
    um, im = IdMap(np.arange(2)), IdMap(np.arange(6))
    u = [0, 0, 0, 0, 1, 1, 1, 1]
    i = [0, 1, 2, 3, 0, 2, 4, 5]
    ts = [5.0, 9.0, 9.0, 1.0, 7.0, 7.0, 7.0, 3.0]
    data = Interactions.from_indices(um, im, u, i, ts)
    _, test = holdout(data, 2, by="timestamp")
    # user 0: items 1 and 2 share the max; user 1: three-way tie at 7 -> the two highest item indices
    assert pairs(test) == {(0, 1), (0, 2), (1, 2), (1, 4)}
    _, loo = leave_one_out(data)
    assert pairs(loo) == {(0, 2), (1, 4)}
    assert loo.report["split"]["protocol"] == "leave-one-out"


def test_latest_picks_max_timestamps_large():
    data = make_data(n_users=40, seed=3)
    train, test = holdout(data, 2, by="timestamp")
    for u in np.flatnonzero(test.user_counts):
        t_test = test.timestamps[test.indptr[u] : test.indptr[u + 1]]
        t_train = train.timestamps[train.indptr[u] : train.indptr[u + 1]]
        assert t_test.min() >= t_train.max()


def test_seeded_reproducibility():
    data = make_data()
    a = holdout(data, 2, seed=7)[1]
    b = holdout(data, 2, seed=7)[1]
    c = holdout(data, 2, seed=8)[1]
    assert pairs(a) == pairs(b)
    assert pairs(a) != pairs(c)
    assert pairs(leave_one_out(data, by="random", seed=1)[1]) == pairs(leave_one_out(data, by="random", seed=1)[1])


def test_random_holdout_is_roughly_uniform():
    # one user with 10 items, leave one out at random 2000 times: each item ~200 times
    data = Interactions.from_indices(IdMap([0]), IdMap(np.arange(10)), np.zeros(10), np.arange(10))
    rng = np.random.default_rng(0)
    hits = np.zeros(10)
    for _ in range(2000):
        hits[holdout(data, 1, seed=rng)[1].item_idx] += 1
    assert hits.min() > 140 and hits.max() < 260  # ~4.5 sigma for Binomial(2000, 0.1)


def test_fraction_mode():
    um, im = IdMap(np.arange(3)), IdMap(np.arange(20))
    u = np.repeat([0, 1, 2], [10, 3, 1])
    i = np.concatenate([np.arange(10), np.arange(3), [0]])
    data = Interactions.from_indices(um, im, u, i)
    train, test = holdout(data, fraction=0.25, seed=0)
    # user 0: round(2.5) half up = 3; user 1: round(0.75) = 1; user 2: 1 held out would leave 0 -> train only
    assert (test.user_counts == [3, 1, 0]).all()
    check_partition(data, train, test)
    rep = test.report["split"]
    assert rep["params"]["fraction"] == 0.25 and rep["params"]["n"] is None
    assert rep["users_train_only"] == 1


def test_min_train_zero_allows_whole_user_in_test():
    data = Interactions.from_indices(IdMap([0, 1]), IdMap(np.arange(5)), [0, 1, 1], [0, 1, 2])
    train, test = holdout(data, 1, seed=0, min_train=0)
    assert test.user_counts[0] == 1 and train.user_counts[0] == 0


def test_leave_one_out_without_timestamps():
    data = make_data(timestamps=False)
    with pytest.raises(DataError, match='by="random"'):
        leave_one_out(data)
    train, test = leave_one_out(data, by="random", seed=0)
    assert (test.user_counts == (data.user_counts >= 2)).all()
    with pytest.raises(DataError, match="timestamps"):
        holdout(data, 1, by="timestamp")


def test_temporal_at_and_quantile():
    data = make_data(seed=5)
    train, test = temporal(data, at=600)
    check_partition(data, train, test)
    assert (test.timestamps > 600).all() and (train.timestamps <= 600).all()
    rep = test.report["split"]
    assert rep["protocol"] == "temporal" and rep["params"]["cutoff"] == 600.0
    assert rep["test_interactions"] == int((data.timestamps > 600).sum())
    has_train = train.user_counts > 0
    has_test = test.user_counts > 0
    assert rep["cold_start_users"] == int((has_test & ~has_train).sum())
    assert rep["users_held_out"] == int(has_test.sum())
    assert rep["users_train_only"] == int((has_train & ~has_test).sum())

    train_q, test_q = temporal(data, quantile=0.8)
    cut = np.quantile(data.timestamps, 0.8)
    assert (test_q.timestamps > cut).all() and (train_q.timestamps <= cut).all()
    assert 0.15 < len(test_q) / len(data) < 0.25


def test_temporal_cold_start_users_kept():
    um, im = IdMap(np.arange(2)), IdMap(np.arange(3))
    data = Interactions.from_indices(um, im, [0, 0, 1], [0, 1, 2], [1.0, 5.0, 9.0])
    train, test = temporal(data, at=4)
    assert pairs(test) == {(0, 1), (1, 2)}
    assert test.report["split"]["cold_start_users"] == 1
    assert test.report["split"]["cold_start_items"] == 2


def test_temporal_errors():
    data = make_data()
    with pytest.raises(ConfigError, match="exactly one"):
        temporal(data)
    with pytest.raises(ConfigError, match="exactly one"):
        temporal(data, at=1, quantile=0.5)
    with pytest.raises(ConfigError, match="at == 5000"):
        temporal(data, at=5000)
    with pytest.raises(ConfigError, match="quantile == 1.0, must be in"):
        temporal(data, quantile=1.0)
    with pytest.raises(DataError, match="timestamps"):
        temporal(make_data(timestamps=False), at=1)
    same = Interactions.from_indices(IdMap([0]), IdMap([0, 1]), [0, 0], [0, 1], [3.0, 3.0])
    with pytest.raises(DataError, match="distinct"):
        temporal(same, quantile=0.5)


def test_carve_validation():
    data = make_data(seed=2)
    train, test = leave_one_out(data)
    inner, val = carve_validation(train)  # auto + timestamps -> latest one per user
    check_partition(train, inner, val)
    assert val.report["split"]["protocol"] == "leave-one-out"
    assert val.report["split"]["params"]["by"] == "timestamp"
    assert val.report["split"]["params"]["purpose"] == "validation"
    assert (val.user_counts == (train.user_counts >= 2)).all()
    for u in np.flatnonzero(val.user_counts):
        assert val.timestamps[val.indptr[u]] >= inner.timestamps[inner.indptr[u] : inner.indptr[u + 1]].max()

    nt = make_data(seed=2, timestamps=False)
    inner, val = carve_validation(nt, n=2, seed=3)  # auto without timestamps -> random
    assert val.report["split"]["params"]["by"] == "random"
    assert (val.user_counts == np.where(nt.user_counts >= 3, 2, 0)).all()
    assert pairs(carve_validation(nt, "random", n=2, seed=3)[1]) == pairs(val)

    inner, val = carve_validation(data, "timestamp", fraction=0.2)
    assert val.report["split"]["params"]["fraction"] == 0.2
    with pytest.raises(DataError, match='how="random"'):
        carve_validation(nt, "timestamp")
    with pytest.raises(ConfigError, match="how == 'latest', must be one of"):
        carve_validation(data, "latest")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n == 0, must be >= 1"),
        ({"n": 1.5}, "n == 1.5, must be an integer"),
        ({"fraction": 1.5}, r"fraction == 1.5, must be in \(0, 1\)"),
        ({"fraction": 0}, r"fraction == 0, must be in \(0, 1\)"),
        ({"by": "time"}, "by == 'time', must be one of 'random', 'timestamp'"),
        ({"min_train": -1}, "min_train == -1, must be >= 0"),
        ({"seed": "x"}, "seed == 'x'"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        holdout(make_data(), **kwargs)


def test_empty_data():
    empty = Interactions.from_indices(IdMap([0]), IdMap([0]), [], [])
    for fn in (holdout, leave_one_out, carve_validation):
        with pytest.raises(DataError, match="no interactions"):
            fn(empty)
    with pytest.raises(DataError, match="no interactions"):
        temporal(empty, at=0)


def test_split_report_replaces_parent_split_and_keeps_other_keys():
    data = make_data()
    train, _ = leave_one_out(data)
    assert "duplicates_merged" in train.report
    _, val = carve_validation(train)
    assert val.report["split"]["params"]["purpose"] == "validation"


def test_by_name_dispatches_to_the_named_protocol():
    from ncf.split import by_name

    data = make_data()
    for name, (tr, te) in {
        "holdout": holdout(data, n=3, by="random", seed=1),
        "leave-one-out": leave_one_out(data, by="timestamp"),
        "temporal": temporal(data, quantile=0.8),
    }.items():
        tr2, te2 = by_name(name, data, seed=1, n=3)
        assert pairs(tr2) == pairs(tr) and pairs(te2) == pairs(te)
    with pytest.raises(ConfigError, match="protocol"):
        by_name("random", data)


# -- allbut: GroupLens' ua / ub ------------------------------------------------------------
def allbut_pl(rows: list[tuple[int, int]], start: int, stop: int) -> tuple[list[int], list[int]]:
    """GroupLens' allbut.pl, line by line: a user's start-th..stop-th rating (1-based, file order) is test."""
    seen: dict[int, int] = {}
    base, test = [], []
    for pos, (user, _item) in enumerate(rows):
        seen[user] = seen.get(user, 0) + 1
        (test if start <= seen[user] <= stop else base).append(pos)
    return base, test


def file_data(n_users=12, n_items=40, seed=0, max_count=25) -> tuple[Interactions, list[tuple[int, int]]]:
    """Ratings in a shuffled 'file order' (no duplicates), loaded with their rows kept."""
    import pandas as pd

    from ncf.data.io import load_interactions

    rng = np.random.default_rng(seed)
    rows = [(u, int(i)) for u in range(n_users) for i in rng.choice(n_items, rng.integers(1, max_count + 1), False)]
    rows = [rows[j] for j in rng.permutation(len(rows))]
    frame = pd.DataFrame(rows, columns=["user", "item"]).assign(rating=rng.integers(1, 6, len(rows)))
    return load_interactions(frame, user="user", item="item", rating="rating", keep_source_row=True), rows


@pytest.mark.parametrize(("n", "part"), [(10, "a"), (10, "b"), (3, "a"), (3, "b")])
def test_allbut_matches_grouplens_script(n, part):
    data, rows = file_data()
    train, test = allbut(data, n, part=part)
    check_partition(data, train, test)
    start = 1 if part == "a" else n + 1
    base_rows, test_rows = allbut_pl(rows, start, start + n - 1)
    assert sorted(test.source_row.tolist()) == test_rows and sorted(train.source_row.tolist()) == base_rows
    assert pairs(test) == {
        (data.user_map.index([rows[p][0]])[0], data.item_map.index([rows[p][1]])[0]) for p in test_rows
    }
    rep = test.report["split"]
    assert rep["protocol"] == "allbut" and rep["params"] == {"n": n, "part": part}
    counts = data.user_counts
    expected = np.clip(counts - (start - 1), 0, n)
    assert (test.user_counts == expected).all()
    assert rep["users_held_out"] == int((expected > 0).sum())
    assert rep["cold_start_users"] == int(((expected == counts) & (counts > 0)).sum())
    assert rep["users_train_only"] == int(((expected == 0) & (counts > 0)).sum())


def test_allbut_first_in_file_order_not_time_or_item():
    import pandas as pd

    from ncf.data.io import load_interactions

    # user 7's file order: items 30, 10, 20, 40; ua with n=2 takes 30 and 10, ub takes 20 and 40
    frame = pd.DataFrame(
        {"user": [7, 7, 8, 7, 7, 8], "item": [30, 10, 10, 20, 40, 30], "timestamp": [4, 3, 9, 2, 1, 8]}
    )
    data = load_interactions(frame, user="user", item="item", timestamp="timestamp", keep_source_row=True)
    raw = lambda d: sorted(zip(d.user_map.raw(d.user_idx).tolist(), d.item_map.raw(d.item_idx).tolist()))  # noqa: E731
    _, test_a = allbut(data, 2, part="a")
    _, test_b = allbut(data, 2, part="b")
    assert raw(test_a) == [(7, 10), (7, 30), (8, 10), (8, 30)]
    assert raw(test_b) == [(7, 20), (7, 40)]
    assert test_a.report["split"]["cold_start_users"] == 1  # user 8: both ratings in test, none in train


def test_source_row_follows_sorting_filtering_and_subsets():
    import pandas as pd

    from ncf.data.io import load_interactions

    frame = pd.DataFrame(
        {"u": ["b", "a", "b", "a", "a"], "i": [2, 1, 1, 2, 1], "r": [5, 2, 4, 3, 4], "t": [1, 1, 1, 1, 5]}
    )
    d = load_interactions(frame, user="u", item="i", rating="r", timestamp="t", min_rating=3, keep_source_row=True)
    # rows kept: 0 (b,2), 2 (b,1), 3 (a,2), 4 (a,1); the duplicate (a,1) at row 1 is below min_rating
    got = dict(zip(zip(d.user_map.raw(d.user_idx), d.item_map.raw(d.item_idx)), d.source_row.tolist()))
    assert got == {("a", 1): 4, ("a", 2): 3, ("b", 1): 2, ("b", 2): 0}
    sub = d._subset(d.ratings >= 4)
    assert sorted(sub.source_row.tolist()) == [0, 2, 4]
    assert load_interactions(frame, user="u", item="i").source_row is None
    dup = Interactions.from_indices(
        IdMap(["x"]), IdMap([1, 2]), [0, 0, 0], [1, 0, 1], [5.0, 1.0, 2.0], source_row=[10, 11, 12]
    )
    assert dup.source_row.tolist() == [11, 10]  # the latest of the duplicated pair wins, with its row
    with pytest.raises(DataError, match="source_row has shape"):
        Interactions.from_indices(IdMap(["x"]), IdMap([1]), [0], [0], source_row=[1, 2])
    with pytest.raises(ConfigError, match="keep_source_row == 'yes', must be True or False"):
        load_interactions(frame, user="u", item="i", keep_source_row="yes")


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"n": 0}, ConfigError, r"^n == 0, must be >= 1$"),
        ({"n": 2.5}, ConfigError, r"^n == 2.5, must be an integer >= 1$"),
        ({"part": "c"}, ConfigError, r"^part == 'c', must be one of 'a', 'b'$"),
    ],
)
def test_allbut_parameter_errors(kwargs, err, match):
    data, _ = file_data()
    with pytest.raises(err, match=match):
        allbut(data, **kwargs)


def test_allbut_needs_the_file_order():
    with pytest.raises(DataError, match=r"source_row is None.*keep_source_row=True"):
        allbut(make_data())
    with pytest.raises(ConfigError, match="must be an ncf Interactions"):
        allbut([(1, 2)])  # type: ignore[arg-type]


@pytest.mark.movielens
def test_allbut_movielens_100k_is_grouplens_ua_ub(ml100k):
    """ua / ub: 90,570 / 9,430 ratings, disjoint tests; ua with ratings >= 3 after it: 74,627 / 7,893."""
    train_a, test_a = allbut(ml100k, 10, part="a")
    train_b, test_b = allbut(ml100k, 10, part="b")
    for train, test in ((train_a, test_a), (train_b, test_b)):
        assert (len(train), len(test)) == (90_570, 9_430)
        assert (test.user_counts == 10).all()
    assert not pairs(test_a) & pairs(test_b)
    assert (int((train_a.ratings >= 3).sum()), int((test_a.ratings >= 3).sum())) == (74_627, 7_893)
