"""ncf.auto.select_model and ncf train --model (every model, and auto)."""

from __future__ import annotations

import numpy as np
import pytest

from ncf import NCF, split
from ncf.auto import select_model
from ncf.baselines import EASE
from ncf.cli import main
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError
from ncf.loading import load_model
from ncf.synthetic import synthetic_interactions


@pytest.fixture(scope="module")
def data() -> Interactions:
    base = synthetic_interactions((80, 60, 1600), seed=1)
    ts = np.random.default_rng(0).permutation(len(base)).astype(np.float64)
    return Interactions.from_indices(base.user_map, base.item_map, base.user_idx, base.item_idx, ts)


def test_auto_chooses_the_best_on_validation_and_keeps_the_leaderboard(data, tmp_path):
    train, _ = split.leave_one_out(data, by="timestamp", seed=0)
    params = {"gmf": {"factors": 4, "epochs": 3, "batch_size": 512}}
    # single models only here: the blend stage is tested in test_blend.py
    model = select_model(train, budget=60, candidates=["popularity", "ease", "gmf"], params=params, seed=0, blend=False)
    board = model.leaderboard_
    assert [r["model"] for r in board] == ["popularity", "ease", "gmf"]
    scores = {r["model"]: r["val_ndcg@10"] for r in board}
    chosen = [r["model"] for r in board if r.get("chosen")]
    assert chosen == [max(scores, key=scores.get)]  # the best validation metric wins, nothing else
    assert model.is_fitted and len(model.train_) == len(train)  # refit on all of train
    again = load_model(model.save(tmp_path / "m"))
    assert again.bundle_extra_["leaderboard"] == board


@pytest.mark.parametrize("by", ["timestamp", "random"])
def test_auto_folds_score_each_candidate_on_several_parts_and_choose_on_the_mean(data, by):
    from ncf.auto import _validation_parts

    train, _ = split.leave_one_out(data, by=by, seed=0)
    parts = _validation_parts(train, 3, seed=0)
    keys = [set(zip(v.user_idx.tolist(), v.item_idx.tolist(), strict=True)) for _, v in parts]
    assert all(len(k) > 0 for k in keys) and len({frozenset(k) for k in keys}) == 3  # three different parts
    if by == "timestamp":  # rolling back in time: each fold validates before the previous one, on its inner part
        for j in range(1, 3):
            (inner, val), (prev_inner, later) = parts[j], parts[j - 1]
            assert len(inner) + len(val) == len(prev_inner)  # carved from the previous fold's inner part
            last = {u: t for u, t in zip(later.user_idx, later.timestamps, strict=True)}
            assert all(t <= last[u] for u, t in zip(val.user_idx, val.timestamps, strict=True))
    model = select_model(train, budget=60, candidates=["popularity", "ease", "item-knn"], seed=0, folds=3)
    assert model.leaderboard_[-1]["model"] == "blend"  # scored on the same folds, and shown per fold too
    for row in model.leaderboard_:
        per_fold = row["val_ndcg@10_folds"]
        assert len(per_fold) == 3 and row["val_ndcg@10"] == pytest.approx(sum(per_fold) / 3, abs=1e-6)
    board = {r["model"]: r["val_ndcg@10"] for r in model.leaderboard_}
    best = (
        max(board, key=board.get)
        if model.leaderboard_[-1]["status"].startswith("ok")
        else max((m for m in board if m != "blend"), key=board.get)
    )
    assert [r["model"] for r in model.leaderboard_ if r.get("chosen")] == [best]
    # one fold is the single validation part of before: the same score as folds=1
    one = select_model(train, budget=60, candidates=["ease"], seed=0)
    assert one.leaderboard_[0]["val_ndcg@10"] == model.leaderboard_[1]["val_ndcg@10_folds"][0]
    with pytest.raises(ConfigError, match=r"folds == 0, must be >= 1"):
        select_model(train, budget=60, folds=0)
    with pytest.raises(ConfigError, match=r"folds == 11"):
        select_model(train, budget=60, folds=11)


def test_cli_auto_with_folds_prints_each_fold_and_keeps_them(tmp_path, capsys):
    out = tmp_path / "a"
    argv = ["train", "--data", "ml-100k", "--model", "auto", "--budget", "60", "--folds", "2"]
    assert main([*argv, "--candidates", "popularity,ease", "--seed", "0", "--quiet", "--out", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "val_ndcg@10=" in ln]
    board = load_model(out).bundle_extra_["leaderboard"]
    assert len(lines) == len(board) == 3  # popularity, ease, then the blend stage's row
    for line, row in zip(lines, board, strict=True):
        mean, folds = row["val_ndcg@10"], row["val_ndcg@10_folds"]
        assert len(folds) == 2 and mean == pytest.approx(sum(folds) / 2)
        assert f"val_ndcg@10={mean:.4f}" in line and f"(folds: {folds[0]:.4f}, {folds[1]:.4f})" in line


def test_auto_folds_past_what_a_time_rule_can_carve_say_how_many_it_can(data):
    from ncf.auto import _validation_parts
    from ncf.errors import DataError

    small = split.leave_one_out(data, by="timestamp", seed=0)[0]
    small = small._subset(np.isin(small.user_idx, np.arange(3)))  # three users, ~20 interactions each
    n = min(np.bincount(small.user_idx)[:3])
    with pytest.raises(DataError, match=r"folds == 40: train holds only \d+ validation part\(s\).*use folds <= \d+"):
        _validation_parts(small, 40, seed=0)
    assert n < 40


def test_auto_skips_what_cannot_fit_and_refuses_a_budget_too_small(data):
    train, _ = split.leave_one_out(data, by="timestamp", seed=0)
    with pytest.raises(ConfigError, match=r"budget == 1e-09 s fits none of the candidates.*larger budget"):
        select_model(train, budget=1e-9, candidates=["neumf"])
    with pytest.raises(ConfigError, match="budget == 0"):
        select_model(train, budget=0)
    with pytest.raises(ConfigError, match="unknown model.*known models"):
        select_model(train, budget=5, candidates=["svd"])


def test_cli_trains_a_baseline_and_refuses_bad_names_and_flags(tmp_path, capsys):
    code = main(
        [
            "train",
            "--data",
            "ml-100k",
            "--model",
            "ease",
            "--params",
            '{"l2": 300}',
            "--quiet",
            "--out",
            str(tmp_path / "e"),
        ]
    )
    assert code == 0 and isinstance(load_model(tmp_path / "e"), EASE)
    assert load_model(tmp_path / "e").l2 == 300
    capsys.readouterr()
    assert main(["train", "--data", "ml-100k", "--model", "ease", "--factors", "3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ease does not take ['factors']" in err and "l2" in err
    assert main(["train", "--data", "ml-100k", "--model", "auto", "--out", str(tmp_path / "x")]) == 2
    assert "--budget" in capsys.readouterr().err
    assert main(["train", "--data", "ml-100k", "--folds", "3", "--budget", "9", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--budget, --folds: for --model auto only, not --model neumf") and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:  # argparse lists the known models
        main(["train", "--data", "ml-100k", "--model", "svd", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "choose from" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_ncf_bundle_keeps_its_leaderboard(data, tmp_path):
    m = NCF(model="gmf", factors=4, epochs=1, seed=0).fit(data, validation=None)
    m.leaderboard_ = [{"model": "gmf", "status": "ok", "val_ndcg@10": 0.1, "chosen": True}]
    assert NCF.load(m.save(tmp_path / "g")).bundle_extra_["leaderboard"] == m.leaderboard_
