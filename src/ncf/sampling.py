"""Negative sampling for implicit feedback, vectorised in torch.

:class:`NegativeSampler` draws, for each requested user, items uniformly from the
items that are *not* a known positive of that user. It does so exactly and in a
single pass, with no rejection loop: for a user with sorted positives
``p_0 < p_1 < ... < p_{c-1}`` let ``q_j = p_j - j`` (the number of negatives below
``p_j``). The ``r``-th negative item (0-based) is ``r + #{j : q_j <= r}``. So the
sampler draws ``r`` uniformly in ``[0, n_items - c)`` and finds the count with one
``torch.searchsorted`` over the keys ``user * n_items + q_j``, which are globally
sorted. Every draw costs the same, whatever the density, and nothing is copied
back to the host during sampling, so it runs on the training device without syncs.

:func:`all_negatives` lists every unobserved pair (the "every unobserved pair is a
negative" training mode).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError
from ncf.train import kernels

__all__ = ["NegativeSampler", "all_negatives", "ALL_NEGATIVES_LIMIT"]

#: Largest ``users x items`` grid :func:`all_negatives` will build.
ALL_NEGATIVES_LIMIT = 200_000_000

Source = Interactions | sp.spmatrix | sp.sparray


def _as_list(exclude: Any) -> list[Any]:
    if exclude is None:
        return []
    if isinstance(exclude, (Interactions, sp.spmatrix, sp.sparray)):
        return [exclude]
    if isinstance(exclude, Iterable):
        return list(exclude)
    raise ConfigError(f"exclude must be Interactions, a sparse matrix or a list of them, got {type(exclude).__name__}")


def _pairs(src: Any, ref: Source, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) index arrays of ``src``, expressed in ``ref``'s id space."""
    if isinstance(src, Interactions):
        if isinstance(ref, Interactions) and (src.user_map is not ref.user_map or src.item_map is not ref.item_map):
            src = src.reindex(ref.user_map, ref.item_map)  # returns src itself when the maps are equal
        if src.shape != ref.shape:
            raise DataError(f"{what} has shape {src.shape}, expected {ref.shape} (users x items)")
        return np.asarray(src.user_idx, dtype=np.int64), np.asarray(src.item_idx, dtype=np.int64)
    if isinstance(src, (sp.spmatrix, sp.sparray)):
        if src.shape != ref.shape:
            raise DataError(f"{what} has shape {src.shape}, expected {ref.shape} (users x items)")
        coo = sp.coo_matrix(src)
        nz = coo.data != 0
        return coo.row[nz].astype(np.int64), coo.col[nz].astype(np.int64)
    raise ConfigError(f"{what} must be Interactions or a scipy sparse matrix, got {type(src).__name__}")


def positive_keys(data: Source, exclude: Any) -> tuple[np.ndarray, int, int]:
    """Sorted unique ``user * n_items + item`` keys of all positives, and the shape."""
    if not isinstance(data, (Interactions, sp.spmatrix, sp.sparray)):
        raise ConfigError(f"data must be Interactions or a scipy sparse matrix, got {type(data).__name__}")
    n_users, n_items = (int(s) for s in data.shape)
    if n_items == 0 or n_users == 0:
        raise DataError(f"data has shape {n_users} x {n_items}; negative sampling needs users and items")
    parts = [_pairs(data, data, "data")]
    parts += [_pairs(x, data, f"exclude[{k}]") for k, x in enumerate(_as_list(exclude))]
    keys = np.concatenate([u * n_items + i for u, i in parts]) if parts else np.zeros(0, np.int64)
    keys = np.sort(keys)  # already sorted for a single Interactions (rows are in (user, item) order)
    if len(keys) > 1:
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
    return keys, n_users, n_items


def _full_users_error(full: np.ndarray, n_items: int, data: Source) -> DataError:
    shown = full[:5]
    if isinstance(data, Interactions):
        shown = data.user_map.raw(shown)
    ids = ", ".join(repr(x.item() if hasattr(x, "item") else x) for x in shown)
    more = f" and {len(full) - 5} more" if len(full) > 5 else ""
    return DataError(
        f"{len(full)} user(s) have a positive for every one of the {n_items} items (e.g. {ids}{more}), "
        "so no negative item exists for them; drop those users (they carry no ranking signal) "
        "or pass fewer exclusions"
    )


