"""Benchmark: every model on the same splits, one table, one chart.

For each dataset x protocol x seed the data is split ONCE (same seed, same split for
every model); every model is fitted on that train part and evaluated on that test part
with :func:`ncf.evaluate` (protocol ``"full"``: each test item ranked against every item
the user did not interact with in training, seen items excluded).

Every model gets the same signals and is tuned the same way. The same train part, with
its timestamps, goes to every model, and the recency signal (per-interaction weights
favouring each user's latest interactions, :mod:`ncf.weighting`) means the same for all:
``recency="auto"``, every model's default, is on where the task is predicting the future
(leave-one-out by time, temporal) and off on the random holdout. NeuMF weighs its training
rows, EASE and item-kNN score a weighted user profile, implicit ALS takes the weights as
confidence, LightFM as ``sample_weight``, popularity counts weighted interactions; only
implicit's BPR cannot use them (it stays off there). The tuning search
(``benchmarks/tune.py``, :data:`TUNING_GRIDS`, :func:`recency_stage`) chooses each model's
half-life on validation, like any other hyper-parameter, with the same candidates for every
model. Per run we record:

- the metrics ``evaluate`` returns (ndcg/recall/hr/precision/map at each cutoff, mrr, auc,
  coverage);
- ``fit_seconds``: wall clock of ``model.fit(train)`` (for NCF this includes its own
  validation carve-out, early stopping and refit, i.e. everything a user pays for);
- ``recommend_seconds``: wall clock of ``model.recommend(all users, k=10)``;
- memory, see below.

Memory (``peak_mb``) is a *lower bound* on the extra memory fit + recommend needed: the
largest of these, each taken over that window and relative to its start:

- ``rss_peak_mb`` (``memory="rss"``, the default): the process's resident set size
  (``/proc/self/statm``) sampled every 5 ms by a background thread, peak minus the value
  at the start. It sees every allocation (Python, numpy, torch, implicit, lightfm, BLAS)
  at negligible cost, but misses spikes shorter than the sampling interval and memory
  reused from the allocator's free lists without growing the process.
- ``rss_delta_mb``: how far ``getrusage``'s maxrss (the process's all-time peak RSS) rose.
  Exact for spikes, but 0 for a model that stays below an earlier peak, so it depends
  on run order.
- ``traced_peak_mb`` (only with ``memory="tracemalloc"``): :mod:`tracemalloc`'s peak of
  Python and numpy allocations (not torch tensors, not C/C++ libraries). Tracing every
  allocation roughly doubles the fit time of Python-heavy loops (measured on a small
  NCF fit), which would skew the timings, so it is opt-in.

``memory="off"`` measures nothing. Before the first timed run every model is fitted
once, untimed, on a small slice of the first train part, so one-off costs (lazy
imports such as ``torch._dynamo`` on the first optimizer, first-call kernel setup) do
not land on whichever run happens to come first.

Results go to ``out_dir``: ``results.json`` (every run, the parameters used, a summary),
``results.md`` (a table per dataset and protocol, mean ± std over seeds, the best value
in each column in bold) and ``chart.png``. Each file is written atomically.

The built-in MovieLens-100k is binarised per protocol, see :func:`binarise_for`.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import resource
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ncf.checks import check_cutoffs
from ncf.data.interactions import Interactions
from ncf.data.sources import load_data
from ncf.errors import ConfigError
from ncf.fsutil import atomic_path
from ncf.metrics import CUTOFF_METRICS, METRIC_NAMES
from ncf.registry import NCF_MODELS, make_model
from ncf.registry import check_models as _check_models
from ncf.reports import jsonable, write_json, write_text
from ncf.split import PROTOCOLS as split_protocols

PROTOCOLS = split_protocols  # the names ncf.split.by_name understands
HOLDOUT_N = 10
TEMPORAL_QUANTILE = 0.8
RECOMMEND_K = 10

#: min_rating applied to the built-in ml-100k under each protocol (see :func:`binarise_for`).
ML100K_MIN_RATING: dict[str, float | None] = {"holdout": 3.0, "leave-one-out": None, "temporal": None}

Progress = Callable[[str], Any]


def binarise_for(protocol: str) -> float | None:
    """The ``min_rating`` the built-in ``ml-100k`` is loaded with under ``protocol``.

    - ``"holdout"``: 3, ratings >= 3 are positives (the seed notebook's setup, which
      holds out 10 random positives per user);
    - ``"leave-one-out"``: None, every rating is a positive (the NCF paper's setup);
    - ``"temporal"``: None, every rating is a positive (like the paper: a rating is an
      interaction, whatever its value).

    Applies only to the built-in ``ml-100k``; other data is loaded as given (with the
    CLI's ``--min-rating`` when set, which then also overrides this rule).
    """
    if protocol not in ML100K_MIN_RATING:
        raise ConfigError(f"protocol == {protocol!r}, must be one of {', '.join(PROTOCOLS)}")
    return ML100K_MIN_RATING[protocol]


def split_for(protocol: str, data: Interactions, seed: int) -> tuple[Interactions, Interactions]:
    """The benchmark's split for ``protocol`` (deterministic given ``seed``).

    ``"holdout"``: 10 random interactions per user (users with fewer than 11 stay in
    train); ``"leave-one-out"``: each user's latest interaction when timestamps exist,
    else a random one; ``"temporal"``: interactions after the 0.8 quantile of time
    (the same for every seed; seeds then only vary the models).
    """
    from ncf import split

    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol == {protocol!r}, must be one of {', '.join(PROTOCOLS)}")
    return split.by_name(protocol, data, seed=seed, n=HOLDOUT_N, quantile=TEMPORAL_QUANTILE)


# -- models --------------------------------------------------------------------------------------
def _model_params(model: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return jsonable(model.get_params())
    except Exception:  # noqa: BLE001
        return jsonable(dict(given))


# -- measuring -----------------------------------------------------------------------------------
def _maxrss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 2**10  # bytes on macOS, KiB on Linux


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_mb() -> float | None:
    """Current resident set size (Linux /proc), or None where unavailable."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


MEMORY_MODES = ("rss", "tracemalloc", "off")
MEMORY_NOTE = {
    "rss": "max(rss_peak_mb, rss_delta_mb) over fit + recommend: RSS sampled every 5 ms and the growth "
    "of the process's peak RSS; a lower bound",
    "tracemalloc": "max(rss_peak_mb, rss_delta_mb, traced_peak_mb) over fit + recommend; a lower bound; "
    "timings include tracemalloc's overhead",
    "off": "not measured",
}


def _memory_mode(memory: bool | str | None) -> str:
    if memory is True:
        return "rss"
    if memory is False or memory is None:
        return "off"
    if memory not in MEMORY_MODES:
        raise ConfigError(f"memory == {memory!r}, must be one of {', '.join(MEMORY_MODES)}")
    return str(memory)


class _MemoryWindow:
    """Peak memory growth between ``start()`` and ``stop()`` (see the module notes)."""

    INTERVAL = 0.005

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._own_trace = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.mode == "off":
            return
        gc.collect()
        self._maxrss0 = _maxrss_mb()
        self._rss0 = _rss_mb()
        self._rss_peak = self._rss0
        if self._rss0 is not None:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, name="ncf-benchmark-rss", daemon=True)
            self._thread.start()
        if self.mode == "tracemalloc":
            self._own_trace = not tracemalloc.is_tracing()
            if self._own_trace:
                tracemalloc.start()
            tracemalloc.reset_peak()
            self._traced0 = tracemalloc.get_traced_memory()[0]

    def _sample(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            r = _rss_mb()
            if r is not None and r > self._rss_peak:
                self._rss_peak = r

    def stop(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {
            "peak_mb": None,
            "rss_peak_mb": None,
            "rss_delta_mb": None,
            "traced_peak_mb": None,
        }
        if self.mode == "off":
            return out
        if self.mode == "tracemalloc":
            out["traced_peak_mb"] = max(0.0, (tracemalloc.get_traced_memory()[1] - self._traced0) / 2**20)
            if self._own_trace:
                tracemalloc.stop()
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            now = _rss_mb()
            peak = max(self._rss_peak, now) if now is not None else self._rss_peak
            out["rss_peak_mb"] = max(0.0, peak - self._rss0)
        out["rss_delta_mb"] = max(0.0, _maxrss_mb() - self._maxrss0)
        out["peak_mb"] = max(v for v in out.values() if v is not None)
        return out


def _fit_and_measure(
    name: str,
    params: Mapping[str, Any],
    seed: int,
    train: Interactions,
    test: Interactions,
    ks: list[int],
    memory: str,
) -> dict[str, Any]:
    from ncf.evaluation import evaluate

    rec: dict[str, Any] = {}
    model = make_model(name, params, seed)
    win = _MemoryWindow(memory)
    win.start()
    try:
        t0 = time.perf_counter()
        model.fit(train)
        t1 = time.perf_counter()
        model.recommend(list(train.user_map.ids), k=RECOMMEND_K)
        t2 = time.perf_counter()
    finally:
        mem = win.stop()
    rec["params"] = _model_params(model, params)  # after fit: resolved seeds etc.
    rec["recency_used"] = getattr(model, "recency_", None)  # the half-life "auto" resolved to (None: off)
    rec.update(fit_seconds=t1 - t0, recommend_seconds=t2 - t1, **mem)
    t3 = time.perf_counter()
    res = evaluate(model, test, k=ks, protocol="full")
    rec["evaluate_seconds"] = time.perf_counter() - t3
    rec["metrics"] = {k: v for k, v in res.items() if k != "protocol"}
    rec["evaluation_protocol"] = res["protocol"]
    return rec


# -- data ----------------------------------------------------------------------------------------
DataSpec = str | tuple[str, Interactions]


DATA_OPTIONS = ("user", "item", "rating", "timestamp", "min_rating", "sep")


def _data_options(data_args: Mapping[str, Any] | None) -> dict[str, Any]:
    opts = dict(data_args or {})
    bad = sorted(set(opts) - set(DATA_OPTIONS))
    if bad:
        raise ConfigError(f"data_args: unknown {bad}; give load_data keyword arguments: {', '.join(DATA_OPTIONS)}")
    return opts


def _dataset_name(spec: DataSpec) -> str:
    return spec[0] if isinstance(spec, tuple) else str(spec)


class _DataCache:
    def __init__(self, data_options: dict[str, Any]) -> None:
        self.options = data_options
        self.cache: dict[tuple[str, float | None], Interactions] = {}

    def load(self, spec: DataSpec, protocol: str) -> tuple[Interactions, float | None]:
        """The data for ``protocol`` and the min_rating it was loaded with."""
        if isinstance(spec, tuple):
            return spec[1], None
        min_rating = self.options.get("min_rating")
        if spec == "ml-100k" and min_rating is None:
            min_rating = binarise_for(protocol)
        key = (spec, min_rating)
        if key not in self.cache:
            self.cache[key] = load_data(spec, **{**self.options, "min_rating": min_rating})
        return self.cache[key], min_rating


# -- the run -------------------------------------------------------------------------------------
def run_benchmark(
    datasets: Sequence[DataSpec],
    protocols: Sequence[str],
    models: Sequence[str],
    seeds: Sequence[int],
    out_dir: str | os.PathLike[str],
    *,
    k: Sequence[int] = (5, 10),
    model_params: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Progress | None = print,
    data_args: Mapping[str, Any] | None = None,
    memory: bool | str = "rss",
    warm_up: bool = True,
) -> dict[str, Any]:
    """Fit and evaluate every model on every dataset x protocol x seed; write the report.

    Parameters
    ----------
    datasets:
        ``"ml-100k"``, paths :func:`ncf.data.sources.load_data` reads (CSV/TSV/Parquet, MovieLens
        zip/folder), or ``(name, Interactions)`` pairs.
    protocols:
        Any of ``"holdout"``, ``"leave-one-out"``, ``"temporal"`` (see :func:`split_for`).
    models:
        ``"neumf"``, ``"gmf"``, ``"mlp"`` (:class:`ncf.NCF`) and baseline names
        (:data:`ncf.baselines.BASELINES`).
    seeds:
        One split per seed; each model is also seeded with it (unless its params set one).
    out_dir:
        Where ``results.json``, ``results.md`` and ``chart.png`` go (created).
    k:
        Cutoffs for the metrics.
    model_params:
        Model name -> constructor kwargs overriding the defaults; a protocol name as key
        holds such a mapping for that protocol only (see :func:`protocol_params`).
    progress:
        Called with one line per step (None: silent).
    data_args:
        Keyword arguments of :func:`ncf.data.sources.load_data` for file datasets: ``user``,
        ``item``, ``rating``, ``timestamp``, ``min_rating``, ``sep`` (the CLI's data options).
    memory:
        ``"rss"`` (default), ``"tracemalloc"`` (adds traced Python/numpy allocations, slows
        Python-heavy fits) or ``"off"``; see the module notes.
    warm_up:
        Fit each model once, untimed, on a small slice before the timed runs.

    Returns
    -------
    dict
        What ``results.json`` holds, plus ``"files"`` (the paths written). A model that
        raises is recorded with ``status="failed"`` and its error; the run goes on.
    """
    say = progress or (lambda _msg: None)
    if isinstance(datasets, (str, tuple)):
        datasets = [datasets]  # type: ignore[list-item]
    if not datasets:
        raise ConfigError("no datasets given; e.g. 'ml-100k' or a CSV path")
    protocols = [str(p).strip() for p in protocols if str(p).strip()]
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad or not protocols:
        raise ConfigError(f"protocols {bad or protocols!r} not understood; pick from {', '.join(PROTOCOLS)}")
    models = _check_models(models)
    seeds = [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"seeds == {seeds!r}, must be one or more integers >= 0")
    ks = sorted(set(check_cutoffs(list(k))))
    memory = _memory_mode(memory)
    given_params = jsonable(dict(model_params or {}))
    per_protocol = protocol_params(model_params, protocols, models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = _DataCache(_data_options(data_args))

    results: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "config": _run_config(datasets, protocols, models, seeds, ks, given_params, memory, warm_up),
        "environment": _environment(),
        "runs": [],
    }
    groups = [(d, p, s) for d in datasets for p in protocols for s in seeds]
    clock = _Clock(len(groups) * len(models), say)
    warmed = not warm_up
    for spec, protocol, seed in groups:
        where = f"{_dataset_name(spec)} / {protocol} / seed {seed}"
        split = _load_and_split(cache, spec, protocol, seed, where, clock)
        if isinstance(split, str):  # a broken dataset/protocol is reported, the rest runs
            for name in models:
                clock.done += 1
                results["runs"].append(
                    _failed(
                        _dataset_name(spec),
                        protocol,
                        seed,
                        name,
                        per_protocol[protocol].get(name, {}),
                        split,
                        stage="data",
                    )
                )
            write_json(out / "results.json", results)
            continue
        if not warmed:
            warmed = True
            clock.say("warming up (untimed, not recorded): each model fitted once on a small slice ...")
            _warm_up(models, per_protocol[protocol], split[0], seed)
            clock.say("warm-up done")
        for name in models:
            results["runs"].append(
                _run_one(spec, protocol, seed, name, per_protocol[protocol].get(name, {}), split, ks, memory, clock)
            )
            write_json(out / "results.json", results)
            gc.collect()
    return _write_report(results, ks, out, clock)


class _Clock:
    """Progress lines with the elapsed time and a run counter."""

    def __init__(self, total: int, say: Progress) -> None:
        self.total, self.done, self.t0, self._say = total, 0, time.perf_counter(), say

    def say(self, msg: str) -> None:
        self._say(f"[{time.perf_counter() - self.t0:.1f}s] {msg}")


def _run_config(
    datasets: Sequence[DataSpec],
    protocols: Sequence[str],
    models: Sequence[str],
    seeds: Sequence[int],
    ks: Sequence[int],
    given_params: Any,
    memory: str,
    warm_up: bool,
) -> dict[str, Any]:
    """What a run was asked to do, and the rules it followed (the report's "config")."""
    return {
        "datasets": [_dataset_name(d) for d in datasets],
        "protocols": list(protocols),
        "models": list(models),
        "seeds": list(seeds),
        "k": list(ks),
        "model_params": given_params,
        "evaluation": "ncf.evaluate(protocol='full'): test items ranked against all items unseen in train",
        "split_rules": {
            "holdout": f"{HOLDOUT_N} random interactions per user (seeded); users with fewer than "
            f"{HOLDOUT_N + 1} stay in train",
            "leave-one-out": "each user's latest interaction (random when there are no timestamps)",
            "temporal": f"interactions after the {TEMPORAL_QUANTILE} quantile of timestamps",
        },
        "ml100k_min_rating": dict(ML100K_MIN_RATING),
        "memory_mode": memory,
        "memory": MEMORY_NOTE[memory],
        "warm_up": bool(warm_up),
        "recommend": f"model.recommend(all users, k={RECOMMEND_K})",
    }


def _load_and_split(
    cache: _DataCache, spec: DataSpec, protocol: str, seed: int, where: str, clock: _Clock
) -> tuple[Interactions, Interactions, dict[str, Any]] | str:
    """(train, test, split info), or the error text when the data or split failed."""
    try:
        data, min_rating = cache.load(spec, protocol)
        train, test = split_for(protocol, data, seed)
        info = _split_info(data, train, test, min_rating)
    except Exception as e:  # noqa: BLE001 - reported by the caller; the other groups run
        clock.say(f"{where}: data/split failed: {_error_text(e)}")
        return _error_text(e)
    clock.say(
        f"{where}: {info['train_interactions']} train / {info['test_interactions']} test interactions "
        f"({info['users']} users, {info['items']} items)"
    )
    return train, test, info


def _run_one(
    spec: DataSpec,
    protocol: str,
    seed: int,
    name: str,
    params: Mapping[str, Any],
    split: tuple[Interactions, Interactions, dict[str, Any]],
    ks: Sequence[int],
    memory: str,
    clock: _Clock,
) -> dict[str, Any]:
    """Fit, evaluate and time one model on one split; a failure is recorded, not raised."""
    train, test, info = split
    clock.done += 1
    tag = f"[{clock.done}/{clock.total}] {_dataset_name(spec)} / {protocol} / seed {seed} / {name}"
    clock.say(f"{tag}: fitting ...")
    try:
        rec = _fit_and_measure(name, params, seed, train, test, ks, memory)
    except Exception as e:  # noqa: BLE001 - a failing model is recorded, the benchmark goes on
        clock.say(f"{tag}: FAILED: {_error_text(e)}")
        return _failed(_dataset_name(spec), protocol, seed, name, params, _error_text(e), split=info)
    key = f"ndcg@{ks[-1]}"
    clock.say(
        f"{tag}: {key}={rec['metrics'].get(key, float('nan')):.4f}  fit {rec['fit_seconds']:.2f}s  "
        f"recommend {rec['recommend_seconds']:.2f}s"
        + (f"  peak {rec['peak_mb']:.1f} MB" if rec.get("peak_mb") is not None else "")
    )
    base = {"dataset": _dataset_name(spec), "protocol": protocol, "seed": seed, "model": name, "split": info}
    return {**base, "status": "ok", "error": None, **rec}


def _write_report(results: dict[str, Any], ks: Sequence[int], out: Path, clock: _Clock) -> dict[str, Any]:
    """Summary, results.json, results.md and the chart; returns what was written."""
    results["summary"] = summarise(results["runs"], ks)
    results["total_seconds"] = time.perf_counter() - clock.t0
    md = format_markdown(results)
    files = {"json": out / "results.json", "markdown": out / "results.md", "chart": out / "chart.png"}
    write_json(files["json"], results)
    write_text(files["markdown"], md)
    try:
        plot_chart(results, files["chart"])
    except Exception as e:  # noqa: BLE001 - no chart is no reason to lose the numbers
        clock.say(f"chart not written: {_error_text(e)}")
        files.pop("chart")
    clock.say(f"done: {', '.join(str(p) for p in files.values())}")
    return {**results, "markdown": md, "files": {k: str(v) for k, v in files.items()}}


def protocol_params(
    model_params: Mapping[str, Any] | None, protocols: Sequence[str], models: Sequence[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``model_params`` resolved per protocol: ``{protocol: {model: kwargs}}``.

    Top-level keys are model names (kwargs for every protocol) or protocol names (a
    ``{model: kwargs}`` mapping for that protocol only, merged over the former per key),
    e.g. ``{"ease": {"l2": 200}, "holdout": {"ease": {"l2": 500}}}``.
    """
    shared: dict[str, dict[str, Any]] = {}
    by_protocol: dict[str, dict[str, dict[str, Any]]] = {}
    for key, value in (model_params or {}).items():
        k = str(key).strip().lower()
        if k in PROTOCOLS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"params for protocol {k!r} must map model names to parameters, got {value!r}")
            by_protocol[k] = {str(m).strip().lower(): p for m, p in value.items()}
        else:
            shared[k] = value
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for protocol in protocols:
        merged = {**shared, **by_protocol.get(protocol, {})}
        for m, p in merged.items():
            if not isinstance(p, Mapping):
                raise ConfigError(f"params for {m!r} must map parameter names to values, got {p!r}")
        stray = sorted(set(merged) - set(models))
        if stray:
            raise ConfigError(
                f"params given for {stray}, which are not among the models benchmarked ({', '.join(models)})"
            )
        out[protocol] = {m: dict(p or {}) for m, p in merged.items()}
    return out


WARM_UP_USERS = 64
NCF_WARM_UP = {"epochs": 1}


def _warm_up(
    models: Sequence[str], model_params: Mapping[str, Mapping[str, Any]], train: Interactions, seed: int
) -> None:
    """Fit + recommend each model once on the first ``WARM_UP_USERS`` users' rows; errors are ignored
    (the timed run reports them). NCF models train a single epoch."""
    users = np.flatnonzero(train.user_counts > 0)[:WARM_UP_USERS]
    part = train._subset(np.isin(train.user_idx, users))
    for name in models:
        params = dict(model_params.get(name, {}))
        if name in NCF_MODELS:
            params.update(NCF_WARM_UP)
        try:
            model = make_model(name, params, seed)
            model.fit(part)
            model.recommend(list(part.user_map.raw(users[:8])), k=RECOMMEND_K)
        except Exception:  # noqa: BLE001 - the timed run reports the real error
            continue
        finally:
            gc.collect()


def _failed(
    dataset: str,
    protocol: str,
    seed: int,
    model: str,
    params: Mapping[str, Any],
    err: str,
    *,
    stage: str = "model",
    split: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "protocol": protocol,
        "seed": seed,
        "model": model,
        "split": split,
        "status": "failed",
        "error": err,
        "failed_at": stage,
        "params": jsonable(dict(params)),
        "metrics": {},
        "fit_seconds": None,
        "recommend_seconds": None,
        "evaluate_seconds": None,
        "peak_mb": None,
        "rss_peak_mb": None,
        "rss_delta_mb": None,
        "traced_peak_mb": None,
    }


def _split_info(data: Interactions, train: Interactions, test: Interactions, min_rating: float | None) -> dict:
    rep = train.report.get("split") or {}
    return {
        "min_rating": min_rating,
        "users": int(data.n_users),
        "items": int(data.n_items),
        "interactions": int(len(data)),
        "train_interactions": int(len(train)),
        "test_interactions": int(len(test)),
        "users_held_out": rep.get("users_held_out"),
        "users_train_only": rep.get("users_train_only"),
        "train_fingerprint": train.fingerprint(),
        "test_fingerprint": test.fingerprint(),
    }


def _error_text(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "numpy": np.__version__,
    }


# -- summary and report --------------------------------------------------------------------------
def table_columns(ks: Sequence[int]) -> list[tuple[str, str, bool]]:
    """(key, header, higher_is_better) of the report's columns for cutoffs ``ks``."""
    big, small = max(ks), min(ks)
    cols = [f"ndcg@{big}", f"recall@{big}", f"hr@{big}", f"precision@{small}", f"recall@{small}"]
    seen: list[str] = []
    for c in cols:
        if c not in seen:
            seen.append(c)
    out = [(c, c, True) for c in seen]
    out += [("fit_seconds", "fit s", False), ("recommend_seconds", "recommend s", False), ("peak_mb", "peak MB", False)]
    return out


def _value(run: dict[str, Any], key: str) -> float | None:
    v = run["metrics"].get(key) if "@" in key or key in ("mrr", "auc") else run.get(key)
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def summarise(runs: Sequence[dict[str, Any]], ks: Sequence[int]) -> list[dict[str, Any]]:
    """Mean and std (over seeds, ddof=1; 0 for one seed) per dataset x protocol x model."""
    keys = [c[0] for c in table_columns(ks)]
    extra = [f"{m}@{kk}" for kk in ks for m in CUTOFF_METRICS] + [m for m in METRIC_NAMES if m not in CUTOFF_METRICS]
    keys += [x for x in extra if x not in keys]
    order: list[tuple[str, str, str]] = []
    for r in runs:
        key = (r["dataset"], r["protocol"], r["model"])
        if key not in order:
            order.append(key)
    out = []
    for d, p, m in order:
        rs = [r for r in runs if (r["dataset"], r["protocol"], r["model"]) == (d, p, m)]
        ok = [r for r in rs if r["status"] == "ok"]
        stats: dict[str, Any] = {}
        for key in keys:
            vals = [v for v in (_value(r, key) for r in ok) if v is not None]
            if vals:
                stats[key] = {
                    "mean": float(np.mean(vals)),
                    "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                    "n": len(vals),
                }
        out.append(
            {
                "dataset": d,
                "protocol": p,
                "model": m,
                "runs": len(rs),
                "ok": len(ok),
                "errors": [{"seed": r["seed"], "error": r["error"]} for r in rs if r["status"] != "ok"],
                "stats": stats,
            }
        )
    return out


def _fmt(key: str, mean: float, std: float, n: int) -> str:
    if key.endswith("seconds"):
        digits = 3 if mean < 1 else (2 if mean < 100 else 1)
    elif key == "peak_mb":
        digits = 1
    else:
        digits = 4
    s = f"{mean:.{digits}f}"
    return s + (f" ± {std:.{digits}f}" if n > 1 else "")


def _md_escape(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_markdown(results: dict[str, Any]) -> str:
    """The Markdown report: one table per dataset x protocol."""
    cfg = results["config"]
    ks = cfg["k"]
    cols = table_columns(ks)
    summary = results.get("summary") or summarise(results["runs"], ks)
    seeds = cfg["seeds"]
    lines = [
        "# Benchmark",
        "",
        f"Seeds {', '.join(map(str, seeds))}: cells are mean ± std over seeds (std with ddof=1). "
        "Metrics: full ranking over every item the user did not interact with in training (seen items excluded), "
        "averaged over users with test items. **Bold**: best in its column (highest metric; lowest time and memory).",
        f"fit s: wall clock of fit (NCF: including its validation carve-out, early stopping and refit); "
        f"recommend s: top-{RECOMMEND_K} for all users; "
        f"peak MB: {MEMORY_NOTE[cfg.get('memory_mode', 'rss')]} (see ncf.benchmark)."
        + (" Each model was fitted once, untimed, before the timed runs (warm-up)." if cfg.get("warm_up") else ""),
        "",
    ]
    env = results.get("environment") or {}
    if env:
        lines += [
            f"Machine: {env.get('platform')}, {env.get('cpu_count')} CPUs, torch {env.get('torch')} "
            f"({env.get('torch_threads')} threads)" + (f", GPU {env['cuda']}" if env.get("cuda") else "") + ".",
            "",
        ]
    groups: list[tuple[str, str]] = []
    for s in summary:
        if (s["dataset"], s["protocol"]) not in groups:
            groups.append((s["dataset"], s["protocol"]))
    for d, p in groups:
        rows = [s for s in summary if (s["dataset"], s["protocol"]) == (d, p)]
        split = next(
            (r["split"] for r in results["runs"] if (r["dataset"], r["protocol"]) == (d, p) and r["split"]), None
        )
        lines.append(f"## {d} — {p}")
        lines.append("")
        if split:
            mr = split.get("min_rating")
            lines.append(
                f"{split['users']} users, {split['items']} items, {split['interactions']} interactions"
                + (f" (ratings >= {mr:g})" if mr is not None else "")
                + f"; train {split['train_interactions']}, test {split['test_interactions']}"
                + (f" ({split['users_held_out']} users with test items)" if split.get("users_held_out") else "")
                + "."
            )
            lines.append("")
        best: dict[str, str] = {}
        for key, _h, higher in cols:
            cands = [(s["stats"][key]["mean"], s) for s in rows if key in s["stats"]]
            if cands:
                v = max(c[0] for c in cands) if higher else min(c[0] for c in cands)
                best[key] = _fmt(key, v, 0.0, 1)
        lines.append("| model | " + " | ".join(h for _k, h, _ in cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for s in rows:
            if s["ok"] == 0:
                err = s["errors"][0]["error"] if s["errors"] else "failed"
                cells = [f"failed: {_md_escape(err)}"] + ["—"] * (len(cols) - 1)
                lines.append(f"| {s['model']} | " + " | ".join(cells) + " |")
                continue
            cells = []
            for key, _h, _hi in cols:
                st = s["stats"].get(key)
                if st is None:
                    cells.append("—")
                    continue
                txt = _fmt(key, st["mean"], st["std"], st["n"])
                if best.get(key) == _fmt(key, st["mean"], 0.0, 1) and len(rows) > 1:
                    txt = f"**{txt}**"
                cells.append(txt)
            name = s["model"] + (f" ({len(s['errors'])}/{s['runs']} seeds failed)" if s["errors"] else "")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        errs = [(s["model"], e) for s in rows for e in s["errors"]]
        if errs:
            lines.append("")
            lines.append("Errors:")
            lines.append("")
            for m, e in errs:
                lines.append(f"- {m}, seed {e['seed']}: {_md_escape(e['error'], 1000)}")
        lines.append("")
    params = cfg.get("model_params") or {}
    if params:
        lines += ["## Parameters given", "", "```json", json.dumps(params, indent=2, sort_keys=True), "```", ""]
    return "\n".join(lines)


def plot_chart(results: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """NDCG and recall at the largest cutoff per model (grouped bars, one panel per
    dataset x protocol) and NDCG vs fit seconds (log x). Uses the Agg canvas directly,
    so pyplot's global backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ks = results["config"]["k"]
    big = max(ks)
    ndcg, recall = f"ndcg@{big}", f"recall@{big}"
    summary = results.get("summary") or summarise(results["runs"], ks)
    groups: list[tuple[str, str]] = []
    for s in summary:
        if (s["dataset"], s["protocol"]) not in groups:
            groups.append((s["dataset"], s["protocol"]))
    n_panels = len(groups) + 1
    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(5.5 * ncols, 4.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n_panels)]
    n_datasets = len({d for d, _ in groups})
    for ax, (d, p) in zip(axes, groups):
        rows = [s for s in summary if (s["dataset"], s["protocol"]) == (d, p)]
        x = np.arange(len(rows))
        for off, key, label in ((-0.2, ndcg, ndcg.upper()), (0.2, recall, recall.capitalize())):
            means = [s["stats"].get(key, {}).get("mean", 0.0) for s in rows]
            stds = [s["stats"].get(key, {}).get("std", 0.0) for s in rows]
            ax.bar(x + off, means, width=0.4, yerr=stds, capsize=2, label=label)
        ax.set_xticks(x, [s["model"] + ("" if s["ok"] else " (failed)") for s in rows], rotation=45, ha="right")
        ax.set_title(p if n_datasets == 1 else f"{d}: {p}")
        ax.set_ylabel("full-ranking metric")
        ax.legend(fontsize=8)
    ax = axes[-1]
    markers = "os^Dvx*P"
    for gi, (d, p) in enumerate(groups):
        rows = [s for s in summary if (s["dataset"], s["protocol"]) == (d, p) and ndcg in s["stats"]]
        rows = [s for s in rows if "fit_seconds" in s["stats"]]
        if not rows:
            continue
        xs = [max(s["stats"]["fit_seconds"]["mean"], 1e-4) for s in rows]
        ys = [s["stats"][ndcg]["mean"] for s in rows]
        ax.scatter(xs, ys, marker=markers[gi % len(markers)], label=p if n_datasets == 1 else f"{d}: {p}")
        for s, xv, yv in zip(rows, xs, ys):
            ax.annotate(s["model"], (xv, yv), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("fit seconds (log)")
    ax.set_ylabel(ndcg.upper())
    ax.set_title(f"{ndcg.upper()} vs fit time")
    if groups:
        ax.legend(fontsize=8)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


# -- tuning (an equal budget per model, validation data only; benchmarks/tune.py runs it) --------
#: The NCF grids' steps around the defaults (factors 32, layers 64-32-16-8, negatives 8, weight decay 0.01).
_NCF_STEPS: dict[str, tuple[Any, Any]] = {
    "factors": (16, 64),
    "layers": ((32, 16, 8), (128, 64, 32, 16)),
    "negatives": (4, 16),
    "weight_decay": (1e-3, 0.1),
}


def _steps(*knobs: str) -> list[dict[str, Any]]:
    """The defaults (``{}``), then each of ``knobs`` one step down and one up, the others at their defaults."""
    return [{}] + [{k: list(v) if isinstance(v, tuple) else v} for k in knobs for v in _NCF_STEPS[k]]


def _grid(**axes: list[Any]) -> list[dict[str, Any]]:
    """The full product of ``axes``, first axis varying slowest."""
    out: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        out = [{**c, name: v} for c in out for v in values]
    return out


#: Stage 1 of the tuning search: model -> candidate kwargs (on top of the model's defaults, so
#: ``recency="auto"``), 6-12 configs per model: the grids behind ``benchmarks/tuned_params.json``
#: (RESULTS.md, "Baselines", "1. Equal tuning budget"). Stage 2 is :data:`RECENCY_GRID`.
TUNING_GRIDS: dict[str, list[dict[str, Any]]] = {
    "ease": [{"l2": v} for v in (50.0, 100.0, 200.0, 350.0, 500.0, 750.0, 1000.0, 2000.0)],
    "item-knn": _grid(k_neighbors=[20, 50, 100, 200], shrink=[0.0, 10.0]),
    # ALS round 1 (factors {64, 128} x regularization {0.1, 1} x alpha {1, 10}, rows kept in the jsonl)
    # peaked at its edge (64 factors, regularization 1); round 2 moves the box there:
    "implicit-als": _grid(factors=[32, 64], regularization=[1.0, 10.0, 50.0], alpha=[1.0, 5.0]),
    "implicit-bpr": _grid(factors=[64, 128], learning_rate=[0.01, 0.05], regularization=[0.001, 0.01])
    + [
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 300},
        {"factors": 128, "learning_rate": 0.01, "regularization": 0.01, "iterations": 300},
    ],
    "lightfm-warp": _grid(no_components=[32, 64], learning_rate=[0.02, 0.05], epochs=[20, 50])
    + [
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-5, "user_alpha": 1e-5},
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-4, "user_alpha": 1e-4},
    ],
    "lightfm-bpr": _grid(no_components=[32, 64], learning_rate=[0.02, 0.05], epochs=[20, 50])
    + [
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-5, "user_alpha": 1e-5},
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-4, "user_alpha": 1e-4},
    ],
    # NCF models: the defaults, then one step either side of each knob the model has
    "neumf": _steps("factors", "layers", "negatives", "weight_decay"),
    "gmf": _steps("factors", "negatives", "weight_decay"),
    "mlp": _steps("layers", "negatives", "weight_decay"),
}


#: Stage 2 of the tuning search: the recency half-lives (None: off) every model that can weigh
#: interactions tries on top of its stage-1 choice (see :func:`recency_stage`).
RECENCY_GRID: tuple[float | None, ...] = (None, 2.0, 5.0, 10.0, 25.0)
#: Protocols whose tuning data has timestamps and is not a random holdout, where ``recency="auto"``
#: is on and the half-life is tuned; on the others recency stays off for every model.
RECENCY_PROTOCOLS: tuple[str, ...] = ("leave-one-out",)


def uses_recency(name: str) -> bool:
    """Whether model ``name`` can weigh single interactions (every model but implicit's BPR)."""
    if name in NCF_MODELS:
        return True
    import ncf.baselines as NB

    cls_name, fixed = NB.BASELINES[name]
    cls = getattr(NB, cls_name)
    return bool(cls.USES_WEIGHTS) and fixed.get("loss") != "warp-kos"


def recency_stage(protocol: str, chosen: Mapping[str, Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Stage 2 of the tuning search: each model's stage-1 choice crossed with :data:`RECENCY_GRID`.

    The half-life is tuned like any other hyper-parameter, on the outer validation part and
    never on test, with the same budget for every model: each model that can weigh
    interactions gets the same ``len(RECENCY_GRID)`` extra candidates, staged rather than
    crossed with its whole grid (crossing would multiply every model's budget by 5; staging
    adds 5 fits each). implicit's BPR cannot use the weights, so it has no stage 2. On
    protocols outside :data:`RECENCY_PROTOCOLS` (the random holdout) recency stays off for
    every model and there is no stage 2.
    """
    if protocol not in RECENCY_PROTOCOLS:
        return {}
    return {name: [{**cfg, "recency": r} for r in RECENCY_GRID] for name, cfg in chosen.items() if uses_recency(name)}


def tuning_split(protocol: str, seed: int, data: Interactions | None = None) -> tuple[Interactions, Interactions]:
    """(inner train, outer validation) for tuning under ``protocol``; the test part is split off and dropped.

    ``data`` defaults to the built-in ML-100k binarised as the benchmark does
    (:func:`binarise_for`); the test part is :func:`split_for`'s with the same ``seed``. The
    outer part is carved from train by the protocol's own rule: ``HOLDOUT_N`` random items
    per user for ``"holdout"``, each user's latest item for ``"leave-one-out"``.
    """
    from ncf import split
    from ncf.data.movielens import movielens_100k

    if protocol not in ("holdout", "leave-one-out"):
        raise ConfigError(f"protocol == {protocol!r}: tuning supports 'holdout' and 'leave-one-out'")
    if data is None:
        data = movielens_100k(min_rating=binarise_for(protocol))
    train, _test = split_for(protocol, data, seed)  # the test part is never used here
    if protocol == "holdout":
        inner, outer = split.carve_validation(train, "random", n=HOLDOUT_N, seed=seed)
        inner.report["split"] = train.report["split"]  # so NCF's own validation mirrors the holdout rule
    else:
        inner, outer = split.carve_validation(train, "timestamp", n=1)
    return inner, outer


def select_tuned(
    rows: Sequence[Mapping[str, Any]],
    grids: Mapping[str, Sequence[Mapping[str, Any]]] = TUNING_GRIDS,
    *,
    recency: bool = True,
) -> tuple[dict[str, dict[str, dict[str, Any]]], list[dict[str, Any]]]:
    """Per protocol and model, the candidate with the best mean outer NDCG@10 over the seeds searched.

    ``rows`` are search records (``protocol``, ``model``, ``config``, ``seed``, ``ndcg@10``,
    ``recall@10``, ``fit_s``; a failed candidate has ``error`` instead of metrics). Stage 1
    picks among ``grids[model]``; with ``recency`` (default) stage 2 then picks among the
    stage-1 choice and its :func:`recency_stage` candidates, where rows for them exist.
    Means are rounded to 4 decimals and ties go to the earlier candidate (the stage-1 choice
    before stage 2); configs in neither stage (exploration outside the equal budget) are
    ignored. Returns ``({protocol: {model: kwargs}}, one summary row per choice)``: the first
    is what ``ncf benchmark --params`` takes.
    """
    chosen: dict[str, dict[str, dict[str, Any]]] = {}
    table = []
    for protocol in sorted({r["protocol"] for r in rows}):
        for name, grid in grids.items():
            best = _best(rows, protocol, name, grid)
            if best is None:
                continue
            n_configs = best[-1]
            if recency:
                stage2 = recency_stage(protocol, {name: best[0]}).get(name, [])
                second = _best(rows, protocol, name, [best[0], *stage2])
                if second is not None:
                    best = (*second[:3], n_configs + second[-1] - 1)
            cfg, ndcg, rs, n = best
            chosen.setdefault(protocol, {})[name] = cfg
            table.append(
                {
                    "protocol": protocol,
                    "model": name,
                    "config": cfg,
                    "ndcg@10": ndcg,
                    "recall@10": round(float(np.mean([r["recall@10"] for r in rs])), 4),
                    "fit_s": round(float(np.mean([r["fit_s"] for r in rs])), 1),
                    "n_configs": n,
                    "seeds": sorted(r["seed"] for r in rs),
                }
            )
    return chosen, table


def _best(
    rows: Sequence[Mapping[str, Any]], protocol: str, name: str, grid: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], float, list[Mapping[str, Any]], int] | None:
    """(config, mean NDCG@10, its rows, configs with results) of the best entry of ``grid``; ties: the earlier."""
    scores = []
    for i, cfg in enumerate(grid):
        rs = [
            r
            for r in rows
            if r["protocol"] == protocol and r["model"] == name and r["config"] == cfg and "ndcg@10" in r
        ]
        if rs:
            scores.append((round(float(np.mean([r["ndcg@10"] for r in rs])), 4), -i, dict(cfg), rs))
    if not scores:
        return None
    ndcg, _, cfg, rs = max(scores, key=lambda s: (s[0], s[1]))
    return cfg, ndcg, rs, len(scores)


# -- files ---------------------------------------------------------------------------------------
def load_params(text: str | None) -> dict[str, dict[str, Any]]:
    """``--params``: a JSON file path or a JSON string mapping model name -> kwargs."""
    obj = read_json_arg(text)
    if not isinstance(obj, dict) or not all(isinstance(v, dict) for v in obj.values()):
        raise ConfigError(
            'params must map model names (or protocol names) to objects of parameters, e.g. {"ease": {"l2": 200}} '
            'or {"holdout": {"ease": {"l2": 500}}}'
        )
    return obj


def read_json_arg(text: str | None) -> Any:
    """A command-line JSON argument: a path to a JSON file, or the JSON itself ({} when empty)."""
    if not text:
        return {}
    p = Path(text)
    try:
        is_file = p.is_file()
    except OSError:  # a long JSON string is no valid path
        is_file = False
    try:
        obj = json.loads(p.read_text(encoding="utf-8") if is_file else text)
    except json.JSONDecodeError as e:
        what = f"file {p}" if is_file else "--params string"
        raise ConfigError(f'{what} is not valid JSON ({e}); expected e.g. \'{{"ease": {{"l2": 200}}}}\'') from None
    return obj
