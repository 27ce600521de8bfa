from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError
from ncf.sampling import NegativeSampler, all_negatives


def dense_random(n_users=50, n_items=40, density=0.6, seed=0) -> Interactions:
    rng = np.random.default_rng(seed)
    m = rng.random((n_users, n_items)) < density
    m[np.arange(n_users), rng.integers(0, n_items, n_users)] = False  # nobody has every item
    u, i = np.nonzero(m)
    return Interactions.from_indices(IdMap(np.arange(n_users)), IdMap(np.arange(n_items)), u, i)


def test_never_returns_a_positive():
    data = dense_random()
    sampler = NegativeSampler(data)
    dense = data.csr.toarray() > 0
    g = torch.Generator().manual_seed(0)
    users = torch.arange(data.n_users).repeat(20)
    out = sampler.sample(users, 50, g)
    assert out.shape == (len(users), 50) and out.dtype == torch.int64
    assert out.min() >= 0 and out.max() < data.n_items
    assert not dense[users.numpy()[:, None], out.numpy()].any()


def test_uniform_over_allowed_items():
    # Each user's draws should be uniform over its negatives. Pool a chi-square statistic
    # over users: under uniformity it has mean = total degrees of freedom (df) and sd =
    # sqrt(2 df). We allow 5 sd, so a correct sampler fails with probability < 1e-6 while
    # a sampler that, say, favoured the items next to positives (off-by-one in the rank
    # mapping) would put the statistic off by far more -- and it also never returns a
    # positive, which the previous test checks exactly.
    data = dense_random(seed=1)
    sampler = NegativeSampler(data)
    dense = data.csr.toarray() > 0
    g = torch.Generator().manual_seed(1)
    per_user = 4000
    out = sampler.sample(torch.arange(data.n_users), per_user, g).numpy()
    chi2, df = 0.0, 0
    for u in range(data.n_users):
        allowed = np.flatnonzero(~dense[u])
        counts = np.bincount(out[u], minlength=data.n_items)
        assert counts[dense[u]].sum() == 0
        expected = per_user / len(allowed)
        chi2 += float(((counts[allowed] - expected) ** 2 / expected).sum())
        df += len(allowed) - 1
    assert abs(chi2 - df) < 5 * np.sqrt(2 * df), (chi2, df)
    # and every allowed item of every user shows up at least once
    assert all(set(np.unique(out[u])) == set(np.flatnonzero(~dense[u])) for u in range(data.n_users))


