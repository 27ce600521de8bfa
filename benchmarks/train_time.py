"""Wall-clock time to train NeuMF with the defaults on ML-100k (2-core CPU), per phase.

    python benchmarks/train_time.py [--seeds 0,1,2]

Reports, per protocol and seed, the total `NCF().fit(train)` time: early-stopping run with
per-epoch validation, then the refit on all of train for the chosen number of epochs.
The seed notebook's Keras NeuMF took about 80 s (its own log: "Wall time: 1min 20s").
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    NCF(epochs=1, seed=0).fit(SPLITS["holdout"](0)[0], validation=None)  # warm imports and allocator
    print("| protocol | seed | fit s | selection epochs | refit epochs | s/epoch (with validation) | s/epoch (refit) |")
    print("|---|---|---|---|---|---|---|")
    for proto, make in SPLITS.items():
        for seed in (int(s) for s in args.seeds.split(",")):
            train, _ = make(seed)
            t = time.perf_counter()
            m = NCF(seed=seed).fit(train)
            total = time.perf_counter() - t
            sel, ref = m.history_["neumf"], m.history_.get("neumf_refit")
            n_sel, n_ref = len(sel["history"]), len(ref["history"]) if ref else 0
            per_ref = ref["seconds"] / n_ref if ref else float("nan")
            print(f"| {proto} | {seed} | {total:.1f} | {n_sel} | {n_ref} | {sel['seconds'] / n_sel:.2f} | {per_ref:.2f} |")


if __name__ == "__main__":
    main()
