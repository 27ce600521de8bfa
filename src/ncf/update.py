"""Incremental update: add new interactions (and the new users and items they bring) to a fitted model.

``model.update(new)`` exists on every model and changes the model in place (like
scikit-learn's ``partial_fit``, implicit's ``partial_fit_users`` and LightFM's
``fit_partial``) and returns it. A saved bundle is never touched: save the updated model
to a new folder (``ncf update DIR --data NEW --out DIR2``). If the update fails (bad data,
divergence) the model is left as it was.

Every update does the same first step, :func:`merge`: the id maps grow
(:meth:`ncf.data.ids.IdMap.extend`: old indices unchanged, new ids appended), the new
interactions are appended to the model's ``train_`` and duplicates collapse as the loaders
collapse them (one row per (user, item), the latest timestamp). Then, per model:

* GMF / MLP / NeuMF (:func:`update_ncf`): the embedding tables grow by the new users and
  items, whose rows start at the mean of the existing rows plus noise at the model's init
  scale (a new user starts as the average user); training then continues from the current
  weights with the engine (:func:`ncf.train.trainer.train_module`: the model's own loss,
  negatives and recency, at the learning rate of the model's final stage) for ``epochs``
  epochs (:data:`DEFAULT_EPOCHS`) on the new interactions plus a uniform sample of
  ``old_ratio`` (:data:`DEFAULT_OLD_RATIO`) times as many old ones (so the old users and items
  are not forgotten). Every known positive of the merged data stays excluded from the
  negatives. Recency weights are computed on that sample (each user's latest rows in it weigh
  most; the new rows are the latest).
* EASE, item-kNN, popularity: a refit on the merged data. Their fit is closed form (one
  solve, one sparse product, one count): that *is* their update, and it equals a retrain.
* implicit ALS: ``partial_fit_users`` for the users with new interactions, then
  ``partial_fit_items`` for the items with new interactions, then the users again (so new
  users see new items); everything else keeps its factors.
* implicit BPR (which has no partial fit): SGD continued from the current factors on the
  merged data, for ``epochs`` iterations (default: a quarter of the model's).
* LightFM: ``fit_partial`` on the merged matrix, starting from the current embeddings and
  biases, grown for the new users and items (identity features, so growing the features is
  growing the tables), for ``epochs`` epochs (default: half of the model's).

Each update appends a record to ``updates_`` (saved in the bundle's ``extra`` metadata as
``updates``): the fingerprints of the data the model had before (``base_fingerprint``), of the
new interactions (``update_fingerprint``) and of the merged result (``data_fingerprint``, also
the bundle's own ``data_fingerprint``), with counts and timing.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ncf.checks import check_int
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, DataError
from ncf.train.trainer import train_module
from ncf.weighting import resolve_recency

if TYPE_CHECKING:
    from ncf.model import NCF

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_OLD_RATIO",
    "Merged",
    "apply_update",
    "grow_rows",
    "merge",
    "update_history",
    "update_ncf",
]

#: NCF update: epochs over the new interactions + the old sample. Chosen on a validation window
#: (benchmarks/update.py --tune: ML-100k NeuMF, base 0-70 %, update 70-80 %, scored on 80-90 %;
#: grid old_ratio {0, 1, 2, 4} x epochs {1, 3, 5}, one seed: 1 epoch and ratio 1 scored best, more
#: epochs were worse at every ratio, ratio 0 (new interactions alone) below ratios 1-2;
#: the grid is in benchmarks/update.json, "tune").
DEFAULT_EPOCHS = 1
#: NCF update: old interactions sampled per new one. Chosen like DEFAULT_EPOCHS.
DEFAULT_OLD_RATIO = 1.0
#: Std of the noise on a new embedding row: the models' own init scale (ncf.nn: N(0, 0.01)).
INIT_STD = 0.01

_WORDS = {"int": "integers", "str": "strings"}


@dataclasses.dataclass(frozen=True)
class Merged:
    """The model's training interactions with the new ones added (:func:`merge`).

    ``data``: the merged interactions (the grown id maps; old indices unchanged). ``is_new``:
    one bool per row of ``data``, True where the row came from the new interactions (a pair
    seen before and again counts as new). ``n_users_before`` / ``n_items_before``: the old
    map sizes (indices at or above them are new users / items).
    """

    data: Interactions
    is_new: np.ndarray
    n_users_before: int
    n_items_before: int
    timestamps_dropped: bool

    @property
    def new_users(self) -> int:
        return self.data.n_users - self.n_users_before

    @property
    def new_items(self) -> int:
        return self.data.n_items - self.n_items_before


def merge(old: Interactions, new: Interactions, *, uses_recency: bool) -> Merged:
    """``old`` with ``new`` appended: id maps grown, duplicates collapsed (latest timestamp wins).

    Raises :class:`~ncf.errors.DataError` when ``new`` is empty, when its user or item ids are
    of another type than the model's (``"196"`` and ``196`` would be two users), and, for a
    model that weighs by recency, when only one side has timestamps. A model without recency
    merges such data without timestamps (``timestamps_dropped``).
    """
    if not isinstance(new, Interactions):
        raise DataError(
            f"new interactions must be an ncf Interactions (use ncf.load_interactions), got {type(new).__name__}"
        )
    if len(new) == 0:
        raise DataError("the new interactions are empty; nothing to update with")
    for axis, om, nm in (("user", old.user_map, new.user_map), ("item", old.item_map, new.item_map)):
        if om.kind != nm.kind:
            raise DataError(
                f"the new interactions' {axis} ids are {_WORDS[nm.kind]} but the model's are {_WORDS[om.kind]}; "
                f"load the new data with the same {axis} column and id type as the training data"
            )
    has_old, has_new = old.timestamps is not None, new.timestamps is not None
    dropped = has_old != has_new
    if dropped and uses_recency:
        which = "the new interactions have no timestamps" if has_old else "the model's training data had no timestamps"
        fix = (
            "load the new data with its timestamp column (--timestamp-col)"
            if has_old
            else "load the new data without timestamps"
        )
        raise DataError(f"the model weighs interactions by recency but {which}; {fix}")
    users = old.user_map.extend(new.user_map.raw(np.unique(new.user_idx)))
    items = old.item_map.extend(new.item_map.raw(np.unique(new.item_idx)))
    nu = users.index(new.user_map.raw(new.user_idx))
    ni = items.index(new.item_map.raw(new.item_idx))
    ts = None
    if has_old and has_new:
        ts = np.concatenate([old.timestamps, new.timestamps])
    n_old = len(old)
    # source_row marks where each merged row came from (old rows first, then new ones), so the
    # rows from the new data are known after from_indices sorted and collapsed them.
    merged = Interactions.from_indices(
        users,
        items,
        np.concatenate([old.user_idx, nu]),
        np.concatenate([old.item_idx, ni]),
        ts,
        item_metadata=old.item_metadata,
        source_row=np.arange(n_old + len(new)),
        split=old.split,
        report={"update": {"old_interactions": n_old, "new_interactions": len(new)}},
    )
    is_new = merged.source_row >= n_old
    merged = dataclasses.replace(merged, source_row=None)
    return Merged(merged, is_new, old.n_users, old.n_items, dropped)


def model_recency(model: Any) -> float | None:
    """The recency half-life ``model`` was fitted with (None: off), also for a loaded model."""
    if hasattr(model, "recency_"):
        return model.recency_
    extra = getattr(model, "bundle_extra_", None) or {}
    if "recency" in extra:
        return extra["recency"]
    return resolve_recency(getattr(model, "recency", None), model.train_)


def update_history(model: Any) -> list[dict[str, Any]]:
    """The update records of ``model`` (:data:`updates_`, or those of the bundle it was loaded from),
    while it still holds the data the last update produced; [] after a fit on other data."""
    return _records_for(model, model.train_.fingerprint())


def _records_for(model: Any, fingerprint: str) -> list[dict[str, Any]]:
    """``model``'s update records if the last one produced the data with ``fingerprint``, else []."""
    hist = getattr(model, "updates_", None)
    if hist is None:
        hist = (getattr(model, "bundle_extra_", None) or {}).get("updates") or []
    if not hist or not isinstance(hist, list) or not isinstance(hist[-1], dict):
        return []
    return list(hist) if hist[-1].get("data_fingerprint") == fingerprint else []


