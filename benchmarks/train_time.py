"""Wall-clock time to train NeuMF on ML-100k (2-core CPU), per stage.

    python benchmarks/train_time.py [--seeds 0,1,2] [--configs defaults,one-stage]

Reports, per config, protocol and seed, the total `NCF(**config).fit(train)` time and the
epochs of each stage: the early-stopping run with per-epoch validation, then the refit on
all of train for the chosen number of epochs. Configs: "defaults" (GMF + MLP pretraining,
fused, fine-tuned) and "one-stage" (``pretrain=False, weight_decay=1e-4``: the defaults
before round 5, the fast recipe). The seed notebook's Keras NeuMF took about 80 s (its own
log: "Wall time: 1min 20s").
"""

from __future__ import annotations

import argparse
import time

import torch

from ncf import NCF, split
from ncf.data.movielens import movielens_100k

SPLITS = {
    "holdout": lambda seed: split.holdout(movielens_100k(min_rating=3), n=10, by="random", seed=seed),
    "leave-one-out": lambda seed: split.leave_one_out(movielens_100k(), by="timestamp", seed=seed),
}


CONFIGS = {"defaults": {}, "one-stage": {"pretrain": False, "weight_decay": 1e-4}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    NCF(epochs=1, seed=0, pretrain=False).fit(SPLITS["holdout"](0)[0], validation=None)  # warm imports and allocator
    print("| config | protocol | seed | fit s | epochs per stage (selection / refit) |")
    print("|---|---|---|---|---|")
    for name in args.configs.split(","):
        for proto, make in SPLITS.items():
            for seed in (int(s) for s in args.seeds.split(",")):
                train, _ = make(seed)
                t = time.perf_counter()
                m = NCF(seed=seed, **CONFIGS[name]).fit(train)
                total = time.perf_counter() - t
                stages = [k for k in m.history_ if not k.endswith("_refit")]
                ep = ", ".join(
                    f"{k} {len(m.history_[k]['history'])}/{len(m.history_.get(k + '_refit', {}).get('history', []))}"
                    for k in stages
                )
                print(f"| {name} | {proto} | {seed} | {total:.1f} | {ep} |", flush=True)


if __name__ == "__main__":
    main()
