"""Incremental update against a full retrain on ML-100k, in global time order.

    PYTHONPATH=src python benchmarks/update.py [--models neumf,ease,...] [--seeds 0,1,2] [--json benchmarks/update.json]
    PYTHONPATH=src python benchmarks/update.py --tune      # how ncf.update's NCF defaults were chosen

Data: ML-100k, every rating a positive, sorted by timestamp (ties: file order). The first 80 %
of the interactions train the base model, the next 10 % are the update, the last 10 % the test.

* update arm: ``model.fit(first 80 %)``, then ``model.update(next 10 %)`` (timed: the update alone);
* retrain arm: a fresh ``model.fit(first 90 %)`` with the same seed (timed: the fit).

Both arms end with the same users and items (those of the first 90 %). Test: full ranking of
every known item, items seen in the first 90 % excluded (:func:`ncf.evaluate`); test users and
items the models do not know (they first appear in the last 10 %) are dropped, the same rows for
both arms, and counted. NDCG@10 ratio = update / retrain (goal >= 0.97); time ratio = update
seconds / retrain fit seconds (goal <= 0.25). Also counted: of the users and items that first
appear in the update window, how many get recommendations (users) and how many appear in some
user's top 10 (items), for each arm.

``--tune`` (validation, never the test part): base on the first 70 %, update with 70-80 %, score
on 80-90 %, over a grid of the NCF update's ``old_ratio`` and ``epochs``; the defaults in
ncf.update came from it. Timings are wall-clock on this machine; see "machine" in the JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from ncf import evaluate, load_interactions
from ncf.data.interactions import Interactions
from ncf.data.movielens import movielens_100k
from ncf.registry import make_model

DEFAULT_MODELS = "neumf,ease,item-knn,popularity,implicit-als,implicit-bpr,lightfm-warp"


def time_ordered_parts(cuts: tuple[float, ...]) -> list[Interactions]:
    """ML-100k in global time order, cut at the given fractions; each part has its own id maps."""
    df = movielens_100k().to_frame()
    df = df.iloc[np.argsort(df["timestamp"].to_numpy(), kind="stable")].reset_index(drop=True)
    bounds = [0, *(int(round(c * len(df))) for c in cuts), len(df)]
    return [
        load_interactions(df.iloc[a:b], user="user", item="item", timestamp="timestamp")
        for a, b in zip(bounds[:-1], bounds[1:])
    ]


def concat(*parts: Interactions) -> Interactions:
    df = pd.concat([p.to_frame() for p in parts], ignore_index=True)
    return load_interactions(df, user="user", item="item", timestamp="timestamp")


def newcomers(model: Any, base: Interactions, upd: Interactions) -> dict[str, int]:
    """Users / items first seen in ``upd``: how many, how many get a full top 10, how many items are in some top 10."""
    new_users = np.setdiff1d(upd.user_map.ids, base.user_map.ids)
    new_items = np.setdiff1d(upd.item_map.ids, base.item_map.ids)
    ids, _ = model.recommend(new_users, k=10)
    got = int(sum(all(i is not None for i in row) for row in ids))
    all_ids, _ = model.recommend(model.user_map_.ids, k=10)
    shown = set(pd.unique(pd.Series(np.asarray(all_ids, dtype=object).ravel())).tolist())
    return {
        "new_users": len(new_users),
        "new_users_with_recs": got,
        "new_items": len(new_items),
        "new_items_recommended": int(sum(i in shown for i in new_items.tolist())),
    }


def run_models(models: list[str], seeds: list[int], params: dict[str, Any]) -> list[dict[str, Any]]:
    base, upd, test = time_ordered_parts((0.8, 0.9))
    both = concat(base, upd)
    rows = []
    for name in models:
        for seed in seeds:
            p = params.get(name, {})
            m = make_model(name, p, seed)
            t = time.perf_counter()
            m.fit(base)
            base_s = time.perf_counter() - t
            t = time.perf_counter()
            m.update(upd)
            upd_s = time.perf_counter() - t
            r = make_model(name, p, seed)
            t = time.perf_counter()
            r.fit(both)
            re_s = time.perf_counter() - t
            eu, er = evaluate(m, test, k=10), evaluate(r, test, k=10)
            row = {
                "model": name,
                "seed": seed,
                "ndcg@10_update": eu["ndcg@10"],
                "ndcg@10_retrain": er["ndcg@10"],
                "hr@10_update": eu["hr@10"],
                "hr@10_retrain": er["hr@10"],
                "ndcg_ratio": eu["ndcg@10"] / er["ndcg@10"] if er["ndcg@10"] else float("nan"),
                "base_fit_seconds": base_s,
                "update_seconds": upd_s,
                "retrain_seconds": re_s,
                "time_ratio": upd_s / re_s,
                "test_users": eu["users"],
                "test_dropped": {k: v for k, v in eu.items() if "dropped" in k or "unknown" in k},
                "update_how": m.updates_[-1]["how"],
                "update_arm": newcomers(m, base, upd),
                "retrain_arm": newcomers(r, base, upd),
            }
            rows.append(row)
            print(
                f"{name:<13} seed {seed}: ndcg@10 {row['ndcg@10_update']:.4f} vs {row['ndcg@10_retrain']:.4f} "
                f"(x{row['ndcg_ratio']:.3f}); {upd_s:.1f}s vs {re_s:.1f}s (x{row['time_ratio']:.3f})",
                flush=True,
            )
    return rows


def tune(seeds: list[int]) -> list[dict[str, Any]]:
    """NeuMF defaults, validation only: base 0-70 %, update 70-80 %, scored on 80-90 %; per seed,
    a grid of old_ratio x epochs x learning-rate scale (of the model's learning_rate), and a retrain."""
    base, upd, val, _ = time_ordered_parts((0.7, 0.8, 0.9))
    rows = []
    for seed in seeds:
        m = make_model("neumf", {}, seed).fit(base)
        for ratio in (0.0, 1.0, 4.0):
            for epochs in (1, 3):
                for lr_scale in (0.1, 1.0):
                    c = copy.deepcopy(m)
                    t = time.perf_counter()
                    c.update(upd, epochs=epochs, old_ratio=ratio, learning_rate=m.learning_rate * lr_scale)
                    s = time.perf_counter() - t
                    res = evaluate(c, val, k=10)
                    rows.append(
                        {"seed": seed, "old_ratio": ratio, "epochs": epochs, "lr_scale": lr_scale,
                         "val_ndcg@10": res["ndcg@10"], "seconds": s}
                    )  # fmt: skip
                    print(
                        f"seed {seed} old_ratio {ratio:g} epochs {epochs} lr x{lr_scale:g}: "
                        f"val ndcg@10 {res['ndcg@10']:.4f} ({s:.1f}s)",
                        flush=True,
                    )
        r = make_model("neumf", {}, seed).fit(concat(base, upd))
        ref = evaluate(r, val, k=10)["ndcg@10"]
        rows.append({"seed": seed, "retrain": True, "val_ndcg@10": ref})
        print(f"seed {seed} retrain on 0-80 %: val ndcg@10 {ref:.4f}", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| model | NDCG@10 update | NDCG@10 retrain | ratio | update s | retrain s | time ratio "
        "| new users with recs (upd / retrain) | new items in some top 10 (upd / retrain) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]

        def ms(key: str, fmt: str, rs: list[dict[str, Any]] = rs) -> str:
            v = np.array([r[key] for r in rs], dtype=float)
            return f"{v.mean():{fmt}} ± {v.std():{fmt}}" if len(v) > 1 else f"{v.mean():{fmt}}"

        a, b = rs[0]["update_arm"], rs[0]["retrain_arm"]
        out.append(
            f"| {name} | {ms('ndcg@10_update', '.4f')} | {ms('ndcg@10_retrain', '.4f')} | {ms('ndcg_ratio', '.3f')} "
            f"| {ms('update_seconds', '.2f')} | {ms('retrain_seconds', '.2f')} | {ms('time_ratio', '.3f')} "
            f"| {a['new_users_with_recs']} / {b['new_users_with_recs']} of {a['new_users']} "
            f"| {a['new_items_recommended']} / {b['new_items_recommended']} of {a['new_items']} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--params", default="{}", help="JSON: model name -> parameters")
    ap.add_argument("--tune", action="store_true", help="choose the NCF update defaults on validation")
    ap.add_argument("--json", default=None, help="write the rows here (e.g. benchmarks/update.json)")
    ap.add_argument("--note", default="", help="conditions to record, e.g. 'machine shared'")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "note": args.note,
    }
    if args.tune:
        rows = tune(seeds)
        result: dict[str, Any] = {"tune": rows, "tune_machine": machine}
    else:
        rows = run_models([m.strip() for m in args.models.split(",") if m.strip()], seeds, json.loads(args.params))
        print()
        print(table(rows))
        result = {"rows": rows, "table": table(rows), "machine": machine, "seeds": seeds}
    if args.json:
        prev = {}
        if os.path.exists(args.json):
            with open(args.json) as fh:
                prev = json.load(fh)
        with open(args.json, "w") as fh:
            json.dump({**prev, **result}, fh, indent=2, default=str)


if __name__ == "__main__":
    main()
