"""The torch modules: factorised ``score_block`` agrees with pairwise ``forward``; pretraining fusion."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import ncf.nn as ncf_nn
from ncf.nn import GMF, MLP, NeuMF, build

N_USERS, N_ITEMS = 7, 11


def _randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter (biases included) an O(1) random value.

    The default init (embeddings N(0, 0.01), zero biases) makes logits so small that a
    missing bias or a wrong half of the first layer would still pass a 1e-5 check.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module.eval()


def _pairwise(module: torch.nn.Module, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """The plain forward over every (user, item) pair, reshaped to (len(users), len(items))."""
    uu = users.repeat_interleave(len(items))
    ii = items.repeat(len(users))
    return module(uu, ii).view(len(users), len(items))


CONFIGS = [
    pytest.param(lambda s: GMF(N_USERS, N_ITEMS, 8, sparse=s), id="gmf-8"),
    pytest.param(lambda s: GMF(N_USERS, N_ITEMS, 1, sparse=s), id="gmf-1"),
    pytest.param(lambda s: MLP(N_USERS, N_ITEMS, (16,), sparse=s), id="mlp-16"),
    pytest.param(lambda s: MLP(N_USERS, N_ITEMS, (16, 8), sparse=s), id="mlp-16-8"),
    pytest.param(lambda s: MLP(N_USERS, N_ITEMS, (64, 32, 16, 8), dropout=0.3, sparse=s), id="mlp-64-32-16-8-drop"),
    pytest.param(lambda s: NeuMF(N_USERS, N_ITEMS, 8, (16,), sparse=s), id="neumf-8-16"),
    pytest.param(lambda s: NeuMF(N_USERS, N_ITEMS, 4, (32, 16, 8), sparse=s), id="neumf-4-32-16-8"),
    pytest.param(lambda s: NeuMF(N_USERS, N_ITEMS, 8, (64, 32, 16, 8), dropout=0.5, sparse=s), id="neumf-drop"),
]


@pytest.mark.parametrize("sparse", [True, False], ids=["sparse", "dense"])
@pytest.mark.parametrize("make", CONFIGS)
def test_score_block_equals_forward_all_items(make, sparse):
    torch.manual_seed(0)
    module = _randomise(make(sparse))  # eval mode: dropout must be the identity
    users = torch.tensor([0, 3, 6, 3])  # a repeated user too
    with torch.no_grad():
        block = module.score_block(users)
        ref = _pairwise(module, users, torch.arange(N_ITEMS))
    assert block.shape == (len(users), N_ITEMS)
    assert ref.abs().max() > 0.1  # the check below is not vacuous
    torch.testing.assert_close(block, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", CONFIGS)
def test_score_block_equals_forward_item_subset(make):
    torch.manual_seed(1)
    module = _randomise(make(True), seed=1)
    users = torch.tensor([5, 1])
    items = torch.tensor([10, 0, 4, 4, 7])  # unsorted, with a repeat
    with torch.no_grad():
        block = module.score_block(users, items)
        ref = _pairwise(module, users, items)
        full = module.score_block(users)
    assert block.shape == (2, 5)
    torch.testing.assert_close(block, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(block, full[:, items], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("make", [c for c in CONFIGS if "drop" in c.id])
def test_dropout_is_active_in_train_mode_only(make):
    module = _randomise(make(True))
    assert any(isinstance(m, torch.nn.Dropout) for m in module.modules())
    users, items = torch.zeros(200, dtype=torch.long), torch.zeros(200, dtype=torch.long)
    with torch.no_grad():
        module.eval()
        ev = module(users, items)
        module.train()
        tr = module(users, items)
    assert torch.all(ev == ev[0])  # eval: deterministic
    assert not torch.all(tr == tr[0])  # train: dropout masks differ per row


@pytest.mark.parametrize("layers", [(16,), (16, 8), (64, 32, 16, 8)])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_from_pretrained_is_alpha_mix_of_logits(layers, alpha):
    # NeuMF's output is w . [g; m] + b with w = [alpha w_gmf; (1 - alpha) w_mlp] and
    # b = alpha b_gmf + (1 - alpha) b_mlp, so
    #   logit = alpha (w_gmf . g + b_gmf) + (1 - alpha) (w_mlp . m + b_mlp)
    #         = alpha gmf_logit + (1 - alpha) mlp_logit,
    # given the towers (embeddings and hidden layers) are copied unchanged.
    torch.manual_seed(2)
    gmf = _randomise(GMF(N_USERS, N_ITEMS, 6), seed=3)
    mlp = _randomise(MLP(N_USERS, N_ITEMS, layers), seed=4)
    neumf = NeuMF.from_pretrained(gmf, mlp, alpha).eval()
    assert neumf.factors == 6
    assert neumf.tower.half * 2 == layers[0]
    assert tuple(lin.out_features for lin in neumf.tower.hidden) == tuple(layers[1:])
    uu = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    ii = torch.arange(N_ITEMS).repeat(N_USERS)
    with torch.no_grad():
        want = alpha * gmf(uu, ii) + (1 - alpha) * mlp(uu, ii)
        got = neumf(uu, ii)
        block = neumf.score_block(torch.arange(N_USERS)).reshape(-1)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(block, want, atol=1e-5, rtol=1e-5)


def test_from_pretrained_copies_not_aliases():
    gmf = _randomise(GMF(N_USERS, N_ITEMS, 4))
    mlp = _randomise(MLP(N_USERS, N_ITEMS, (8, 4)))
    neumf = NeuMF.from_pretrained(gmf, mlp, 0.5, dropout=0.2, sparse=False)
    before = gmf.user.weight.detach().clone()
    with torch.no_grad():
        neumf.gmf_user.weight.add_(1.0)
        neumf.tower.user.weight.add_(1.0)
    torch.testing.assert_close(gmf.user.weight.detach(), before)
    assert not torch.equal(neumf.tower.user.weight, mlp.tower.user.weight)
    assert neumf.gmf_user.sparse is False and neumf.tower.user.sparse is False
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.2 for m in neumf.modules())


def test_build_names_and_error():
    assert isinstance(build("gmf", 3, 4, 2, (8, 4), 0.0, True), GMF)
    assert isinstance(build("mlp", 3, 4, 2, (8, 4), 0.0, True), MLP)
    assert isinstance(build("neumf", 3, 4, 2, (8, 4), 0.0, True), NeuMF)
    with pytest.raises(ValueError, match="unknown model kind"):
        build("svd", 3, 4, 2, (8, 4), 0.0, True)


@pytest.mark.parametrize("make", CONFIGS)
def test_sparse_embeddings_give_sparse_grads(make):
    module = make(True).train()
    module(torch.tensor([0, 1, 1]), torch.tensor([2, 3, 2])).sum().backward()
    embs = [m for m in module.modules() if isinstance(m, torch.nn.Embedding)]
    assert embs and all(e.weight.grad is not None and e.weight.grad.is_sparse for e in embs)


def test_nn_module_imports_no_numpy():
    tree = ast.parse(Path(ncf_nn.__file__).read_text(encoding="utf-8"))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert imported, "the ast walk found no imports at all"
    assert not [m for m in imported if m == "numpy" or m.startswith("numpy.")], imported


@pytest.mark.parametrize("kind", ["gmf", "mlp", "neumf"])
def test_forward_l2_matches_forward_and_the_embedding_rows_used(kind):
    # forward_l2 is the training path with weight decay: same logits as forward, plus the
    # squared norm of exactly the embedding rows looked up (one lookup serves both).
    torch.manual_seed(0)
    module = build(kind, 7, 9, 4, (8, 4), 0.0, True).eval()
    users, items = torch.tensor([0, 3, 3, 6]), torch.tensor([1, 1, 8, 2])
    logits, l2 = module.forward_l2(users, items)
    torch.testing.assert_close(logits, module(users, items))
    expected = sum(
        emb.weight[idx].pow(2).sum()
        for name, emb in module.named_modules()
        if isinstance(emb, torch.nn.Embedding)
        for idx in [users if "user" in name else items]
    )
    torch.testing.assert_close(l2, expected)
