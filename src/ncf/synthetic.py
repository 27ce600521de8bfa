"""Seeded synthetic implicit feedback with MovieLens shapes, for benchmarks and tests.

Item popularity follows a power law (Zipf, exponent ``item_alpha``) and user activity a
heavy-tailed (Pareto) law, like real rating data. Generation is vectorised: all pairs
are drawn at once, deduplicated through ``user * n_items + item`` keys, and trimmed to
the requested count, so an ML-20M-shaped set (20M interactions) takes a few seconds and
holds its indices as int32.
"""

from __future__ import annotations

import numpy as np

from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError

__all__ = ["SHAPES", "synthetic_interactions"]

#: (users, items, interactions) of the MovieLens sets the benchmarks mimic.
SHAPES: dict[str, tuple[int, int, int]] = {
    "ml-100k": (943, 1682, 100_000),
    "ml-1m": (6040, 3706, 1_000_209),
    "ml-20m": (138_493, 26_744, 20_000_263),
}


def synthetic_interactions(
    shape: str | tuple[int, int, int] = "ml-1m",
    *,
    seed: int = 0,
    item_alpha: float = 1.0,
    user_alpha: float = 1.5,
) -> Interactions:
    """Interactions with ``shape`` = a name in :data:`SHAPES` or ``(users, items, interactions)``.

    The result has exactly ``interactions`` distinct (user, item) pairs, sorted by
    (user, item), int32 indices and integer raw ids ``0..n-1``.
    """
    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ConfigError(f"shape == {shape!r}, must be one of {', '.join(SHAPES)} or (users, items, interactions)")
        n_users, n_items, n = SHAPES[shape]
    else:
        n_users, n_items, n = (int(v) for v in shape)
    if min(n_users, n_items, n) < 1 or n > n_users * n_items // 2:
        raise ConfigError(
            f"shape == {(n_users, n_items, n)}, needs positive sizes and interactions <= users * items / 2"
        )
    rng = np.random.default_rng(seed)
    item_p = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** item_alpha
    item_cdf = np.cumsum(rng.permutation(item_p))  # popular items get random indices
    user_w = rng.pareto(user_alpha, n_users) + 1.0
    user_w = np.minimum(user_w / user_w.sum() * n, n_items / 4)  # no user rates more than a quarter of the catalogue
    user_cdf = np.cumsum(user_w)
    keys = np.zeros(0, dtype=np.int64)
    draw = int(n * 1.3)
    for _ in range(8):  # a few rounds top up what deduplication removed; never one per user
        u = np.searchsorted(user_cdf, rng.random(draw) * user_cdf[-1], side="right").astype(np.int64)
        i = np.searchsorted(item_cdf, rng.random(draw) * item_cdf[-1], side="right").astype(np.int64)
        np.minimum(u, n_users - 1, out=u)
        np.minimum(i, n_items - 1, out=i)
        keys = np.unique(np.concatenate([keys, u * n_items + i]))
        if len(keys) >= n:
            break
        draw = int((n - len(keys)) * 3) + 1000
    if len(keys) < n:
        raise ConfigError(f"could not draw {n} distinct pairs; lower item_alpha or the interaction count")
    if len(keys) > n:  # keep a uniformly random n of the distinct pairs, still sorted (O(N) selection)
        keep = np.argpartition(rng.random(len(keys)), n)[:n]
        keys = keys[np.sort(keep)]
    users = (keys // n_items).astype(np.int32)
    items = (keys - users.astype(np.int64) * n_items).astype(np.int32)
    del keys
    report = {"source": "synthetic", "shape": [n_users, n_items, n], "seed": seed, "duplicates_merged": 0}
    return Interactions(
        IdMap(np.arange(n_users, dtype=np.int64), name="user"),
        IdMap(np.arange(n_items, dtype=np.int64), name="item"),
        users,
        items,
        report=report,
    )
