"""Large-batch learning-rate rule, measured on ML-100k validation (the test part is never used).

    python benchmarks/experiments/lr_rule.py [--seeds 0,1] [--threads 1]

Reference: NeuMF, 8 factors, MLP [64,32,16,8], 4 negatives, lr 1e-3 at batch 1024 (the
paper's setting). At larger batches the step is kept (none), scaled by sqrt(B/1024) or by
B/1024, each with and without one epoch of linear warm-up. Each run early-stops on the
validation part that ``fit`` carves out of train (NDCG@10, patience 2, at most 30 epochs).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ncf import NCF, ModelDivergedError, split
from ncf.data.movielens import movielens_100k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1024,16384,65536")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    configs = [(1024, "none", 0.0)]
    for b in (int(x) for x in args.batches.split(",") if int(x) != 1024):
        configs += [(b, "none", 0.0), (b, "sqrt", 0.0), (b, "sqrt", 1.0), (b, "linear", 0.0), (b, "linear", 1.0)]
    print("| batch | rule | warm-up epochs | lr | val NDCG@10 (mean) | per seed | epochs | s |")
    print("|---|---|---|---|---|---|---|---|")
    for batch, rule, warm in configs:
        vals, eps, secs = [], [], 0.0
        for seed in (int(s) for s in args.seeds.split(",")):
            train, _ = split.holdout(movielens_100k(min_rating=3), n=10, by="random", seed=seed)
            m = NCF(
                factors=8,
                layers=(64, 32, 16, 8),
                negatives=4,
                batch_size=batch,
                learning_rate=1e-3,
                weight_decay=0.0,
                lr_scaling=rule,
                lr_reference_batch=1024,
                warmup_epochs=warm,
                epochs=30,
                patience=2,
                refit=False,
                seed=seed,
            )
            t = time.perf_counter()
            try:
                m.fit(train)
            except ModelDivergedError:
                vals.append(float("nan"))
                eps.append(-1)
                continue
            finally:
                secs += time.perf_counter() - t
            vals.append(m.validation_metrics_["val_ndcg@10"])
            eps.append(m.best_epoch_)
        lr = 1e-3 * {"none": 1.0, "sqrt": (batch / 1024) ** 0.5, "linear": batch / 1024}[rule]
        mean = sum(vals) / len(vals)
        rows.append(dict(batch=batch, rule=rule, warmup=warm, lr=lr, val=vals, best_epochs=eps, seconds=secs))
        print(
            f"| {batch} | {rule} | {warm:g} | {lr:.4g} | {mean:.4f} | {', '.join(f'{v:.4f}' for v in vals)} | "
            f"{', '.join(map(str, eps))} | {secs:.0f} |",
            flush=True,
        )
    Path("runs").mkdir(exist_ok=True)
    with open("runs/lr_rule.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
