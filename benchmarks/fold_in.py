"""Fold-in quality, latency and explanation faithfulness on ML-100k, every model we ship.

    python benchmarks/fold_in.py                          # 3 seeds, every model (the lead's run)
    python benchmarks/fold_in.py --seeds 0 --models ease,gmf --ncf-epochs 3   # a quick check
    python benchmarks/fold_in.py --tune --models neumf    # NCF fold-in settings, on validation only

Protocol, per seed: every rating of ML-100k is a positive; each user's interactions are split
20 % test / 80 % train at random (``split.holdout(fraction=0.2, by="random")``). 10 % of the
users (seeded) are *new*: the **fold-in** model is fitted on the other users' train parts only,
then each new user's train part is folded in (``recommend_history``); the **full** model is
fitted on every user's train part, new users included, and recommends for them as known users
(``recommend``). Both are scored on the same new users' test items: HR@10 and NDCG@10, full
ranking, the user's train part excluded. Ratio = fold-in / full (goal >= 0.90).

Latency: single-history ``recommend_history(k=10)`` over 200 requests (new users' histories in
turn), ``torch.set_num_threads(2)``, p50 / p99 in ms (goal p99 <= 20 ms).

Faithfulness (GMF / NeuMF): over up to 1,000 (new user, recommended item) pairs, how often
removing the top-1 item of ``explain`` from the history lowers that item's folded-in score more
than removing a random other history item. Both removals are re-folded in one separate
``history_scores`` call (not read back from ``explain``).

``--tune`` (NCF only) never touches test items: each new user's train part is split again
80 / 20 into a fold-in part and a validation part, and fold-in settings are compared on the
validation part.

Prints a markdown table and writes benchmarks/fold_in.json. Timings depend on the machine and
on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from ncf import metrics, split
from ncf.data.interactions import Interactions
from ncf.data.movielens import movielens_100k
from ncf.errors import ConfigError
from ncf.foldin import FoldIn
from ncf.registry import make_model

MODELS = ("neumf", "gmf", "ease", "item-knn", "implicit-als", "implicit-bpr", "lightfm-warp", "popularity")
NCF_KINDS = ("neumf", "gmf")
K = 10
OUT = Path(__file__).with_name("fold_in.json")


def subset(data: Interactions, keep: np.ndarray) -> Interactions:
    """Rows of ``data`` where ``keep`` holds, same id maps and split info (so recency resolves the same)."""
    ts = None if data.timestamps is None else data.timestamps[keep]
    return Interactions.from_indices(
        data.user_map, data.item_map, data.user_idx[keep], data.item_idx[keep], ts, split=data.split
    )


def protocol(seed: int) -> dict[str, Any]:
    data = movielens_100k()
    train, test = split.holdout(data, fraction=0.2, by="random", seed=seed)
    rng = np.random.default_rng(seed)
    new = np.sort(rng.choice(data.n_users, size=data.n_users // 10, replace=False))
    is_new = np.isin(train.user_idx, new)
    return {"train": train, "test": test, "new": new, "fold_train": subset(train, ~is_new)}


def histories(train: Interactions, users: np.ndarray) -> list[list[Any]]:
    raw = train.item_map.ids
    return [raw[train.item_idx[train.indptr[u] : train.indptr[u + 1]]].tolist() for u in users]


def quality(ids: np.ndarray, test: Interactions, users: np.ndarray) -> dict[str, float]:
    """HR@10 / NDCG@10 of top-10 raw-id rows against each user's test items."""
    idx = test.item_map.index([x for row in ids for x in row if x is not None])
    top = np.full(ids.shape, -1, dtype=np.int64)
    top[ids != None] = idx  # noqa: E711 - elementwise on an object array
    ranks, indptr = [], [0]
    for row, u in zip(top, users):
        rel = test.item_idx[test.indptr[u] : test.indptr[u + 1]]
        pos = {int(i): r for r, i in enumerate(row) if i >= 0}
        misses = iter(range(K, K + len(rel)))  # ranks must be distinct: misses get K, K+1, ...
        ranks += [pos[int(i)] if int(i) in pos else next(misses) for i in rel]
        indptr.append(len(ranks))
    r, p = np.asarray(ranks), np.asarray(indptr)
    return {
        "hr@10": metrics.mean_over_users(metrics.hit_rate(r, p, K)),
        "ndcg@10": metrics.mean_over_users(metrics.ndcg(r, p, K)),
    }


