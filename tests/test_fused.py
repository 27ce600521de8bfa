"""The fused training step computes the autograd path's loss, gradients and updates.

Every test runs twice: through the compiled kernels (``ncf.train.kernels``, numba) and through
the pure-PyTorch ops the step falls back to (CUDA, or no numba).
"""

from __future__ import annotations

import copy

import pytest
import torch

import ncf.train.fused
from ncf import nn as ncf_nn
from ncf.train import kernels
from ncf.train.fused import CompiledFusedStep, fused_step, supports
from ncf.train.steps import make_optimizers

N_USERS, N_ITEMS, B = 30, 20, 64
CASES = [("gmf", (8, 6, 4)), ("mlp", (8, 6, 4)), ("mlp", (8,)), ("neumf", (8, 6, 4)), ("neumf", (8,))]


@pytest.fixture(autouse=True, params=["kernels", "torch"])
def path(request, monkeypatch):
    """Which implementation FusedStep picks: the compiled kernels or the PyTorch ops."""
    if request.param == "kernels" and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    if request.param == "torch":
        monkeypatch.setattr(ncf.train.fused.kernels, "AVAILABLE", False)
    return request.param


def _batch(g: torch.Generator, n: int = B) -> tuple[torch.Tensor, ...]:
    u = torch.randint(0, N_USERS, (n,), generator=g)  # 64 draws of 30 users: duplicates on purpose
    i = torch.randint(0, N_ITEMS, (n,), generator=g)
    y = (torch.rand(n, generator=g) < 0.3).float()
    j = torch.randint(0, N_ITEMS, (n,), generator=g)
    return u, i, y, j


# Batches from kernels.TORCH_LOSS_PAIRS pairs take the big-batch route (PyTorch's loss between the kernels).
SIZES = [B, kernels.TORCH_LOSS_PAIRS]


def _autograd_loss(m: torch.nn.Module, u, i, y, j, loss: str, wd: float) -> torch.Tensor:
    """The trainer's autograd loss (training.train_module), written out."""
    f = torch.nn.functional
    if loss == "bce":
        logits, l2 = m.forward_l2(u, i)
        out = f.binary_cross_entropy_with_logits(logits, y)
    else:
        (sp, l2p), (sn, l2n) = m.forward_l2(u, i), m.forward_l2(u, j)
        out, l2 = -f.logsigmoid(sp - sn).mean(), l2p + l2n
    return out + wd * l2 / len(u)


@pytest.mark.parametrize("kind,layers", CASES)
@pytest.mark.parametrize("wd", [0.0, 1e-2])
def test_bce_updates_match_autograd_rowadam_adam(kind, layers, wd):
    torch.manual_seed(0)
    ref = ncf_nn.build(kind, N_USERS, N_ITEMS, 4, layers, 0.0, True)
    mod = copy.deepcopy(ref)
    start = copy.deepcopy(ref.state_dict())
    opts = make_optimizers(ref, 0.01)
    fs = fused_step(mod, lr=0.01, weight_decay=wd, loss="bce")
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        u, i, y, j = _batch(g)
        loss = _autograd_loss(ref, u, i, y, j, "bce", wd)
        for o in opts:
            o.zero_grad()
        loss.backward()
        for o in opts:
            o.step()
        fused_loss = fs.step(u, i, y)
        torch.testing.assert_close(fused_loss, loss.detach(), atol=1e-6, rtol=1e-6)
    fs.sync()
    # 1e-5: float32 sums in another order, amplified a little by Adam's division by sqrt(v).
    for (name, a), b in zip(ref.named_parameters(), mod.parameters()):
        torch.testing.assert_close(b, a.detach(), atol=1e-5, rtol=1e-5, msg=name)
    assert all(not torch.equal(v, start[k]) for k, v in mod.state_dict().items())  # every tensor was trained


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind,layers", CASES)
@pytest.mark.parametrize("loss,wd", [("bce", 0.0), ("bpr", 0.0), ("bpr", 1e-2)])
def test_gradients_match_autograd(kind, layers, loss, wd, n):
    # BPR is checked on gradients, not on parameters after several Adam steps: where a
    # gradient is ~0 (the output bias cancels in s(u,i) - s(u,j)) Adam turns rounding noise
    # into full steps, so parameter trajectories are not a fair comparison.
    torch.manual_seed(0)
    ref = ncf_nn.build(kind, N_USERS, N_ITEMS, 4, layers, 0.0, True)
    fs = fused_step(copy.deepcopy(ref), lr=0.01, weight_decay=wd, loss=loss)
    u, i, y, j = _batch(torch.Generator().manual_seed(2), n)
    _autograd_loss(ref, u, i, y, j, loss, wd).backward()
    captured = {}

    def capture(flat, blocks):
        captured["flat"], captured["blocks"] = flat, blocks
        return flat, blocks

    fs.reduce = capture
    fs.step(u, i, y if loss == "bce" else j)
    expected_dense = torch.cat([p.grad.reshape(-1) for p in fs.dense_params_of(ref)])
    torch.testing.assert_close(captured["flat"], expected_dense, atol=1e-7, rtol=1e-5)
    for (rows, grads), tables in zip(captured["blocks"], fs.tables_of(ref)):
        dense = torch.cat([t.grad.to_dense() for t in tables], dim=1)
        torch.testing.assert_close(grads, dense[rows], atol=1e-7, rtol=1e-5)
        untouched = torch.ones(len(dense), dtype=torch.bool)
        untouched[rows] = False
        assert not dense[untouched].any()  # every row with a gradient is in the block


