"""Each baseline's own behaviour: its maths, its library, its use of the recency weights, its factory.

What every model shares (recommend, filters, save/load, unknown ids, seeds, declared
parameters) is the contract in test_contract.py.

Data: 60 users and 30 items in 6 groups (10 users, 5 items each). Every user interacted
with the 5 items of their group; one of them (item ``user % 5`` of the group) is held out
as the test item, and each user also has one deterministic out-of-group "noise" item in
train. The factor models are seeded and single-threaded, so deterministic.
"""

from __future__ import annotations

import functools
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import ncf
from checkerboard import BASELINE_SPECS
from ncf import split
from ncf.baselines import EASE, ItemKNN, Popularity, make_baseline
from ncf.baselines.itemknn import cosine_topk
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError
from ncf.loading import LOADERS, load_model

N_USERS, N_ITEMS, GROUPS = 60, 30, 6
UPG, IPG = N_USERS // GROUPS, N_ITEMS // GROUPS
USER0, ITEM0 = 1000, 2000  # raw ids differ from indices, so index/raw mix-ups show


def block_data() -> tuple[Interactions, Interactions]:
    users = np.arange(N_USERS)
    group = users // UPG
    held = group * IPG + users % IPG
    u = np.repeat(users, IPG)
    i = (u // UPG) * IPG + np.tile(np.arange(IPG), N_USERS)
    keep = i != held[u]
    noise = (group * IPG + IPG + (users * 7) % (N_ITEMS - IPG)) % N_ITEMS  # always outside the group
    umap, imap = IdMap(USER0 + users, name="user"), IdMap(ITEM0 + np.arange(N_ITEMS), name="item")
    train = Interactions.from_indices(umap, imap, np.concatenate([u[keep], users]), np.concatenate([i[keep], noise]))
    return train, Interactions.from_indices(umap, imap, users, held)


TRAIN, TEST = block_data()
SPECS = BASELINE_SPECS  # tests/checkerboard.py
USER_IDS = USER0 + np.arange(N_USERS)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def make(name: str, **overrides):
    params, needs = SPECS[name]
    if needs:
        pytest.importorskip(needs)
    return make_baseline(name, **{**params, **overrides})


@functools.cache
def _fitted(name: str):
    return make(name).fit(TRAIN)


def fitted(name: str):
    if SPECS[name][1]:
        pytest.importorskip(SPECS[name][1])
    return _fitted(name)


all_baselines = pytest.mark.parametrize("name", list(SPECS))


# -- the contract ---------------------------------------------------------------------------
# -- factory and parameters -----------------------------------------------------------------
def test_make_baseline_names_and_errors():
    assert isinstance(make_baseline("popularity"), Popularity)
    assert isinstance(make_baseline("EASE", l2=3.0), EASE) and make_baseline("ease", l2=3.0).l2 == 3.0
    assert make_baseline("item_knn", k_neighbors=5).k_neighbors == 5
    with pytest.raises(ConfigError, match="known baselines: popularity, ease, item-knn, implicit-als") as e:
        make_baseline("svd")
    assert "lightfm-warp" in str(e.value) and "lightfm-bpr" in str(e.value)
    with pytest.raises(ConfigError, match="factors"):
        make_baseline("ease", factors=3)


@pytest.mark.parametrize(
    ("cls", "params", "named"),
    [
        (EASE, {"l2": 0.0}, r"l2 == 0\.0, must be a number > 0"),
        (EASE, {"l2": float("nan")}, "l2 == nan"),
        (EASE, {"l2": "big"}, "l2 == 'big'"),
        (ItemKNN, {"k_neighbors": 0}, "k_neighbors == 0, must be an integer >= 1"),
        (ItemKNN, {"k_neighbors": 2.5}, "k_neighbors == 2.5"),
        (ItemKNN, {"shrink": -1.0}, r"shrink == -1\.0, must be a number >= 0"),
        (Popularity, {"recency_floor": 2.0}, r"recency_floor == 2\.0, must be in \[0\.0, 1\.0\]"),
    ],
)
def test_bad_params_raise_config_error_at_fit(cls, params, named):
    model = cls(**params)  # the constructor only stores (scikit-learn's rule) ...
    with pytest.raises(ConfigError, match=named):  # ... fit validates, naming the parameter and its range
        model.fit(TRAIN)


def test_bad_factor_model_params_raise_config_error():
    pytest.importorskip("implicit")
    pytest.importorskip("lightfm")
    for name, params, named in (
        ("implicit-als", {"factors": 0}, "factors == 0, must be an integer >= 1"),
        ("implicit-als", {"alpha": 0.0}, "alpha == 0.0, must be a number > 0"),
        ("implicit-bpr", {"learning_rate": -1.0}, "learning_rate == -1.0"),
        ("implicit-bpr", {"seed": -1}, "seed == -1, must be None or an integer >= 0"),
        ("lightfm-warp", {"epochs": 0}, "epochs == 0"),
        ("lightfm-bpr", {"num_threads": 0}, "num_threads == 0"),
    ):
        with pytest.raises(ConfigError, match=re.escape(named)):
            make_baseline(name, **params).fit(TRAIN)
    with pytest.raises(ConfigError, match="lightfm-warp fixes"):
        make_baseline("lightfm-warp", loss="bpr")
    from ncf.baselines import LightFMModel

    with pytest.raises(ConfigError, match="loss == 'hinge', must be one of 'warp'"):
        LightFMModel(loss="hinge").fit(TRAIN)


def test_loaders_are_registered():
    for cls_name in ("EASE", "ItemKNN", "ImplicitALS", "ImplicitBPR", "LightFM"):
        assert cls_name in LOADERS


# -- EASE ----------------------------------------------------------------------------------
TINY_X = np.array(
    [
        [1, 1, 0, 0],
        [1, 0, 1, 0],
        [0, 1, 1, 1],
        [1, 1, 0, 1],
    ],
    dtype=np.float64,
)


def tiny() -> Interactions:
    u, i = np.nonzero(TINY_X)
    return Interactions.from_indices(IdMap(np.arange(4), name="user"), IdMap(10 + np.arange(4), name="item"), u, i)


def test_ease_matches_the_closed_form():
    l2 = 0.7
    p = np.linalg.inv(TINY_X.T @ TINY_X + l2 * np.eye(4))
    b = np.eye(4) - p @ np.diag(1.0 / np.diag(p))
    model = EASE(l2=l2).fit(tiny())
    np.testing.assert_allclose(model.B_, b, rtol=1e-5, atol=1e-6)
    assert (np.diag(model.B_) == 0).all()
    uu, ii = np.repeat(np.arange(4), 4), np.tile(10 + np.arange(4), 4)
    np.testing.assert_allclose(model.score(uu, ii), (TINY_X @ b).ravel(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("l2", [1e-3, 50.0])
def test_ease_solves_in_the_precision_its_conditioning_needs(l2):
    # 30 users x 60 items: the Gram matrix has rank <= 30, so its smallest eigenvalues are L2 itself.
    # L2 = 1e-3 bounds the condition number at ~2e5, past FLOAT32_MAX_COND: solved in float64
    # (float32 would be off by far more than the tolerance); L2 = 50 (bound ~4) in float32.
    from ncf.baselines.ease import FLOAT32_MAX_COND, _solve

    x = (np.random.default_rng(0).random((30, 60)) < 0.3).astype(np.float64)
    gram = x.T @ x
    p = np.linalg.inv(gram + l2 * np.eye(60))
    exact = -p / np.diag(p)[None, :]
    np.fill_diagonal(exact, 0.0)
    bound = (np.abs(gram).sum(1).max() + l2) / l2
    assert (bound > FLOAT32_MAX_COND) == (l2 < 1)
    # the tolerance, relative to the largest entry: the float32 output's rounding (6e-8) for the
    # float64 solve; for float32, a backward-stable solve's error, ~ condition x epsilon (1.2e-7),
    # with a factor 10 for the constant (measured: 7.7e-7 at a bound of ~4)
    tol = 1e-6 if l2 < 1 else 10 * bound * 1.2e-7
    got = _solve(gram, l2)
    np.testing.assert_allclose(got, exact, rtol=0, atol=tol * np.abs(exact).max())


def test_ease_path_equals_separate_fits():
    path = list(EASE(l2=0.7).fit_path(tiny(), (0.7, 3.0)))
    for model, l2 in zip(path, (0.7, 3.0)):
        alone = EASE(l2=l2).fit(tiny())
        assert model.l2 == l2
        np.testing.assert_array_equal(model.B_, alone.B_)  # one Gram matrix shared, the same arithmetic


def test_ease_refuses_huge_catalogues_before_allocating():
    items = IdMap(np.arange(EASE.MAX_ITEMS + 1), name="item")
    data = Interactions.from_indices(IdMap([0], name="user"), items, [0], [5])
    with pytest.raises(ConfigError, match=r"30001 x 30001 .* GiB"):
        EASE().fit(data)


# -- ItemKNN -------------------------------------------------------------------------------
# Item columns of TINY_X: 0 = {u0,u1,u3}, 1 = {u0,u2,u3}, 2 = {u1,u2}, 3 = {u2,u3}.
# Co-occurrences 0-1: 2, 0-2: 1, 0-3: 1, 1-2: 1, 1-3: 2, 2-3: 1; norms sqrt(3), sqrt(3), sqrt(2), sqrt(2).
R6 = 1 / np.sqrt(6)
HAND_COSINE = np.array(
    [
        [0, 2 / 3, R6, R6],
        [2 / 3, 0, R6, 2 * R6],
        [R6, R6, 0, 1 / 2],
        [R6, 2 * R6, 1 / 2, 0],
    ]
)


def test_itemknn_similarity_is_the_hand_computed_cosine():
    full = ItemKNN(k_neighbors=10).fit(tiny())
    np.testing.assert_allclose(full.similarity_.toarray(), HAND_COSINE, rtol=1e-6)
    # k=1 keeps each row's best neighbour: 0->1 (2/3), 1->3 (2/sqrt6), 2->3 (1/2), 3->1 (2/sqrt6)
    top1 = ItemKNN(k_neighbors=1).fit(tiny()).similarity_.toarray()
    expected = np.zeros((4, 4))
    for r, c in ((0, 1), (1, 3), (2, 3), (3, 1)):
        expected[r, c] = HAND_COSINE[r, c]
    np.testing.assert_allclose(top1, expected, rtol=1e-6)
    # scores are X_u S: user 0 (items 0, 1) gets row0 + row1 of S
    scores = ItemKNN(k_neighbors=1).fit(tiny()).score([0] * 4, 10 + np.arange(4))
    np.testing.assert_allclose(scores, [0, 2 / 3, 0, 2 * R6], rtol=1e-6)
    # shrink adds to the denominator: 0-1 becomes 2 / (3 + 1)
    shrunk = ItemKNN(k_neighbors=10, shrink=1.0).fit(tiny()).similarity_.toarray()
    assert shrunk[0, 1] == pytest.approx(0.5)


def test_itemknn_blocks_do_not_change_the_result():
    x = TRAIN.csr
    one = cosine_topk(x, 4)
    many = cosine_topk(x, 4, block_bytes=16)  # one item per block
    assert (one != many).nnz == 0
    assert np.diff(one.indptr).max() == 4


# -- factor models -------------------------------------------------------------------------
def test_lightfm_scores_equal_lightfm_predict():
    pytest.importorskip("lightfm")
    from lightfm import LightFM

    params, _ = SPECS["lightfm-warp"]
    ours = fitted("lightfm-warp")
    theirs = LightFM(no_components=params["no_components"], loss="warp", learning_rate=0.05, random_state=0)
    theirs.fit(TRAIN.csr.tocoo(), epochs=params["epochs"], num_threads=1)
    u = np.repeat(np.arange(N_USERS, dtype=np.int32), N_ITEMS)
    i = np.tile(np.arange(N_ITEMS, dtype=np.int32), N_USERS)
    np.testing.assert_allclose(ours.score(USER0 + u, ITEM0 + i), theirs.predict(u, i), rtol=1e-4, atol=1e-5)


def test_implicit_factors_are_what_implicit_learned():
    pytest.importorskip("implicit")
    from implicit.cpu.als import AlternatingLeastSquares

    ours = fitted("implicit-als")
    theirs = AlternatingLeastSquares(factors=8, iterations=15, num_threads=1, random_state=0)
    theirs.fit(TRAIN.csr, show_progress=False)
    np.testing.assert_allclose(ours.item_factors_.numpy(), theirs.item_factors, rtol=1e-5, atol=1e-6)
    assert ours.seed_ == 0


def test_saved_factor_model_loads_without_its_library(tmp_path, monkeypatch):
    pytest.importorskip("implicit")
    model = fitted("implicit-bpr")
    model.save(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "implicit", None)
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.recommend(USER_IDS, k=3)[0], model.recommend(USER_IDS, k=3)[0])


# -- missing extras --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("module", "names", "hint"),
    [
        ("implicit", ["implicit-als", "implicit-bpr"], 'implicit is not installed: pip install "implicit>=0.7"'),
        (
            "lightfm",
            ["lightfm-warp", "lightfm-bpr"],
            'lightfm is not installed: pip install wheel "pip<25.3" && pip install --no-build-isolation lightfm==1.17',
        ),
    ],
)
def test_missing_extra_is_a_one_line_config_error(monkeypatch, module, names, hint):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` raise ImportError
    for name in names:
        with pytest.raises(ConfigError) as e:
            make_baseline(name)
        msg = str(e.value)
        assert msg == hint  # one line
        assert e.value.__cause__ is None and e.value.__suppress_context__  # no ImportError trace attached


def test_import_baselines_needs_no_extras():
    code = (
        "import sys; sys.modules['implicit'] = None; sys.modules['lightfm'] = None\n"
        "import ncf.baselines as b\n"
        "from ncf.errors import ConfigError\n"
        "assert b.ImplicitALS.__name__ == 'ImplicitALS' and b.LightFMModel.__name__ == 'LightFMModel'\n"
        "from ncf.synthetic import synthetic_interactions\n"
        "m = b.ImplicitALS(factors=4)\n"  # constructing stores only; fitting needs the library
        "try:\n    m.fit(synthetic_interactions((5, 5, 10), seed=0))\nexcept ConfigError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'implicit is not installed: pip install "implicit>=0.7"'


# -- recency: the same signal as NCF's ------------------------------------------------------
def timed(data: Interactions = TRAIN, seed: int = 0) -> Interactions:
    """``data`` with distinct, shuffled timestamps (no split recorded: recency="auto" is on)."""
    ts = np.random.default_rng(seed).permutation(len(data)).astype(np.float64)
    return Interactions.from_indices(data.user_map, data.item_map, data.user_idx, data.item_idx, ts)


TIMED = timed()
HALF_LIFE = 2.0
ALL_U = np.repeat(USER_IDS, N_ITEMS)
ALL_I = np.tile(ITEM0 + np.arange(N_ITEMS), N_USERS)


def weighted_rows(data: Interactions, half_life: float = HALF_LIFE, floor: float = 0.1) -> np.ndarray:
    """The dense user x item matrix of recency weights, by hand: rank from the end per user."""
    out = np.zeros(data.shape)
    for u in range(data.n_users):
        rows = np.flatnonzero(data.user_idx == u)
        later = np.array([(data.timestamps[rows] > data.timestamps[r]).sum() for r in rows])
        out[u, data.item_idx[rows]] = floor + (1 - floor) * 2.0 ** (-later / half_life)
    w = out[data.csr.toarray() > 0]
    return out / w.mean()


def test_recency_means_what_it_means_for_ncf():
    from ncf import NCF
    from ncf.params import declared

    ours = {f.name: f for f in declared(NCF)}
    for name in SPECS:
        model = make(name)
        fields = {f.name: f for f in declared(model)}
        for key in ("recency", "recency_floor"):
            assert fields[key].default == ours[key].default, (name, key)
            assert fields[key].metadata["constraint"].text == ours[key].metadata["constraint"].text, (name, key)


@pytest.mark.parametrize("name", ["ease", "item-knn"])
def test_neighbourhood_models_score_the_weighted_profile(name):
    plain = make(name, recency=None).fit(TIMED)
    model = make(name, recency=HALF_LIFE).fit(TIMED)
    assert model.recency_ == HALF_LIFE and plain.recency_ is None
    item_item = model.B_ if name == "ease" else model.similarity_.toarray()
    # the item-item model is fitted on the binary matrix, as without recency ...
    np.testing.assert_array_equal(item_item, plain.B_ if name == "ease" else plain.similarity_.toarray())
    # ... and the scored profile is the recency-weighted row: scores = (w * X_u) @ B
    expected = weighted_rows(TIMED) @ item_item
    np.testing.assert_allclose(model.score(ALL_U, ALL_I), expected.ravel(), rtol=1e-4, atol=1e-5)
    # a user's latest item weighs most: its neighbours gain against the unweighted scores
    u = 3
    rows = np.flatnonzero(TIMED.user_idx == u)
    latest = TIMED.item_idx[rows[np.argmax(TIMED.timestamps[rows])]]
    oldest = TIMED.item_idx[rows[np.argmin(TIMED.timestamps[rows])]]
    w = weighted_rows(TIMED)[u]
    assert w[latest] > w[oldest]
    gain = model.score([USER0 + u] * N_ITEMS, ITEM0 + np.arange(N_ITEMS)) / w.sum()
    base = plain.score([USER0 + u] * N_ITEMS, ITEM0 + np.arange(N_ITEMS)) / TIMED.csr[u].sum()
    vote = item_item[latest] - item_item[oldest]  # where the latest item votes more than the oldest
    assert np.corrcoef(gain - base, vote)[0, 1] > 0


def test_popularity_counts_weighted_interactions():
    model = Popularity(recency=HALF_LIFE).fit(TIMED)
    np.testing.assert_allclose(model.scores_.numpy(), weighted_rows(TIMED).sum(axis=0), rtol=1e-5)
    assert Popularity(recency=None).fit(TIMED).scores_.numpy().tolist() == TIMED.item_counts.tolist()


def test_implicit_als_takes_the_weights_as_confidence():
    pytest.importorskip("implicit")
    from implicit.cpu.als import AlternatingLeastSquares

    from ncf.weighting import recency_weights

    ours = make("implicit-als", recency=HALF_LIFE).fit(TIMED)
    x = TIMED.csr.copy()
    x.data = recency_weights(TIMED, HALF_LIFE, 0.1).astype(np.float32)
    np.testing.assert_allclose(x.toarray(), weighted_rows(TIMED), rtol=1e-6)
    theirs = AlternatingLeastSquares(factors=8, iterations=15, num_threads=1, random_state=0)
    theirs.fit(x, show_progress=False)
    np.testing.assert_allclose(ours.item_factors_.numpy(), theirs.item_factors, rtol=1e-5, atol=1e-6)
    plain = make("implicit-als", recency=None).fit(TIMED)
    assert not np.allclose(plain.item_factors_.numpy(), ours.item_factors_.numpy())


def test_lightfm_takes_the_weights_as_sample_weight(monkeypatch):
    pytest.importorskip("lightfm")
    import lightfm

    seen = {}
    real = lightfm.LightFM.fit

    def spy(self, interactions, *args, sample_weight=None, **kw):
        seen.update(interactions=interactions, sample_weight=sample_weight)
        return real(self, interactions, *args, sample_weight=sample_weight, **kw)

    monkeypatch.setattr(lightfm.LightFM, "fit", spy)
    make("lightfm-warp", recency=HALF_LIFE, epochs=2).fit(TIMED)
    x, w = seen["interactions"], seen["sample_weight"]
    np.testing.assert_array_equal(w.row, x.row)
    np.testing.assert_array_equal(w.col, x.col)
    np.testing.assert_allclose(w.toarray(), weighted_rows(TIMED), rtol=1e-6)
    make("lightfm-warp", recency=None, epochs=2).fit(TIMED)
    assert seen["sample_weight"] is None


def test_implicit_bpr_cannot_weigh_interactions():
    pytest.importorskip("implicit")
    auto = make("implicit-bpr", iterations=5).fit(TIMED)
    assert auto.recency == "auto" and auto.recency_ is None  # off, quietly, and recorded
    off = make("implicit-bpr", iterations=5, recency=None).fit(TIMED)
    assert torch.equal(auto.item_factors_, off.item_factors_)
    msg = (
        "implicit-bpr cannot use per-interaction weights (recency=5.0); "
        "set recency=None or use implicit-als / lightfm-warp / ease"
    )
    with pytest.raises(ConfigError, match=re.escape(msg)):
        make("implicit-bpr", recency=5.0).fit(TIMED)


@all_baselines
def test_auto_recency_is_on_for_the_future_and_off_on_a_random_holdout(name):
    params = {"iterations": 2} if name.startswith("implicit") else ({"epochs": 2} if name.startswith("lightfm") else {})
    u, i = np.concatenate([TRAIN.user_idx, TEST.user_idx]), np.concatenate([TRAIN.item_idx, TEST.item_idx])
    full = timed(Interactions.from_indices(TRAIN.user_map, TRAIN.item_map, u, i))
    by_time, _ = split.leave_one_out(full, by="timestamp")
    at_random, _ = split.holdout(full, n=1, by="random", seed=0)
    on = make(name, **params).fit(by_time).recency_
    assert on == (None if name == "implicit-bpr" else 5.0)
    assert make(name, **params).fit(at_random).recency_ is None
    assert make(name, **params).fit(TRAIN).recency_ is None  # no timestamps
    if name != "implicit-bpr":
        with pytest.raises(DataError, match="timestamps"):
            make(name, **params, recency=3.0).fit(TRAIN)


@all_baselines
def test_save_load_keeps_recency_and_its_scores(name, tmp_path):
    params = {} if name == "implicit-bpr" else {"recency": HALF_LIFE}
    model = make(name, **params).fit(TIMED)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.recency_ == model.recency_ and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.score(ALL_U, ALL_I), model.score(ALL_U, ALL_I))


def test_load_does_not_resolve_auto_again(tmp_path):
    # Fitted on a random holdout, "auto" was off; the bundle's train has no split recorded, so
    # resolving "auto" again on load would turn it on. The saved half-life (None) wins.
    full = timed(TRAIN)
    holdout, _ = split.holdout(full, n=1, by="random", seed=0)
    model = EASE(l2=10.0).fit(holdout)
    assert model.recency_ is None
    model.save(tmp_path / "m")
    loaded = EASE.load(tmp_path / "m")
    assert loaded.train_.split is None and loaded.recency_ is None
    np.testing.assert_array_equal(loaded.score(ALL_U, ALL_I), model.score(ALL_U, ALL_I))


def test_bundle_from_before_recency_loads_without_it(tmp_path):
    from ncf.persist import save_bundle

    model = EASE(l2=10.0).fit(TIMED)  # auto: on
    plain = EASE(l2=10.0, recency=None).fit(TIMED)
    save_bundle(
        tmp_path / "old",
        model_class="EASE",
        config={"l2": 10.0},
        weights=model._weights(),
        train=TIMED,
        extra={"fit_seconds": 0.1},
    )
    loaded = EASE.load(tmp_path / "old")
    assert loaded.recency is None and loaded.recency_ is None
    np.testing.assert_array_equal(loaded.score(ALL_U, ALL_I), plain.score(ALL_U, ALL_I))
    save_bundle(
        tmp_path / "bad", model_class="EASE", config={"l2": 10.0, "recency": -1}, weights=model._weights(), train=TIMED
    )
    with pytest.raises(BundleError, match="recency == -1"):
        EASE.load(tmp_path / "bad")


# -- real data ------------------------------------------------------------------------------
@pytest.mark.movielens
def test_ease_beats_popularity_on_movielens(ml100k):
    train, test = split.leave_one_out(ml100k, by="timestamp", seed=0)
    pop = ncf.evaluate(Popularity().fit(train), test, k=10, metrics=["ndcg"])["ndcg@10"]
    ease = ncf.evaluate(EASE(l2=500.0).fit(train), test, k=10, metrics=["ndcg"])["ndcg@10"]
    assert ease > pop, f"EASE ndcg@10 {ease:.4f} <= popularity {pop:.4f}"
