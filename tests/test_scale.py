"""Scale features: synthetic data, the large-batch LR rule, two-stage recommend, int32 epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncf import NCF, ConfigError
from ncf.synthetic import SHAPES, synthetic_interactions
from ncf.train.sources import UniformNegatives
from ncf.train.trainer import TrainConfig, Trainer, effective_lr


def test_synthetic_is_seeded_exact_and_power_law():
    a = synthetic_interactions((500, 300, 12_000), seed=3)
    b = synthetic_interactions((500, 300, 12_000), seed=3)
    assert a.shape == (500, 300) and len(a) == 12_000
    assert np.array_equal(a.user_idx, b.user_idx) and np.array_equal(a.item_idx, b.item_idx)
    keys = a.user_idx.astype(np.int64) * 300 + a.item_idx
    assert np.all(np.diff(keys) > 0)  # sorted by (user, item), no duplicates
    assert a.user_idx.dtype == np.int32
    counts = np.sort(a.item_counts)[::-1]
    # Zipf(1) over 300 items: the top 10% of items hold about half of the interactions
    # (a uniform law would give 10%); 0.35 leaves room for the per-user deduplication.
    assert counts[:30].sum() / len(a) > 0.35
    assert not np.array_equal(synthetic_interactions((500, 300, 12_000), seed=4).item_idx, a.item_idx)
    assert SHAPES["ml-20m"] == (138_493, 26_744, 20_000_263)
    with pytest.raises(ConfigError, match="shape"):
        synthetic_interactions("ml-5m")


def test_lr_rule():
    base = dict(learning_rate=0.001, lr_reference_batch=1024)
    assert effective_lr(TrainConfig(batch_size=16384, **base)) == pytest.approx(0.001)
    assert effective_lr(TrainConfig(batch_size=16384, lr_scaling="sqrt", **base)) == pytest.approx(0.004)
    assert effective_lr(TrainConfig(batch_size=4096, lr_scaling="linear", **base)) == pytest.approx(0.004)
    with pytest.raises(ConfigError, match="lr_scaling"):
        NCF(lr_scaling="cubic").fit(synthetic_interactions((20, 20, 100)))
    with pytest.raises(ConfigError, match="sparse=False"):
        NCF(compile=True).fit(synthetic_interactions((20, 20, 100)))
    with pytest.raises(ConfigError, match="warmup_epochs"):
        NCF(warmup_epochs=-1).fit(synthetic_interactions((20, 20, 100)))


def test_linear_schedule_falls_to_zero_over_the_horizon_and_a_refit_keeps_it():
    class Rows(list):
        def batches(self, size):
            return (Rows(self[i : i + size]) for i in range(0, len(self), size))

    class Source:  # 10 positives x 1 row each, batch 5: 2 steps an epoch
        n_positives, rows_per_positive, device = 10, 1, torch.device("cpu")

        def epoch(self, gen, shard_gen):
            return Rows(range(10))

    class Step:
        def __init__(self):
            self.rates = []

        def set_lr(self, lr):
            self.rates.append(lr)

        def __call__(self, batch):
            return torch.tensor(1.0)

        def sync(self):
            pass

    def rates(**cfg):
        step = Step()
        Trainer(torch.nn.Linear(1, 1), Source(), step, TrainConfig(batch_size=5, **cfg), gen=None).fit()
        return step.rates

    assert rates(epochs=2, learning_rate=0.4) == []  # constant: the step keeps its rate, nothing is set
    # linear over 2 epochs x 2 steps: 0.4 * (1, 3/4, 2/4, 1/4); never 0
    assert rates(epochs=2, learning_rate=0.4, lr_schedule="linear") == pytest.approx([0.4, 0.3, 0.2, 0.1])
    # a refit of 1 epoch with the 2-epoch horizon sees the first epoch's rates, not a faster decay
    assert rates(epochs=1, decay_epochs=2, learning_rate=0.4, lr_schedule="linear") == pytest.approx([0.4, 0.3])
    # warm-up (1 step) times the decay
    assert rates(epochs=1, learning_rate=0.4, lr_schedule="linear", warmup_epochs=1.0) == pytest.approx([0.2, 0.2])
    with pytest.raises(ConfigError, match="lr_schedule"):
        NCF(lr_schedule="cosine").fit(synthetic_interactions((20, 20, 100)))


def test_epoch_tensors_are_int32():
    d = synthetic_interactions((40, 30, 300), seed=0)
    ep = UniformNegatives(d, 4, "bce", torch.device("cpu")).epoch(torch.Generator().manual_seed(0))
    u, i, y = ep.u, ep.i, ep.target
    assert u.dtype == i.dtype == torch.int32 and len(u) == 1500 and int(y.sum()) == 300
    neg_keys = u[y == 0].long() * 30 + i[y == 0].long()
    assert not np.isin(
        neg_keys.numpy(), d.user_idx.astype(np.int64) * 30 + d.item_idx
    ).any()  # negatives are unobserved


@pytest.fixture(scope="module")
def fitted() -> NCF:
    d = synthetic_interactions((120, 90, 2400), seed=2)
    return NCF(factors=8, layers=(16, 8), epochs=3, seed=0, refit=False).fit(d, validation=None)


def test_two_stage_with_every_item_as_candidate_is_exact(fitted):
    users = fitted.user_map_.ids[:50]
    exact_ids, exact_scores = fitted.recommend(users, k=10)
    ids, scores = fitted.recommend(users, k=10, candidates=fitted.train_.n_items)
    np.testing.assert_array_equal(ids, exact_ids)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)  # pairwise forward vs factorised block


def test_two_stage_returns_full_model_scores_of_unseen_candidates(fitted):
    users = fitted.user_map_.ids[:30]
    ids, scores = fitted.recommend(users, k=5, candidates=20)
    for u, row_i, row_s in zip(users, ids, scores):
        np.testing.assert_allclose(fitted.score([u] * 5, list(row_i)), row_s, atol=1e-5)
        seen = set(fitted.item_map_.raw(fitted.train_.csr[fitted.user_map_.index([u])[0]].indices).tolist())
        assert not seen & set(row_i.tolist())
        assert np.all(np.diff(row_s) <= 0)


def test_two_stage_needs_a_gmf_part():
    d = synthetic_interactions((30, 20, 200), seed=0)
    m = NCF(model="mlp", layers=(8, 4), epochs=1, seed=0).fit(d, validation=None)
    with pytest.raises(ConfigError, match="GMF part"):
        m.recommend([0], k=3, candidates=5)
    with pytest.raises(ConfigError, match="candidates"):
        m.recommend([0], k=3, candidates=0)


def test_sorted_full_ranking_equals_pairwise_comparison_with_ties():
    # full_ranking_ranks sorts each user's row and binary-searches the positives; the
    # definition is rank = #(score > pos) + #(score == pos and lower item index).
    import scipy.sparse as sp

    from ncf.evaluation import full_ranking_ranks

    rng = np.random.default_rng(0)
    n_users, n_items = 30, 40
    scores = torch.tensor(rng.integers(0, 5, (n_users, n_items)).astype(np.float32))  # many ties
    test = sp.random(n_users, n_items, density=0.1, format="csr", random_state=1)
    excl = sp.random(n_users, n_items, density=0.2, format="csr", random_state=2)
    test.data[:], excl.data[:] = 1, 1
    users, ranks, _, _, _ = full_ranking_ranks(lambda u: scores[u].clone(), test, excl)
    expected = []
    for u in users:
        sc = scores[u].clone()
        sc[torch.as_tensor(excl[u].indices, dtype=torch.long)] = -torch.inf
        for c in test[u].indices:
            expected.append(int((sc > sc[c]).sum() + ((sc == sc[c]) & (torch.arange(n_items) < c)).sum()))
    assert ranks.tolist() == expected
