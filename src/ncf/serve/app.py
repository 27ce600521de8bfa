"""The HTTP service: ``create_app(bundle_path)`` builds a FastAPI app over one saved model.

Design
------
* The model lives in one :class:`LoadedModel` held by :class:`ModelHolder`. A request reads
  ``holder.current`` once and uses only that object, so a reload (``POST /v1/admin/reload``
  or SIGHUP) that swaps the reference never changes the model under a running request:
  in-flight requests finish on the old one, later ones see the new one. The new bundle is
  read in a worker thread; a bundle that fails to load leaves the old model serving.
* Everything derived from the bundle (item metadata per id, the /v1/model document) is
  computed at load time, so the request path is one ``recommend`` call plus JSON.
* One pure-ASGI middleware does auth, the body-size limit, access logs, Prometheus metrics
  and the last-resort 500: no request can take the worker down.
* Handlers are ``async`` and score inline: a single-user top-k on a MovieLens-sized model
  takes about a millisecond, less than a hop to the thread pool would cost. Fold-in work
  (visitor histories, ``explain``) is more than that (NCF fits a user vector per history, and
  an explanation one per history item), so it runs in a worker thread, under a per-model lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as _dt
import hmac
import logging
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import pandas as pd
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ncf._version import __version__
from ncf.base import Recommender
from ncf.checks import check_int
from ncf.data.ids import IdMap, id_text_problem
from ncf.errors import BundleError, ConfigError, DataError, NcfError, UnknownIdError, one_line
from ncf.serve import schemas as S
from ncf.serve.metrics import Metrics

__all__ = ["LoadedModel", "ModelHolder", "create_app", "app_from_env"]

log = logging.getLogger("ncf.serve")
access_log = logging.getLogger("ncf.serve.access")

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_BODY_TIMEOUT = 30.0  # seconds from the first read of a request body to its last byte
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Paths that answer without a key: liveness, and static pages that carry no model data
# (the explorer asks for the key itself; Swagger UI has its own "Authorize" button).
OPEN_PATHS = frozenset({"/health", "/", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/favicon.ico"})
ADMIN_PREFIX = "/v1/admin/"

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


# -- errors ------------------------------------------------------------------------------------
class ApiError(Exception):
    """An error answered as ``{"error": code, "message": message, ...}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj, default=_json_default)
    except TypeError:  # a lone surrogate or an int beyond 64 bits slipped through: escape it, never a 500
        import json

        return json.dumps(obj, default=_json_default, ensure_ascii=True).encode("ascii")


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(obj), status_code=status, media_type="application/json", headers=headers)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _error_body(code: str, message: str, **extra: Any) -> bytes:
    return _dumps({"error": code, "message": message, **extra})


def _validation_message(exc: RequestValidationError) -> str:
    parts: list[str] = []
    errors: list[dict[str, Any]] = []
    seen_union: set[tuple[str, ...]] = set()
    for e in exc.errors():
        loc = tuple(str(x) for x in e.get("loc", ()))
        # The arms of a union (an id: StrictInt | StrictStr; a time: StrictInt | StrictFloat): one message.
        if loc and loc[-1] in ("int", "str", "float"):
            if loc[:-1] in seen_union:
                continue
            seen_union.add(loc[:-1])
            what = "timestamps must be numbers" if "timestamps" in loc else "ids must be integers or strings"
            e = {"loc": loc[:-1], "msg": f"{what}, got {e.get('input')!r}", "type": "union"}
        errors.append(e)
    for e in errors[:5]:
        loc = [str(x) for x in e.get("loc", ())]
        where = loc[0] if loc else "request"
        field = ".".join(loc[1:])
        if e.get("type") == "json_invalid":
            parts.append(f"request body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')})")
            continue
        if where == "body" and not field and e.get("type") in ("model_attributes_type", "dict_type"):
            parts.append("request body must be a JSON object sent with Content-Type: application/json")
            continue
        if where == "body" and not field and e.get("type") == "missing":
            parts.append("request body is missing; send a JSON object (Content-Type: application/json)")
            continue
        label = {"query": "query parameter", "path": "path parameter", "body": "body field"}.get(where, where)
        if where == "body" and not field:
            label = "request body"  # a rule across fields (e.g. users or histories)
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{label} {field!r}: {msg}" if field else f"{label}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