def fit(name: str, data: Interactions, seed: int, ncf_epochs: int | None) -> Any:
    params = {"epochs": ncf_epochs} if (ncf_epochs and name in ("neumf", "gmf", "mlp")) else {}
    model = make_model(name, params, seed=seed)
    return model.fit(data)


def latency(model: Any, hists: list[list[Any]], n: int = 200) -> dict[str, float]:
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model.recommend_history(hists[0], k=K)  # warm-up
        ms = []
        for j in range(n):
            t0 = time.perf_counter()
            model.recommend_history(hists[j % len(hists)], k=K)
            ms.append((time.perf_counter() - t0) * 1000)
    finally:
        torch.set_num_threads(before)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def faithfulness(model: Any, hists: list[list[Any]], ids: np.ndarray, seed: int, pairs: int = 1000) -> float:
    """Share of (history, item) pairs where removing explain's top-1 item lowers the score more than a random one."""
    rng = np.random.default_rng(seed)
    rows, targets, removed = [], [], []  # per pair: profile row, target item index, (top, random) history index
    profiles, _ = model.history_profiles(hists)
    for j, row in enumerate(ids):
        items = [x for x in row if x is not None]
        if len(targets) >= pairs or profiles[j].nnz < 2:
            continue
        expl = model.explain(hists[j], items, n=1)
        prof = profiles[j]
        for item, e in zip(items, expl):
            if not e or len(targets) >= pairs:
                continue
            top = int(model.item_map_.index([e[0][0]])[0])
            others = prof.indices[prof.indices != top]
            rows.append(j)
            targets.append(int(model.item_map_.index([item])[0]))
            removed.append((top, int(rng.choice(others))))
    if not targets:
        return float("nan")
    # one stacked call: for every pair, its full profile, without the top item, without the random one
    stack = []
    for j, (top, rnd) in zip(rows, removed):
        p = profiles[j]
        for drop in (None, top, rnd):
            keep = p.indices != drop if drop is not None else np.ones(p.nnz, dtype=bool)
            stack.append(sp.csr_matrix((p.data[keep], p.indices[keep], [0, int(keep.sum())]), shape=p.shape))
    scores = model.history_scores(sp.vstack(stack).tocsr()).float().cpu().numpy()
    t = np.repeat(np.asarray(targets), 3)
    s = scores[np.arange(len(t)), t].reshape(-1, 3)
    drop_top, drop_rnd = s[:, 0] - s[:, 1], s[:, 0] - s[:, 2]
    return float(np.mean(drop_top > drop_rnd))


def run_model(name: str, seed: int, proto: dict[str, Any], ncf_epochs: int | None) -> dict[str, Any]:
    train, test, new = proto["train"], proto["test"], proto["new"]
    hists = histories(train, new)
    t0 = time.perf_counter()
    fold_model = fit(name, proto["fold_train"], seed, ncf_epochs)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, _ = fold_model.recommend_history(hists, k=K)
    batch_s = time.perf_counter() - t0
    q_fold = quality(ids, test, new)
    full_model = fit(name, train, seed, ncf_epochs)
    full_ids, _ = full_model.recommend(train.user_map.ids[new], k=K)
    q_full = quality(full_ids, test, new)
    out = {
        "model": name,
        "seed": seed,
        "new_users": len(new),
        "fold_in": q_fold,
        "full": q_full,
        "ratio": {m: q_fold[m] / q_full[m] if q_full[m] else float("nan") for m in q_fold},
        "fit_seconds": fit_s,
        "fold_in_all_new_users_seconds": batch_s,
        **latency(fold_model, hists),
    }
    if name in NCF_KINDS:
        out["faithfulness"] = faithfulness(fold_model, hists, ids, seed)
    return out


