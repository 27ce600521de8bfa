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
    scores = np.array([
        [0.9, 0.1, 0.8, 0.3, 0.5],  # top2: items 0, 2
        [0.2, 0.2, 0.2, 0.9, 0.1],  # top2: item 3, then the tie 0/1/2 -> item 0
        [0.5, 0.4, 0.3, 0.2, 0.1],  # no relevant items: still counts as 2 recommendations
    ], dtype=np.float32)  # fmt: skip
    relevant = np.array([
        [1, 0, 0, 1, 0],  # hit: 0
        [0, 1, 0, 1, 0],  # hit: 3 (item 1 loses the tie to item 0)
        [0, 0, 0, 0, 0],
    ])  # fmt: skip
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
    """30 users x 25 items; every user has 14-20 positives; id maps include an item nobody has."""
    rng = np.random.default_rng(1)
    users, items = [], []
    for u in range(30):
        n = int(rng.integers(14, 21)) if u < 27 else 6  # 3 users too small to hold out 10
        it = rng.choice(24, n, replace=False)
        users += [u] * n
        items += list(it)
    return Interactions.from_indices(IdMap(np.arange(1, 31)), IdMap(np.arange(101, 126)), users, items)


def test_run_notebook_tiny(monkeypatch, tmp_path):
    data = _tiny()
    monkeypatch.setattr(nb, "load_notebook_data", lambda: data)
    lines: list[str] = []
    res = nb.run_notebook(seed=0, epochs=2, out_dir=tmp_path, progress=lines.append, batch_size=256)
    assert res["split"]["users"] == 30 and res["split"]["items"] == 25
    assert res["split"]["users_held_out"] == 27 and res["split"]["test"] == 270
    neumf = res["models"]["NeuMF"]
    assert neumf["train_cells"] + neumf["validation_cells"] == 30 * 25
    assert neumf["validation_cells"] == 30 * 25 - int(np.ceil(30 * 25 * 0.9))
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
        assert r["honest"]["users"] == 27 and {"precision@5", "recall@5", "ndcg@10"} <= set(r["honest"])
    assert "reported P@5" in res["table"] and "0.10859" in res["table"] and "honest P@5" in res["table"]
    assert (tmp_path / "notebook.json").is_file() and (tmp_path / "notebook.md").is_file()
    assert any("NeuMF epoch 1/2" in ln for ln in lines)


def test_run_notebook_checks_arguments():
    from ncf.errors import ConfigError

    with pytest.raises(ConfigError, match="epochs"):
        nb.run_notebook(epochs=0, progress=None)
