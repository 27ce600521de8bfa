"""Fold-in: fit user vectors for new histories against a frozen model, all histories at once.

A factor model or an NCF module scores a user through a learned user vector (GMF/MLP/NeuMF:
its user embedding rows; BPR / LightFM: its user factors). A history the model was not
trained on has no such vector; :func:`fold_in` fits one per history with everything on the
item side (item embeddings, towers, output layer, biases) frozen, by a few deterministic
full-batch Adam steps on the model's own loss.

The loss is the *expectation*, over the training sampler's uniform negatives, of what one
training epoch would charge this user, so no negatives are drawn at all (deterministic, and
no sampling noise to fit):

* ``bce``: ``sum_p w_p softplus(-s_p) + (n W / N) sum_j softplus(s_j)``, with ``n``
  negatives per positive, ``W = sum_p w_p``, ``j`` over the ``N`` items not in the history
  (each negative inherits its positive's weight, as :class:`ncf.train.sources.Weighted` does);
* ``bpr``: ``sum_p w_p mean_j softplus(s_j - s_p)``, the mean over :data:`BPR_SAMPLE` items
  drawn afresh each step (seeded, shared by all histories of a call): the full mean costs
  ``positives x items`` per step, 3 s for a 700-item ML-100k history;
* ``softmax``: ``sum_p w_p (logaddexp(s_p, lse_j(s_j) + log(n / N)) - s_p)``, the sampled
  softmax's shared negatives replaced by all ``N`` items, each at ``n / N`` of a draw.

Each history's loss is divided by its number of training rows (``W (1 + n)`` for BCE, ``W``
else), as a training batch takes the mean, and the L2 of the training step (``weight_decay``
on each row's looked-up user vector) is added as ``l2 * |v - anchor|^2``. Catalogues over
:data:`MAX_NEGATIVES` items score a seeded uniform sample of that many items as the
negatives instead (re-weighted to the full catalogue).

Adam is per-coordinate and the loss is a sum of per-history terms, so each history's vector
is fitted exactly as if it were alone (up to float rounding of batched matmuls).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ncf import nn as ncf_nn

__all__ = ["FoldIn", "MAX_NEGATIVES", "als_user_factors", "fold_in", "ncf_history_scores", "padded_rows"]

#: Largest catalogue scored in full at every fold-in step; bigger ones use a seeded sample of this many negatives.
MAX_NEGATIVES = 20000
#: Negatives BPR's fold-in draws per step (uniform, seeded, shared by every history of the call,
#: so a history's fold-in does not depend on which others share the call).
BPR_SAMPLE = 64

#: Scores every item for the current user vectors: list of (n_h, d_k) tensors -> (n_h, n_items)
ScoreFn = Callable[[list[torch.Tensor]], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class FoldIn:
    """How a fold-in optimises (see the module docstring).

    Parameters
    ----------
    steps:
        Full-batch Adam steps.
    lr:
        Adam step size.
    l2:
        L2 coefficient pulling each vector toward its anchor (training's ``weight_decay``).
    anchor:
        ``"mean"``: start from, and pull toward, the mean training user vector; ``"zero"``:
        start from the mean, pull toward zero (training's own L2).
    """

    # 20 steps: on a validation part of new users' histories (benchmarks/fold_in.py --tune, NeuMF,
    # ML-100k) 20 steps scored NDCG@10 0.3241 against 0.3247 for 40 and 0.3272 for the best of 54
    # settings (80 steps, lr 0.1), within the noise of ~90 users, at half the latency of 40.
    steps: int = 20
    lr: float = 0.05
    l2: float = 0.01
    anchor: str = "mean"


def _candidates(n_items: int, gen: torch.Generator, device: torch.device) -> torch.Tensor | None:
    """The negatives each step scores: all items (None) or a seeded uniform sample for a big catalogue."""
    if n_items <= MAX_NEGATIVES:
        return None
    return torch.randperm(n_items, generator=gen)[:MAX_NEGATIVES].sort().values.to(device)


def fold_in(
    init: list[torch.Tensor],
    score_all: ScoreFn,
    profiles: sp.csr_matrix,
    *,
    loss: str,
    negatives: float,
    cfg: FoldIn,
    seed: int,
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """Fit one vector per profile row (for each tensor of ``init``, rows broadcast) and return them.

    ``init`` holds the starting vector of each user-side table, shape ``(1, d)`` (the mean
    training user) or ``(n_h, d)``; ``score_all(params)`` scores every item for given user
    vectors. ``negatives`` is the sampler's negatives per positive (``loss="bpr"`` ignores it).
    """
    device = torch.device(device)
    n_h, n_items = profiles.shape
    gen = torch.Generator().manual_seed(int(seed))
    cand = _candidates(n_items, gen, device)
    with torch.inference_mode(False), torch.enable_grad():
        pos_w = torch.as_tensor(profiles.toarray(), dtype=torch.float32, device=device)  # (n_h, n_items)
        if cand is not None:
            pos_w_c = pos_w[:, cand]
            n_pool = n_items
        else:
            pos_w_c, n_pool = pos_w, n_items
        seen = pos_w_c > 0
        n_seen_all = torch.as_tensor(np.diff(profiles.indptr), dtype=torch.float32, device=device)
        # each unseen item's share of one uniform negative draw: over the full catalogue's unseen items
        n_unseen = (n_pool - n_seen_all).clamp_min(1.0)
        scale = 1.0 if cand is None else n_pool / len(cand)
        neg_mask = (~seen).float() * scale
        w_sum = pos_w.sum(1)
        anchors = [t.detach().expand(n_h, -1).clone() for t in init]
        params = [a.clone().requires_grad_(True) for a in anchors]
        if cfg.anchor == "zero":
            anchors = [torch.zeros_like(a) for a in anchors]
        opt = torch.optim.Adam(params, lr=cfg.lr)
        pos_idx, pos_wt = padded_rows(profiles, device)  # (n_h, L): BPR's positives
        for _ in range(cfg.steps):
            s = score_all(params)
            if loss == "bpr":  # a fresh uniform sample of negatives per step
                drawn = torch.randint(0, n_items, (BPR_SAMPLE,), generator=gen).to(device)
                s_c, mask = s[:, drawn], (pos_w[:, drawn] <= 0).float()
            else:
                s_c, mask = (s if cand is None else s[:, cand]), neg_mask
            per = _expected_loss(loss, s, s_c, pos_w, pos_w_c, mask, n_unseen, w_sum, negatives, pos_idx, pos_wt)
            reg = sum(((p - a) ** 2).sum(1) for p, a in zip(params, anchors))
            total = (per + cfg.l2 * reg).sum()
            opt.zero_grad(set_to_none=True)
            # Gradients for the new user vectors only: the model's own parameters (in the graph
            # through score_all) get none, so the model is never touched and calls may run side by side.
            total.backward(inputs=params)
            opt.step()
        return [p.detach() for p in params]


def padded_rows(profiles: sp.csr_matrix, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's items and weights padded to the longest row (padding: item 0, weight 0)."""
    lens = np.diff(profiles.indptr)
    width = max(1, int(lens.max()) if len(lens) else 1)
    idx = np.zeros((len(lens), width), dtype=np.int64)
    wt = np.zeros((len(lens), width), dtype=np.float32)
    col = np.arange(profiles.nnz) - np.repeat(profiles.indptr[:-1], lens)
    row = np.repeat(np.arange(len(lens)), lens)
    idx[row, col], wt[row, col] = profiles.indices, profiles.data
    return torch.as_tensor(idx, device=device), torch.as_tensor(wt, device=device)


def _expected_loss(
    loss: str,
    s: torch.Tensor,
    s_c: torch.Tensor,
    pos_w: torch.Tensor,
    pos_w_c: torch.Tensor,
    neg_mask: torch.Tensor,
    n_unseen: torch.Tensor,
    w_sum: torch.Tensor,
    negatives: float,
    pos_idx: torch.Tensor,
    pos_wt: torch.Tensor,
) -> torch.Tensor:
    """Per-history expected training loss (see the module docstring), divided by its rows."""
    f = nn.functional
    if loss == "bce":
        pos_term = (pos_w * f.softplus(-s)).sum(1)
        neg_term = (neg_mask * f.softplus(s_c)).sum(1) * (negatives * w_sum / n_unseen)
        return (pos_term + neg_term) / (w_sum * (1.0 + negatives))
    if loss == "softmax":
        big_neg = torch.finfo(s_c.dtype).min
        lse = torch.logsumexp(torch.where(neg_mask > 0, s_c + neg_mask.log(), big_neg), dim=1)
        lse = lse + torch.log(negatives / n_unseen)
        per_pos = torch.logaddexp(s, lse[:, None]) - s
        return (pos_w * per_pos).sum(1) / w_sum
    if loss == "bpr":  # s_c: the step's sampled negatives (n_h, S), neg_mask: which are not in the history
        s_p = s.gather(1, pos_idx)  # (n_h, L)
        pair = f.softplus(s_c[:, None, :] - s_p[:, :, None]) * neg_mask[:, None, :]
        mean_neg = pair.sum(2) / neg_mask.sum(1, keepdim=True).clamp_min(1.0)
        return (pos_wt * mean_neg).sum(1) / w_sum
    raise ValueError(f"no fold-in loss for {loss!r}")


# -- NCF ------------------------------------------------------------------------------------
def _user_tables(module: nn.Module) -> list[nn.Embedding]:
    """The user-side embedding tables of a GMF / MLP / NeuMF module, in a fixed order."""
    if isinstance(module, ncf_nn.GMF):
        return [module.user]
    if isinstance(module, ncf_nn.MLP):
        return [module.tower.user]
    if isinstance(module, ncf_nn.NeuMF):
        return [module.gmf_user, module.tower.user]
    raise TypeError(f"fold-in does not know {type(module).__name__}")


def _ncf_score_fn(module: nn.Module) -> ScoreFn:
    """Every item's logit for given user embedding rows, factorised as the module's ``score_block``."""
    if isinstance(module, ncf_nn.GMF):
        w, b = module.predict.weight.squeeze(0), module.predict.bias
        return lambda ps: (ps[0] * w) @ module.item.weight.T + b
    if isinstance(module, ncf_nn.MLP):
        return lambda ps: module.tower.block_from(ps[0], None, head=lambda h: module.predict(h).squeeze(-1))
    w = module.predict.weight.squeeze(0)
    w_g, w_m = w[: module.factors], w[module.factors :]

    def neumf(ps: list[torch.Tensor]) -> torch.Tensor:
        gmf = (ps[0] * w_g) @ module.gmf_item.weight.T
        return gmf + module.tower.block_from(ps[1], None, head=lambda h: h @ w_m) + module.predict.bias

    return neumf


def ncf_history_scores(
    module: nn.Module,
    profiles: sp.csr_matrix,
    *,
    loss: str,
    negatives: int | str,
    cfg: FoldIn,
    seed: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Fold the profile rows into a trained GMF / MLP / NeuMF module and score every item: (n_h, n_items).

    The module is not changed: the fold-in differentiates with respect to the new users'
    embedding rows only (they live outside it). ``negatives="all"``
    charges every item outside the history once per positive-free epoch (``n = N / L``).
    """
    tables = _user_tables(module)
    init = [t.weight.detach().mean(0, keepdim=True) for t in tables]
    n_h, n_items = profiles.shape
    lens = np.diff(profiles.indptr).astype(np.float64)
    neg = float(negatives) if negatives != "all" else float(np.mean((n_items - lens) / np.maximum(lens, 1)))
    score_all = _ncf_score_fn(module)
    vecs = fold_in(init, score_all, profiles, loss=loss, negatives=neg, cfg=cfg, seed=seed, device=device)
    with torch.inference_mode():
        return score_all(vecs)


# -- implicit's ALS -------------------------------------------------------------------------
def als_user_factors(
    item_factors: torch.Tensor,
    profiles: sp.csr_matrix,
    *,
    alpha: float,
    regularization: float,
    gram: torch.Tensor | None = None,
) -> torch.Tensor:
    """Closed-form ALS user factors for profile rows, as implicit's ``recalculate_user`` solves them.

    ``x_u = (Y^T Y + reg I + sum_i (c_i - 1) y_i y_i^T)^-1 sum_i c_i y_i`` with confidence
    ``c_i = alpha * value_i`` over the row's items (implicit multiplies the matrix by ``alpha``);
    one batched solve for all rows, in float64. ``gram`` is ``Y^T Y + reg I`` in float64, when
    the caller keeps it (it costs ``items x f^2``, the rest only ``history x f^2``).
    """
    f = item_factors.shape[1]
    if gram is None:
        y = item_factors.double()
        gram = y.T @ y + regularization * torch.eye(f, dtype=y.dtype, device=y.device)
    idx, wt = padded_rows(profiles, item_factors.device)
    valid = (wt > 0).double()
    c = alpha * wt.double()
    yp = item_factors[idx].double()  # (n_h, L, f)
    a = gram + (yp * ((c - 1.0) * valid)[..., None]).transpose(1, 2) @ yp
    b = ((c * valid)[:, None, :] @ yp).squeeze(1)
    return torch.linalg.solve(a, b).float()