class NegativeSampler:
    """Uniform sampler of items a user has not interacted with.

    Parameters
    ----------
    data:
        Positives, as :class:`~ncf.data.interactions.Interactions` or a users x items
        scipy sparse matrix (e.g. ``interactions.csr``).
    exclude:
        More positives to avoid (one or a list of Interactions or sparse matrices of
        the same shape), e.g. the test set, so that sampled-evaluation negatives
        are never a held-out positive. Interactions with other but compatible id
        maps are reindexed into ``data``'s maps.
    device:
        Where the lookup tables live and samples are returned.

    Raises
    ------
    DataError
        If some user has every item as a positive: no negative exists for them.
    """

    def __init__(self, data: Source, *, exclude: Any = None, device: str | torch.device = "cpu") -> None:
        keys, n_users, n_items = positive_keys(data, exclude)
        users = keys // n_items
        items = keys - users * n_items
        counts = np.bincount(users, minlength=n_users).astype(np.int64)
        full = np.flatnonzero(counts >= n_items)
        if len(full):
            raise _full_users_error(full, n_items, data)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        # q_j = p_j - j: negatives below the j-th positive of the user; nondecreasing in j and < n_items,
        # so user * n_items + q_j is sorted over the whole array.
        q = items - (np.arange(len(keys), dtype=np.int64) - indptr[users])
        self.device = torch.device(device)
        self.n_users = n_users
        self.n_items = n_items
        self.n_positives = len(keys)
        self._qkeys = torch.as_tensor(users * n_items + q, dtype=torch.int64, device=self.device)
        self._indptr = torch.as_tensor(indptr, dtype=torch.int64, device=self.device)
        self._n_neg = torch.as_tensor(n_items - counts, dtype=torch.int64, device=self.device)

    def __repr__(self) -> str:
        return (
            f"NegativeSampler(users={self.n_users}, items={self.n_items}, positives={self.n_positives}, "
            f"device={str(self.device)!r})"
        )

    def n_negatives(self, users: Any) -> torch.Tensor:
        """How many negative items each user has (``n_items`` minus their positives)."""
        return self._n_neg[self._users(users)]

    def _users(self, users: Any) -> torch.Tensor:
        u = torch.as_tensor(users, device=self.device)
        if u.dtype.is_floating_point or u.dtype == torch.bool or u.dtype.is_complex:
            raise ConfigError(f"users must be an integer tensor, got dtype {u.dtype}")
        u = u.to(torch.int64).reshape(-1)
        # Range check only where it costs no device sync; on an accelerator a bad index fails in indexing.
        if u.device.type == "cpu" and u.numel() and (int(u.min()) < 0 or int(u.max()) >= self.n_users):
            raise ConfigError(f"users contain indices outside [0, {self.n_users})")
        return u

    def sample(self, users: Any, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` negative items for each user, drawn uniformly (with replacement).

        Returns an int64 tensor of shape ``(len(users), n)`` on the sampler's device;
        no entry is a positive (or excluded) item of its row's user. Draws come from
        ``generator`` (on any device: they are moved over), so the same generator
        state gives the same samples.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"n == {n!r}, must be an integer >= 0")
        u = self._users(users)
        gen_device = generator.device if generator is not None else self.device
        # 62 random bits modulo n_neg: the bias is below n_items / 2**62, i.e. nil.
        bits = torch.randint(0, 2**62, (u.numel(), int(n)), generator=generator, device=gen_device, dtype=torch.int64)
        r = bits.to(self.device) % self._n_neg[u].unsqueeze(1)
        if self.device.type == "cpu" and kernels.AVAILABLE:
            # The same lookup compiled, per user (ncf.train.kernels): 3-4x less time than searchsorted here.
            kernels.negatives_from_ranks(u.numpy(), r.numpy(), self._qkeys.numpy(), self._indptr.numpy(), self.n_items)
            return r
        base = u.unsqueeze(1) * self.n_items
        below = torch.searchsorted(self._qkeys, base + r, right=True) - self._indptr[u].unsqueeze(1)
        return r + below


def all_negatives(
    data: Interactions, *, users: Any = None, exclude: Any = None, limit: int = ALL_NEGATIVES_LIMIT
) -> tuple[np.ndarray, np.ndarray]:
    """Every unobserved (user, item) pair, as two int64 arrays sorted by (user, item).

    ``users`` (indices) defaults to the users with at least one interaction: users
    with none have no positives to rank against. ``exclude`` adds positives to
    avoid, as in :class:`NegativeSampler`.

    Raises
    ------
    ConfigError
        If the users x items grid exceeds ``limit`` (200 million) cells.
    """
    if not isinstance(data, Interactions):
        raise ConfigError(f"data must be Interactions, got {type(data).__name__}")
    keys, n_users, n_items = positive_keys(data, exclude)
    sel = data.active_users() if users is None else np.unique(np.asarray(users, dtype=np.int64).reshape(-1))
    if sel.size and (sel[0] < 0 or sel[-1] >= n_users):
        raise ConfigError(f"users contain indices outside [0, {n_users})")
    cells = len(sel) * n_items
    if cells > limit:
        raise ConfigError(
            f'the "all" negatives mode needs the dense {len(sel)} users x {n_items} items matrix '
            f"({cells:,} cells > limit {limit:,}); use a number of sampled negatives per positive instead"
        )
    row_of_user = np.full(n_users, -1, dtype=np.int64)
    row_of_user[sel] = np.arange(len(sel), dtype=np.int64)
    pu = keys // n_items
    pi = keys - pu * n_items
    rows = row_of_user[pu]
    keep = rows >= 0
    mask = np.ones((len(sel), n_items), dtype=bool)
    mask[rows[keep], pi[keep]] = False
    r, items = np.nonzero(mask)
    return sel[r].astype(np.int64), items.astype(np.int64)
