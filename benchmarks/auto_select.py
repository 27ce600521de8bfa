"""Does ``--model auto`` choose well? Selection on validation vs the best candidate on test.

    OMP_NUM_THREADS=1 python benchmarks/auto_select.py --bench runs/benchmark/results.json [--seeds 0,1,2] \
        [--candidates default|bench|name,name,...] [--folds N] [--no-blend]

For each protocol and seed, the data is binarised and split exactly as ``ncf benchmark`` does;
:func:`ncf.auto.select_model` then sees only the training part: it carves its validation part
from it, fits every candidate (the benchmark's tuned params, ``benchmarks/tuned_params.json``),
chooses on validation (a single candidate, or a blend of the best three when it validates
better by more than one standard error; ``--no-blend``: single candidates only) and refits the
winner on all of train. The chosen model's test NDCG@10
is compared with the best test NDCG@10 among the same candidates in the benchmark run of the
same seed (same params, same split: the benchmark fitted each candidate exactly as the refit
does). ``--candidates default`` (the default) uses what ``ncf train --model auto`` tries
(:data:`ncf.auto.DEFAULT_CANDIDATES`), ``bench`` every model of the benchmark run. Prints one
row per protocol and seed, and the total time of each selection + refit.
"""

from __future__ import annotations

import argparse
import json
import time

from ncf import benchmark as B
from ncf import evaluate
from ncf.auto import DEFAULT_CANDIDATES, select_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="results.json of an ncf benchmark run with the same params")
    ap.add_argument("--params", default="benchmarks/tuned_params.json")
    ap.add_argument("--protocols", default="holdout,leave-one-out")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budget", type=float, default=600.0)
    ap.add_argument("--folds", type=int, default=1, help="validation parts per candidate (select_model's folds)")
    ap.add_argument("--candidates", default="default", help="default (auto's), bench (the run's models) or a list")
    ap.add_argument("--no-blend", action="store_true", help="choose among single models only (select_model's blend)")
    args = ap.parse_args()
    bench = json.loads(open(args.bench, encoding="utf-8").read())
    if args.candidates == "default":
        candidates = list(DEFAULT_CANDIDATES)
    elif args.candidates == "bench":
        candidates = bench["config"]["models"]
    else:
        candidates = args.candidates.split(",")
    missing = sorted(set(candidates) - set(bench["config"]["models"]))
    if missing:
        raise SystemExit(f"--candidates {missing} were not in the benchmark run; run it with them")
    print(f"candidates: {', '.join(candidates)}")
    given = B.load_params(args.params)
    print("| protocol | seed | chosen | its test NDCG@10 | best on test | best's NDCG@10 | ratio | select + refit s |")
    print("|---|---|---|---|---|---|---|---|")
    for protocol in args.protocols.split(","):
        every = B.protocol_params(given, [protocol], bench["config"]["models"])[protocol]
        params = {name: p for name, p in every.items() if name in candidates}
        for seed in (int(s) for s in args.seeds.split(",")):
            data, _ = B._DataCache({}).load("ml-100k", protocol)
            train, test = B.split_for(protocol, data, seed)
            t0 = time.perf_counter()
            model = select_model(
                train,
                budget=args.budget,
                candidates=candidates,
                params=params,
                seed=seed,
                folds=args.folds,
                blend=not args.no_blend,
            )
            total = time.perf_counter() - t0
            row = next(r for r in model.leaderboard_ if r.get("chosen"))
            chosen = row["model"]
            if chosen == "blend":
                chosen += " " + "+".join(f"{n} {w:.1f}" for n, w in row["params"]["components"].items())
            ndcg = evaluate(model, test, k=10)["ndcg@10"]
            runs = [
                r
                for r in bench["runs"]
                if r["protocol"] == protocol and r["seed"] == seed and r["status"] == "ok" and r["model"] in candidates
            ]
            best = max(runs, key=lambda r: r["metrics"]["ndcg@10"])
            print(
                f"| {protocol} | {seed} | {chosen} | {ndcg:.4f} | {best['model']} | {best['metrics']['ndcg@10']:.4f} "
                f"| {ndcg / best['metrics']['ndcg@10']:.3f} | {total:.1f} |",
                flush=True,
            )
            print(
                "  leaderboard: "
                + "; ".join(
                    f"{r['model']} {r.get('val_ndcg@10', float('nan')):.4f} ({r.get('fit_seconds', 0):.1f}s)"
                    + (f" [{r['status']}]" if r["model"] == "blend" else "")
                    for r in model.leaderboard_
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
