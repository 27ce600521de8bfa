"""RowAdam: the same lazy-Adam update as torch.optim.SparseAdam, with plain row indexing."""

from __future__ import annotations

import pytest
import torch

from ncf.train.optim import RowAdam

N_ROWS, DIM = 20, 5


def _batches(n_steps: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Index batches with repeats (rows 3 and 7 appear several times) and random targets."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_steps):
        idx = torch.cat([torch.tensor([3, 3, 7, 3, 7]), torch.randint(0, N_ROWS // 2, (6,), generator=g)])
        out.append((idx, torch.randn(len(idx), DIM, generator=g)))
    return out


def _run(opt_cls, batches, *, sparse: bool, lr: float = 0.05, **kw) -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    emb = torch.nn.Embedding(N_ROWS, DIM, sparse=sparse)
    opt = opt_cls(emb.parameters(), lr=lr, **kw)
    snapshots = []
    for idx, target in batches:
        opt.zero_grad(set_to_none=True)
        # A non-linear loss so the gradient depends on the current weights.
        loss = ((emb(idx) - target) ** 2).sum() + emb(idx).pow(3).sum()
        loss.backward()
        opt.step()
        snapshots.append(emb.weight.detach().clone())
    return emb.weight.detach().clone(), snapshots


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.5, 0.9)])
def test_matches_sparse_adam_over_steps(betas):
    batches = _batches(8)
    _, ours = _run(RowAdam, batches, sparse=True, betas=betas, eps=1e-8)
    _, ref = _run(torch.optim.SparseAdam, batches, sparse=True, betas=betas, eps=1e-8)
    for step, (a, b) in enumerate(zip(ours, ref)):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6, msg=f"step {step + 1}")
    assert not torch.equal(ours[-1], ours[0])  # it did move


def test_duplicate_indices_are_summed_before_the_update():
    # One step with row 2 listed three times must equal one step with its gradient tripled:
    # on the first Adam step m = (1-b1) g and v = (1-b2) g^2, so the update is
    # -lr * sign(g) (up to eps) -- and a non-merged implementation that applied three
    # updates or averaged would differ in the moments kept for the next step.
    emb_a = torch.nn.Embedding(4, 3, sparse=True)
    emb_b = torch.nn.Embedding(4, 3, sparse=True)
    emb_b.load_state_dict(emb_a.state_dict())
    opt_a, opt_b = RowAdam(emb_a.parameters(), lr=0.1), RowAdam(emb_b.parameters(), lr=0.1)
    w = torch.tensor([1.0, -2.0, 0.5])
    (emb_a(torch.tensor([2, 2, 2])) * w).sum().backward()
    (emb_b(torch.tensor([2])) * (3 * w)).sum().backward()
    opt_a.step()
    opt_b.step()
    torch.testing.assert_close(emb_a.weight, emb_b.weight)
    torch.testing.assert_close(opt_a.state[emb_a.weight]["exp_avg"], opt_b.state[emb_b.weight]["exp_avg"])
    torch.testing.assert_close(opt_a.state[emb_a.weight]["exp_avg_sq"], opt_b.state[emb_b.weight]["exp_avg_sq"])
    torch.testing.assert_close(opt_a.state[emb_a.weight]["exp_avg"][2], 0.1 * 3 * w)


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse-grad", "dense-grad"])
def test_rows_not_in_batch_do_not_change(sparse):
    emb = torch.nn.Embedding(N_ROWS, DIM, sparse=sparse)
    opt = RowAdam(emb.parameters(), lr=0.1)
    start = emb.weight.detach().clone()
    touched = torch.tensor([1, 4, 4, 9])
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        emb(touched).sum().backward()
        opt.step()
    moved = (emb.weight != start).any(1)
    expected = torch.zeros(N_ROWS, dtype=torch.bool)
    expected[touched] = True
    assert torch.equal(moved, expected)
    state = opt.state[emb.weight]
    assert state["step"] == 3
    assert torch.all(state["exp_avg"][~expected] == 0) and torch.all(state["exp_avg_sq"][~expected] == 0)


def test_lazy_moments_of_untouched_rows_are_not_decayed():
    # Row 0 is touched at step 1 only. Lazy Adam leaves its moments as they were after
    # step 1 (dense Adam would decay them and keep moving the row).
    emb = torch.nn.Embedding(3, 2, sparse=True)
    opt = RowAdam(emb.parameters(), lr=0.1)
    emb(torch.tensor([0, 1])).sum().backward()
    opt.step()
    m0 = opt.state[emb.weight]["exp_avg"][0].clone()
    w0 = emb.weight[0].detach().clone()
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        emb(torch.tensor([1])).sum().backward()
        opt.step()
    torch.testing.assert_close(opt.state[emb.weight]["exp_avg"][0], m0)
    torch.testing.assert_close(emb.weight[0].detach(), w0)


def test_dense_gradient_path_matches_sparse_path():
    batches = _batches(6, seed=1)
    dense_final, dense_steps = _run(RowAdam, batches, sparse=False)
    sparse_final, sparse_steps = _run(RowAdam, batches, sparse=True)
    ref_final, _ = _run(torch.optim.SparseAdam, batches, sparse=True)
    for a, b in zip(dense_steps, sparse_steps):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(dense_final, ref_final, atol=1e-6, rtol=1e-6)


def test_several_params_and_no_grad_params_are_skipped():
    a = torch.nn.Embedding(5, 2, sparse=True)
    b = torch.nn.Embedding(6, 2, sparse=True)
    c = torch.nn.Embedding(4, 2, sparse=True)  # never used: grad stays None
    opt = RowAdam([a.weight, b.weight, c.weight], lr=0.01)
    ref_a, ref_b = torch.nn.Embedding(5, 2, sparse=True), torch.nn.Embedding(6, 2, sparse=True)
    ref_a.load_state_dict(a.state_dict())
    ref_b.load_state_dict(b.state_dict())
    ref = torch.optim.SparseAdam([ref_a.weight, ref_b.weight], lr=0.01)
    c_before = c.weight.detach().clone()
    for s in range(4):
        for o in (opt, ref):
            o.zero_grad(set_to_none=True)
        i, j = torch.tensor([s % 5, 0, 0]), torch.tensor([5, s, 5])
        (a(i) * b(j)).sum().backward()
        (ref_a(i) * ref_b(j)).sum().backward()
        opt.step()
        ref.step()
    torch.testing.assert_close(a.weight, ref_a.weight, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(b.weight, ref_b.weight, atol=1e-6, rtol=1e-6)
    assert torch.equal(c.weight, c_before) and c.weight not in opt.state
