"""ncf.notebook: the seed notebook's metric and a tiny end-to-end run (never the real, slow preset)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import ncf.notebook as nb
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions


def _direct(scores: np.ndarray, relevant: np.ndarray, k: int) -> tuple[float, float]:
    """Straight from the definition: per row, the k best items (ties: lower index first), all rows counted."""
    hits = 0
    for row_s, row_r in zip(scores, relevant):
        order = sorted(range(len(row_s)), key=lambda j: (-row_s[j], j))
        hits += sum(int(row_r[j]) for j in order[:k])
    return hits / (k * scores.shape[0]), hits / relevant.sum()


def test_micro_precision_recall_by_hand():
    scores = np.array(
        [
            [0.9, 0.1, 0.8, 0.3, 0.5],  # top2: items 0, 2
            [0.2, 0.2, 0.2, 0.9, 0.1],  # top2: item 3, then the tie 0/1/2 -> item 0
            [0.5, 0.4, 0.3, 0.2, 0.1],  # no relevant items: still counts as 2 recommendations
        ],
        dtype=np.float32,
    )
    relevant = np.array(
        [
            [1, 0, 0, 1, 0],  # hit: 0
            [0, 1, 0, 1, 0],  # hit: 3 (item 1 loses the tie to item 0)
            [0, 0, 0, 0, 0],
        ]
    )
    p, r = nb.notebook_precision_recall(scores, sp.csr_matrix(relevant), k=2)
    assert p == pytest.approx(2 / 6) and r == pytest.approx(2 / 4)
    assert (p, r) == pytest.approx(_direct(scores, relevant, 2))


def test_micro_precision_recall_random_matches_direct():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(12, 9)).astype(np.float32)  # many ties
    relevant = (rng.random((12, 9)) < 0.25).astype(int)
    relevant[5] = 0
    for k in (1, 3, 5):
        got = nb.notebook_precision_recall(torch.as_tensor(scores), relevant, k=k)
        assert got == pytest.approx(_direct(scores, relevant, k))


def test_keras_regularisation_terms():
    """Loss = mean BCE + 0.01 * sum(W^2) of both MLP embedding matrices + 0.01 * sum(hidden^2) / batch."""
    torch.manual_seed(0)
    m = nb.KerasNeuMF(5, 7)
    assert m.mlp_user.weight.shape == (5, 32) and m.gmf_item.weight.shape == (7, 4)
    assert [lin.out_features for lin in m.hidden] == [8, 4]
    u, i, y = torch.tensor([0, 1, 4]), torch.tensor([2, 6, 0]), torch.tensor([1.0, 0.0, 1.0])
    h = torch.cat([m.mlp_user(u), m.mlp_item(i)], 1)
    h1 = torch.relu(m.hidden[0](h))
    h2 = torch.relu(m.hidden[1](h1))
    logits = m.out(torch.cat([m.gmf_user(u) * m.gmf_item(i), h2], 1)).squeeze(1)
    bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), y)
    l2 = 0.01 * (m.mlp_user.weight.pow(2).sum() + m.mlp_item.weight.pow(2).sum())
    act = 0.01 * (h1.pow(2).sum() + h2.pow(2).sum()) / 3
    assert float(nb._batch_loss(m, u, i, y).detach()) == pytest.approx(float((bce + l2 + act).detach()), rel=1e-5)


def _tiny() -> Interactions:
    """30 users x 25 items, all ratings in a shuffled file order; id maps include an item nobody rated.

    27 users have 14-20 ratings; 3 have 6, so the ua rule puts all of theirs in test.
    """
    rng = np.random.default_rng(1)
    users, items = [], []
    for u in range(30):
        n = int(rng.integers(14, 21)) if u < 27 else 6
        users += [u] * n
        items += list(rng.choice(24, n, replace=False))
    ratings = rng.integers(1, 6, len(users))
    rows = rng.permutation(len(users))
    return Interactions.from_indices(
        IdMap(np.arange(1, 31)), IdMap(np.arange(101, 126)), users, items, ratings=ratings, source_row=rows
    )


def test_notebook_split_is_ua_then_min_rating():
    data = _tiny()
    train, test = nb.notebook_split(data)
    first10 = np.zeros(len(data), dtype=bool)
    for u in range(30):  # each user's 10 earliest rows in file order
        mine = np.flatnonzero(data.user_idx == u)
        first10[mine[np.argsort(data.source_row[mine])[:10]]] = True
    liked = data.ratings >= 3
    assert sorted(test.source_row.tolist()) == sorted(data.source_row[first10 & liked].tolist())
    assert sorted(train.source_row.tolist()) == sorted(data.source_row[~first10 & liked].tolist())
    assert train.report["split"]["test_interactions"] == int(first10.sum())  # the split counts ratings
    assert train.shape == test.shape == (30, 25)


def test_notebook_cells_are_pandas_sample_order():
    """The notebook shuffled with DataFrame.sample(frac=1, random_state=seed) and took round(0.1 n) for validation."""
    import pandas as pd

    rng = np.random.default_rng(0)
    labels = (rng.random(1003) < 0.1).astype(np.int8)
    listed = np.concatenate([np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)])  # wide_to_long's order
    shuffled = pd.DataFrame({"cell": listed}).sample(frac=1, random_state=42)["cell"].to_numpy()
    train, val = nb.notebook_cells(labels, 42)
    assert len(val) == round(1003 * 0.1) == 100
    assert (val == shuffled[:100]).all() and (train == shuffled[100:]).all()


def test_output_layer_is_lecun_uniform():
    """kernel_initializer="lecun_uniform": U(+-sqrt(3 / 8)) = +-0.612, not Glorot's +-0.816."""
    torch.manual_seed(0)
    w = torch.cat([nb.KerasNeuMF(3, 4).out.weight.detach().flatten() for _ in range(20)])
    assert 0.55 < float(w.abs().max()) <= (3 / 8) ** 0.5


