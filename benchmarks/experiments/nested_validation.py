"""Compare training strategies on validation data only (nested), never on the test part.

    python benchmarks/experiments/nested_validation.py --configs '[{...}, ...]' [--protocol leave-one-out] [--seeds 0,1,2]

The test part is split off first and ignored. From the remaining training part an outer
validation part is carved by the same rule; each config is fit on what is left (fit()
carves its own inner validation part for early stopping) and scored on the outer one.
This lets choices that early stopping cannot make itself (refit or not, slow vs fast
learning rates, patience) be compared without touching the test part.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ncf import NCF, evaluate
from ncf.benchmark import tuning_split  # the same (inner, outer) carve as the tuning search


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", required=True)
    ap.add_argument("--protocol", default="leave-one-out")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    configs = json.loads(args.configs)
    for cfg in configs:
        rows = []
        for seed in (int(s) for s in args.seeds.split(",")):
            inner, outer = tuning_split(args.protocol, seed)  # the test part is never used
            t = time.perf_counter()
            m = NCF(seed=seed, **cfg).fit(inner)
            fit = time.perf_counter() - t
            r = evaluate(m, outer, k=[5, 10])
            rows.append([fit, m.best_epoch_, r["hr@10"], r["ndcg@10"], r["precision@5"]])
        mean = np.mean(rows, axis=0)
        print(
            json.dumps(
                {
                    "protocol": args.protocol,
                    "config": cfg,
                    "fit_s": round(mean[0], 2),
                    "best_epoch": round(mean[1], 1),
                    "outer_hr@10": round(mean[2], 4),
                    "outer_ndcg@10": round(mean[3], 4),
                    "outer_precision@5": round(mean[4], 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