def tune(seed: int, proto: dict[str, Any], ncf_epochs: int | None, names: list[str]) -> list[dict[str, Any]]:
    """Fold-in settings of NCF compared on a validation part of the new users' train parts (test untouched)."""
    train, new = proto["train"], proto["new"]
    new_train = subset(train, np.isin(train.user_idx, new))
    fold_part, val = split.holdout(new_train, fraction=0.2, by="random", seed=seed + 1000)
    hists = histories(fold_part, new)
    grid = [
        FoldIn(steps=s, lr=lr, l2=l2, anchor=a)
        for s in (10, 20, 40, 80)
        for lr in (0.02, 0.05, 0.1)
        for l2 in (0.0, 0.01, 0.1)
        for a in ("mean", "zero")
    ]
    rows = []
    for name in [n for n in names if n in NCF_KINDS]:
        model = fit(name, proto["fold_train"], seed, ncf_epochs)
        for cfg in grid:
            model.foldin_ = cfg
            t0 = time.perf_counter()
            ids, _ = model.recommend_history(hists, k=K)
            q = quality(ids, val, new)
            rows.append({"model": name, "seed": seed, **vars(cfg), **q, "seconds": time.perf_counter() - t0})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--ncf-epochs", type=int, default=None, help="cap NCF epochs (quick checks only)")
    ap.add_argument("--tune", action="store_true", help="compare NCF fold-in settings on validation")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for seed in seeds:
        proto = protocol(seed)
        if args.tune:
            rows += tune(seed, proto, args.ncf_epochs, names)
            continue
        for name in names:
            try:
                make_model(name, seed=seed)  # checks the optional library early
            except ConfigError as e:
                skipped[name] = str(e)
                continue
            rows.append(run_model(name, seed, proto, args.ncf_epochs))
            r = rows[-1]
            print(f"seed {seed} {name}: ratio ndcg {r['ratio']['ndcg@10']:.3f}, p99 {r['p99_ms']:.1f} ms", flush=True)
    if args.tune:
        Path(args.out).write_text(json.dumps({"tune": rows}, indent=1))
        return
    table = summarise(rows)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores (shared with other jobs: timings indicative)",
        "torch": torch.__version__,
        "seeds": seeds,
        "ncf_epochs": args.ncf_epochs,
        "skipped": skipped,
    }
    Path(args.out).write_text(json.dumps({"meta": meta, "summary": table, "runs": rows}, indent=1))
    print(f"wrote {args.out}")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    print("| model | HR@10 fold-in / full | NDCG@10 fold-in / full | ratio NDCG (HR) | p50 / p99 ms | faithful |")
    print("|---|---|---|---|---|---|")
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]

        def mean(f: Any, rs: list[dict[str, Any]] = rs) -> float:
            return float(np.mean([f(r) for r in rs]))

        s = {
            "model": name,
            "seeds": len(rs),
            "hr_fold": mean(lambda r: r["fold_in"]["hr@10"]),
            "hr_full": mean(lambda r: r["full"]["hr@10"]),
            "ndcg_fold": mean(lambda r: r["fold_in"]["ndcg@10"]),
            "ndcg_full": mean(lambda r: r["full"]["ndcg@10"]),
            "ratio_ndcg": mean(lambda r: r["ratio"]["ndcg@10"]),
            "ratio_hr": mean(lambda r: r["ratio"]["hr@10"]),
            "p50_ms": mean(lambda r: r["p50_ms"]),
            "p99_ms": mean(lambda r: r["p99_ms"]),
            "faithfulness": mean(lambda r: r.get("faithfulness", float("nan"))),
        }
        out.append(s)
        f = "-" if np.isnan(s["faithfulness"]) else f"{s['faithfulness']:.3f}"
        print(
            f"| {name} | {s['hr_fold']:.4f} / {s['hr_full']:.4f} | {s['ndcg_fold']:.4f} / {s['ndcg_full']:.4f} "
            f"| {s['ratio_ndcg']:.3f} ({s['ratio_hr']:.3f}) | {s['p50_ms']:.1f} / {s['p99_ms']:.1f} | {f} |"
        )
    return out


if __name__ == "__main__":
    main()
