"""Issue 14 lead: instead of retraining every stage on all of train (the refit), continue the
selected NeuMF for k epochs on all of train. Nested validation only (the test part is never used).

    OMP_NUM_THREADS=1 python benchmarks/experiments/refit_continue.py [--epochs 1,2,3] [--seeds 0,1,2]

For each protocol and seed: (inner, outer) = ncf.benchmark.tuning_split; NCF(refit=False) is fitted
on inner (its own early stopping inside it), then its final module trains k more epochs on all of
inner at the fine-tune learning rate (the last stage's), and is scored on outer after each k.
Compare with RESULTS "Where the default NeuMF fit's time goes": defaults (full refit) 0.0800 /
0.2117 outer NDCG@10, no refit 0.0772 / 0.2007.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from ncf import NCF, evaluate
from ncf.benchmark import tuning_split
from ncf.train.trainer import train_module


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", default="1,2,3")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--protocols", default="leave-one-out,holdout")
    args = ap.parse_args()
    ks = [int(k) for k in args.epochs.split(",")]
    for protocol in args.protocols.split(","):
        rows = {k: [] for k in ks}
        for seed in (int(s) for s in args.seeds.split(",")):
            inner, outer = tuning_split(protocol, seed)
            t0 = time.perf_counter()
            m = NCF(seed=seed, refit=False).fit(inner)
            base = time.perf_counter() - t0
            last = m.plan()[-1]
            cfg = dataclasses.replace(m._config(), learning_rate=m.learning_rate * last.lr_scale, epochs=1)
            done, extra = 0, 0.0
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                for k in ks:
                    t = time.perf_counter()
                    for e in range(done, k):
                        train_module(m.module_, inner, None, dataclasses.replace(cfg, seed=cfg.seed + 1000 + e),
                                     device=m.device_, progress=False)  # fmt: skip
                    done, extra = k, extra + time.perf_counter() - t
                    m.module_.eval()
                    r = evaluate(m, outer, k=10)
                    rows[k].append([base + extra, r["ndcg@10"], r["hr@10"]])
        for k in ks:
            fit, ndcg, hr = np.mean(rows[k], axis=0)
            print(
                f"{protocol}: continue {k} epoch(s): fit {fit:.1f} s, outer NDCG@10 {ndcg:.4f}, HR@10 {hr:.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
