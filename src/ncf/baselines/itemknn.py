"""Item-based k-nearest neighbours (Deshpande & Karypis 2004) with cosine similarity.

``sim(i, j) = |U_i & U_j| / (sqrt|U_i| sqrt|U_j| + shrink)`` over the binary user x item
matrix ``X``; each item keeps its ``k_neighbors`` most similar items (row-wise top-k of
``S``, the item itself excluded), and user ``u``'s scores are ``X_u S``: the summed
similarity of every item to the items the user interacted with. With recency weighting
(``recency``, as for every model: :mod:`ncf.weighting`) ``S`` is still built from the binary
``X``, and the scored profile is weighted: ``(w_u * X_u) S``.

The similarity is built in blocks of items (a sparse product, then ``torch.topk`` on the
dense block), so memory stays bounded and there is no per-item Python loop.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.baselines._base import _Baseline, check_train, expect_shape, weighted_csr
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError
from ncf.params import Float, Int, param

BLOCK_BYTES = 64 * 2**20  # one dense similarity block (float32) while fitting
MAX_ITEM_VECTOR_BYTES = 2**30


def cosine_topk(x: sp.csr_matrix, k: int, shrink: float = 0.0, block_bytes: int = BLOCK_BYTES) -> sp.csr_matrix:
    """Items x items CSR holding, per row ``i``, the ``k`` largest positive ``sim(i, j)``, ``j != i``."""
    x = sp.csr_matrix(x, dtype=np.float32)
    n = x.shape[1]
    xt = x.T.tocsr()  # items x users
    norms = torch.as_tensor(np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1), dtype=np.float32).ravel()))
    k = min(k, n - 1)
    if k < 1:
        return sp.csr_matrix((n, n), dtype=np.float32)
    step = max(1, min(n, block_bytes // (4 * n)))
    rows, cols, vals = [], [], []
    for s in range(0, n, step):
        e = min(n, s + step)
        co = torch.as_tensor((xt[s:e] @ x).toarray(), dtype=torch.float32)  # co-occurrence counts
        denom = norms[s:e, None] * norms[None, :] + float(shrink)
        sim = torch.where(denom > 0, co / denom.clamp_min(torch.finfo(torch.float32).tiny), 0.0)
        local = torch.arange(e - s)
        sim[local, local + s] = -torch.inf  # an item is not its own neighbour
        v, j = torch.topk(sim, k, dim=1)
        keep = v > 0
        rows.append((local + s)[:, None].expand_as(j)[keep].numpy())
        cols.append(j[keep].numpy())
        vals.append(v[keep].numpy())
    r, c, v = (np.concatenate(a) for a in (rows, cols, vals))
    out = sp.csr_matrix((v.astype(np.float32), (r, c)), shape=(n, n))
    out.sort_indices()
    return out


@dataclasses.dataclass(eq=False, repr=False)
class ItemKNN(_Baseline):
    """Item-item cosine nearest neighbours.

    Parameters
    ----------
    k_neighbors:
        Neighbours kept per item (>= 1); fewer when an item co-occurs with fewer items.
    shrink:
        Added to the cosine denominator (>= 0): damps similarities resting on few co-occurrences.
    recency, recency_floor:
        Score a recency-weighted user profile (see :class:`ncf.NCF` and :mod:`ncf.weighting`);
        ``"auto"`` (default) is on when ``train`` has timestamps and is not a random holdout.
    """

    name = "item-knn"
    MODEL_CLASS = "ItemKNN"
    WEIGHTS = {"indptr": torch.int64, "indices": torch.int64, "data": torch.float32}

    k_neighbors: int = param(100, Int(1), "neighbours kept per item")
    shrink: float = param(0.0, Float(0.0), "added to the cosine denominator")

    def fit(self, train: Interactions, validation: Any = None) -> ItemKNN:
        """Build the neighbourhood matrix; ``validation`` is accepted for interface parity and ignored."""
        self._validate()
        train = check_train(train, "ItemKNN")
        t0 = time.perf_counter()
        weights = self._recency_weights(train)
        self.similarity_ = cosine_topk(train.csr, int(self.k_neighbors), float(self.shrink))
        self.profiles_ = weighted_csr(train, weights)  # the rows score_block scores
        self.train_ = train
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        # sparse @ sparse in scipy, row by row: batch and scalar calls agree bit for bit
        rows = self.profiles_[users.cpu().numpy()]
        return torch.from_numpy(np.asarray((rows @ self.similarity_).toarray(), dtype=np.float32))

    def history_scores(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """``profiles @ S``, exactly as :meth:`score_block` scores a training user's profile row."""
        self.check_fitted()
        return torch.from_numpy(np.asarray((profiles @ self.similarity_).toarray(), dtype=np.float32))

    def item_vectors(self) -> np.ndarray:
        # Items as their user columns: similar_items then ranks by the plain cosine similarity (no shrink, no top-k).
        n_users, n_items = self.train_.shape
        if n_users * n_items * 4 > MAX_ITEM_VECTOR_BYTES:
            raise ConfigError(
                f"similar_items for ItemKNN needs a dense {n_items} x {n_users} item x user matrix "
                f"({n_users * n_items * 4 / 2**30:.1f} GiB); read neighbours from model.similarity_ instead"
            )
        return self.train_.csr.T.toarray()

    def _weights(self) -> dict[str, torch.Tensor]:
        s = self.similarity_
        return {
            "indptr": torch.from_numpy(s.indptr.astype(np.int64)),
            "indices": torch.from_numpy(s.indices.astype(np.int64)),
            "data": torch.from_numpy(s.data.astype(np.float32)),
        }

    def _restore(self, weights: dict[str, torch.Tensor], train: Interactions) -> None:
        n = train.n_items
        indptr = expect_shape(weights, "indptr", (n + 1,)).numpy()
        indices, data = weights["indices"].numpy(), weights["data"].numpy()
        if indices.shape != data.shape or indptr[0] != 0 or indptr[-1] != len(data) or (np.diff(indptr) < 0).any():
            raise ValueError("the similarity's CSR arrays are inconsistent")
        if len(indices) and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"similarity column indices out of range [0, {n})")
        self.similarity_ = sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(n, n))
        self.profiles_ = weighted_csr(train, self._profile_weights(train))
