"""Does a choice made on the holdout's validation part transfer to the test part? (a lead for the next round)

    OMP_NUM_THREADS=2 python benchmarks/experiments/validation_transfer.py [--seeds 0,1,2,3,4,5]

On the benchmark's random holdout (10 test items per user), ``--model auto`` and the tuning carve
their validation part by the same rule: 10 more random items per user out of train
(:func:`ncf.split.validation_rule`). This prints, per seed, how much of each user's profile the
two carves remove (the test took 10 of a user's items; validation takes 10 of what is left), and
EASE's NDCG@10 for a range of L2 values on validation (fitted on the inner part) and on test
(fitted on train): if the carve mimicked the test, the best L2 would be the same on both.
"""

from __future__ import annotations

import argparse

import numpy as np

from ncf import benchmark as B
from ncf import evaluate
from ncf.auto import _validation_parts
from ncf.data.movielens import movielens_100k

L2 = (200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3,4,5")
    args = ap.parse_args()
    data = movielens_100k(min_rating=B.binarise_for("holdout"))
    full = np.bincount(data.user_idx, minlength=data.n_users)
    print(f"L2: {', '.join(f'{x:g}' for x in L2)}")
    for seed in (int(s) for s in args.seeds.split(",")):
        train, test = B.split_for("holdout", data, seed)
        ((inner, val),) = _validation_parts(train, 1, seed)
        tr = np.bincount(train.user_idx, minlength=data.n_users)
        inn = np.bincount(inner.user_idx, minlength=data.n_users)
        removed_test = float(np.mean(1 - tr / full))
        removed_val = float(np.mean(1 - inn / np.maximum(tr, 1)))
        v = [evaluate(B.make_model("ease", {"l2": x}).fit(inner), val, k=10, metrics=["ndcg"])["ndcg@10"] for x in L2]
        t = [evaluate(B.make_model("ease", {"l2": x}).fit(train), test, k=10, metrics=["ndcg"])["ndcg@10"] for x in L2]
        print(
            f"seed {seed}: share of a user's items removed: test {removed_test:.2f}, validation {removed_val:.2f}; "
            f"users with <= 5 items: train {int((tr <= 5).sum())}, inner {int((inn <= 5).sum())}\n"
            f"  validation {' '.join(f'{x:.4f}' for x in v)} best L2 {L2[int(np.argmax(v))]:g}\n"
            f"  test       {' '.join(f'{x:.4f}' for x in t)} best L2 {L2[int(np.argmax(t))]:g}",
            flush=True,
        )


if __name__ == "__main__":
    main()
