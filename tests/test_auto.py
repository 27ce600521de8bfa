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
    model = select_model(train, budget=60, candidates=["popularity", "ease", "gmf"], params=params, seed=0)
    board = model.leaderboard_
    assert [r["model"] for r in board] == ["popularity", "ease", "gmf"]
    scores = {r["model"]: r["val_ndcg@10"] for r in board}
    chosen = [r["model"] for r in board if r.get("chosen")]
    assert chosen == [max(scores, key=scores.get)]  # the best validation metric wins, nothing else
    assert model.is_fitted and len(model.train_) == len(train)  # refit on all of train
    again = load_model(model.save(tmp_path / "m"))
    assert again.bundle_extra_["leaderboard"] == board


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
    with pytest.raises(SystemExit) as e:  # argparse lists the known models
        main(["train", "--data", "ml-100k", "--model", "svd", "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "choose from" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_ncf_bundle_keeps_its_leaderboard(data, tmp_path):
    m = NCF(model="gmf", factors=4, epochs=1, seed=0).fit(data, validation=None)
    m.leaderboard_ = [{"model": "gmf", "status": "ok", "val_ndcg@10": 0.1, "chosen": True}]
    assert NCF.load(m.save(tmp_path / "g")).bundle_extra_["leaderboard"] == m.leaderboard_
