"""Quality and training time of NCF's defaults on ML-100k, mean of 3 seeds.

    python benchmarks/quality.py [--seeds 0,1,2] [--params '{"model": "neumf"}']

Protocols (the test part is split off first; NCF.fit carves its own validation part out of
the training part for early stopping, so the test part is touched once, here):
  holdout        the seed notebook's: ratings >= 3, 10 random test items per user
  leave-one-out  the NCF paper's: every rating a positive, each user's latest item
Metrics are full ranking with seen items excluded. Fit time is wall-clock on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from ncf import NCF, evaluate, split
from ncf.baselines import Popularity
from ncf.data.movielens import movielens_100k

SPLITS = {
    "holdout": lambda seed: split.holdout(movielens_100k(min_rating=3), n=10, by="random", seed=seed),
    "leave-one-out": lambda seed: split.leave_one_out(movielens_100k(), by="timestamp", seed=seed),
}
SHOW = ["precision@5", "recall@5", "hr@10", "ndcg@10", "recall@10"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--protocols", default="holdout,leave-one-out")
    ap.add_argument("--params", default="{}", help="JSON of NCF parameters overriding the defaults")
    ap.add_argument("--json", default=None, help="also write the raw results here")
    args = ap.parse_args()
    params = json.loads(args.params)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, params {params or 'defaults'}"
    )
    raw = {}
    for proto in args.protocols.split(","):
        rows: dict[str, list[dict]] = {"NCF": [], "popularity": []}
        for seed in seeds:
            train, test = SPLITS[proto](seed)
            t = time.perf_counter()
            model = NCF(seed=seed, **params).fit(train)
            fit = time.perf_counter() - t
            r = evaluate(model, test, k=[5, 10])
            rows["NCF"].append({**r, "fit_seconds": fit, "best_epoch": model.best_epoch_})
            rows["popularity"].append({**evaluate(Popularity().fit(train), test, k=[5, 10]), "fit_seconds": 0.0})
        print(f"\n## {proto} (full ranking, seen items excluded; mean ± std over seeds {seeds})")
        print("| model | " + " | ".join(SHOW) + " | fit s |")
        print("|---" * (len(SHOW) + 2) + "|")
        for name, rs in rows.items():
            cells = [f"{np.mean([r[m] for r in rs]):.4f} ± {np.std([r[m] for r in rs]):.4f}" for m in SHOW]
            fit = np.mean([r["fit_seconds"] for r in rs])
            print(f"| {name} | " + " | ".join(cells) + f" | {fit:.1f} |")
        raw[proto] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1, default=float)


if __name__ == "__main__":
    main()
