"""Issue 13 point 3 lead: would a validation-weighted blend of the best candidates land closer to the test-best?

    OMP_NUM_THREADS=2 python benchmarks/experiments/blend_candidates.py neumf,ease,implicit-als \
        [--protocols holdout,leave-one-out] [--seeds 0,1,2] [--folds 1]

For each protocol and seed (the benchmark's split and tuned params): every named model is fitted
on ``--model auto``'s validation parts (:func:`ncf.auto._validation_parts`) and on all of train;
the blend weights (a simplex grid of step 0.1 over the per-user standardised scores) are chosen on
the mean validation NDCG@10 over the folds, then the blend of the models refitted on train is
scored on test. Prints each model's validation and test NDCG@10, the chosen weights and the
blend's test NDCG@10 over the best single model's. This is how the blend stage of
:func:`ncf.auto.select_model` was found (benchmarks/RESULTS.md, "Session 9"); it has no
one-standard-error rule: it always ships the best grid point.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import torch

from ncf import benchmark as B
from ncf.auto import _validation_parts
from ncf.data.movielens import movielens_100k
from ncf.evaluation import evaluate_scores
from ncf.item_item import standardise


def zscores(model, n_users: int) -> torch.Tensor:  # noqa: ANN001 - any fitted model
    with torch.inference_mode():
        return standardise(model.score_block(torch.arange(n_users))).cpu()


def ndcg(z: torch.Tensor, train, test) -> float:  # noqa: ANN001
    return float(evaluate_scores(lambda b: z[b.cpu()], None, train, test, k=10, metrics=["ndcg"])["ndcg@10"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models")
    ap.add_argument("--protocols", default="holdout,leave-one-out")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--folds", type=int, default=1)
    ap.add_argument("--params", default="benchmarks/tuned_params.json")
    args = ap.parse_args()
    models = args.models.split(",")
    tuned = json.loads(open(args.params, encoding="utf-8").read())
    grid = [c for c in itertools.product(range(11), repeat=len(models)) if sum(c) == 10]
    for protocol in args.protocols.split(","):
        data = movielens_100k(min_rating=B.binarise_for(protocol))
        for seed in (int(s) for s in args.seeds.split(",")):
            train, test = B.split_for(protocol, data, seed)
            parts = _validation_parts(train, args.folds, seed)
            inner_z: list[dict[str, torch.Tensor]] = [{} for _ in parts]
            full_z = {}
            for name in models:
                p = tuned.get(protocol, {}).get(name, {})
                for j, (inner, _) in enumerate(parts):
                    inner_z[j][name] = zscores(B.make_model(name, p, seed + j).fit(inner), inner.n_users)
                full_z[name] = zscores(B.make_model(name, p, seed).fit(train), train.n_users)

            def val(c: tuple[int, ...], parts=parts, inner_z=inner_z) -> float:  # noqa: ANN001
                return float(
                    np.mean(
                        [
                            ndcg(sum(w / 10 * inner_z[j][n] for w, n in zip(c, models)), inner, v)
                            for j, (inner, v) in enumerate(parts)
                        ]
                    )
                )

            single_val = {n: val(tuple(int(m == n) * 10 for m in models)) for n in models}
            single_test = {n: ndcg(full_z[n], train, test) for n in models}
            best = max(grid, key=val)
            blend = ndcg(sum(w / 10 * full_z[n] for w, n in zip(best, models)), train, test)
            print(
                f"{protocol} seed {seed}: val {json.dumps({k: round(v, 4) for k, v in single_val.items()})} "
                f"test {json.dumps({k: round(v, 4) for k, v in single_test.items()})} "
                f"weights {[w / 10 for w in best]} blend test {blend:.4f} "
                f"/ best single {blend / max(single_test.values()):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
