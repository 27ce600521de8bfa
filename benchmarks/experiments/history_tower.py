"""Issue 13 lead: does a history-aware user tower close NeuMF's gap to EASE? Validation only.

    OMP_NUM_THREADS=1 python benchmarks/experiments/history_tower.py [--protocols leave-one-out,holdout]
        [--seeds 0,1,2] [--epochs 30] [--factors 64]

A FISM-style model (Kabbur et al. 2013; the NCF authors' NAIS pools the same way):
``s(u, i) = (p_u + sum_j w_uj q'_j / (sum_j w_uj) ** 0.5) . q_i + b_i`` over the user's
training items j (the target item left out of its own history while training), with
``w_uj`` the recency weights of ``ncf.weighting`` where ``recency="auto"`` would be on (leave-one-out
by time), else 1: the same signal EASE's weighted profile gets. BCE with 8 uniform negatives,
Adam, L2 on the rows a batch touches. Per protocol and seed, ``ncf.benchmark.tuning_split`` gives
(inner, outer); the model trains on inner and the outer part is scored after every epoch. The
reported number is the best epoch's outer NDCG@10 (the epoch is chosen on that same validation
part: optimistic by the noise of one choice, a diagnostic, not a nested estimate). The test part
is never used. Compare with EASE 0.1071 / NeuMF 0.0877 (leave-one-out) and EASE 0.2181 / NeuMF
0.2117 (holdout) outer NDCG@10 at seed 0 (RESULTS).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from ncf import evaluate
from ncf.base import Recommender
from ncf.benchmark import tuning_split
from ncf.sampling import NegativeSampler
from ncf.weighting import recency_weights, resolve_recency


class HistoryTower(Recommender):
    def __init__(self, train, weights: np.ndarray, factors: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.train_ = train
        n_users, n_items = train.shape
        self.P = nn.Parameter(torch.randn(n_users, factors) * 0.01)
        self.Q = nn.Parameter(torch.randn(n_items, factors) * 0.01)
        self.Qh = nn.Parameter(torch.randn(n_items, factors) * 0.01)
        self.b = nn.Parameter(torch.zeros(n_items))
        u = torch.as_tensor(train.user_idx, dtype=torch.int64)
        i = torch.as_tensor(train.item_idx, dtype=torch.int64)
        w = torch.as_tensor(weights, dtype=torch.float32)
        self.W = torch.sparse_coo_tensor(torch.stack([u, i]), w, (n_users, n_items)).coalesce()
        norm = torch.zeros(n_users).index_add_(0, u, w)
        self.inv_norm = norm.clamp(min=1e-6).rsqrt()
        self.pos_u, self.pos_i, self.pos_w = u, i, w

    def params(self):
        return [self.P, self.Q, self.Qh, self.b]

    def user_vectors(self) -> torch.Tensor:
        return self.P + torch.sparse.mm(self.W, self.Qh) * self.inv_norm[:, None]

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.user_vectors()[users] @ self.Q.T + self.b


def run(
    protocol: str,
    seed: int,
    epochs: int,
    factors: int,
    l2w: float = 0.01,
    user: bool = True,
    negatives: int = 8,
    batch: int = 8192,
) -> tuple:
    inner, outer = tuning_split(protocol, seed)
    half = resolve_recency("auto", inner)
    w = recency_weights(inner, half, 0.1) if half is not None else np.ones(len(inner))
    m = HistoryTower(inner, w, factors, seed)
    if not user:  # pure FISM: the user is only their history
        m.P.requires_grad_(False).zero_()
    opt = torch.optim.Adam([p for p in m.params() if p.requires_grad], lr=0.005)
    sampler = NegativeSampler(inner)
    gen = torch.Generator().manual_seed(seed)
    best, best_epoch, t0 = -1.0, 0, time.perf_counter()
    n = len(inner)
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, batch // (1 + negatives)):
            idx = perm[s : s + batch // (1 + negatives)]
            u, i, wt = m.pos_u[idx], m.pos_i[idx], m.pos_w[idx]
            neg = sampler.sample(u, negatives, gen).long()
            uv = m.user_vectors()[u]  # the full pooled table: 100k nnz x d, cheap at ML-100k size
            # leave the target out of its own history: subtract its term for the positive
            uv_pos = uv - (wt * m.inv_norm[u])[:, None] * m.Qh[i]
            s_pos = (uv_pos * m.Q[i]).sum(1) + m.b[i]
            s_neg = torch.einsum("bd,bnd->bn", uv, m.Q[neg]) + m.b[neg]
            loss = nn.functional.binary_cross_entropy_with_logits(s_pos, torch.ones_like(s_pos)) + negatives * (
                nn.functional.binary_cross_entropy_with_logits(s_neg, torch.zeros_like(s_neg))
            )
            l2 = (m.P[u].pow(2).sum() + m.Q[i].pow(2).sum() + m.Q[neg].pow(2).sum() + m.Qh[i].pow(2).sum()) / len(u)
            opt.zero_grad()
            (loss + l2w * l2).backward()
            opt.step()
        r = evaluate(m, outer, k=10)
        if r["ndcg@10"] > best:
            best, best_epoch = r["ndcg@10"], epoch
        elif epoch - best_epoch >= 3:
            break
    return best, best_epoch, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocols", default="leave-one-out,holdout")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--l2", type=float, default=0.01)
    ap.add_argument("--no-user", action="store_true", help="no user embedding: pure FISM")
    args = ap.parse_args()
    for protocol in args.protocols.split(","):
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            best, ep, secs = run(protocol, seed, args.epochs, args.factors, args.l2, not args.no_user)
            rows.append(best)
            print(f"{protocol} seed {seed}: best outer NDCG@10 {best:.4f} at epoch {ep} ({secs:.1f} s)", flush=True)
        print(f"{protocol}: mean {np.mean(rows):.4f}", flush=True)


if __name__ == "__main__":
    main()
