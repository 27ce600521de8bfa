"""Does a steadier item-item weight choice help? Argmax vs a 3-point moving average (nested validation).

    OMP_NUM_THREADS=1 python benchmarks/experiments/weight_smoothing.py argmax|smooth

The default NCF, fitted on the tuning split's inner part (seeds 0-4, the test part never used),
scored on the outer validation part. ``smooth`` replaces :func:`ncf.item_item.choose`'s argmax
over the weight grid by the argmax of the table averaged with its neighbours (the L2 whose
smoothed best is highest wins): on the holdout the table is often flat near its top (seed 2 of
the benchmark: w 0.2-0.4 within 0.0004), where the argmax picks by noise. Result in
benchmarks/RESULTS.md, Session 8: no gain (holdout 0.2154 vs 0.2151, leave-one-out 0.1076 both).
"""

from __future__ import annotations

import sys

import numpy as np

import ncf.item_item as ii
from ncf import NCF, evaluate
from ncf.benchmark import tuning_split

MODE = sys.argv[1]  # argmax | smooth
ORIGINAL = ii.choose


def smooth(vals: np.ndarray) -> np.ndarray:
    """Each entry averaged with its neighbours (two at the ends)."""
    padded = np.concatenate([[np.nan], vals, [np.nan]])
    return np.nanmean(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)


def choose(ncf_scores, ease_models, train, validation, metric, grid=ii.GRID):  # noqa: ANN001, ANN201
    """:func:`ncf.item_item.choose` per L2 (its table), then the argmax of the smoothed table."""
    best = None
    for l2, ease_scores in ease_models:
        _, table, _ = ORIGINAL(ncf_scores, [(l2, ease_scores)], train, validation, metric, grid)
        vals = np.array([table[f"{w:.1f}"] for w in grid])
        crit = smooth(vals) if MODE == "smooth" else vals
        i = int(np.argmax(crit))
        if best is None or crit[i] > best[3]:
            best = (float(grid[i]), table, l2, float(crit[i]))
    return best[:3]


ii.choose = choose
for protocol in ("holdout", "leave-one-out"):
    res = []
    for seed in range(5):
        inner, outer = tuning_split(protocol, seed)
        m = NCF(seed=seed).fit(inner)
        res.append(evaluate(m, outer, k=10, metrics=["ndcg"])["ndcg@10"])
        print(protocol, seed, round(res[-1], 4), m.item_item_, flush=True)
    print(MODE, protocol, "mean", round(float(np.mean(res)), 4))
