"""The item-item blend's validation curve: NDCG@10 of (1 - w) z(towers) + w z(EASE) for each weight w.

    OMP_NUM_THREADS=1 python benchmarks/experiments/blend_curve.py [--protocol leave-one-out] [--seed 0]

The test part is never used: the training part of the benchmark's split is carved into an inner
part and an outer validation part (:func:`ncf.benchmark.tuning_split`); the towers (NeuMF, the
pre-item-item default: pretraining on, ``item_item=0``) and EASE (L2 500) are fitted on the inner
part, and every blend weight is scored on the outer part. It shows the shape of the curve, which
is why ``item_item="auto"`` chooses ``w`` on validation; ``NCF.fit`` chooses on its own carve-out.
"""

from __future__ import annotations

import argparse

import torch

from ncf import NCF, evaluate
from ncf.baselines import EASE
from ncf.benchmark import tuning_split
from ncf.item_item import GRID, blend


class _Blend:
    """A Scorer for a fixed blend of two fitted models (evaluation only)."""

    def __init__(self, towers: NCF, ease: EASE, weight: float) -> None:
        self.towers, self.ease, self.weight, self.train_ = towers, ease, weight, towers.train_

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        return blend(self.towers.score_block(users), self.ease.score_block(users), self.weight)

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("full-ranking evaluation only")

    def score_device(self) -> torch.device:
        return torch.device("cpu")

    def bytes_per_user(self) -> int:
        return self.train_.n_items * 64

    def check_fitted(self) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", default="leave-one-out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    inner, outer = tuning_split(args.protocol, args.seed)
    towers = NCF(seed=args.seed, pretrain=True, item_item=0.0).fit(inner)
    ease = EASE(l2=500.0).fit(inner)
    print(f"| {args.protocol} | " + " | ".join(f"w={w:.1f}" for w in GRID) + " |")
    row = [evaluate(_Blend(towers, ease, w), outer, k=10, metrics=["ndcg"])["ndcg@10"] for w in GRID]
    print("| NDCG@10 | " + " | ".join(f"{v:.4f}" for v in row) + " |")


if __name__ == "__main__":
    main()
