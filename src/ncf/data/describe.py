"""Summary statistics of an :class:`Interactions` (``ncf data describe``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from ncf.data.interactions import Interactions

__all__ = ["describe", "format_description"]

_QUANTILES = (("min", 0.0), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("max", 1.0))
_MAX_EXACT_RATING_VALUES = 20
_HIST_BINS = 10


def _count_stats(counts: np.ndarray) -> dict[str, float] | None:
    if counts.size == 0:
        return None
    q = np.quantile(counts, [p for _, p in _QUANTILES])
    out = {name: float(v) for (name, _), v in zip(_QUANTILES, q, strict=True)}
    out["mean"] = float(counts.mean())
    return out


def _rating_histogram(ratings: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(ratings, return_counts=True)
    if len(values) <= _MAX_EXACT_RATING_VALUES:
        return {f"{v:g}": int(c) for v, c in zip(values, counts, strict=True)}
    hist, edges = np.histogram(ratings, bins=_HIST_BINS)
    keys = [f"[{a:g}, {b:g})" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    keys[-1] = keys[-1][:-1] + "]"
    return {k: int(c) for k, c in zip(keys, hist, strict=True)}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(data: Interactions) -> dict[str, Any]:
    """Size, sparsity and distribution statistics of interactions.

    Parameters
    ----------
    data:
        The interactions to describe.

    Returns
    -------
    dict
        JSON-serialisable: ``users``, ``items`` (sizes of the id maps), ``interactions``,
        ``density`` (interactions / (users * items)), ``active_users``/``active_items``
        (with at least one interaction), ``user_counts``/``item_counts`` (min, 25%, 50%,
        75%, max and mean interactions per active user/item, or ``None`` when empty),
        ``ratings`` (``{value: count}`` histogram, binned when there are more than 20
        distinct values, plus ``rating_mean``) when ratings are known, and ``timestamps``
        (``min``/``max`` epoch seconds and their UTC dates) when timestamps are known.
    """
    n_users, n_items, n = data.n_users, data.n_items, len(data)
    user_counts = data.user_counts
    item_counts = data.item_counts
    active_u = user_counts[user_counts > 0]
    active_i = item_counts[item_counts > 0]
    out: dict[str, Any] = {
        "users": int(n_users),
        "items": int(n_items),
        "interactions": int(n),
        "density": float(n / (n_users * n_items)) if n_users and n_items else 0.0,
        "active_users": int(active_u.size),
        "active_items": int(active_i.size),
        "user_counts": _count_stats(active_u),
        "item_counts": _count_stats(active_i),
    }
    if data.ratings is not None:
        r = np.asarray(data.ratings, dtype=np.float64)
        out["ratings"] = _rating_histogram(r) if r.size else {}
        out["rating_mean"] = float(r.mean()) if r.size else None
    if data.timestamps is not None and len(data.timestamps):
        t = np.asarray(data.timestamps, dtype=np.float64)
        lo, hi = float(t.min()), float(t.max())
        out["timestamps"] = {"min": lo, "max": hi, "min_utc": _iso(lo), "max_utc": _iso(hi)}
    if "source" in data.report:
        out["source"] = str(data.report["source"])
    return out


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def format_description(d: dict[str, Any]) -> str:
    """Human-readable multi-line text of a :func:`describe` result.

    Parameters
    ----------
    d:
        A dict returned by :func:`describe` (missing keys are skipped).

    Returns
    -------
    str
        Aligned ``label  value`` lines, no trailing newline.
    """
    rows: list[tuple[str, str]] = []
    if "source" in d:
        rows.append(("source", d["source"]))
    for key in ("users", "items", "interactions"):
        if key in d:
            extra = ""
            active = d.get(f"active_{key}")
            if active is not None and active != d[key]:
                extra = f" ({active:,} with interactions)"
            rows.append((key, f"{d[key]:,}{extra}"))
    if "density" in d:
        rows.append(("density", f"{d['density']:.4%}"))
    for key, label in (("user_counts", "per user"), ("item_counts", "per item")):
        stats = d.get(key)
        if stats:
            parts = [f"{name} {_num(stats[name])}" for name, _ in _QUANTILES]
            parts.append(f"mean {stats['mean']:,.1f}")
            rows.append((label, "  ".join(parts)))
    hist = d.get("ratings")
    if hist:
        total = sum(hist.values()) or 1
        rows.append(("ratings", "  ".join(f"{k}: {c:,} ({c / total:.1%})" for k, c in hist.items())))
        if d.get("rating_mean") is not None:
            rows.append(("rating mean", f"{d['rating_mean']:.3f}"))
    ts = d.get("timestamps")
    if ts:
        rows.append(("time range", f"{ts['min_utc']} .. {ts['max_utc']}"))
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