def _record(model: Any, base_fp: str, new: Interactions, m: Merged, seconds: float, how: str) -> None:
    """Append this update's record to ``model.updates_``."""
    rec = {
        "base_fingerprint": base_fp,
        "update_fingerprint": new.fingerprint(),
        "data_fingerprint": m.data.fingerprint(),
        "new_interactions": len(new),
        "interactions": len(m.data),
        "new_users": m.new_users,
        "new_items": m.new_items,
        "timestamps_dropped": m.timestamps_dropped,
        "how": how,
        "seconds": round(seconds, 3),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    # records of earlier updates count only if the last one produced the data this one started from
    model.updates_ = [*_records_for(model, base_fp), rec]


def check_epochs(epochs: int | None, default: int) -> int:
    return default if epochs is None else check_int("epochs", epochs, hint="or None for the default")


def _check_ratio(old_ratio: float) -> float:
    if isinstance(old_ratio, bool) or not isinstance(old_ratio, (int, float)) or not 0 <= old_ratio < float("inf"):
        raise ConfigError(f"old_ratio == {old_ratio!r}, must be a number >= 0 (old interactions per new one)")
    return float(old_ratio)


# -- NCF ---------------------------------------------------------------------------------------
def grow_state(
    old: dict[str, torch.Tensor], new: dict[str, torch.Tensor], gen: torch.Generator
) -> dict[str, torch.Tensor]:
    """``new``'s state with ``old``'s values: equal shapes copied; embedding tables (grown along
    dim 0) keep their old rows, and each new row is the mean old row plus N(0, INIT_STD) noise."""
    out = {}
    for name, t in new.items():
        o = old[name].to(t.device, t.dtype)
        if o.shape == t.shape:
            out[name] = o.clone()
            continue
        if o.ndim != 2 or o.shape[1:] != t.shape[1:] or o.shape[0] > t.shape[0]:
            raise ConfigError(f"cannot grow weight {name!r} from {tuple(o.shape)} to {tuple(t.shape)}")
        extra = t.shape[0] - o.shape[0]
        noise = torch.randn((extra, t.shape[1]), generator=gen, dtype=t.dtype) * INIT_STD
        out[name] = torch.cat([o, o.mean(0, keepdim=True) + noise.to(t.device)])
    return out


def update_ncf(
    model: NCF,
    new: Interactions,
    *,
    epochs: int | None = None,
    old_ratio: float = DEFAULT_OLD_RATIO,
    learning_rate: float | None = None,
    seed: int | None = None,
) -> NCF:
    """The body of :meth:`ncf.NCF.update` (see this module's docstring); returns ``model``."""
    epochs = check_epochs(epochs, DEFAULT_EPOCHS)
    old_ratio = _check_ratio(old_ratio)
    model.check_fitted()
    recency = model.recency_ = model_recency(model)  # the half-life it was fitted with (a loaded model lacks it)
    seed = int(getattr(model, "seed_", 0) if seed is None else seed)

    def body(m: Merged) -> str:
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        # The training rows: every new interaction and a uniform sample of old_ratio times as many old ones.
        old_rows = np.flatnonzero(~m.is_new)
        take = min(len(old_rows), int(round(old_ratio * int(m.is_new.sum()))))
        rows = m.is_new.copy()
        rows[rng.choice(old_rows, size=take, replace=False)] = True
        sample = m.data._subset(rows)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = model._build(model.kind_, m.data.n_users, m.data.n_items)
        state = grow_state(model.module_.state_dict(), module.state_dict(), torch.Generator().manual_seed(seed))
        module.load_state_dict(state)
        # The rate the model was last trained at (NeuMF's fused stage is fine-tuned at lr_scale).
        last = next((st for st in model.plan() if st.kind == model.kind_), None)
        lr = learning_rate if learning_rate is not None else model.learning_rate * (last.lr_scale if last else 1.0)
        cfg = dataclasses.replace(model._config(), epochs=epochs, learning_rate=float(lr), seed=seed)
        res = train_module(
            module,
            sample,
            None,
            cfg,
            device=model.device_,
            callbacks=model.callbacks,
            progress=model.verbose,
            tag="update",
            exclude=m.data,  # the old positives left out of the sample are still positives
        )
        # The item-item term keeps its weight; its EASE model is refitted on all the data (closed form).
        ease = model._item_item_model(m.data, model.item_item_model_.l2) if model.item_item_ > 0 else None
        seconds = time.perf_counter() - t0
        item_item = (model.item_item_, ease, model.item_item_table_)
        model._set_fitted(module, m.data, {"update": res.to_dict()}, res.best_epoch, None, seconds, item_item)
        note = "; item-item term (EASE) refitted on all the data" if ease is not None else ""
        return f"continued training: {epochs} epochs on the new interactions and {take} sampled old ones{note}"

    return apply_update(model, new, body, uses_recency=recency is not None)


# -- shared by every model ----------------------------------------------------------------------
def apply_update(model: Any, new: Interactions, body: Callable[[Merged], str], *, uses_recency: bool) -> Any:
    """Merge ``new`` into ``model``'s data, let ``body`` fit the model's new state from the merged
    data (it returns a one-line account of how), time it and record it; return ``model``.

    ``body`` must leave the model unchanged when it raises, and set ``train_`` to ``merged.data``.
    """
    model.check_fitted()
    t0 = time.perf_counter()
    base_fp = model.train_.fingerprint()
    m = merge(model.train_, new, uses_recency=uses_recency)
    how = body(m)
    seconds = time.perf_counter() - t0
    model.fit_seconds_ = seconds
    _record(model, base_fp, new, m, seconds, how)
    return model


def grow_rows(a: Any, n: int, rng: np.random.Generator, *, fill: float | None = None, scale: float = 0.0) -> np.ndarray:
    """``a`` (rows x k, or a vector; numpy or torch) with rows appended up to ``n``: ``fill`` when
    given, else uniform noise in ``[-scale/2, scale/2)``."""
    arr = np.asarray(a.numpy() if isinstance(a, torch.Tensor) else a, dtype=np.float32)
    extra = n - arr.shape[0]
    if extra <= 0:
        return arr.copy()
    shape = (extra, *arr.shape[1:])
    more = np.full(shape, fill, np.float32) if fill is not None else (rng.random(shape) - 0.5) * scale
    return np.concatenate([arr, more.astype(np.float32)])


def fit_seed(model: Any) -> int:
    """The seed an update of a library model uses: the fit's, else the configured one, else 0."""
    seed = getattr(model, "seed_", None)
    seed = getattr(model, "seed", None) if seed is None else seed
    return int(seed or 0)
