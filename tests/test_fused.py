"""The fused training step computes the autograd path's loss, gradients and updates.

Every test runs twice: through the compiled kernels (``ncf.train.kernels``, numba) and through
the pure-PyTorch ops the step falls back to (CUDA, or no numba).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import ncf.train.fused
from ncf import nn as ncf_nn
from ncf.synthetic import synthetic_interactions
from ncf.train import kernels
from ncf.train.fused import ROWS, CompiledFusedStep, FusedStep, fused_step, supports
from ncf.train.sources import UniformNegatives
from ncf.train.steps import make_optimizers
from ncf.train.trainer import DivergenceGuard, TrainConfig, Trainer
from sync_probe import SyncProbe

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


@pytest.fixture
def torch_path(monkeypatch):
    """The PyTorch ops only (what CUDA runs): for the settings the compiled kernels do not have."""
    monkeypatch.setattr(ncf.train.fused.kernels, "AVAILABLE", False)
    return "torch"


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


def _step_capturing(fs, *batch):
    """One step of ``fs`` on ``batch``: ((the dense gradient, the tables' row blocks) it reduced, the loss)."""
    captured = []

    def capture(flat, blocks):
        captured.append((flat, blocks))
        return flat, blocks

    fs.reduce = capture
    loss = fs.step(*batch)
    return captured[-1], loss


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
    (flat, blocks), _ = _step_capturing(fs, u, i, y if loss == "bce" else j)
    expected_dense = torch.cat([p.grad.reshape(-1) for p in fs.dense_params_of(ref)])
    torch.testing.assert_close(flat, expected_dense, atol=1e-7, rtol=1e-5)
    for (rows, grads), tables in zip(blocks, fs.tables_of(ref)):
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
    (flat, blocks), got = _step_capturing(fs, u, i, y if loss == "bce" else j, w)
    torch.testing.assert_close(got, expected.detach(), atol=1e-6, rtol=1e-6)
    expected_dense = torch.cat([p.grad.reshape(-1) for p in fs.dense_params_of(ref)])
    if loss == "bpr":
        expected_dense[fs.dense_params[0].numel()] = 0.0  # the output bias cancels in BPR (zeroed exactly)
    torch.testing.assert_close(flat, expected_dense, atol=1e-7, rtol=1e-5)
    for (rows, grads), tables in zip(blocks, fs.tables_of(ref)):
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
    (flat, blocks), _ = _step_capturing(fs, u, i, y if loss == "bce" else j)
    torch.testing.assert_close(
        flat, torch.cat([p.grad.reshape(-1) for p in fs.dense_params_of(ref)]), atol=1e-7, rtol=1e-5
    )
    for (rows, grads), tables in zip(blocks, fs.tables_of(ref)):
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


# -- whole-table rows (rows="all"): the accelerator's step without host syncs ------------------
@pytest.mark.parametrize("kind,layers", CASES)
@pytest.mark.parametrize("loss,wd", [("bce", 0.0), ("bce", 1e-2), ("bpr", 1e-2)])
def test_whole_table_rows_give_the_distinct_rows_update(torch_path, kind, layers, loss, wd):
    """rows="all" (every table row takes part, untouched ones masked out of the lazy Adam update)
    trains to the same parameters and moments as the distinct-row step, which the tests above
    check against autograd; rows no batch touched stay bit-identical, moments included."""
    torch.manual_seed(0)
    ref = ncf_nn.build(kind, N_USERS, N_ITEMS, 4, layers, 0.0, True)
    steps = {rows: FusedStep(copy.deepcopy(ref), lr=0.01, weight_decay=wd, loss=loss, rows=rows) for rows in ROWS[1:]}
    start_u = steps["all"].U.clone()
    g = torch.Generator().manual_seed(6)
    seen = torch.zeros(N_USERS, dtype=torch.bool)
    for _ in range(5):
        u, i, y, j = _batch(g, 16)  # 16 of 30 users per batch: some rows are never touched
        u = u.clamp(max=N_USERS - 3)  # the last three users never are
        seen[u] = True
        losses = [fs.step(u, i, y if loss == "bce" else j) for fs in steps.values()]
        torch.testing.assert_close(losses[0], losses[1], atol=1e-6, rtol=1e-6)
    a, b = steps["distinct"], steps["all"]
    for name in ("U", "I", "mU", "vU", "mI", "vI", "flat", "m_flat", "v_flat"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=1e-6, rtol=1e-5, msg=name)
    assert not seen.all()
    assert torch.equal(b.U[~seen], start_u[~seen]) and not b.mU[~seen].any() and not b.vU[~seen].any()


def test_rows_setting_is_checked():
    module = ncf_nn.NeuMF(5, 5, 4, (8, 4))
    with pytest.raises(ValueError, match="rows == 'some'"):
        FusedStep(module, lr=0.1, rows="some")
    fs = FusedStep(module, lr=0.1, rows="all", reduce=lambda flat, blocks: (flat, blocks))
    with pytest.raises(ValueError, match="reduce hook"):
        fs.step(torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("loss", ["bce", "bpr"])
def test_whole_table_step_calls_no_op_that_waits_for_the_host_on_cuda(torch_path, loss):
    """What the CUDA step runs by default for big batches: none of the ops that sync on CUDA
    (sync_probe.SyncProbe records them on CPU); the distinct-row step needs some (so the probe sees them)."""
    torch.manual_seed(0)
    ref = ncf_nn.build("neumf", N_USERS, N_ITEMS, 4, (8, 6, 4), 0.0, True)
    u, i, y, j = _batch(torch.Generator().manual_seed(7))
    w = torch.rand(len(u))
    found = {}
    for rows in ("all", "distinct"):
        fs = FusedStep(copy.deepcopy(ref), lr=0.01, weight_decay=1e-2, loss=loss, rows=rows)
        with SyncProbe() as probe:
            for _ in range(3):
                fs.step(u, i, y if loss == "bce" else j, w)
            fs.set_lr(0.005)
            fs.step(u, i, y if loss == "bce" else j)
        found[rows] = probe.syncs
    assert found["all"] == []
    assert "aten::nonzero" in found["distinct"]


def test_trainer_epoch_loop_waits_for_the_host_per_epoch_not_per_step(torch_path):
    """The whole loop of Trainer.fit on the accelerator's code path (sampling, shuffling and
    batching in torch ops, the whole-table step, warm-up and linear decay of the rate): the ops
    that sync on CUDA are the same for 2 steps an epoch as for 15 (the epoch's loss read once,
    the divergence check, the sampler's chunks), so none is per step."""
    data = synthetic_interactions((40, 30, 300), seed=0)
    found = []
    for batch in (800, 100):
        torch.manual_seed(0)
        module = ncf_nn.build("neumf", 40, 30, 4, (8, 6, 4), 0.0, True)
        cfg = TrainConfig(epochs=2, batch_size=batch, negatives=4, warmup_epochs=0.5, lr_schedule="linear")
        source = UniformNegatives(data, 4, "bce", torch.device("cpu"))
        step = FusedStep(module, lr=0.01, weight_decay=1e-2, rows="all")
        trainer = Trainer(
            module, source, step, cfg, gen=torch.Generator().manual_seed(0), callbacks=[DivergenceGuard()]
        )
        assert trainer.steps_per_epoch == -(-1500 // batch)  # 300 positives x (1 + 4) rows
        with SyncProbe() as probe:
            res = trainer.fit()
        assert len(res.history) == 2 and all(np.isfinite(h["loss"]) for h in res.history)
        found.append(sorted(probe.syncs))
    assert found[0] == found[1]
    assert found[0].count("aten::_local_scalar_dense") >= 2  # the per-epoch loss read is seen
