"""Hyper-parameter search for NCF's defaults on ML-100k, scored on VALIDATION data only.

For each protocol the test part is split off first and never looked at; `NCF.fit`
carves its validation part (one interaction per user) out of the training part, and
the score recorded is the best validation NDCG@10 reached, with the wall-clock fit time.

    python benchmarks/experiments/search_defaults.py --grid coarse --out runs/search.jsonl

Each line of the output is one (protocol, config, seed) run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from ncf import NCF, split
from ncf.data.movielens import movielens_100k

PROTOCOLS = {
    # the seed notebook's protocol: ratings >= 3, 10 random test items per user
    "holdout": lambda seed: split.holdout(movielens_100k(min_rating=3), n=10, by="random", seed=seed),
    # the NCF paper's protocol: every rating a positive, each user's latest held out
    "leave-one-out": lambda seed: split.leave_one_out(movielens_100k(), by="timestamp", seed=seed),
}

GRIDS = {
    "coarse": {
        "batch_size": [2048, 8192],
        "learning_rate": [0.003, 0.01],
        "negatives": [4, 8],
        "factors": [8, 32],
        "weight_decay": [0.0, 1e-4],
    },
}


def configs(grid: dict[str, list]) -> list[dict]:
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def summarize(path: str) -> None:
    """Print a Markdown table: mean validation NDCG@10 per (protocol, config) over seeds."""
    import collections
    import statistics

    groups: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            p = {k: v for k, v in r["params"].items() if k not in ("epochs", "patience")}
            groups[(r["protocol"], json.dumps(p, sort_keys=True))].append(r)
    print("| protocol | config | seeds | val NDCG@10 (mean) | best epoch | fit s |")
    print("|---|---|---|---|---|---|")
    rows = sorted(groups.items(), key=lambda kv: (kv[0][0], -statistics.mean(r["val_ndcg@10"] for r in kv[1])))
    for (proto, cfg), rs in rows:
        val = statistics.mean(r["val_ndcg@10"] for r in rs)
        ep = statistics.mean(r["best_epoch"] for r in rs)
        fit = statistics.mean(r["fit_seconds"] for r in rs)
        print(f"| {proto} | `{cfg}` | {len(rs)} | {val:.4f} | {ep:.1f} | {fit:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--summarize", default=None, metavar="JSONL", help="print a table of a finished search")
    ap.add_argument("--grid", default="coarse")
    ap.add_argument("--configs", default=None, help="JSON list of configs instead of a grid")
    ap.add_argument("--protocols", default="holdout,leave-one-out")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="runs/search.jsonl")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    cfgs = json.loads(args.configs) if args.configs else configs(GRIDS[args.grid])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        for proto in args.protocols.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                train, _test = PROTOCOLS[proto](seed)  # the test part is never used here
                for cfg in cfgs:
                    params = {"epochs": args.epochs, "patience": 2, **cfg}
                    t = time.perf_counter()
                    m = NCF(seed=seed, **params).fit(train)
                    row = {
                        "protocol": proto,
                        "seed": seed,
                        "params": params,
                        "val_ndcg@10": m.validation_metrics_.get("val_ndcg@10"),
                        "best_epoch": m.best_epoch_,
                        "fit_seconds": round(time.perf_counter() - t, 2),
                    }
                    print(json.dumps(row), flush=True)
                    f.write(json.dumps(row) + "\n")
                    f.flush()


if __name__ == "__main__":
    main()
