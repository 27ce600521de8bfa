"""ncf.blend.Blend (one model made of several) and the blend stage of ncf.auto.select_model.

The contract every model meets (recommend, save/load, fold-in, explain, errors) runs on a blend in
test_contract.py, and hostile bundles in test_hostile_bundles.py; here: what is particular to a
blend. Data: small synthetic interactions with random timestamps (tests build them).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli_helpers import rewrite
from ncf import split
from ncf.auto import _Mix, select_model
from ncf.blend import Blend
from ncf.cli import main
from ncf.data.interactions import Interactions
from ncf.errors import BundleError, ConfigError, DataError, NotFittedError
from ncf.evaluation import evaluate
from ncf.loading import load_model
from ncf.registry import make_model
from ncf.synthetic import synthetic_interactions

TINY_NCF = {"epochs": 2, "factors": 4, "layers": [8, 4], "batch_size": 256}


@pytest.fixture(scope="module")
def data() -> Interactions:
    base = synthetic_interactions((80, 60, 1600), seed=1)
    ts = np.random.default_rng(0).permutation(len(base)).astype(np.float64)
    return Interactions.from_indices(base.user_map, base.item_map, base.user_idx, base.item_idx, ts)


@pytest.fixture(scope="module")
def parts(data):
    return split.leave_one_out(data, by="timestamp", seed=0)


@pytest.fixture(scope="module")
def blend(parts):
    train, _ = parts
    comps = [
        ("neumf", make_model("neumf", TINY_NCF, 0)),
        ("ease", make_model("ease")),
        ("item-knn", make_model("item-knn")),
    ]
    return Blend(comps, [0.5, 0.3, 0.2]).fit(train)


def _z(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    sd = x.std(axis=1, keepdims=True)
    return (x - x.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def test_scores_are_the_weighted_sum_of_standardised_component_scores(blend):
    users = torch.arange(blend.train_.n_users)
    want = sum(w * _z(m.score_block(users).numpy()) for m, w in zip(blend.models, blend.weights))
    # float32 scores standardised in float64 then summed in float32: agreement to float32 rounding
    np.testing.assert_allclose(blend.score_block(users).numpy(), want, rtol=1e-5, atol=1e-5)
    assert blend.blend_info()["components"] == {"neumf": 0.5, "ease": 0.3, "item-knn": 0.2}


def test_a_zero_weight_component_is_never_scored(parts):
    train, _ = parts
    ease = make_model("ease").fit(train)
    knn = make_model("item-knn").fit(train)
    knn.score_block = None  # would raise if called
    b = Blend([("ease", ease), ("item-knn", knn)], [1.0, 0.0])
    users = torch.arange(5)
    np.testing.assert_allclose(b.score_block(users).numpy(), _z(ease.score_block(users).numpy()), atol=1e-6)


@pytest.mark.parametrize(
    ("weights", "words"),
    [
        ([0.5, 0.6], "must sum to 1"),
        ([1.5, -0.5], "weights[1] == -0.5"),
        ([float("nan"), 1.0], "weights[0] == nan"),
        ([1.0], "1 weights for 2 components"),
    ],
)
def test_bad_weights_are_one_line_config_errors(weights, words):
    with pytest.raises(ConfigError) as e:
        Blend([("ease", make_model("ease")), ("item-knn", make_model("item-knn"))], weights)
    assert words in str(e.value)


def test_components_must_be_fitted_on_the_same_data(parts, data):
    train, _ = parts
    with pytest.raises(DataError, match="fitted on other data"):
        Blend([("ease", make_model("ease").fit(train)), ("item-knn", make_model("item-knn").fit(data))], [0.5, 0.5])
    with pytest.raises(ConfigError, match="itself a blend"):
        inner = Blend([("ease", make_model("ease"))], [1.0])
        Blend([("blend", inner)], [1.0])


def test_a_fit_that_fails_leaves_the_blend_unfitted(parts, data):
    train, _ = parts
    b = Blend([("ease", make_model("ease")), ("item-knn", make_model("item-knn", {"recency": 2.0}))], [0.5, 0.5])
    b.fit(train)
    untimed = Interactions.from_indices(data.user_map, data.item_map, data.user_idx, data.item_idx)
    with pytest.raises(DataError, match="timestamps"):  # EASE refits on it, then item-kNN (recency 2) refuses it
        b.fit(untimed)
    assert not b.is_fitted
    with pytest.raises(NotFittedError):
        b.recommend(train.user_map.ids[:1], k=3)


def test_save_load_keeps_components_weights_and_every_score(blend, parts, tmp_path):
    train, test = parts
    blend.leaderboard_ = [{"model": "blend", "status": "ok", "chosen": True}]
    blend.save(tmp_path / "b")
    again = load_model(tmp_path / "b")
    assert isinstance(again, Blend) and again.names == blend.names and again.weights == blend.weights
    users = torch.arange(train.n_users)
    np.testing.assert_array_equal(again.score_block(users).numpy(), blend.score_block(users).numpy())
    assert again.leaderboard_ == blend.leaderboard_ and again.get_params() == blend.get_params()
    assert evaluate(again, test)["ndcg@10"] == evaluate(blend, test)["ndcg@10"]
    hist = list(train.item_map.raw(train.csr[3].indices))
    stamps = list(range(len(hist)))  # recency is on (time split): timestamps shape the fold-in profile
    a, b = blend.recommend_history(hist, k=5, timestamps=stamps), again.recommend_history(hist, k=5, timestamps=stamps)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


def _edit_config(path, fn) -> None:
    def meta(md):
        md["config"] = json.dumps(fn(json.loads(md["config"])))

    rewrite(path, meta=meta)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda c: {**c, "components": []}, "1-8 components"),
        (
            lambda c: {"components": [{**c["components"][0], "model_class": "Blend"}, *c["components"][1:]]},
            "cannot hold",
        ),
        (
            lambda c: {"components": [{**c["components"][0], "model_class": "os.system"}, *c["components"][1:]]},
            "cannot hold",
        ),
        (lambda c: {"components": [{**x, "weight": 0.9} for x in c["components"]]}, "must sum to 1"),
        (
            lambda c: {"components": [{**c["components"][0], "model": "svd"}, *c["components"][1:]]},
            "'svd' is not a model",
        ),
        (lambda c: {"components": [{**c["components"][0], "code": "x"}, *c["components"][1:]]}, "exactly"),
        (
            lambda c: {
                "components": [
                    {**c["components"][0], "config": {**c["components"][0]["config"], "factors": 10**9}},
                    *c["components"][1:],
                ]
            },
            "component 0",
        ),
    ],
)
def test_an_edited_blend_bundle_is_refused_in_one_line(blend, tmp_path, edit, words):
    blend.save(tmp_path / "b")
    _edit_config(tmp_path / "b", edit)
    with pytest.raises(BundleError) as e:
        load_model(tmp_path / "b")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_weight_outside_every_component_is_refused(blend, tmp_path):
    blend.save(tmp_path / "b")
    rewrite(tmp_path / "b", tensors=lambda ts: ts.update({"weights.x.payload": torch.zeros(3)}))
    with pytest.raises(BundleError, match="belong to no component"):
        load_model(tmp_path / "b")


def test_fold_in_weighs_a_history_as_each_component_weighs_its_users(parts):
    """Components with different recency (EASE half-life 2, item-kNN none): each scores a history
    weighted its own way, so for these exact models a user's own history and timestamps fold in to
    exactly the user's scores, and explanations work; profile rows built without the blend's
    history_profiles (one weighting) are refused when the components differ."""
    train, _ = parts
    a = make_model("ease", {"recency": 2.0}).fit(train)
    b = make_model("item-knn", {"recency": None}).fit(train)
    mixed = Blend([("ease", a), ("item-knn", b)], [0.5, 0.5])
    assert mixed.folds_in
    users = np.arange(12)
    hists = [list(train.item_map.raw(train.csr[u].indices)) for u in users]
    stamps = [
        list(train.timestamps[train.user_idx == u][np.argsort(train.item_idx[train.user_idx == u])]) for u in users
    ]
    got = mixed.recommend_history(hists, k=5, timestamps=stamps)
    want = mixed.recommend(train.user_map.raw(users), k=5)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)
    u0 = train.user_map.raw(0)
    assert mixed.explain(u0, want[0][0][:2], n=2) and len(mixed.explain(hists[0], want[0][0][0], n=2)) <= 2
    plain = a.history_profiles(hists[:2], timestamps=stamps[:2])[0]  # EASE's weighting only
    with pytest.raises(ConfigError, match=r"weigh a history differently \(ease: half-life 2, item-knn: none\)"):
        mixed.history_scores(plain)


def test_update_is_all_or_none(blend, parts):
    train, test = parts
    b = Blend([(n, m) for n, m in zip(blend.names, blend.models)], blend.weights)
    users = torch.arange(train.n_users)
    before = b.score_block(users).numpy().copy()
    bad = Interactions.from_indices(test.user_map, test.item_map, test.user_idx, test.item_idx)  # no timestamps
    with pytest.raises(DataError):
        b.update(bad)
    np.testing.assert_array_equal(b.score_block(users).numpy(), before)
    assert b.train_ is train
    b.update(test)
    assert len(b.train_) == len(train) + len(test)
    assert all(m.train_.fingerprint() == b.train_.fingerprint() for m in b.models)
    rec = b.updates_[-1]  # one record for the blend: the merged data, and how each component updated
    assert rec["data_fingerprint"] == b.train_.fingerprint() and rec["new_interactions"] == len(test)
    assert rec["how"].startswith("neumf: ") and "; ease: refit" in rec["how"]


def test_one_standard_error_rule():
    mix = _Mix(["neumf", "ease"], [0.6, 0.4], 0.212, "neumf", 0.210, 0.0019, 900, False)
    assert mix.adopted  # +0.002 > 0.0019
    assert not _Mix(["neumf", "ease"], [0.6, 0.4], 0.212, "neumf", 0.210, 0.0021, 900, False).adopted
    assert not _Mix(["neumf"], [1.0], 0.3, "neumf", 0.2, 0.0, 900, False).adopted  # a blend of one is the model


@pytest.mark.parametrize("folds", [1, 2])
def test_auto_blends_its_best_three_on_validation_and_ships_the_blend_only_past_one_se(parts, folds):
    train, _ = parts
    cands = ["popularity", "ease", "item-knn", "gmf"]
    model = select_model(train, budget=120, candidates=cands, params={"gmf": TINY_NCF}, seed=0, folds=folds)
    board = {r["model"]: r for r in model.leaderboard_}
    row = board["blend"]
    singles = sorted((r for r in model.leaderboard_ if r["model"] in cands), key=lambda r: -r["val_ndcg@10"])
    assert set(row["params"]["components"]) <= {r["model"] for r in singles[:3]}  # the best three at most
    assert sum(row["params"]["components"].values()) == pytest.approx(1.0)
    # the grid holds the best single alone, so the chosen weights validate at least as well as it does
    assert row["val_ndcg@10"] >= row["val_ndcg@10_best_single_same_users"]
    gain = row["val_ndcg@10"] - row["val_ndcg@10_best_single_same_users"]
    adopted = len(row["params"]["components"]) > 1 and gain > row["standard_error"]
    assert [r["model"] for r in model.leaderboard_ if r.get("chosen")] == ["blend" if adopted else singles[0]["model"]]
    assert isinstance(model, Blend) == adopted
    off = select_model(train, budget=120, candidates=cands[:3], seed=0, folds=folds, blend=False)
    assert "blend" not in {r["model"] for r in off.leaderboard_}


def test_auto_ships_the_blend_the_rule_adopts_and_the_best_single_otherwise(parts, monkeypatch):
    """The rule's outcome forced both ways (the choice itself is tested above): the refit winner is a
    Blend with the row's weights, fitted on all of train, or the best single candidate."""
    import ncf.auto as A

    train, _ = parts
    for adopt in (True, False):
        gain_se = 0.0 if adopt else 2.0  # gain 1.0 against a standard error of 0 (adopted) or 2 (not)
        mix = _Mix(["item-knn", "ease"], [0.3, 0.7], 1.0, "ease", 0.0, gain_se, 10, False)
        monkeypatch.setattr(A._BlendPool, "choose", lambda self, mix=mix: mix)
        model = select_model(train, budget=60, candidates=["ease", "item-knn", "popularity"], seed=0)
        row = next(r for r in model.leaderboard_ if r["model"] == "blend")
        assert row["params"]["components"] == {"item-knn": 0.3, "ease": 0.7}
        if adopt:
            assert isinstance(model, Blend) and row.get("chosen") and "ok: beats ease" in row["status"]
            assert dict(zip(model.names, model.weights)) == row["params"]["components"]
            assert len(model.train_) == len(train) and all(m.train_ is model.train_ for m in model.models)
        else:
            assert (
                not isinstance(model, Blend) and not row.get("chosen") and "within one standard error" in row["status"]
            )
            best = max((r for r in model.leaderboard_ if r["model"] != "blend"), key=lambda r: r["val_ndcg@10"])
            assert best.get("chosen")


def test_cli_auto_prints_the_blend_row_and_no_blend_is_auto_only(tmp_path, capsys, data):
    csv = tmp_path / "d.csv"
    df = data.to_frame()
    df.to_csv(csv, index=False)
    cols = ["--user-col", "user", "--item-col", "item", "--timestamp-col", "timestamp"]
    rc = main(
        [
            "train",
            "--data",
            str(csv),
            *cols,
            "--model",
            "auto",
            "--budget",
            "60",
            "--candidates",
            "ease,item-knn,popularity",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "blend" in out and "standard error" in out
    rc = main(["train", "--data", str(csv), *cols, "--model", "ease", "--no-blend", "--out", str(tmp_path / "m2")])
    err = capsys.readouterr().err
    assert rc == 2 and "--no-blend: for --model auto only" in err and "Traceback" not in err
