"""Train/test split protocols: per-user holdout, leave-one-out, global temporal, GroupLens' allbut.

Every function is vectorised: interactions are ordered once with ``np.lexsort`` on
(key, user) and each row's rank within its user is its position minus the user's
start in that order, so no Python loop runs per user or per interaction.

Both parts of a split share the id maps of the input, so indices agree between
train, validation and test, and both carry ``report["split"]``::

    {"protocol": str, "params": {...}, "users_held_out": int,
     "users_train_only": int, "test_interactions": int}

``users_held_out`` counts users with rows in the test part; ``users_train_only``
counts users with interactions that stay wholly in train (too few interactions
for the protocol, or none after the temporal cutoff).
"""

from __future__ import annotations

import copy
import math
from numbers import Real
from typing import Any, Literal

import numpy as np

from ncf.checks import check_int
from ncf.data.interactions import Interactions, SplitInfo
from ncf.errors import ConfigError, DataError

__all__ = ["PROTOCOLS", "allbut", "by_name", "carve_validation", "holdout", "leave_one_out", "temporal"]

By = Literal["random", "timestamp"]
Part = Literal["a", "b"]
Seed = int | np.random.Generator | None

_BY: tuple[str, ...] = ("random", "timestamp")
_HOW: tuple[str, ...] = ("auto", "random", "timestamp")
_PARTS: tuple[str, ...] = ("a", "b")


# -- parameter checks --------------------------------------------------------------------
def _check_open_unit(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ConfigError(f"{name} == {value!r}, must be a number in (0, 1)")
    if not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{name} == {value}, must be in (0, 1)")
    return float(value)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} == {value!r}, must be one of {', '.join(repr(a) for a in allowed)}")
    return str(value)


def _check_seed(seed: Any) -> None:
    if seed is None or isinstance(seed, np.random.Generator):
        return
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed == {seed!r}, must be a non-negative integer, a numpy Generator or None")


def _check_data(data: Any, what: str = "data") -> Interactions:
    if not isinstance(data, Interactions):
        raise ConfigError(f"{what} must be an ncf Interactions, got {type(data).__name__}")
    if len(data) == 0:
        raise DataError(f"{what} has no interactions; there is nothing to split")
    return data


def _timestamps(data: Interactions, caller: str) -> np.ndarray:
    if data.timestamps is None:
        raise DataError(
            f"{caller} by timestamp needs timestamps and this data has none; "
            'pass by="random" or load the data with a timestamp column'
        )
    ts = np.asarray(data.timestamps, dtype=np.float64)
    if not np.isfinite(ts).all():
        raise DataError(
            f"timestamps contain {int((~np.isfinite(ts)).sum())} missing or infinite values; drop those rows"
        )
    return ts


def _seed_param(seed: Seed) -> int | None:
    return int(seed) if isinstance(seed, (int, np.integer)) else None


# -- core --------------------------------------------------------------------------------
def _rank_from_end(data: Interactions, key: np.ndarray, tie_break: bool = True) -> np.ndarray:
    """For each row (in ``data``'s order): how many of its user's rows come later by ``key``.

    With ``tie_break`` ties in ``key`` are broken by item index (higher index counts
    as later), so the order is total and deterministic. Random keys skip it: they
    have no ties in practice and lexsort is stable anyway.
    """
    keys = (data.item_idx, key, data.user_idx) if tie_break else (key, data.user_idx)
    order = np.lexsort(keys)
    pos = np.empty(len(data), dtype=np.int64)
    pos[order] = np.arange(len(data), dtype=np.int64)
    # Sorting by user first puts user u's rows at positions indptr[u]:indptr[u+1].
    return data.indptr[data.user_idx + 1] - 1 - pos


def rank_from_end(data: Interactions) -> np.ndarray:
    """For each interaction: how many of its user's interactions are later in time (0 = the latest).

    Ties in time are broken by item index, as the splits break them.
    """
    return _rank_from_end(data, _timestamps(data, "rank_from_end"))


