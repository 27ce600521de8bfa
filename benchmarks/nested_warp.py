"""Tuned LightFM WARP on the nested holdout validation part, 3 seeds (what NeuMF variants are compared to).

    OMP_NUM_THREADS=1 python benchmarks/nested_warp.py '{"no_components": 64, "learning_rate": 0.02, "epochs": 50}'

Same carve as ``benchmarks/nested_validation.py --protocol holdout``; the test part is never used.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from ncf import evaluate, split
from ncf.baselines import LightFMModel
from ncf.data.movielens import movielens_100k


def main() -> None:
    cfg = json.loads(sys.argv[1])
    rows = []
    for seed in (0, 1, 2):
        train, _test = split.holdout(movielens_100k(min_rating=3), n=10, by="random", seed=seed)
        inner, outer = split.carve_validation(train, "random", n=10, seed=seed)
        t = time.perf_counter()
        m = LightFMModel(loss="warp", seed=seed, **cfg).fit(inner)
        r = evaluate(m, outer, k=[10])
        rows.append([time.perf_counter() - t, r["ndcg@10"], r["recall@10"]])
    mean = np.mean(rows, axis=0)
    print(json.dumps({"cfg": cfg, "fit_s": round(mean[0], 1), "outer_ndcg@10": round(mean[1], 4),
                      "outer_recall@10": round(mean[2], 4), "per_seed": [round(r[1], 4) for r in rows]}))  # fmt: skip


if __name__ == "__main__":
    main()
