"""Epoch sources: each epoch's shuffled training rows, built by indexing, never per sample.

A source turns the training interactions into one epoch of rows at a time:

* :class:`UniformNegatives`: every positive plus ``n`` uniform negatives of its user,
  re-drawn each epoch; rows ``(user, item, label)`` for BCE, ``(user, item, negative)``
  for BPR;
* :class:`AllNegatives`: every positive and every unobserved pair (small data only);
* :class:`SharedSoftmax`: positives only; the sampled-softmax step draws its shared
  negatives per batch from :attr:`SharedSoftmax.shared`;
* :class:`Weighted`: wraps any of them and gives each row the weight of the positive it
  came from (recency is one such weight). Weighting is a wrapper, not a branch of every
  source: each source says where its rows came from in :attr:`Epoch.origin`.

Indices stay int32 (half the memory of int64; embedding lookups take them as is).
With ``world > 1`` (data-parallel) each rank takes a disjoint, equal-sized shard of the
positives (a permutation shared by all ranks through ``shard_gen``) and draws its own
negatives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ncf import weighting
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError
from ncf.sampling import NegativeSampler, all_negatives, positive_keys
from ncf.train import kernels

__all__ = [
    "AllNegatives",
    "Batch",
    "Epoch",
    "EpochSource",
    "SharedSoftmax",
    "UniformNegatives",
    "Weighted",
    "make_source",
    "recency_weights",
]

#: Positives per negative-sampling chunk: bounds the sampler's int64 temporaries (an ML-20M
#: epoch would otherwise hold several 20M x 4 int64 arrays at once).
SAMPLE_CHUNK = 1 << 21


@dataclass
class Batch:
    """One training batch: users, items, the target (labels for BCE, negative items for BPR,
    ``None`` for sampled softmax) and optional per-row weights."""

    u: torch.Tensor
    i: torch.Tensor
    target: torch.Tensor | None
    w: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.u)


@dataclass
class Epoch:
    """One epoch's rows, already shuffled. ``origin[r]`` is the index (into the training
    interactions) of the positive row ``r`` came from, or -1 for a pair that has none
    (an unobserved pair of :class:`AllNegatives`); ``None`` when nobody asked for it."""

    u: torch.Tensor
    i: torch.Tensor
    target: torch.Tensor | None
    origin: torch.Tensor | None = None
    w: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.u)

    def batches(self, size: int) -> Iterator[Batch]:
        for s in range(0, len(self.u), size):
            t = None if self.target is None else self.target[s : s + size]
            w = None if self.w is None else self.w[s : s + size]
            yield Batch(self.u[s : s + size], self.i[s : s + size], t, w)


class EpochSource:
    """Base of the sources: the positives (sharded under data parallelism) and the contract."""

    #: Training rows per positive (the steps-per-epoch arithmetic of a learning-rate warm-up).
    rows_per_positive: int = 1
    #: Whether :meth:`epoch` must fill :attr:`Epoch.origin` (set by :class:`Weighted`).
    track_origin: bool = False

    def __init__(self, train: Interactions, device: torch.device, *, rank: int = 0, world: int = 1) -> None:
        self.device, self.rank, self.world = device, rank, world
        self.n_positives = len(train)
        self.pos_u = torch.as_tensor(train.user_idx, device=device).to(torch.int32)
        self.pos_i = torch.as_tensor(train.item_idx, device=device).to(torch.int32)

    def _shard(self, n: int, shard_gen: torch.Generator | None) -> torch.Tensor | None:
        if self.world <= 1:
            return None
        per = n // self.world  # equal shards: every rank runs the same number of steps
        perm = torch.randperm(n, generator=shard_gen)
        return perm[self.rank * per : (self.rank + 1) * per].to(self.device)

    def _positives(self, shard_gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        take = self._shard(len(self.pos_u), shard_gen)
        if take is None:
            return self.pos_u, self.pos_i, None
        return self.pos_u[take], self.pos_i[take], take

    def epoch(self, gen: torch.Generator, shard_gen: torch.Generator | None = None) -> Epoch:
        raise NotImplementedError

    @staticmethod
    def _global(origin: torch.Tensor, take: torch.Tensor | None) -> torch.Tensor:
        """Shard-local positive indices -> indices into the training interactions."""
        return origin if take is None else take[origin]


class UniformNegatives(EpochSource):
    """Each positive with ``n`` negatives drawn uniformly from its user's unobserved items."""

    def __init__(
        self, train: Interactions, n: int, loss: str, device: torch.device, exclude: Any = None, **shard: int
    ) -> None:
        super().__init__(train, device, **shard)
        self.n, self.loss = n, loss
        self.rows_per_positive = n if loss == "bpr" else 1 + n
        self.sampler = NegativeSampler(train, exclude=exclude, device=device)

    def _negatives(self, pos_u: torch.Tensor, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
        """(P, n) negatives, in chunks so the sampler's temporaries stay small."""
        n = self.n
        if not len(pos_u):
            return torch.zeros(0, n, dtype=dtype, device=self.device)
        step = max(1, SAMPLE_CHUNK // max(1, n))
        return torch.cat(
            [self.sampler.sample(pos_u[s : s + step], n, gen).to(dtype) for s in range(0, len(pos_u), step)]
        )

    def epoch(self, gen: torch.Generator, shard_gen: torch.Generator | None = None) -> Epoch:
        pos_u, pos_i, take = self._positives(shard_gen)
        n, p = self.n, len(pos_u)
        neg = self._negatives(pos_u, pos_i.dtype, gen)
        if self.loss == "bpr":  # (user, positive, negative) triples
            perm = torch.randperm(p * n, generator=gen, device=self.device)
            origin = self._global(perm // n, take) if self.track_origin else None
            return Epoch(
                pos_u.repeat_interleave(n)[perm], pos_i.repeat_interleave(n)[perm], neg.reshape(-1)[perm], origin
            )
        # BCE: [positives; negatives], shuffled; row s of the unshuffled layout is positive s,
        # or negative (s - P) % n of positive (s - P) // n.
        if self.device.type == "cpu" and kernels.AVAILABLE:
            perm = torch.randperm(p * (n + 1), generator=gen)
            u, i, y = (
                torch.empty(len(perm), dtype=pos_u.dtype),
                torch.empty(len(perm), dtype=pos_i.dtype),
                torch.empty(len(perm)),
            )
            kernels.assemble_bce(
                perm.numpy(), pos_u.numpy(), pos_i.numpy(), neg.numpy(), u.numpy(), i.numpy(), y.numpy()
            )
        else:
            u = torch.cat([pos_u, pos_u.repeat_interleave(n)])
            i = torch.cat([pos_i, neg.reshape(-1)])
            del neg
            y = torch.zeros(len(u), device=self.device)
            y[:p] = 1.0
            perm = torch.randperm(len(u), generator=gen, device=self.device)
            u, i, y = u[perm], i[perm], y[perm]
        origin = None
        if self.track_origin:
            origin = self._global(torch.where(perm < p, perm, torch.div(perm - p, n, rounding_mode="floor")), take)
        return Epoch(u, i, y, origin)


class AllNegatives(EpochSource):
    """Every positive and every unobserved pair, labelled 1 and 0 (the seed notebook's setup)."""

    def __init__(self, train: Interactions, device: torch.device, exclude: Any = None, **shard: int) -> None:
        super().__init__(train, device, **shard)
        nu, ni = all_negatives(train, exclude=exclude)
        n_pos = len(self.pos_u)
        self.rows_per_positive = 1 + len(nu) // max(1, n_pos)
        self.all_u = torch.cat([self.pos_u, torch.as_tensor(nu, device=device).to(torch.int32)])
        self.all_i = torch.cat([self.pos_i, torch.as_tensor(ni, device=device).to(torch.int32)])
        self.all_y = torch.cat([torch.ones(n_pos, device=device), torch.zeros(len(nu), device=device)])
        # An unobserved pair comes from no positive: origin -1.
        self.all_origin = torch.cat([torch.arange(n_pos, device=device), torch.full((len(nu),), -1, device=device)])

    def epoch(self, gen: torch.Generator, shard_gen: torch.Generator | None = None) -> Epoch:
        cols = [self.all_u, self.all_i, self.all_y, self.all_origin]
        take = self._shard(len(self.all_u), shard_gen)
        if take is not None:
            cols = [c[take] for c in cols]
        perm = torch.randperm(len(cols[0]), generator=gen, device=self.device)
        u, i, y, origin = (c[perm] for c in cols)
        return Epoch(u, i, y, origin if self.track_origin else None)


class SharedSoftmax(EpochSource):
    """Positives only, shuffled; each batch then draws ``n`` shared negatives (:attr:`shared`)."""

    def __init__(self, train: Interactions, n: int, device: torch.device, exclude: Any = None, **shard: int) -> None:
        super().__init__(train, device, **shard)
        self.shared = SoftmaxNegatives(train, n, device, exclude)

    def epoch(self, gen: torch.Generator, shard_gen: torch.Generator | None = None) -> Epoch:
        pos_u, pos_i, take = self._positives(shard_gen)
        perm = torch.randperm(len(pos_u), generator=gen, device=self.device)
        return Epoch(pos_u[perm], pos_i[perm], None, self._global(perm, take) if self.track_origin else None)


class Weighted(EpochSource):
    """Gives every row of ``source`` the weight of the positive it came from.

    A row with no positive (an unobserved pair of :class:`AllNegatives`) weighs 1, the
    mean of the weights (they are rescaled to mean 1, so the learning rate keeps its meaning).
    """

    def __init__(self, source: EpochSource, weights: torch.Tensor) -> None:
        if len(weights) != source.n_positives:
            raise ConfigError(f"{len(weights)} weights for {source.n_positives} training interactions")
        self.source = source
        source.track_origin = True
        self.device, self.rows_per_positive = source.device, source.rows_per_positive
        self.n_positives = source.n_positives
        # The last entry is what origin -1 picks: weight 1.
        self.weights = torch.cat([weights.to(source.device), torch.ones(1, device=source.device)])

    def __getattr__(self, name: str) -> object:  # e.g. SharedSoftmax.shared
        return getattr(self.__dict__["source"], name)

    def epoch(self, gen: torch.Generator, shard_gen: torch.Generator | None = None) -> Epoch:
        ep = self.source.epoch(gen, shard_gen)
        ep.w = self.weights[ep.origin]
        return ep


def recency_weights(train: Interactions, half_life: float, floor: float) -> torch.Tensor:
    """:func:`ncf.weighting.recency_weights` as a float32 tensor (one weight per positive)."""
    return torch.as_tensor(weighting.recency_weights(train, half_life, floor), dtype=torch.float32)


class SoftmaxNegatives:
    """Shared negatives for the sampled-softmax loss, with known positives masked out.

    Each batch of positives is scored against ``n`` items drawn uniformly once for the
    whole batch (one factorised ``score_block`` call instead of ``B x n`` pair lookups).
    A drawn item that is a known positive of a row's user (the row's own positive among
    them) is masked from that row's softmax, so no positive is ever pushed down as a
    negative. Uniform proposals need no log-Q correction: it is the same constant for
    every candidate.
    """

    def __init__(self, train: Interactions, n: int, device: torch.device, exclude: Any = None) -> None:
        self.n = n
        keys, _, self.n_items = positive_keys(train, exclude)  # sorted user * n_items + item
        self.keys = torch.as_tensor(keys, device=device)

    def draw(self, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.n_items, (self.n,), generator=gen, device=gen.device)

    def known(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, n) mask: is ``items[j]`` a known positive of ``users[b]``?"""
        q = users.long()[:, None] * self.n_items + items.long()[None, :]  # int64: no overflow on big catalogues
        pos = torch.searchsorted(self.keys, q).clamp_(max=len(self.keys) - 1)
        return self.keys[pos] == q


def make_source(
    train: Interactions,
    negatives: int | str,
    loss: str,
    device: torch.device,
    weights: torch.Tensor | None = None,
    *,
    rank: int = 0,
    world: int = 1,
    exclude: Interactions | None = None,
) -> EpochSource:
    """The source for a loss and negatives setting, weighted when ``weights`` are given.

    ``exclude``: more known positives (same id maps) never used as negatives, e.g. the rest of
    the data when ``train`` is a sample of it (:mod:`ncf.update` trains on such samples).
    """
    shard = {"rank": rank, "world": world}
    if loss == "softmax":
        src: EpochSource = SharedSoftmax(train, int(negatives), device, exclude, **shard)
    elif negatives == "all":
        src = AllNegatives(train, device, exclude, **shard)
    else:
        src = UniformNegatives(train, int(negatives), loss, device, exclude, **shard)
    return src if weights is None else Weighted(src, weights)