def _split_report(
    protocol: str, params: dict[str, Any], test_mask: np.ndarray, data: Interactions, **extra: Any
) -> dict[str, Any]:
    has_test = np.bincount(data.user_idx[test_mask], minlength=data.n_users) > 0
    has_train = np.bincount(data.user_idx[~test_mask], minlength=data.n_users) > 0
    rep: dict[str, Any] = {
        "protocol": protocol,
        "params": params,
        "users_held_out": int(has_test.sum()),
        "users_train_only": int((has_train & ~has_test).sum()),
        "test_interactions": int(test_mask.sum()),
        "train_interactions": int(len(data) - test_mask.sum()),
    }
    rep.update(extra)
    return rep


def _apply(data: Interactions, test_mask: np.ndarray, rep: dict[str, Any]) -> tuple[Interactions, Interactions]:
    p = rep["params"]
    info = SplitInfo(rep["protocol"], p.get("by"), p.get("n"), p.get("fraction"))
    train = data._subset(~test_mask, info, split=copy.deepcopy(rep))
    test = data._subset(test_mask, info, split=copy.deepcopy(rep))
    return train, test


def _holdout(
    data: Interactions,
    n: int,
    fraction: float | None,
    by: str,
    seed: Seed,
    min_train: int,
    protocol: str,
    extra_params: dict[str, Any] | None = None,
) -> tuple[Interactions, Interactions]:
    counts = data.user_counts
    if fraction is None:
        k = np.full(data.n_users, n, dtype=np.int64)
    else:
        # round half up, at least one held-out interaction per user
        k = np.maximum(1, np.floor(fraction * counts + 0.5).astype(np.int64))
    eligible = (counts > 0) & (counts >= k + min_train)

    if by == "timestamp":
        key = _timestamps(data, protocol)
    else:
        key = np.random.default_rng(seed).random(len(data))
    rank = _rank_from_end(data, key, tie_break=by == "timestamp")
    u = data.user_idx
    test_mask = eligible[u] & (rank < k[u])

    params: dict[str, Any] = {
        "n": None if fraction is not None else n,
        "fraction": fraction,
        "by": by,
        "seed": _seed_param(seed) if by == "random" else None,
        "min_train": min_train,
    }
    params.update(extra_params or {})
    return _apply(data, test_mask, _split_report(protocol, params, test_mask, data))


# -- public protocols --------------------------------------------------------------------
def holdout(
    data: Interactions,
    n: int = 10,
    *,
    fraction: float | None = None,
    by: By = "random",
    seed: Seed = None,
    min_train: int = 1,
) -> tuple[Interactions, Interactions]:
    """Hold out ``n`` interactions per user (or ``fraction`` of each user's interactions).

    Parameters
    ----------
    data:
        The interactions to split.
    n:
        Interactions held out per user (ignored when ``fraction`` is given).
    fraction:
        Hold out ``round(fraction * count)`` (half up, at least 1) of each user's
        interactions instead of a fixed ``n``; must be in (0, 1).
    by:
        ``"random"``: a uniformly random subset (seeded); ``"timestamp"``: the user's
        latest interactions, ties broken by item index (higher index counts as later).
    seed:
        Seed (or numpy Generator) of the random choice; same seed, same split.
    min_train:
        Interactions that must stay in train. Users with fewer than
        ``n + min_train`` interactions stay wholly in train and are counted in
        ``report["split"]["users_train_only"]``.

    Returns
    -------
    (train, test), sharing ``data``'s id maps.
    """
    data = _check_data(data)
    if fraction is None:
        n = check_int("n", n, 1)
    else:
        fraction = _check_open_unit("fraction", fraction)
    by = _check_choice("by", by, _BY)  # type: ignore[assignment]
    _check_seed(seed)
    min_train = check_int("min_train", min_train, 0)
    return _holdout(data, n, fraction, by, seed, min_train, "holdout")


def leave_one_out(
    data: Interactions, *, by: By = "timestamp", seed: Seed = None, min_train: int = 1
) -> tuple[Interactions, Interactions]:
    """Hold out each user's latest interaction (the NCF paper's protocol).

    With ``by="random"`` one random interaction per user is held out instead (for
    data without timestamps). Users with fewer than ``1 + min_train`` interactions
    stay wholly in train.
    """
    data = _check_data(data)
    by = _check_choice("by", by, _BY)  # type: ignore[assignment]
    _check_seed(seed)
    min_train = check_int("min_train", min_train, 0)
    if by == "timestamp" and data.timestamps is None:
        raise DataError(
            'leave_one_out(by="timestamp") holds out each user\'s latest interaction, but this data has '
            'no timestamps; pass by="random" to hold out a random interaction per user'
        )
    return _holdout(data, 1, None, by, seed, min_train, "leave-one-out")