# -- the loaded model ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class LoadedModel:
    """One loaded bundle and everything derived from it for the request path."""

    model: Recommender
    path: Path
    info: dict[str, Any]
    item_meta: dict[Any, dict[str, Any]]  # raw item id -> {"title", "year", "genres"} (empty without metadata)
    generation: int
    # Per-user top-N (seen items filtered) for this model only, filled by the first request for a
    # user: later common requests (k <= N, filter_seen, no exclude) are a row slice, not a scoring
    # pass. It lives and dies with this LoadedModel, so a reload can never serve stale rows.
    top_n: int = 0
    top_cache: dict[int, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    # Item search (GET /v1/items?q=): raw ids, most popular in training first, and the text each
    # is found by (its title, else its id), lower-cased once here.
    search_ids: list[Any] = dataclasses.field(default_factory=list)
    search_text: list[str] = dataclasses.field(default_factory=list)
    # Fold-in (histories, explain) runs in worker threads, one at a time per model: each call
    # already uses every core torch has, so running two at once only makes both slower.
    fold_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _bundle_header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    from ncf.persist import bundle_file

    try:
        with safe_open(str(bundle_file(path)), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception:  # noqa: BLE001 - load_model already gave the precise error; this is display only
        return {}


def _item_metadata(model: Recommender) -> dict[Any, dict[str, Any]]:
    md = model.train_.item_metadata
    if md is None or len(md) == 0:
        return {}
    md = md[md.index.isin(model.item_map_.ids)]
    cols: dict[str, list[Any]] = {}
    if "title" in md.columns:
        cols["title"] = [None if pd.isna(t) else str(t) for t in md["title"].tolist()]
    if "year" in md.columns:
        cols["year"] = [_year(y) for y in md["year"].astype(object).tolist()]
    if "genres" in md.columns:
        cols["genres"] = [
            [g for g in str(x).split("|") if g] if isinstance(x, str) else [] for x in md["genres"].tolist()
        ]
    keys = md.index.to_numpy().tolist()
    # Done once per load (n_items dicts), never per request.
    return {k: {c: v[j] for c, v in cols.items()} for j, k in enumerate(keys)}


def _year(y: Any) -> int | None:
    """A year for display: a whole number, else None (item metadata is free-form: never fail a load on it)."""
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool) and -(2**31) <= y < 2**31:
        return int(y)
    if isinstance(y, (float, np.floating)) and np.isfinite(y) and float(y).is_integer() and abs(y) < 2**31:
        return int(y)
    return None


DEFAULT_CACHE_TOP = 100
MAX_CACHED_USERS = 100_000  # rows per model (~1.3 KB each at N=100, int ids: ~130 MB); starts over beyond this


def load_state(path: str | os.PathLike[str], generation: int = 1, cache_top: int = DEFAULT_CACHE_TOP) -> LoadedModel:
    """Load a bundle with :func:`ncf.loading.load_model` and derive what requests need (metadata, info)."""
    from ncf.loading import load_model

    p = Path(path)
    model = load_model(p)
    top_n = min(int(cache_top), model.train_.n_items)
    header = _bundle_header(p)
    extra = dict(getattr(model, "bundle_extra_", {}) or {})
    params = model.get_params() if hasattr(model, "get_params") else {}
    train = model.train_
    info = {
        "model_class": header.get("model_class", type(model).__name__),
        "model": params.get("model", type(model).__name__.lower()),
        "params": params,
        "created": extra.get("created") or None,
        "data_fingerprint": extra.get("data_fingerprint"),
        "validation_metrics": extra.get("validation_metrics", {}),
        "best_epoch": extra.get("best_epoch"),
        "fit_seconds": extra.get("fit_seconds"),
        "leaderboard": extra.get("leaderboard"),  # ncf train --model auto: every candidate, and why it won
        # a blend's components and weights (ncf.blend, --model auto), or an NCF model's item-item term
        "blend": extra.get("blend") or extra.get("item_item"),
        "format": header.get("format"),
        "format_version": int(header["format_version"]) if header.get("format_version", "").isdigit() else None,
        "ncf_version": header.get("ncf_version"),
        "n_users": train.n_users,
        "n_items": train.n_items,
        "n_train_interactions": len(train),
        "user_id_type": model.user_map_.kind,
        "item_id_type": model.item_map_.kind,
        "item_metadata": train.item_metadata is not None,
        "similar_items": type(model).item_vectors is not Recommender.item_vectors,
        # histories and explain (a blend: when its components weigh a history alike)
        "fold_in": type(model).history_scores is not Recommender.history_scores and getattr(model, "folds_in", True),
        "bundle": str(p),
        "loaded_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
        "generation": generation,
        "cached_top": top_n,
    }
    info = orjson.loads(orjson.dumps(info, default=_json_default))  # JSON-safe once, here
    meta = _item_metadata(model)
    by_popularity = model.item_map_.raw(np.argsort(-train.item_counts, kind="stable")).tolist()
    text = [str((meta.get(i) or {}).get("title") or i).casefold() for i in by_popularity]
    return LoadedModel(model, p, info, meta, generation, top_n, search_ids=by_popularity, search_text=text)


class ModelHolder:
    """Holds the current :class:`LoadedModel`; :meth:`reload` swaps it in one assignment."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        preload: bool = True,
        cache_top: int = DEFAULT_CACHE_TOP,
        counts: Counter[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.cache_top = cache_top
        self.current: LoadedModel | None = load_state(self.path, 1, cache_top) if preload else None
        self.counts: Counter[str] = counts if counts is not None else Counter()  # reloads by result: ok / failed
        self._lock = threading.Lock()  # reloads run in threads (admin endpoint, SIGHUP): one at a time

    def get(self) -> LoadedModel:
        cur = self.current
        if cur is None:
            raise ApiError(503, "not_ready", "the model is still loading; retry shortly (GET /ready says when)")
        return cur

    def reload(self, path: str | os.PathLike[str] | None = None) -> LoadedModel:
        """Load ``path`` (default: the current bundle again) and swap it in; on error keep the old model."""
        with self._lock:
            target = Path(path) if path is not None else self.path
            gen = (self.current.generation if self.current else 0) + 1
            try:
                new = load_state(target, gen, self.cache_top)  # raises BundleError: nothing is swapped
            except BaseException:
                self.counts["failed"] += 1
                raise
            self.current = new  # the atomic swap: one reference assignment
            self.path = target
            self.counts["ok"] += 1
            return new


# -- id handling --------------------------------------------------------------------------------
def _coerce(m: IdMap, values: list[Any], field: str) -> list[Any]:
    """Raw ids from a URL or JSON body, checked and matched to the map's type: the one place for request ids.

    Text that can be no id (a lone surrogate, a control character such as NUL, only spaces or
    invisible characters) is a 422 naming ``field``; everything else goes through
    :meth:`IdMap.coerce` (``"196"`` -> 196 for int ids, by ASCII digits only; ints beyond
    int64 stay text), so an odd id is an unknown id (404), never a different one.
    """
    for v in values:
        if isinstance(v, str):
            problem = id_text_problem(v)
            if problem is not None:
                raise ApiError(422, "invalid_request", f"{field}: id {v!r} {problem}")
    return m.coerce(values)


def _index(m: IdMap, ids: list[Any]) -> np.ndarray:
    """Indices of coerced request ids, -1 for unknown ones, each id on its own merits.

    (``IdMap.index`` types a list as a whole: one text id among int ids would make every id
    of the list unknown.)
    """
    want_int = m.kind == "int"
    fits = np.fromiter((isinstance(v, int) == want_int for v in ids), dtype=bool, count=len(ids))
    idx = np.full(len(ids), -1, dtype=np.int64)
    if fits.any():
        idx[fits] = m.index([v for v, f in zip(ids, fits) if f], missing="negative")
    return idx


def _items_out(
    lm: LoadedModel, ids: np.ndarray, scores: np.ndarray | None, because: list[list[dict]] | None = None
) -> list[dict[str, Any]]:
    """Response items for one row of raw ids (None padding dropped), with metadata when known.

    ``because`` (with explain): one list of reasons per non-padding id, in order.
    """
    ids_l = ids.tolist()
    meta = lm.item_meta
    empty: dict[str, Any] = {}
    if scores is None:
        return [{"id": i, **meta.get(i, empty)} for i in ids_l if i is not None]
    # Padding (fewer rankable items than k) comes as id None with score -inf (ncf.ranking.topk).
    out = [{"id": i, "score": s, **meta.get(i, empty)} for i, s in zip(ids_l, scores.tolist()) if i is not None]
    if because is not None:
        for item, reasons in zip(out, because, strict=True):
            item["because"] = reasons
    return out


def _reasons(lm: LoadedModel, who: Any, ids: np.ndarray) -> list[list[dict[str, Any]]]:
    """``because`` for one row: a raw user id or a list of known raw item ids (a history) -> reasons per item.

    Runs in a worker thread (explanations cost a scoring pass per recommended item).
    """
    items = [i for i in ids.tolist() if i is not None]
    if not items:
        return []
    meta = lm.item_meta
    with lm.fold_lock:
        explained = lm.model.explain(who, items, n=S.EXPLAIN_N)
    return [
        [{"item": h, "title": (meta.get(h) or {}).get("title"), "weight": float(w)} for h, w in why]
        for why in explained
    ]


def _recommend(
    lm: LoadedModel, users: list[Any], k: int, filter_seen: bool, exclude: list[Any], fallback: str, where: str = "body"
):
    m = lm.model
    users = _coerce(m.user_map_, users, "path parameter 'user_id'" if where == "path" else "body field 'users'")
    excl = None
    if exclude:
        excl = _coerce(m.item_map_, exclude, f"{'query parameter' if where == 'path' else 'body field'} 'exclude'")
    uidx = m.user_map_.index(users, missing="negative")
    known = uidx >= 0
    if fallback == "none" and not known.all():
        unknown = [u for u, ok in zip(users, known) if not ok]
        try:
            m.user_map_.index(unknown)
        except UnknownIdError as e:
            raise ApiError(
                404,
                "unknown_id",
                f"{e.message}; pass fallback=popular to get popular items instead",
                kind="user",
                ids=e.ids[:100],
            ) from None
    if lm.top_n and filter_seen and not excl and k <= lm.top_n and known.all():
        cache = lm.top_cache
        order = uidx.tolist()
        missing = [u for u in dict.fromkeys(order) if u not in cache]
        if missing:  # one batched scoring pass for the users not seen since this model was loaded
            if len(cache) + len(missing) > MAX_CACHED_USERS:
                cache.clear()
            ids_m, sc_m = m.recommend(m.user_map_.raw(np.asarray(missing)), k=lm.top_n)
            cache.update(zip(missing, zip(ids_m, sc_m)))
        rows = [cache[u] for u in order]
        return users, known, np.stack([r[0][:k] for r in rows]), np.stack([r[1][:k] for r in rows])
    ids, scores = m.recommend(users, k=k, filter_seen=filter_seen, exclude=excl, unknown="popular")  # a list: 2-D
    return users, known, ids, scores


def _need_fold_in(lm: LoadedModel, what: str) -> None:
    """501 when the model cannot score a history (``history_scores``): no histories, no explanations."""
    if not lm.info["fold_in"]:
        raise ApiError(
            501,
            "not_supported",
            f"{lm.info['model_class']} models cannot score item histories yet, so '{what}' is not available; "
            "serve a model whose GET /v1/model says fold_in: true",
        )


def _explain_budget(sizes: list[tuple[str, int]]) -> None:
    """422 when the histories to explain in one request hold more than ``MAX_EXPLAIN_ITEMS`` items together.

    ``sizes``: (what, number of items) per explained row. An explanation scores its history once
    per item in it, left out (for NCF: one fold-in each), so this bounds one request's work.
    """
    total = sum(n for _, n in sizes)
    if total > S.MAX_EXPLAIN_ITEMS:
        big = ", ".join(f"{w} has {n}" for w, n in sorted(sizes, key=lambda x: -x[1])[:3])
        raise ApiError(
            422,
            "invalid_request",
            f"explain takes at most {S.MAX_EXPLAIN_ITEMS} history items per request, got {total} ({big}); "
            "explain fewer or shorter histories, or ask without explain",
        )


def _history_inputs(
    lm: LoadedModel, histories: list[S.HistoryIn]
) -> tuple[list[list[Any]], list[list[float] | None], list[list[Any]]]:
    """Each history's known items (with their times) and its unknown ones; 404 for a history with no known item.

    One convention with unknown users: an id the model has never seen is 404 ``unknown_id``.
    A history whose items are all unknown is such a case (``kind: item``, the ids, and the
    ``histories`` at fault); some unknown items are only reported (``unknown_items``).
    """
    m = lm.model
    known_rows: list[list[Any]] = []
    times: list[list[float] | None] = []
    unknown_rows: list[list[Any]] = []
    hopeless: list[tuple[Any, list[Any]]] = []
    for j, h in enumerate(histories):
        items = _coerce(m.item_map_, list(h.items), f"body field 'histories.{j}.items'")
        ok = _index(m.item_map_, items) >= 0
        known_rows.append([i for i, k in zip(items, ok) if k])
        unknown_rows.append(list(dict.fromkeys(i for i, k in zip(items, ok) if not k)))
        times.append(None if h.timestamps is None else [float(t) for t, k in zip(h.timestamps, ok) if k])
        if not ok.any():
            hopeless.append((h.id if h.id is not None else j, unknown_rows[-1]))
    if hopeless:
        names = ", ".join(repr(n) for n, _ in hopeless[:10]) + (" (and more)" if len(hopeless) > 10 else "")
        ids = [i for _, bad in hopeless for i in bad]
        raise ApiError(
            404,
            "unknown_id",
            f"{'history' if len(hopeless) == 1 else 'histories'} {names} "
            f"{'has' if len(hopeless) == 1 else 'have'} no item the model knows ({UnknownIdError('item', ids).message}); "
            "send at least one item id the model was trained on",
            kind="item",
            ids=ids[:100],
            histories=[n for n, _ in hopeless][:100],
        )
    return known_rows, times, unknown_rows


def _recommend_histories(
    lm: LoadedModel,
    histories: list[S.HistoryIn],
    inputs: tuple[list[list[Any]], list[list[float] | None], list[list[Any]]],
    k: int,
    filter_seen: bool,
    excl: list[Any] | None,
    explain: bool,
) -> list[dict[str, Any]]:
    """Result rows for visitor histories (fold-in: no retraining), from :func:`_history_inputs`.

    Runs in a worker thread: folding in and explaining a batch of histories is more than the
    millisecond a cached user row costs.
    """
    known, times, unknown = inputs
    ids = np.empty((len(known), k), dtype=object)
    scores = np.empty((len(known), k), dtype=np.float32)
    # Histories with times and those without are scored apart: without times every item weighs
    # the same, which no made-up time (all equal: ties by item index) would give a recency model.
    for timed in (False, True):
        rows_j = [j for j, t in enumerate(times) if (t is not None) == timed]
        if not rows_j:
            continue
        with lm.fold_lock:
            ids[rows_j], scores[rows_j] = lm.model.recommend_history(
                [known[j] for j in rows_j],
                k=k,
                timestamps=[times[j] for j in rows_j] if timed else None,
                filter_seen=filter_seen,
                exclude=excl,
            )
    rows = []
    for j, h in enumerate(histories):
        because = _reasons(lm, known[j], ids[j]) if explain else None
        rows.append(
            {"history": h.id, "unknown_items": unknown[j], "k": k, "items": _items_out(lm, ids[j], scores[j], because)}
        )
    return rows


# -- middleware -----------------------------------------------------------------------------------
def _host_name(value: str) -> str:
    """The host of a Host header, lower-case, without the port: "[::1]:8000" -> "::1", "LocalHost:80" -> "localhost"."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_host_set(hosts: str | Any | None) -> frozenset[str] | None:
    """``--allowed-hosts``: a comma-separated string or a list; None or "*" lets any Host through."""
    if hosts is None:
        return None
    items = [h.strip().lower() for h in (hosts.split(",") if isinstance(hosts, str) else hosts) if h.strip()]
    if not items or "*" in items:
        return None
    return frozenset(_host_name(h) if not h.startswith("*.") else h for h in items)


class ServiceMiddleware:
    """Auth, body-size limit, access log, metrics and the last-resort 500, as one pure-ASGI layer."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str | None,
        max_body_bytes: int,
        metrics: Metrics,
        allowed_hosts: frozenset[str] | None = None,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body = max_body_bytes
        self.metrics = metrics
        self.allowed_hosts = allowed_hosts  # None: any Host
        self.body_timeout = body_timeout

    def _host_error(self, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        """DNS rebinding: a page from evil.example resolving to 127.0.0.1 still says Host: evil.example."""
        if self.allowed_hosts is None or b"host" not in headers:  # HTTP/1.0 without Host: no browser sends that
            return None
        host = _host_name(headers[b"host"].decode("latin-1"))
        if host in self.allowed_hosts or any(a.startswith("*.") and host.endswith(a[1:]) for a in self.allowed_hosts):
            return None
        shown = ", ".join(sorted(self.allowed_hosts))
        return (
            400,
            "invalid_host",
            f"Host {headers[b'host'].decode('latin-1')[:100]!r} is not served here "
            f"(allowed: {shown}); start the server with --allowed-hosts to add it",
        )

    async def _send_error(self, send: Any, status: int, code: str, message: str, headers: list | None = None) -> None:
        body = _error_body(code, message)
        hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": hdrs + (headers or [])})
        await send({"type": "http.response.body", "body": body})

    async def _send_timeout(self, send: Any, rid_header: tuple[bytes, bytes]) -> None:
        await self._send_error(
            send,
            408,
            "request_timeout",
            f"the request body did not arrive within {self.body_timeout:g} s; send it at once",
            [rid_header, (b"connection", b"close")],
        )

    async def _send_too_big(self, send: Any, rid_header: tuple[bytes, bytes]) -> None:
        await self._send_error(
            send,
            413,
            "payload_too_large",
            f"request body is over the {self.max_body}-byte limit; send smaller batches",
            [rid_header],
        )

    def _auth_error(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        admin = path.startswith(ADMIN_PREFIX)
        if self.api_key is None:
            if admin:
                return (
                    403,
                    "forbidden",
                    "admin endpoints are disabled: start the server with --api-key KEY "
                    "(or NCF_API_KEY) and send 'Authorization: Bearer KEY'; SIGHUP also reloads",
                )
            return None
        if path in OPEN_PATHS and not admin:
            return None
        auth = headers.get(b"authorization", b"")
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return (401, "unauthorized", "this server needs an API key: send the header 'Authorization: Bearer KEY'")
        if not hmac.compare_digest(token.strip(), self.api_key):
            return (401, "unauthorized", "wrong API key in 'Authorization: Bearer ...'")
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        path = scope.get("path", "")
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex[:16]
        state: dict[str, Any] = {"status": 500, "started": False, "too_big": False, "timed_out": False}
        rid_header = (b"x-request-id", rid.encode("latin-1"))

        async def send_wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                if state["too_big"]:  # the app answered a truncated body: answer 413 instead
                    state["started"] = True
                    state["status"] = 413
                    await self._send_too_big(send, rid_header)
                    return
                if state["timed_out"]:  # the app gave up on a body that never finished: 408, and close
                    state["started"] = True
                    state["status"] = 408
                    await self._send_timeout(send, rid_header)
                    return
                state["status"] = message["status"]
                state["started"] = True
                message = dict(message)
                message["headers"] = [*message.get("headers", []), rid_header]
            elif state["too_big"] or state["timed_out"]:
                return
            await send(message)

        received = 0
        body_done = False
        deadline: float | None = None

        async def receive_limited() -> dict[str, Any]:
            nonlocal received, body_done, deadline
            if body_done or not self.body_timeout:
                message = await receive()  # after the body: the app waits for a disconnect, no deadline
            else:
                loop = asyncio.get_running_loop()
                deadline = deadline if deadline is not None else loop.time() + self.body_timeout
                try:
                    message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    state["timed_out"] = True
                    return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_body:
                    state["too_big"] = True
                    return {"type": "http.disconnect"}
            return message

        self.metrics.in_flight += 1
        try:
            err = self._host_error(headers) or self._auth_error(path, headers)
            length = headers.get(b"content-length")
            if err is None and length is not None:
                try:
                    too_long = int(length) > self.max_body
                except ValueError:
                    err = (400, "invalid_request", "Content-Length header is not an integer")
                    too_long = False
                if too_long:
                    err = (
                        413,
                        "payload_too_large",
                        f"request body of {int(length)} bytes is over the {self.max_body}-byte limit; send smaller batches",
                    )
            if err is not None:
                state["status"] = err[0]
                extra = [(b"www-authenticate", b"Bearer")] if err[0] == 401 else []
                await self._send_error(send, err[0], err[1], err[2], [rid_header, *extra])
            else:
                await self.app(scope, receive_limited, send_wrapped)
        except Exception:  # noqa: BLE001 - the last resort: log it, answer 500, keep the worker alive
            if state["timed_out"] and not state["started"]:  # the app gave up on a body that never finished
                state["status"] = 408
                await self._send_timeout(send, rid_header)
                return
            if state["too_big"] and not state["started"]:  # the app gave up on the body we cut off
                state["status"] = 413
                await self._send_too_big(send, rid_header)
                return
            log.exception("unhandled error in %s %s (request id %s)", scope.get("method"), path, rid)
            if not state["started"]:
                state["status"] = 500
                await self._send_error(
                    send,
                    500,
                    "internal",
                    f"internal error (request id {rid}); the server log has the details",
                    [rid_header],
                )
        finally:
            self.metrics.in_flight -= 1
            dt = time.perf_counter() - t0
            route = scope.get("route")
            label = getattr(route, "path", None) or ("unmatched" if state["status"] == 404 else "other")
            self.metrics.observe(scope.get("method", ""), label, state["status"], dt)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client") or ("", 0)
                access_log.info(
                    orjson.dumps(
                        {
                            "ts": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"),
                            "event": "access",
                            "method": scope.get("method"),
                            "path": path,
                            "query": scope.get("query_string", b"").decode("latin-1")[:200],
                            "route": label,
                            "status": state["status"],
                            "duration_ms": round(dt * 1000, 3),
                            "client": client[0],
                            "request_id": rid,
                        }
                    ).decode()
                )


# -- the app -----------------------------------------------------------------------------------------
def _page() -> str:
    return resources.files("ncf.serve").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(
    bundle_path: str | os.PathLike[str],
    *,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    preload: bool = True,
    handle_sighup: bool = True,
    cache_top: int = DEFAULT_CACHE_TOP,
    allowed_hosts: str | list[str] | None = None,
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
) -> FastAPI:
    """Build the FastAPI app serving the bundle at ``bundle_path``.

    Parameters
    ----------
    bundle_path:
        A folder written by ``save()`` / ``ncf train --out`` (NCF or any baseline).
    api_key:
        When set, every endpoint except ``/health`` and the static pages needs
        ``Authorization: Bearer KEY``. Admin endpoints always need it (without a key they are off).
    max_body_bytes:
        Larger request bodies get 413.
    preload:
        Load the bundle now (default; a bad bundle raises :class:`~ncf.errors.BundleError` here).
        ``False`` loads it at start-up, in a thread; ``/ready`` answers 503 until it is in.
    handle_sighup:
        Reload on SIGHUP (only where the app runs in the main thread's event loop).
    cache_top:
        Keep each user's top-N per loaded model once a request has scored it, so later
        requests with ``k <= N``, ``filter_seen`` and no ``exclude`` are a lookup; 0 scores
        every request live. Answers are identical either way; a reload starts a fresh cache.
    allowed_hosts:
        Host header names answered (comma-separated or a list; ``*.example.com`` matches
        subdomains); any other Host gets 400 ``invalid_host``, which stops DNS-rebinding pages.
        ``None`` or ``"*"`` (the library default): any Host. ``ncf serve`` on a loopback address
        defaults to ``localhost,127.0.0.1,::1``.
    body_timeout:
        Seconds from the first read of a request body to its last byte; a body still
        incomplete then gets 408 and the connection is closed. ``None`` or 0: no limit.
    """
    check_int("max_body_bytes", max_body_bytes, 1024)
    check_int("cache_top", cache_top, 0, hint="0 turns the cache off")
    if body_timeout is not None and (
        isinstance(body_timeout, bool) or not isinstance(body_timeout, (int, float)) or not body_timeout >= 0
    ):
        raise ConfigError(f"body_timeout == {body_timeout!r}, must be a number of seconds >= 0 (0: no limit)")
    metrics = Metrics()
    holder = ModelHolder(bundle_path, preload=preload, cache_top=cache_top, counts=metrics.reloads)
    page = _page()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if holder.current is None:
            loop.run_in_executor(None, _reload_logged, None, "startup")
        if handle_sighup and hasattr(signal, "SIGHUP"):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(
                    signal.SIGHUP, lambda: loop.run_in_executor(None, _reload_logged, None, "sighup")
                )
        yield
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)

    def _reload_logged(path: str | None, reason: str) -> LoadedModel | None:
        try:
            lm = holder.reload(path)
        except Exception as e:  # noqa: BLE001 - runs in a thread nobody awaits: log every failure, keep serving
            log.error(
                "reload (%s) failed, still serving the previous model: %s",
                reason,
                e,
                exc_info=not isinstance(e, NcfError),
            )
            return None
        log.info("reloaded (%s) %s: generation %d", reason, lm.path, lm.generation)
        return lm

    app = FastAPI(
        title="ncf recommendations",
        version=__version__,
        description="Top-k recommendations, similar items and scores from a saved ncf model. "
        "Raw ids in and out; errors are JSON `{error, message}`.",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.metrics = metrics
    app.add_middleware(
        ServiceMiddleware,
        api_key=api_key,
        max_body_bytes=max_body_bytes,
        metrics=metrics,
        allowed_hosts=allowed_host_set(allowed_hosts),
        body_timeout=body_timeout or None,
    )

    _add_error_handlers(app)
    errors: dict[int | str, dict[str, Any]] = {
        s: {"model": S.Error, "description": d}
        for s, d in ((401, "missing or wrong API key"), (404, "unknown id"), (422, "invalid parameters or body"))
    }

    _add_ops_routes(app, holder, metrics)
    _add_recommend_routes(app, holder, errors)
    _add_explore_routes(app, holder, errors)
    _add_admin_routes(app, holder)
    _add_pages(app, page)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is JSON ``{"error": code, "message": one line}``."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _json({"error": exc.code, "message": exc.message, **exc.extra}, exc.status)

    @app.exception_handler(UnknownIdError)
    async def _unknown(request: Request, exc: UnknownIdError) -> Response:
        return _json({"error": "unknown_id", "message": exc.message, "kind": exc.kind, "ids": exc.ids[:100]}, 404)

    @app.exception_handler(NcfError)
    async def _ncf_error(request: Request, exc: NcfError) -> Response:
        status = 422 if isinstance(exc, (ConfigError, DataError)) else 409 if isinstance(exc, BundleError) else 400
        code = "reload_failed" if isinstance(exc, BundleError) else "invalid_request"
        return _json({"error": code, "message": str(exc)}, status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _json({"error": "invalid_request", "message": _validation_message(exc)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer to a body json.loads cannot take: invalid UTF-8, nesting too deep, ...
            cause = exc.__cause__
            why = (
                "nested too deeply"
                if isinstance(cause, RecursionError)
                else "not valid UTF-8"
                if isinstance(cause, UnicodeDecodeError)
                else one_line(cause)[:200]
                if cause is not None
                else "unreadable"
            )
            return _json({"error": "invalid_request", "message": f"request body is not valid JSON ({why})"}, 422)
        if exc.status_code == 404:
            msg = f"no endpoint at {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            msg = f"{request.method} is not allowed on {request.url.path}; see /docs"
        else:
            msg = str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json({"error": code, "message": msg}, exc.status_code, headers=getattr(exc, "headers", None))


def _add_ops_routes(app: FastAPI, holder: ModelHolder, metrics: Metrics) -> None:
    """Liveness, readiness, the model description, Prometheus metrics."""

    @app.get("/health", tags=["ops"])
    async def health() -> Response:
        """Liveness: the process answers."""
        return _json({"status": "ok"})

    @app.get("/ready", tags=["ops"], responses={503: {"model": S.Error}})
    async def ready() -> Response:
        """Readiness: 200 once a model is loaded, else 503."""
        cur = holder.current
        if cur is None:
            return _json({"error": "not_ready", "message": "the model is still loading"}, 503)
        return _json({"status": "ready", "generation": cur.generation, "model_class": cur.info["model_class"]})

    @app.get("/v1/model", tags=["model"])
    async def model_info() -> Response:
        """Model type, hyper-parameters, created time, data fingerprint, validation metrics, format version."""
        return _json(holder.get().info)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus text exposition: request counts, latency histograms, reloads."""
        cur = holder.current
        return Response(metrics.render(cur.generation if cur else 0), media_type=Metrics.CONTENT_TYPE)


def _add_recommend_routes(app: FastAPI, holder: ModelHolder, errors: dict[int | str, dict[str, Any]]) -> None:
    """Recommendations for users, similar items, pair scores."""

    def _recs_row(
        lm: LoadedModel,
        user: Any,
        known: bool,
        k: int,
        ids: np.ndarray,
        scores: np.ndarray,
        because: list[list[dict]] | None = None,
    ) -> dict:
        return {
            "user": user,
            "known": bool(known),
            "fallback": "none" if known else "popular",
            "k": k,
            "items": _items_out(lm, ids, scores, because),
        }

    def _explained(lm: LoadedModel, users: list[Any], known: np.ndarray, ids: np.ndarray) -> list[list[list[dict]]]:
        """``because`` for each user row ([] per item for a popular-fallback row: there is no history).

        Runs in a worker thread, after :func:`_explain_budget`.
        """
        return [
            _reasons(lm, u, row) if kn else [[] for i in row.tolist() if i is not None]
            for u, kn, row in zip(users, known.tolist(), ids)
        ]

    def _user_sizes(lm: LoadedModel, users: list[Any], known: np.ndarray) -> list[tuple[str, int]]:
        """(what, training items) of each known user, for :func:`_explain_budget`."""
        kept = [u for u, kn in zip(users, known.tolist()) if kn]
        counts = lm.model.train_.user_counts[lm.model.user_map_.index(kept)].tolist() if kept else []
        return [(f"user {u!r}", int(c)) for u, c in zip(kept, counts)]

    no_fold_in = {501: {"model": S.Error, "description": "histories or explain on a model that cannot fold in"}}

    @app.get(
        "/v1/users/{user_id}/recommendations",
        tags=["recommend"],
        response_model=S.Recommendations,
        responses={**errors, **no_fold_in},
    )
    async def recommend_user(
        user_id: str,
        k: Annotated[int, Query(ge=1, le=S.MAX_K, description="items to return")] = 10,
        filter_seen: Annotated[bool, Query(description="leave out items seen in training")] = True,
        exclude: Annotated[str | None, Query(description="comma-separated raw item ids never to recommend")] = None,
        fallback: Annotated[
            S.Fallback, Query(description="'popular': popular items for an unknown user instead of 404")
        ] = "none",
        explain: Annotated[
            bool, Query(description=f"add 'because' to each item: up to {S.EXPLAIN_N} of the user's items behind it")
        ] = False,
    ) -> Response:
        """Top-k items for one user (raw ids; titles and genres when the bundle has them)."""
        lm = holder.get()
        excl = [e.strip() for e in exclude.split(",") if e.strip()] if exclude else []
        if len(excl) > S.MAX_EXCLUDE:
            raise ApiError(422, "invalid_request", f"query parameter 'exclude': at most {S.MAX_EXCLUDE} ids")
        if explain:
            _need_fold_in(lm, "explain")
        users, known, ids, scores = _recommend(lm, [user_id], k, filter_seen, excl, fallback, where="path")
        if explain:
            _explain_budget(_user_sizes(lm, users, known))
        because = (await asyncio.to_thread(_explained, lm, users, known, ids))[0] if explain else None
        return _json(_recs_row(lm, users[0], known[0], k, ids[0], scores[0], because))

    @app.post(
        "/v1/recommendations",
        tags=["recommend"],
        response_model=S.BatchRecommendations,
        responses={
            **errors,
            404: {
                "model": S.Error,
                "description": "an unknown user (without fallback=popular), an unknown excluded item, or a "
                "history none of whose items the model knows (`kind: item`, `ids`, `histories`); "
                "unknown items in a history that has known ones are only listed in its `unknown_items`",
            },
            422: {
                "model": S.Error,
                "description": "invalid body: e.g. no users and no histories, an empty history, "
                f"over {S.MAX_BATCH_USERS} rows or {S.MAX_HISTORY_ITEMS} items per history, wrong types",
            },
            **no_fold_in,
        },
    )
    async def recommend_batch(request: Request, body: S.BatchRecommendationsIn) -> Response:
        """Top-k items for up to 1,000 known users and visitor histories (items a visitor liked) in one call.

        A history is folded into the model without retraining; `unknown_items` lists its items
        the model has never seen (left out). `"explain": true` in the body adds `because` to each
        item: the user's or history's items behind it, with weights in [0, 1].
        """
        if "explain" in request.query_params:
            raise ApiError(
                422, "invalid_request", "query parameter 'explain': POST takes it in the body: {\"explain\": true}"
            )
        lm = holder.get()
        if body.histories or body.explain:
            _need_fold_in(lm, "histories" if body.histories else "explain")
        hist_inputs = _history_inputs(lm, list(body.histories)) if body.histories else None  # 404s before scoring
        users: list[Any] = []
        known = np.zeros(0, dtype=bool)
        ids = scores = np.zeros((0, body.k))
        if body.users:
            users, known, ids, scores = _recommend(
                lm, list(body.users), body.k, body.filter_seen, list(body.exclude), body.fallback
            )
        because: list[Any] = [None] * len(users)
        if body.explain:
            sizes = _user_sizes(lm, users, known)
            if hist_inputs is not None:
                names = [h.id if h.id is not None else j for j, h in enumerate(body.histories)]
                sizes += [(f"history {n!r}", len(set(items))) for n, items in zip(names, hist_inputs[0])]
            _explain_budget(sizes)  # 422 before any work
            if users:
                because = await asyncio.to_thread(_explained, lm, users, known, ids)
        rows = [
            _recs_row(lm, u, kn, body.k, i, s, why)
            for u, kn, i, s, why in zip(users, known.tolist(), ids, scores, because)
        ]
        hist_rows: list[dict[str, Any]] = []
        if hist_inputs is not None:
            excl = _coerce(lm.model.item_map_, list(body.exclude), "body field 'exclude'") if body.exclude else None
            args = (lm, list(body.histories), hist_inputs, body.k, body.filter_seen, excl, body.explain)
            hist_rows = await asyncio.to_thread(_recommend_histories, *args)
        return _json({"k": body.k, "results": rows, "histories": hist_rows})

    @app.get(
        "/v1/items/{item_id}/similar",
        tags=["recommend"],
        response_model=S.Similar,
        responses={**errors, 501: {"model": S.Error, "description": "model without item embeddings"}},
    )
    async def similar(item_id: str, k: Annotated[int, Query(ge=1, le=S.MAX_K)] = 10) -> Response:
        """The k items closest to this one (cosine of item embeddings; the item itself left out)."""
        lm = holder.get()
        if not lm.info["similar_items"]:
            raise ApiError(
                501,
                "not_supported",
                f"{lm.info['model_class']} models have no item embeddings, "
                "so similar items are not available; serve an NCF, EASE, ItemKNN or ALS/BPR bundle",
            )
        item = _coerce(lm.model.item_map_, [item_id], "path parameter 'item_id'")[0]
        ids, scores = lm.model.similar_items([item], k=k)
        return _json(
            {"item": {"id": item, **lm.item_meta.get(item, {})}, "k": k, "items": _items_out(lm, ids[0], scores[0])}
        )

    @app.post("/v1/scores", tags=["recommend"], response_model=S.Scores, responses=errors)
    async def scores(body: S.ScoresIn) -> Response:
        """Scores of up to 10,000 (user, item) pairs."""
        lm = holder.get()
        m = lm.model
        users = _coerce(m.user_map_, [p.user for p in body.pairs], "body field 'pairs.user'")
        items = _coerce(m.item_map_, [p.item for p in body.pairs], "body field 'pairs.item'")
        out = m.score(users, items).tolist()
        return _json({"scores": [{"user": u, "item": i, "score": s} for u, i, s in zip(users, items, out)]})


def _add_explore_routes(app: FastAPI, holder: ModelHolder, errors: dict[int | str, dict[str, Any]]) -> None:
    """What the explorer page needs: user ids, a user's training history, item search."""

    @app.get("/v1/users", tags=["explore"], response_model=S.UserList)
    async def list_users(
        offset: Annotated[int, Query(ge=0, le=S.MAX_OFFSET)] = 0, limit: Annotated[int, Query(ge=1, le=S.MAX_K)] = 100
    ) -> Response:
        """A page of known user ids, in id order."""
        lm = holder.get()
        ids = lm.model.user_map_.ids
        return _json({"n_users": len(ids), "offset": offset, "users": ids[offset : offset + limit].tolist()})

    @app.get("/v1/items", tags=["explore"], response_model=S.ItemSearch, responses=errors)
    async def search_items(
        q: Annotated[
            str,
            Query(min_length=1, max_length=S.MAX_QUERY_CHARS, description="text in the title (or id), any case"),
        ],
        limit: Annotated[int, Query(ge=1, le=S.MAX_SEARCH)] = 20,
    ) -> Response:
        """Items whose title (the id where the bundle has no titles) contains ``q``: titles that
        start with it first, then the most popular in training; for picking a visitor's history."""
        lm = holder.get()
        needle = q.strip().casefold()
        if not needle:
            raise ApiError(422, "invalid_request", "query parameter 'q': give some text to search for")
        # One pass over the catalogue, kept in popularity order at load time (3,706 titles for
        # MovieLens-1M: well under a millisecond; run in a thread were it ever millions).
        hits = [j for j, t in enumerate(lm.search_text) if needle in t]
        starts = [j for j in hits if lm.search_text[j].startswith(needle)]
        firsts = set(starts)
        order = (starts + [j for j in hits if j not in firsts])[:limit]
        ids = [lm.search_ids[j] for j in order]
        return _json({"q": q, "n_matches": len(hits), "items": [{"id": i, **lm.item_meta.get(i, {})} for i in ids]})

    @app.get("/v1/users/{user_id}/history", tags=["explore"], response_model=S.History, responses=errors)
    async def history(user_id: str, limit: Annotated[int, Query(ge=1, le=S.MAX_K)] = 50) -> Response:
        """Items the user interacted with in training, latest first when timestamps exist."""
        lm = holder.get()
        m = lm.model
        user = _coerce(m.user_map_, [user_id], "path parameter 'user_id'")[0]
        u = int(m.user_map_.index([user])[0])
        train = m.train_
        lo, hi = int(train.indptr[u]), int(train.indptr[u + 1])
        idx = train.item_idx[lo:hi]
        if train.timestamps is not None:
            idx = idx[np.argsort(-train.timestamps[lo:hi], kind="stable")]
        ids = m.item_map_.raw(idx[:limit])
        return _json({"user": user, "n_items": hi - lo, "items": _items_out(lm, ids, None)})


def _add_admin_routes(app: FastAPI, holder: ModelHolder) -> None:
    """Reload the bundle (or another) and swap it in atomically."""

    @app.post(
        "/v1/admin/reload",
        tags=["admin"],
        responses={403: {"model": S.Error}, 409: {"model": S.Error, "description": "new bundle unreadable"}},
    )
    async def reload(body: S.ReloadIn | None = None) -> Response:
        """Load the bundle again (or ``path``) and swap it in atomically; in-flight requests finish on the old model."""
        path = body.path if body else None
        try:
            lm = await asyncio.to_thread(holder.reload, path)
        except NcfError as e:
            raise ApiError(409, "reload_failed", f"reload failed, still serving the previous model: {e}") from None
        except Exception as e:  # noqa: BLE001 - any failure to load is a failed reload; the old model keeps serving
            log.exception("reload of %s failed unexpectedly", path or holder.path)
            raise ApiError(
                409,
                "reload_failed",
                f"reload failed, still serving the previous model: {type(e).__name__}: {one_line(e)[:300]}",
            ) from None
        return _json(
            {
                "status": "reloaded",
                "generation": lm.generation,
                "bundle": str(lm.path),
                "loaded_at": lm.info["loaded_at"],
            }
        )


def _add_pages(app: FastAPI, page: str) -> None:
    """The explorer page."""

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)


def set_torch_threads(n: int) -> None:
    """Intra-op threads for scoring. One request scores one user against every item: a few
    hundred microseconds of work, where a second OpenMP thread only adds hand-off and
    spin-wait cost. Measured on ML-100k NeuMF (2 shared cores): p50 1.1 ms with 1 thread,
    12.8 ms with 2 (benchmarks/RESULTS.md, Serving). Concurrency comes from requests, not threads."""
    import torch

    torch.set_num_threads(n)


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (used by ``ncf serve --workers N``): reads NCF_SERVE_* variables."""
    bundle = os.environ.get("NCF_SERVE_BUNDLE")
    if not bundle:
        raise ConfigError("NCF_SERVE_BUNDLE is not set; run `ncf serve DIR` or set it to a bundle folder")
    set_torch_threads(int(os.environ.get("NCF_SERVE_TORCH_THREADS", "1")))
    return create_app(
        bundle,
        api_key=os.environ.get("NCF_API_KEY") or None,
        max_body_bytes=int(os.environ.get("NCF_SERVE_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
        cache_top=int(os.environ.get("NCF_SERVE_CACHE_TOP", DEFAULT_CACHE_TOP)),
        allowed_hosts=os.environ.get("NCF_SERVE_ALLOWED_HOSTS") or None,
        body_timeout=float(os.environ.get("NCF_SERVE_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)),
    )
