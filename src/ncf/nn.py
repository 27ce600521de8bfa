"""GMF, MLP and NeuMF (He et al., WWW 2017) as pure torch modules.

Each module maps (user_idx, item_idx) to a logit. Besides ``forward`` for pairs, each has
``score_block(users, items)`` that scores every user x item in a block *factorised*:
GMF is a matrix product, and the MLP's first layer is linear in [user; item], so its two
halves are computed once per user and once per item and only the rest of the MLP runs
per pair. No numpy, no I/O, no device logic here.

Layer convention (as in the paper's code): ``layers[0]`` is the size of the concatenated
[user; item] MLP embedding (each half ``layers[0] // 2``), ``layers[1:]`` are the hidden
layers, and the last one is the MLP's predictive-factor count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

#: Floats in one per-pair block of the factorised scorer (1 MB): sized for a core's L2 cache.
#: On ML-100k NeuMF scores all users 2x faster than with 8 MB blocks (0.13 vs 0.26-0.36 s,
#: one thread; benchmarks/RESULTS.md) and 3x+ faster than one big block.
CACHE_FLOATS = 2**18


def _embedding(n: int, dim: int, sparse: bool) -> nn.Embedding:
    emb = nn.Embedding(n, dim, sparse=sparse)
    nn.init.normal_(emb.weight, std=0.01)  # the paper's N(0, 0.01)
    return emb


class GMF(nn.Module):
    """Generalised matrix factorisation: logit = h . (p_u * q_i) + b."""

    def __init__(self, n_users: int, n_items: int, factors: int = 8, *, sparse: bool = True) -> None:
        super().__init__()
        self.user = _embedding(n_users, factors, sparse)
        self.item = _embedding(n_items, factors, sparse)
        self.predict = nn.Linear(factors, 1)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def features(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.user(users) * self.item(items)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.predict(self.features(users, items)).squeeze(-1)

    def forward_l2(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the squared norm of the embedding rows used (one lookup for both)."""
        p, q = self.user(users), self.item(items)
        return self.predict(p * q).squeeze(-1), p.pow(2).sum() + q.pow(2).sum()

    def score_block(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        q = self.item.weight if items is None else self.item(items)
        w = self.predict.weight.squeeze(0)
        return (self.user(users) * w) @ q.T + self.predict.bias

    def item_vectors(self) -> torch.Tensor:
        return self.item.weight * self.predict.weight.squeeze(0).abs()


class _Tower(nn.Module):
    """The MLP tower without its output layer: embeddings -> hidden layers."""

    def __init__(self, n_users: int, n_items: int, layers: tuple[int, ...], dropout: float, sparse: bool) -> None:
        super().__init__()
        half = layers[0] // 2
        self.user = _embedding(n_users, half, sparse)
        self.item = _embedding(n_items, half, sparse)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(layers[:-1], layers[1:]))
        for lin in self.hidden:
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.half = half

    def _rest(self, h: torch.Tensor) -> torch.Tensor:
        """Everything after the first layer's affine map."""
        h = self.dropout(torch.relu(h))
        for lin in self.hidden[1:]:
            h = self.dropout(torch.relu(lin(h)))
        return h

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.forward_l2(users, items)[0]

    def forward_l2(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, q = self.user(users), self.item(items)
        x = torch.cat([p, q], dim=-1)
        l2 = x.pow(2).sum()
        if not len(self.hidden):
            return x, l2
        return self._rest(self.hidden[0](x)), l2

    def block(
        self,
        users: torch.Tensor,
        items: torch.Tensor | None,
        head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Hidden output for every (user, item) pair of a block: shape (B, I, layers[-1]).

        ``head`` (e.g. the output layer) is applied to each part before the parts are
        joined. The per-pair tensors are built for a few users at a time so they stay
        cache-sized (~1 MB, :data:`CACHE_FLOATS`).
        """
        return self.block_from(self.user(users), items, head)

    def block_from(
        self, p: torch.Tensor, items: torch.Tensor | None, head: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """:meth:`block` for given user embeddings ``p`` (B, half), e.g. an average user."""
        q = self.item.weight if items is None else self.item(items)
        head = head or (lambda h: h)
        if not len(self.hidden):
            b, i = p.shape[0], q.shape[0]
            return head(torch.cat([p[:, None, :].expand(b, i, -1), q[None, :, :].expand(b, i, -1)], dim=-1))
        first = self.hidden[0]
        w_u, w_i = first.weight[:, : self.half], first.weight[:, self.half :]
        a_u = p @ w_u.T + first.bias  # (B, h1): once per user
        a_i = q @ w_i.T  # (I, h1): once per item
        step = max(1, CACHE_FLOATS // max(1, a_i.shape[0] * a_i.shape[1]))
        parts = [head(self._rest(a_u[s : s + step, None, :] + a_i[None, :, :])) for s in range(0, a_u.shape[0], step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class MLP(nn.Module):
    """Multi-layer perceptron over concatenated user and item embeddings."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        layers: tuple[int, ...] = (64, 32, 16, 8),
        *,
        dropout: float = 0.0,
        sparse: bool = True,
    ) -> None:
        super().__init__()
        self.tower = _Tower(n_users, n_items, tuple(layers), dropout, sparse)
        self.predict = nn.Linear(layers[-1] if len(layers) > 1 else layers[0], 1)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.predict(self.tower(users, items)).squeeze(-1)

    def forward_l2(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, l2 = self.tower.forward_l2(users, items)
        return self.predict(h).squeeze(-1), l2

    def score_block(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.tower.block(users, items, head=lambda h: self.predict(h).squeeze(-1))

    def item_vectors(self) -> torch.Tensor:
        return self.tower.item.weight


class NeuMF(nn.Module):
    """Neural matrix factorisation: GMF and MLP towers joined by one output layer."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int = 8,
        layers: tuple[int, ...] = (64, 32, 16, 8),
        *,
        dropout: float = 0.0,
        sparse: bool = True,
    ) -> None:
        super().__init__()
        self.gmf_user = _embedding(n_users, factors, sparse)
        self.gmf_item = _embedding(n_items, factors, sparse)
        self.tower = _Tower(n_users, n_items, tuple(layers), dropout, sparse)
        self.factors = factors
        mlp_out = layers[-1] if len(layers) > 1 else layers[0]
        self.predict = nn.Linear(factors + mlp_out, 1)
        nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
        nn.init.zeros_(self.predict.bias)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        g = self.gmf_user(users) * self.gmf_item(items)
        m = self.tower(users, items)
        return self.predict(torch.cat([g, m], dim=-1)).squeeze(-1)

    def forward_l2(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p, q = self.gmf_user(users), self.gmf_item(items)
        m, l2 = self.tower.forward_l2(users, items)
        logits = self.predict(torch.cat([p * q, m], dim=-1)).squeeze(-1)
        return logits, l2 + p.pow(2).sum() + q.pow(2).sum()

    def score_block(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        w = self.predict.weight.squeeze(0)
        w_g, w_m = w[: self.factors], w[self.factors :]
        q = self.gmf_item.weight if items is None else self.gmf_item(items)
        gmf = (self.gmf_user(users) * w_g) @ q.T
        mlp = self.tower.block(users, items, head=lambda h: h @ w_m)
        return gmf + mlp + self.predict.bias

    def item_vectors(self) -> torch.Tensor:
        w = self.predict.weight.squeeze(0)[: self.factors].abs()
        g = nn.functional.normalize(self.gmf_item.weight * w, dim=1)
        m = nn.functional.normalize(self.tower.item.weight, dim=1)
        return torch.cat([g, m], dim=1)

    @classmethod
    def from_pretrained(
        cls, gmf: GMF, mlp: MLP, alpha: float = 0.5, *, dropout: float = 0.0, sparse: bool = True
    ) -> NeuMF:
        """Fuse trained GMF and MLP (the paper's pretraining): h = [alpha h_GMF; (1 - alpha) h_MLP]."""
        n_users, factors = gmf.user.weight.shape
        n_items = gmf.item.weight.shape[0]
        layers = (mlp.tower.half * 2, *(lin.out_features for lin in mlp.tower.hidden))
        model = cls(n_users, n_items, factors, layers, dropout=dropout, sparse=sparse)
        with torch.no_grad():
            model.gmf_user.weight.copy_(gmf.user.weight)
            model.gmf_item.weight.copy_(gmf.item.weight)
            model.tower.load_state_dict(mlp.tower.state_dict())
            model.predict.weight.copy_(torch.cat([alpha * gmf.predict.weight, (1 - alpha) * mlp.predict.weight], dim=1))
            model.predict.bias.copy_(alpha * gmf.predict.bias + (1 - alpha) * mlp.predict.bias)
        return model


def build(
    kind: str, n_users: int, n_items: int, factors: int, layers: tuple[int, ...], dropout: float, sparse: bool
) -> nn.Module:
    """The module for a model name ("gmf", "mlp", "neumf")."""
    if kind == "gmf":
        return GMF(n_users, n_items, factors, sparse=sparse)
    if kind == "mlp":
        return MLP(n_users, n_items, layers, dropout=dropout, sparse=sparse)
    if kind == "neumf":
        return NeuMF(n_users, n_items, factors, layers, dropout=dropout, sparse=sparse)
    raise ValueError(f"unknown model kind {kind!r}")