def temporal(
    data: Interactions, *, at: float | None = None, quantile: float | None = None
) -> tuple[Interactions, Interactions]:
    """Global temporal split: interactions with ``timestamp > cutoff`` go to test.

    The cutoff is ``at`` or the ``quantile`` of all timestamps (exactly one of the
    two). Test users without any train interaction are kept in test and counted in
    ``report["split"]["cold_start_users"]`` (evaluation skips them); test items
    never seen in train are counted in ``cold_start_items``.
    """
    data = _check_data(data)
    if (at is None) == (quantile is None):
        raise ConfigError(
            "temporal() needs exactly one of at= (a timestamp) or quantile= (a number in (0, 1)); "
            f"got at == {at!r}, quantile == {quantile!r}"
        )
    ts = _timestamps(data, "temporal split")
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, Real) or not math.isfinite(float(at)):
            raise ConfigError(f"at == {at!r}, must be a finite number (a timestamp)")
        cutoff = float(at)
    else:
        quantile = _check_open_unit("quantile", quantile)
        cutoff = float(np.quantile(ts, quantile))
    test_mask = ts > cutoff
    n_test = int(test_mask.sum())
    if n_test == 0 or n_test == len(data):
        side = "test" if n_test == 0 else "train"
        msg = f"temporal split at cutoff {cutoff} leaves {side} empty; timestamps range from {ts.min()} to {ts.max()}"
        if at is not None:
            raise ConfigError(f"at == {at}: {msg}; pick a value inside that range")
        raise DataError(f"quantile == {quantile}: {msg} (too few distinct timestamps)")

    def cold(idx: np.ndarray, size: int) -> int:
        in_train = np.bincount(idx[~test_mask], minlength=size) > 0
        in_test = np.bincount(idx[test_mask], minlength=size) > 0
        return int((in_test & ~in_train).sum())

    params = {"at": None if at is None else float(at), "quantile": quantile, "cutoff": cutoff}
    rep = _split_report(
        "temporal",
        params,
        test_mask,
        data,
        cold_start_users=cold(data.user_idx, data.n_users),
        cold_start_items=cold(data.item_idx, data.n_items),
    )
    return _apply(data, test_mask, rep)


def allbut(data: Interactions, n: int = 10, *, part: Part = "a") -> tuple[Interactions, Interactions]:
    """GroupLens' ``ua``/``ub`` split: each user's first ``n`` ratings in file order go to test.

    MovieLens-100k ships two such splits, made by its ``allbut.pl`` script from ``u.data``:
    ``ua.base``/``ua.test`` (``allbut.pl ua 1 10``: each user's 1st to 10th rating, in
    ``u.data`` row order, is a test rating) and ``ub.base``/``ub.test`` (``allbut.pl ub 11
    20``: the 11th to 20th). Every ML-100k user has at least 20 ratings, so both test parts
    hold exactly 10 ratings per user (9,430) and are disjoint. ``ua`` is the split
    ``lightfm.datasets.fetch_movielens`` loads, and with it many papers' and tutorials'
    numbers on ML-100k. ``u.data`` is not in time order, so this is neither a random nor a
    temporal split; it is reproduced exactly, not drawn.

    Parameters
    ----------
    data:
        Interactions that know their source's row order (``data.source_row``):
        :func:`ncf.data.movielens.movielens_100k` (all ratings, ``min_rating=None``, to
        get GroupLens' files) or ``load_interactions(..., keep_source_row=True)``. To keep
        only some ratings as positives the way ``fetch_movielens(min_rating=...)`` does,
        filter AFTER the split: the rule counts every rating.
    n:
        Test ratings per user (10 in GroupLens' files).
    part:
        ``"a"``: ratings 1..n of each user in file order (``ua``); ``"b"``: ratings
        n+1..2n (``ub``).

    Returns
    -------
    (train, test), sharing ``data``'s id maps. Like ``allbut.pl``, a user with too few
    ratings gets what there is in the range: with ``n`` ratings or fewer, all of them go
    to test under ``"a"`` (counted in ``report["split"]["cold_start_users"]``) and none
    under ``"b"`` (counted in ``users_train_only``).
    """
    data = _check_data(data)
    n = check_int("n", n, 1)
    part = _check_choice("part", part, _PARTS)  # type: ignore[assignment]
    if data.source_row is None:
        raise DataError(
            "allbut() takes each user's first ratings in file order, but this data does not know its row "
            "order (source_row is None); load it with ncf.data.movielens.movielens_100k() or "
            "load_interactions(..., keep_source_row=True)"
        )
    start = 0 if part == "a" else n
    counts = data.user_counts
    rank = counts[data.user_idx] - 1 - _rank_from_end(data, data.source_row)  # 0 = first in the file
    test_mask = (rank >= start) & (rank < start + n)
    cold = (np.bincount(data.user_idx[test_mask], minlength=data.n_users) == counts) & (counts > 0)
    rep = _split_report("allbut", {"n": n, "part": part}, test_mask, data, cold_start_users=int(cold.sum()))
    return _apply(data, test_mask, rep)


