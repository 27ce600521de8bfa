"""The item-item term of NCF models (ncf.item_item): chosen on validation, blended exactly, saved and checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from checkerboard import BASE, TEST, TRAIN
from cli_helpers import rewrite
from ncf import NCF
from ncf.baselines import EASE
from ncf.errors import BundleError, ConfigError
from ncf.evaluation import evaluate_scores
from ncf.item_item import GRID, L2_GRID, blend, choose_weight, standardise
from ncf.model import ITEM_ITEM_B, ITEM_ITEM_L2, ITEM_ITEM_WEIGHT

USERS = torch.arange(TRAIN.n_users)


@pytest.fixture(scope="module")
def auto() -> NCF:
    return NCF(**{**BASE, "model": "gmf", "epochs": 4}).fit(TRAIN)


def test_standardise_rows_and_constant_rows():
    s = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    z = standardise(s)
    assert torch.allclose(z[0].mean(), torch.tensor(0.0)) and torch.allclose(
        z[0].std(unbiased=False), torch.tensor(1.0)
    )
    assert torch.equal(z[1], torch.zeros(3))  # a constant row carries no ranking: zeros, not NaN
    assert torch.equal(blend(s, s * 7, 0.0), s)  # weight 0: the towers' own scores, untouched


def test_auto_weight_is_the_validation_best_and_the_scores_are_the_formula(auto):
    assert auto.item_item_ in GRID
    table = auto.item_item_table_
    assert list(table) == [f"{w:.1f}" for w in GRID]
    assert table[f"{auto.item_item_:.1f}"] == max(table.values())
    assert auto.validation_metrics_["val_ndcg@10"] == table[f"{auto.item_item_:.1f}"]
    w = auto.item_item_
    assert auto.item_item_model_.l2 in L2_GRID  # chosen with the weight, on validation
    ease = EASE(l2=auto.item_item_model_.l2, recency=None).fit(TRAIN)  # the term is EASE fitted on all of train
    np.testing.assert_array_equal(auto.item_item_model_.B_, ease.B_)
    with torch.inference_mode():
        expected = (1 - w) * standardise(auto.module_.score_block(USERS)) + w * standardise(ease.score_block(USERS))
    torch.testing.assert_close(auto.score_block(USERS), expected)  # float32 arithmetic, same order
    # pairs are gathered from the blended rows, so score() agrees with recommend()
    u, i = torch.tensor([0, 5, 17]), torch.tensor([3, 0, 29])
    torch.testing.assert_close(auto.score_pairs(u, i), auto.score_block(u)[torch.arange(3), i])


def test_choose_weight_matches_evaluating_each_blend():
    towers = NCF(**{**BASE, "model": "gmf", "epochs": 3, "item_item": 0.0}).fit(TRAIN, validation=None)
    ease = EASE(l2=10.0).fit(TRAIN)
    w, table = choose_weight(towers.score_block, ease.score_block, TRAIN, TEST, "ndcg@10", grid=(0.0, 0.5, 1.0))
    for key, value in table.items():

        def fn(u, wt=float(key)):
            return (
                blend(towers.score_block(u), ease.score_block(u), wt) if wt > 0 else standardise(towers.score_block(u))
            )

        assert value == pytest.approx(evaluate_scores(fn, None, TRAIN, TEST, k=10, metrics=["ndcg"])["ndcg@10"])
    assert table[f"{w:.1f}"] == max(table.values())


def test_given_weight_off_and_without_validation():
    off = NCF(**{**BASE, "model": "gmf", "epochs": 2, "item_item": 0.0}).fit(TRAIN)
    assert off.item_item_ == 0.0 and off.item_item_model_ is None
    with torch.inference_mode():
        torch.testing.assert_close(off.score_block(USERS), off.module_.score_block(USERS))
    fixed = NCF(**{**BASE, "model": "gmf", "epochs": 2, "item_item": 0.3, "item_item_l2": 20.0}).fit(TRAIN)
    assert fixed.item_item_ == 0.3 and fixed.item_item_table_ == {} and fixed.item_item_model_.l2 == 20.0
    l2_only = NCF(**{**BASE, "model": "gmf", "epochs": 2, "item_item": 0.3}).fit(TRAIN)
    assert l2_only.item_item_ == 0.3 and list(l2_only.item_item_table_) == ["0.3"]  # the L2 is chosen at w = 0.3
    assert l2_only.item_item_model_.l2 in L2_GRID
    no_val = NCF(**{**BASE, "model": "gmf", "epochs": 2}).fit(TRAIN, validation=None)
    assert no_val.item_item_ == 0.5 and no_val.item_item_model_.l2 == 500.0  # NO_VALIDATION_*: nothing to choose on


@pytest.mark.parametrize(("param", "bad"), [("item_item", -0.1), ("item_item", 1.5), ("item_item", "sometimes"),
                                           ("item_item_l2", 0.0), ("item_item_l2", "big")])  # fmt: skip
def test_bad_weight_is_one_clear_error(param, bad):
    with pytest.raises(ConfigError, match=param):
        NCF(**{**BASE, param: bad}).fit(TRAIN)


def test_bundle_round_trip_and_blend_info(auto, tmp_path):
    auto.save(tmp_path / "b")
    back = NCF.load(tmp_path / "b")
    assert back.get_params() == auto.get_params()  # "auto" stays "auto"; the chosen weight is a weight
    assert back.item_item_ == auto.item_item_
    torch.testing.assert_close(back.score_block(USERS), auto.score_block(USERS), rtol=0, atol=0)
    info = back.bundle_extra_["item_item"]
    assert info["components"] == {"gmf": round(1 - auto.item_item_, 4), "ease": round(auto.item_item_, 4)}
    assert info["ease_l2"] == auto.item_item_model_.l2 == back.item_item_model_.l2
    assert info["chosen_on"] == "validation" and len(info["validation_ndcg@10"]) == len(GRID)


def test_forged_item_item_weights_are_refused(auto, tmp_path):
    if auto.item_item_ == 0:
        pytest.skip("validation chose no item-item term here; nothing to forge")  # not the case at seed 0
    w_key, b_key = f"weights.{ITEM_ITEM_WEIGHT}", f"weights.{ITEM_ITEM_B}"  # the bundle file's tensor names
    cases = {
        "weight out of range": lambda ts: ts.__setitem__(w_key, torch.tensor(2.0, dtype=torch.float64)),
        "weight zero": lambda ts: ts.__setitem__(w_key, torch.tensor(0.0, dtype=torch.float64)),
        "matrix shape": lambda ts: ts.__setitem__(b_key, torch.zeros(3, 3)),
        "matrix missing": lambda ts: ts.pop(b_key),
        "l2 not positive": lambda ts: ts.__setitem__(
            f"weights.{ITEM_ITEM_L2}", torch.tensor(-1.0, dtype=torch.float64)
        ),
        "nan": lambda ts: ts[b_key].__setitem__((0, 1), float("nan")),
    }
    for i, (what, edit) in enumerate(cases.items()):
        path = auto.save(tmp_path / f"b{i}").parent
        rewrite(path, tensors=edit)
        with pytest.raises(BundleError):
            NCF.load(path)
            pytest.fail(f"a bundle with a forged item-item term ({what}) loaded")


def test_weight_one_is_ease_alone_without_touching_the_towers(monkeypatch):
    m = NCF(**{**BASE, "model": "gmf", "epochs": 2, "item_item": 1.0, "item_item_l2": 10.0}).fit(TRAIN)
    ease = EASE(l2=10.0, recency=None).fit(TRAIN)

    def no_towers(*a, **k):
        raise AssertionError("the towers carry no weight at item_item=1 and must not be computed")

    monkeypatch.setattr(m.module_, "score_block", no_towers)
    monkeypatch.setattr(m, "_tower_history_scores", no_towers)
    with torch.inference_mode():
        torch.testing.assert_close(m.score_block(USERS), standardise(ease.score_block(USERS)), rtol=0, atol=0)
    hist = [int(i) for i in TRAIN.item_map.raw(TRAIN.csr[3].indices)]
    profiles, _ = m.history_profiles([hist])
    torch.testing.assert_close(m.history_scores(profiles), standardise(ease.history_scores(profiles)), rtol=0, atol=0)
    # explained through EASE alone: the full history's standardisation only rescales EASE's
    # attributions, so the shares are EASE's own
    targets = [int(i) for i in TRAIN.item_map.raw(np.arange(TRAIN.n_items)) if int(i) not in hist][:4]
    got, want = m.explain(hist, targets, n=3), ease.explain(hist, targets, n=3)
    assert [[i for i, _ in row] for row in got] == [[i for i, _ in row] for row in want]
    np.testing.assert_allclose([w for row in got for _, w in row], [w for row in want for _, w in row], rtol=1e-5)
