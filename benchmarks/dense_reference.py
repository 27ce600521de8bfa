"""The plain PyTorch NeuMF most NCF repositories train: dense embeddings + torch.optim.Adam.

Not part of the library: it is the baseline that ``benchmarks/scale.py`` measures the
library's trainer against. Same shapes as :class:`ncf.nn.NeuMF` (GMF factors, MLP
layers with ``layers[0]`` the [user; item] embedding size), dense ``nn.Embedding`` so
Adam updates every row of every table each step, and per-epoch tensors sliced into
batches (the common "build the epoch, then iterate" loop, here without a per-sample
``Dataset``, which would only make the reference slower).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class DenseNeuMF(nn.Module):
    def __init__(self, n_users: int, n_items: int, factors: int = 8, layers: tuple[int, ...] = (64, 32, 16, 8)) -> None:
        super().__init__()
        self.gmf_user = nn.Embedding(n_users, factors)
        self.gmf_item = nn.Embedding(n_items, factors)
        self.mlp_user = nn.Embedding(n_users, layers[0] // 2)
        self.mlp_item = nn.Embedding(n_items, layers[0] // 2)
        for e in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(e.weight, std=0.01)
        mods: list[nn.Module] = []
        for a, b in zip(layers[:-1], layers[1:]):
            mods += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*mods)
        self.predict = nn.Linear(factors + layers[-1], 1)

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        g = self.gmf_user(u) * self.gmf_item(i)
        m = self.mlp(torch.cat([self.mlp_user(u), self.mlp_item(i)], dim=-1))
        return self.predict(torch.cat([g, m], dim=-1)).squeeze(-1)


def epoch_tensors(
    user_idx: np.ndarray, item_idx: np.ndarray, n_items: int, negatives: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch's shuffled (users, items, labels): positives + uniform negatives.

    Negatives are drawn uniformly from all items without checking they are unobserved,
    as several reference implementations do; this favours the reference's speed.
    """
    p = len(user_idx)
    u = np.concatenate([user_idx, np.repeat(user_idx, negatives)]).astype(np.int64)
    i = np.concatenate([item_idx, rng.integers(0, n_items, p * negatives)]).astype(np.int64)
    y = np.zeros(len(u), dtype=np.float32)
    y[:p] = 1.0
    perm = rng.permutation(len(u))
    return torch.from_numpy(u[perm]), torch.from_numpy(i[perm]), torch.from_numpy(y[perm])


def train_epoch(
    model: DenseNeuMF,
    opt: torch.optim.Optimizer,
    tensors: tuple[torch.Tensor, ...],
    batch_size: int,
    max_samples: int | None = None,
) -> float:
    """One pass of plain minibatch training; returns the mean loss."""
    loss_fn = nn.BCEWithLogitsLoss()
    u, i, y = tensors
    n = len(u) if max_samples is None else min(len(u), max_samples)
    total = torch.zeros(())
    model.train()
    for s in range(0, n, batch_size):
        loss = loss_fn(model(u[s : s + batch_size], i[s : s + batch_size]), y[s : s + batch_size])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * len(u[s : s + batch_size])
    return float(total) / max(1, n)