def test_supports_only_what_it_implements():
    assert supports(ncf_nn.NeuMF(5, 5, 4, (8, 4)), "bce")
    assert not supports(ncf_nn.NeuMF(5, 5, 4, (8, 4), dropout=0.2), "bce")
    assert not supports(ncf_nn.NeuMF(5, 5, 4, (8, 4)), "softmax")
    with pytest.raises(ValueError, match="does not support"):
        fused_step(ncf_nn.MLP(5, 5, (8, 4), dropout=0.5), lr=0.1)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind,layers", CASES)
@pytest.mark.parametrize("loss,wd", [("bce", 0.0), ("bce", 1e-2), ("bpr", 0.0)])
def test_weighted_gradients_match_autograd(kind, layers, loss, wd, n):
    """Per-sample (recency) weights: the fused step's loss and gradients equal ``(w * loss).mean()``."""
    f = torch.nn.functional
    torch.manual_seed(0)
    ref = ncf_nn.build(kind, N_USERS, N_ITEMS, 4, layers, 0.0, True)
    fs = fused_step(copy.deepcopy(ref), lr=0.01, weight_decay=wd, loss=loss)
    g = torch.Generator().manual_seed(3)
    u, i, y, j = _batch(g, n)
    w = torch.rand(n, generator=g) * 2
    if loss == "bce":
        logits, l2 = ref.forward_l2(u, i)
        per = f.binary_cross_entropy_with_logits(logits, y, reduction="none")
    else:
        (sp, l2p), (sn, l2n) = ref.forward_l2(u, i), ref.forward_l2(u, j)
        per, l2 = -f.logsigmoid(sp - sn), l2p + l2n
    expected = (per * w).mean() + wd * l2 / n
    expected.backward()
    captured = {}

    def capture(flat, blocks):
        captured["flat"], captured["blocks"] = flat, blocks
        return flat, blocks

    fs.reduce = capture
    got = fs.step(u, i, y if loss == "bce" else j, w)
    torch.testing.assert_close(got, expected.detach(), atol=1e-6, rtol=1e-6)
    expected_dense = torch.cat([p.grad.reshape(-1) for p in fs.dense_params_of(ref)])
    if loss == "bpr":
        expected_dense[fs.dense_params[0].numel()] = 0.0  # the output bias cancels in BPR (zeroed exactly)
    torch.testing.assert_close(captured["flat"], expected_dense, atol=1e-7, rtol=1e-5)
    for (rows, grads), tables in zip(captured["blocks"], fs.tables_of(ref)):
        dense = torch.cat([t.grad.to_dense() for t in tables], dim=1)
        torch.testing.assert_close(grads, dense[rows], atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_tables_much_larger_than_the_batch_match_autograd(loss):
    """Tables of more than kernels.SORT_SCAN x batch rows: the distinct rows come in order of first
    appearance instead of table order (no scan of the table); the gradients are the same."""
    torch.manual_seed(0)
    n_users, n_items = 5000, 4000  # > 16 x 128 rows (BPR: 2 x 64 pairs), ids drawn from a corner: rows repeat
    ref = ncf_nn.build("neumf", n_users, n_items, 4, (8, 6, 4), 0.0, True)
    fs = fused_step(copy.deepcopy(ref), lr=0.01, weight_decay=1e-2, loss=loss)
    g = torch.Generator().manual_seed(6)
    u, i, j = (torch.randint(n - 40, n, (B,), generator=g) for n in (n_users, n_items, n_items))
    y = (torch.rand(B, generator=g) < 0.3).float()
    _autograd_loss(ref, u, i, y, j, loss, 1e-2).backward()
    captured = {}

    def capture(flat, blocks):
        captured["flat"], captured["blocks"] = flat, blocks
        return flat, blocks

    fs.reduce = capture
    fs.step(u, i, y if loss == "bce" else j)
    torch.testing.assert_close(
        captured["flat"], torch.cat([p.grad.reshape(-1) for p in fs.dense_params_of(ref)]), atol=1e-7, rtol=1e-5
    )
    for (rows, grads), tables in zip(captured["blocks"], fs.tables_of(ref)):
        dense = torch.cat([t.grad.to_dense() for t in tables], dim=1)
        torch.testing.assert_close(grads, dense[rows], atol=1e-7, rtol=1e-5)
        assert len(rows) == len(set(rows.tolist())) == int(dense.abs().sum(1).gt(0).sum())


@pytest.mark.parametrize("kind,layers", CASES)
def test_path_in_use(path, kind, layers):
    fs = fused_step(ncf_nn.build(kind, N_USERS, N_ITEMS, 4, layers, 0.0, True), lr=0.01)
    # The kernels serve every CPU float32 case but a tower without hidden layers (raw halves as features).
    assert isinstance(fs, CompiledFusedStep) == (path == "kernels" and not (kind != "gmf" and len(layers) == 1))


@pytest.mark.parametrize("bad", [N_USERS, -1])
def test_out_of_range_ids_raise_instead_of_corrupting(path, bad):
    torch.manual_seed(0)
    fs = fused_step(ncf_nn.build("neumf", N_USERS, N_ITEMS, 4, (8, 6, 4), 0.0, True), lr=0.01)
    u, i, y, _ = _batch(torch.Generator().manual_seed(4))
    u[5] = bad
    before = fs.U.clone()
    # The kernels read raw memory, so they check every id themselves; PyTorch's ops check their own.
    with pytest.raises(IndexError if path == "kernels" else (IndexError, RuntimeError)):
        fs.step(u, i, y)
    assert torch.equal(fs.U, before)  # nothing was updated
    u[5] = 0
    fs.step(u, i, y)  # the step still works afterwards (the kernels' scratch space was left clean)


@pytest.mark.parametrize("batch", [B, kernels.TORCH_LOSS_PAIRS])
def test_one_and_two_threads_give_identical_updates(batch):
    """With two threads the kernels' two halves (of the batch, of each side's distinct rows) run at
    once; the halves are fixed and their partial sums added in a fixed order: bit-identical results."""
    torch.manual_seed(0)
    ref = ncf_nn.build("neumf", N_USERS, N_ITEMS, 4, (8, 6, 4), 0.0, True)
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fs = fused_step(copy.deepcopy(ref), lr=0.01, weight_decay=1e-3)
            g = torch.Generator().manual_seed(5)
            for _ in range(4):
                u = torch.randint(0, N_USERS, (batch,), generator=g)
                i = torch.randint(0, N_ITEMS, (batch,), generator=g)
                fs.step(u, i, (torch.rand(batch, generator=g) < 0.3).float())
            fs.sync()
            out.append(fs.module.state_dict())
    finally:
        torch.set_num_threads(before)
    for name, t in out[0].items():
        assert torch.equal(t, out[1][name]), name


def test_kernels_compile():
    assert kernels.warmup() == kernels.AVAILABLE


def test_serial_and_parallel_kernel_variants_have_their_own_cache_entries():
    """numba keys its on-disk cache by qualified name + line + signature, not by ``parallel``: with
    one name, whichever variant compiled first answered for both (a serial kernel ran a thread team
    and switched torch to two threads, 8x slower steps on a loaded machine)."""
    if not kernels.AVAILABLE:
        pytest.skip("numba not available")
    pairs = [
        ("step_forward", "step_forward_parallel"),
        ("step_backward", "step_backward_parallel"),
        ("row_adam_both", "row_adam_both_parallel"),
    ]
    for serial, parallel in pairs:
        s, p = getattr(kernels, serial), getattr(kernels, parallel)
        assert not s.targetoptions.get("parallel") and p.targetoptions.get("parallel")
        assert s.py_func.__qualname__ != p.py_func.__qualname__
