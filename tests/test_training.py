"""Trainer pieces: recency weights, the sampled-softmax loss, and recency="auto"."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf import NCF, split
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.errors import DataError
from ncf.train.sources import Batch, SoftmaxNegatives, recency_weights
from ncf.train.steps import softmax_loss
from ncf.weighting import AUTO_RECENCY_HALF_LIFE
from ncf.weighting import resolve_recency as _resolve_recency


def timed(n_users: int = 4, n_items: int = 12, per_user: int = 6, seed: int = 0) -> Interactions:
    """Each user rates ``per_user`` distinct items at shuffled times."""
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_users), per_user)
    i = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ts = rng.permutation(len(u)).astype(np.int64) * 10
    return Interactions.from_indices(IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), u, i, ts)


def test_recency_weights_follow_the_half_life_within_each_user():
    data = timed()
    w = recency_weights(data, half_life=2.0, floor=0.25).numpy()
    assert w.mean() == pytest.approx(1.0, rel=1e-6)
    for user in range(data.n_users):
        rows = np.flatnonzero(data.user_idx == user)
        order = rows[np.argsort(-data.timestamps[rows])]  # latest first: r = 0, 1, 2, ...
        raw = 0.25 + 0.75 * np.exp2(-np.arange(len(rows)) / 2.0)
        # Same shape up to the global rescaling to mean 1: ratios to the latest match exactly.
        np.testing.assert_allclose(w[order] / w[order[0]], raw / raw[0], rtol=1e-6)


def test_recency_needs_timestamps():
    data = timed()
    bare = Interactions.from_indices(data.user_map, data.item_map, data.user_idx, data.item_idx)
    with pytest.raises(DataError, match="timestamps"):
        NCF(recency=3, epochs=1, factors=4, layers=(8, 4), seed=0).fit(bare, validation=None)
    assert _resolve_recency("auto", bare) is None  # auto quietly stays off without timestamps


def test_recency_auto_is_on_for_time_splits_and_off_for_random_holdout():
    data = timed(n_users=6, per_user=8)
    loo_train, _ = split.leave_one_out(data, by="timestamp")
    rnd_train, _ = split.holdout(data, n=2, by="random", seed=0)
    late_train, _ = split.holdout(data, n=2, by="timestamp")
    assert _resolve_recency("auto", loo_train) == AUTO_RECENCY_HALF_LIFE
    assert _resolve_recency("auto", late_train) == AUTO_RECENCY_HALF_LIFE
    assert _resolve_recency("auto", data) == AUTO_RECENCY_HALF_LIFE  # unsplit logs: predict what comes next
    assert _resolve_recency("auto", rnd_train) is None
    assert _resolve_recency(5, rnd_train) == 5.0  # an explicit half-life is always honoured
    assert _resolve_recency(None, loo_train) is None


def test_recency_weighted_fit_is_seeded_and_differs_from_unweighted():
    data = timed(n_users=8, n_items=20, per_user=8)
    kw = dict(model="gmf", factors=4, epochs=3, batch_size=16, seed=0, device="cpu")
    a = NCF(recency=2, **kw).fit(data, validation=None)
    b = NCF(recency=2, **kw).fit(data, validation=None)
    c = NCF(recency=None, **kw).fit(data, validation=None)
    wa, wb, wc = (m.module_.user.weight.detach() for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.allclose(wa, wc)


def test_softmax_masks_known_positives_and_matches_a_hand_computed_loss():
    data = timed(n_users=3, n_items=6, per_user=3)
    shared = SoftmaxNegatives(data, n=6, device=torch.device("cpu"))
    items = torch.arange(6)
    users = torch.arange(3)
    known = shared.known(users, items).numpy()
    dense = np.zeros((3, 6), dtype=bool)
    dense[data.user_idx, data.item_idx] = True
    np.testing.assert_array_equal(known, dense)

    class Fixed(torch.nn.Module):  # scores = a fixed table, so the loss can be computed by hand
        def __init__(self) -> None:
            super().__init__()
            self.table = torch.nn.Parameter(torch.arange(18, dtype=torch.float32).reshape(3, 6) / 10)

        def forward(self, u, i):
            return self.table[u, i]

        def score_block(self, u, i):
            return self.table[u][:, i]

    gen = torch.Generator().manual_seed(0)
    mod = Fixed()
    u, i = torch.as_tensor(data.user_idx), torch.as_tensor(data.item_idx)
    neg = shared.draw(torch.Generator().manual_seed(0))
    per, reg = softmax_loss(shared, gen)(mod, Batch(u, i, None), False)
    assert reg is None
    t = mod.table.detach().numpy()
    for row, (uu, ii) in enumerate(zip(data.user_idx, data.item_idx)):
        cand = [t[uu, ii]] + [t[uu, j] for j in neg.tolist() if not dense[uu, j]]
        expect = np.log(np.exp(cand).sum()) - t[uu, ii]
        assert float(per[row].detach()) == pytest.approx(expect, rel=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("world", [1, 2])
def test_compiled_epoch_builder_gives_the_torch_paths_tensors(monkeypatch, weighted, world):
    """With the compiled sampler lookup (ncf.train.kernels) the epoch is exactly the torch path's, from the same draws."""
    from ncf.synthetic import synthetic_interactions
    from ncf.train import kernels
    from ncf.train.sources import UniformNegatives, Weighted

    if not kernels.AVAILABLE:
        pytest.skip("numba not available: only the torch path exists")
    data = synthetic_interactions((60, 50, 900), seed=3)
    es = UniformNegatives(data, 3, "bce", torch.device("cpu"), rank=world - 1, world=world)
    if weighted:  # recency weights need timestamps; any per-positive weights take the same path
        es = Weighted(es, torch.rand(len(data), generator=torch.Generator().manual_seed(2)))
    fast = es.epoch(torch.Generator().manual_seed(7), torch.Generator().manual_seed(1))
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    slow = es.epoch(torch.Generator().manual_seed(7), torch.Generator().manual_seed(1))
    cols = ("u", "i", "target", "origin", "w") if weighted else ("u", "i", "target")
    assert (fast.w is None) == (slow.w is None) == (not weighted)
    for name in cols:
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and torch.equal(a, b)