def test_run_notebook_tiny(monkeypatch, tmp_path):
    data = _tiny()
    monkeypatch.setattr(nb, "load_notebook_data", lambda: data)
    train, test = nb.notebook_split(data)
    lines: list[str] = []
    res = nb.run_notebook(seed=0, epochs=2, out_dir=tmp_path, progress=lines.append, batch_size=256)
    sp_ = res["split"]
    assert sp_["users"] == 30 and sp_["items"] == 25 and sp_["ratings"] == len(data)
    assert sp_["test_ratings"] == 27 * 10 + 3 * 6 and sp_["train_ratings"] == len(data) - sp_["test_ratings"]
    assert (sp_["train"], sp_["test"]) == (len(train), len(test))
    assert sp_["notebook"] == {"train": 74_627, "test": 7_893} and sp_["corner_matches_notebook"] is False
    text = "\n".join(lines)
    assert "train positives" in text and "(notebook: 74,627)" in text and "(notebook: 7,893)" in text
    assert "notebook's printed train[:10, :10]" in text and "5 3 4 3 3 5 4 0 5 3" in text and "identical: NO" in text
    neumf = res["models"]["NeuMF"]
    assert neumf["train_cells"] + neumf["validation_cells"] == 30 * 25
    assert neumf["validation_cells"] == round(30 * 25 * 0.1)
    assert neumf["positives_in_train_cells"] + neumf["positives_in_validation_cells"] == len(train)
    assert 1 <= neumf["epochs_run"] <= 2
    if neumf["stopped_early"]:
        assert neumf["history"][-1]["val_loss"] >= neumf["history"][0]["val_loss"]
    for name in ("NeuMF", "LightFM (WARP)"):
        r = res["models"][name]
        if "skipped" in r:
            assert name.startswith("LightFM")
            continue
        assert 0.0 <= r["notebook"]["precision@5"] <= 1.0 and 0.0 <= r["notebook"]["recall@5"] <= 1.0
        assert "seen items left in" in r["notebook"]["definition"]
        assert r["honest"]["protocol"] == "full" and "excluded" in r["honest"]["definition"]
        assert r["honest"]["users"] == sp_["users_with_test"] and {"precision@5", "recall@5", "ndcg@10"} <= set(
            r["honest"]
        )
    assert "reported P@5" in res["table"] and "0.10859" in res["table"] and "honest P@5" in res["table"]
    assert (tmp_path / "notebook.json").is_file() and "74,627" in (tmp_path / "notebook.md").read_text()
    assert any("NeuMF epoch 1/2" in ln for ln in lines)


def test_run_notebook_says_how_to_install_lightfm(monkeypatch):
    import ncf.baselines
    from ncf.baselines.lightfm_model import LIGHTFM_HINT
    from ncf.errors import ConfigError

    def missing(*_a, **_k):
        raise ConfigError(LIGHTFM_HINT)

    monkeypatch.setattr(nb, "load_notebook_data", _tiny)
    monkeypatch.setattr(ncf.baselines, "make_baseline", missing)
    lines: list[str] = []
    res = nb.run_notebook(seed=0, epochs=1, progress=lines.append, batch_size=512)
    install = 'pip install wheel "pip<25.3" && pip install --no-build-isolation lightfm==1.17'
    assert res["models"]["LightFM (WARP)"] == {"skipped": LIGHTFM_HINT} and install in LIGHTFM_HINT
    assert install in res["table"] and lines[-1] == f"LightFM was skipped: {LIGHTFM_HINT}"


@pytest.mark.movielens
def test_notebook_data_is_the_notebooks(ml100k):
    """ML-100k ua + ratings >= 3: the notebook's counts, its printed corner and (seed 42) its validation cells."""
    train, test = nb.notebook_split(ml100k)
    assert (len(train), len(test)) == (74_627, 7_893) and train.shape == (943, 1_682)
    per_user = test.user_counts
    assert per_user.min() >= 1 and per_user.max() == 10
    assert (nb.train_corner(train) == np.asarray(nb.NOTEBOOK_CORNER)).all()
    flat = np.zeros(943 * 1_682, dtype=np.int8)
    flat[train.user_idx * 1_682 + train.item_idx] = 1
    cells, val = nb.notebook_cells(flat, 42)
    assert (len(val), int(flat[val].sum())) == (158_613, 7_528)  # the Keras log's val tp + fn
    assert int(flat[cells].sum()) == 67_099 and int(flat[cells[:512]].sum()) == 21  # epoch 1, step 1: tp 1 + fn 20


def test_run_notebook_checks_arguments():
    from ncf.errors import ConfigError

    with pytest.raises(ConfigError, match="epochs"):
        nb.run_notebook(epochs=0, progress=None)