def test_deterministic_with_same_generator_seed():
    sampler = NegativeSampler(dense_random())
    users = torch.tensor([0, 3, 3, 7, 49])
    a = sampler.sample(users, 10, torch.Generator().manual_seed(42))
    b = sampler.sample(users, 10, torch.Generator().manual_seed(42))
    c = sampler.sample(users, 10, torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_exclude_and_csr_input():
    data = dense_random(seed=2)
    rng = np.random.default_rng(2)
    dense = data.csr.toarray() > 0
    # "test" positives among the negatives of data
    free_u, free_i = np.nonzero(~dense)
    pick = rng.choice(len(free_u), size=len(free_u) // 3, replace=False)
    extra = Interactions.from_indices(data.user_map, data.item_map, free_u[pick], free_i[pick])
    both = dense | (extra.csr.toarray() > 0)
    keep = both.sum(1) < data.n_items
    assert keep.all()
    sampler = NegativeSampler(data.csr, exclude=[extra.csr])
    users = torch.arange(data.n_users).repeat(10)
    out = sampler.sample(users, 30, torch.Generator().manual_seed(0)).numpy()
    assert not both[users.numpy()[:, None], out].any()
    assert (sampler.n_negatives(torch.arange(data.n_users)).numpy() == data.n_items - both.sum(1)).all()
    # Interactions with equal (but distinct) maps are reindexed transparently
    other = Interactions.from_indices(
        IdMap(np.arange(data.n_users)), IdMap(np.arange(data.n_items)), extra.user_idx, extra.item_idx
    )
    out2 = NegativeSampler(data, exclude=other).sample(users, 30, torch.Generator().manual_seed(0)).numpy()
    assert (out2 == out).all()


def test_users_without_positives_and_edge_sizes():
    data = Interactions.from_indices(IdMap(np.arange(3)), IdMap(np.arange(5)), [1, 1], [0, 4])
    s = NegativeSampler(data)
    out = s.sample(torch.tensor([0, 1, 2]), 200, torch.Generator().manual_seed(0))
    assert set(out[0].tolist()) == set(range(5))
    assert set(out[1].tolist()) == {1, 2, 3}
    assert s.sample(torch.tensor([], dtype=torch.int64), 3).shape == (0, 3)
    assert s.sample(torch.tensor([1]), 0).shape == (1, 0)
    assert s.sample(np.array([2, 2]), 4).shape == (2, 4)


def test_user_with_all_items_raises():
    um, im = IdMap(["a", "b", "c"]), IdMap(np.arange(4))
    data = Interactions.from_indices(um, im, [0, 0, 0, 0, 1, 2, 2, 2, 2], [0, 1, 2, 3, 0, 0, 1, 2, 3])
    with pytest.raises(DataError, match=r"2 user\(s\) have a positive for every one of the 4 items.*'a', 'c'"):
        NegativeSampler(data)
    # becomes full only through the exclusions
    part = Interactions.from_indices(um, im, [1], [0])
    rest = Interactions.from_indices(um, im, [1, 1, 1], [1, 2, 3])
    with pytest.raises(DataError, match=r"1 user\(s\)"):
        NegativeSampler(part, exclude=rest)


def test_sampler_argument_errors():
    s = NegativeSampler(dense_random())
    with pytest.raises(ConfigError, match="n == -1"):
        s.sample(torch.tensor([0]), -1)
    with pytest.raises(ConfigError, match="outside"):
        s.sample(torch.tensor([50]), 1)
    with pytest.raises(ConfigError, match="integer"):
        s.sample(torch.tensor([0.5]), 1)
    with pytest.raises(DataError, match="shape"):
        NegativeSampler(dense_random(), exclude=dense_random(n_users=10).csr)
    # Interactions with other id maps are reindexed into data's maps instead
    small = dense_random(n_users=10, density=0.1, seed=5)
    union = dense_random().csr.toarray() > 0
    union[:10] |= small.csr.toarray() > 0
    s2 = NegativeSampler(dense_random(), exclude=small)
    assert s2.n_positives == int(union.sum())
    with pytest.raises(ConfigError, match="data must be"):
        NegativeSampler([1, 2, 3])


def test_all_negatives_exact():
    data = dense_random(n_users=20, n_items=15, density=0.5, seed=4)
    u, i = all_negatives(data)
    dense = data.csr.toarray() > 0
    eu, ei = np.nonzero(~dense)
    assert (u == eu).all() and (i == ei).all()
    assert u.dtype == np.int64 and i.dtype == np.int64
    # selected users only; inactive users are left out by default
    data2 = Interactions.from_indices(IdMap(np.arange(3)), IdMap(np.arange(4)), [0, 2], [1, 3])
    u, i = all_negatives(data2)
    assert list(zip(u.tolist(), i.tolist(), strict=True)) == [(0, 0), (0, 2), (0, 3), (2, 0), (2, 1), (2, 2)]
    u, i = all_negatives(data2, users=[1])
    assert u.tolist() == [1, 1, 1, 1] and i.tolist() == [0, 1, 2, 3]
    ex = Interactions.from_indices(data2.user_map, data2.item_map, [0], [0])
    u, i = all_negatives(data2, users=[0], exclude=ex)
    assert i.tolist() == [2, 3]


def test_all_negatives_limit():
    data = dense_random(n_users=20, n_items=15)
    with pytest.raises(ConfigError, match='"all" negatives mode needs the dense'):
        all_negatives(data, limit=100)