def carve_validation(
    train: Interactions,
    how: str = "auto",
    *,
    n: int = 1,
    fraction: float | None = None,
    seed: Seed = None,
    min_train: int = 1,
) -> tuple[Interactions, Interactions]:
    """Split a validation set off ``train``: returns ``(train_inner, validation)``.

    ``how``:
        ``"auto"``: the latest ``n`` per user if ``train`` has timestamps (with the
        default ``n=1`` this is leave-one-out, as in the NCF paper), else ``n`` at
        random per user; ``"random"``: ``n`` (or ``fraction``) at random per user;
        ``"timestamp"``: the latest ``n`` (or ``fraction``) per user.

    Users with fewer than ``n + min_train`` interactions stay in ``train_inner``.
    """
    train = _check_data(train, "train")
    how = _check_choice("how", how, _HOW)
    if fraction is None:
        n = check_int("n", n, 1)
    else:
        fraction = _check_open_unit("fraction", fraction)
    _check_seed(seed)
    min_train = check_int("min_train", min_train, 0)
    by = how if how != "auto" else ("timestamp" if train.timestamps is not None else "random")
    if by == "timestamp" and train.timestamps is None:
        raise DataError(
            'carve_validation(how="timestamp") holds out each user\'s latest interactions, but train has '
            'no timestamps; pass how="random" (or "auto")'
        )
    protocol = "leave-one-out" if fraction is None and n == 1 else "holdout"
    return _holdout(train, n, fraction, by, seed, min_train, protocol, {"purpose": "validation", "how": how})


def validation_rule(train: Interactions) -> tuple[str, int, float | None]:
    """The validation carve-out that mirrors the split that produced ``train``.

    A per-user holdout of n items (random or latest) gets a validation part of n items
    per user by the same rule; leave-one-out and anything else get one item per user,
    the latest when timestamps exist, else a random one.
    """
    sp = train.split
    by = sp.by if sp is not None else None
    if by not in ("random", "timestamp") or (by == "timestamp" and train.timestamps is None):
        by = "timestamp" if train.timestamps is not None else "random"
    if sp is not None and sp.protocol == "holdout":
        return by, int(sp.n or 1), sp.fraction
    return by, 1, None


#: The protocols ``by_name`` (and the CLI, ``ncf benchmark``) know. ``allbut`` is not one: it
#: needs the source's row order, which only some data keep, and on ML-100k it is used with
#: ratings filtered after the split, while the benchmark binarises before splitting.
PROTOCOLS: tuple[str, ...] = ("holdout", "leave-one-out", "temporal")


def by_name(
    protocol: str, data: Interactions, *, seed: Seed = None, n: int = 10, quantile: float = 0.8
) -> tuple[Interactions, Interactions]:
    """The test split a protocol name stands for (as the CLI and ``ncf benchmark`` name them).

    ``"holdout"``: ``n`` random interactions per user; ``"leave-one-out"``: each user's
    latest interaction when timestamps exist, else a random one; ``"temporal"``:
    interactions after the ``quantile`` of time.
    """
    protocol = _check_choice("protocol", protocol, PROTOCOLS)
    if protocol == "holdout":
        return holdout(data, n=n, by="random", seed=seed)
    if protocol == "leave-one-out":
        by = "timestamp" if data.timestamps is not None else "random"
        return leave_one_out(data, by=by, seed=seed)
    return temporal(data, quantile=quantile)
