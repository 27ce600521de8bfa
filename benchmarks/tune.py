"""Equal tuning budget for every model, on validation data only (never the test part).

    OMP_NUM_THREADS=1 python benchmarks/tune.py [--protocols holdout,leave-one-out] [--models ...]
        [--seeds 0] [--out benchmarks/tune_rows.jsonl]
    python benchmarks/tune.py --select benchmarks/tune_rows.jsonl --params-out benchmarks/tuned_params.json

For each protocol the data is binarised and split exactly as ``ncf benchmark`` does
(:func:`ncf.benchmark.binarise_for`, :func:`ncf.benchmark.split_for`, same seed), and the
test part is dropped unseen. From the training part an *outer* validation part is carved
by the same rule (10 random items per user for the holdout, each user's latest item for
leave-one-out, as in ``benchmarks/nested_validation.py``); each candidate is fitted on
what is left and scored on the outer part with :func:`ncf.evaluate` (full ranking, seen
items excluded). NDCG@10 selects; ties (to 4 decimals) go to the earlier grid entry.

Every model gets a small documented grid (:data:`GRIDS`, 6-12 configs each); NeuMF's is
a few points around its defaults (the first entry is the defaults). Rows are appended to
the jsonl as they finish, and configs already there are skipped, so an interrupted search
resumes. ``--select`` writes the winners as ``{protocol: {model: kwargs}}``, the form
``ncf benchmark --params`` takes per protocol. ``--configs '[...]'`` (one model) tries
configs outside the grid, for exploration after the equal-budget search; ``--select``
ignores them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from ncf import benchmark as B
from ncf import evaluate, split
from ncf.data.movielens import movielens_100k


def _grid(**axes: list[Any]) -> list[dict[str, Any]]:
    """The full product of ``axes``, first axis varying slowest."""
    out: list[dict[str, Any]] = [{}]
    for name, values in axes.items():
        out = [{**c, name: v} for c in out for v in values]
    return out


#: model -> candidate kwargs (on top of the model's defaults). 6-12 configs per model.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "ease": [{"l2": v} for v in (50.0, 100.0, 200.0, 350.0, 500.0, 750.0, 1000.0, 2000.0)],
    "item-knn": _grid(k_neighbors=[20, 50, 100, 200], shrink=[0.0, 10.0]),
    # ALS round 1 (factors {64, 128} x regularization {0.1, 1} x alpha {1, 10}, rows kept in the jsonl)
    # peaked at its edge (64 factors, regularization 1); round 2 moves the box there:
    "implicit-als": _grid(factors=[32, 64], regularization=[1.0, 10.0, 50.0], alpha=[1.0, 5.0]),
    "implicit-bpr": _grid(factors=[64, 128], learning_rate=[0.01, 0.05], regularization=[0.001, 0.01])
    + [
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 300},
        {"factors": 128, "learning_rate": 0.01, "regularization": 0.01, "iterations": 300},
    ],
    "lightfm-warp": _grid(no_components=[32, 64], learning_rate=[0.02, 0.05], epochs=[20, 50])
    + [
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-5, "user_alpha": 1e-5},
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-4, "user_alpha": 1e-4},
    ],
    "lightfm-bpr": _grid(no_components=[32, 64], learning_rate=[0.02, 0.05], epochs=[20, 50])
    + [
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-5, "user_alpha": 1e-5},
        {"no_components": 64, "learning_rate": 0.05, "epochs": 50, "item_alpha": 1e-4, "user_alpha": 1e-4},
    ],
    "neumf": [
        {},  # the defaults (they have changed since this grid ran: see RESULTS, "How the defaults were chosen")
        {"factors": 16},
        {"factors": 64},
        {"negatives": 8},
        {"weight_decay": 1e-5},
        {"weight_decay": 1e-3},
    ],
}
MODELS = tuple(GRIDS)


def outer_split(protocol: str, seed: int) -> tuple[Any, Any]:
    """(inner train, outer validation) for ``protocol``; the test part is split off and discarded."""
    data = movielens_100k(min_rating=B.binarise_for(protocol))
    train, _test = B.split_for(protocol, data, seed)  # the test part is never used here
    if protocol == "holdout":
        inner, outer = split.carve_validation(train, "random", n=B.HOLDOUT_N, seed=seed)
        inner.report["split"] = train.report["split"]  # so NCF's own validation mirrors the holdout rule
    elif protocol == "leave-one-out":
        inner, outer = split.carve_validation(train, "timestamp", n=1)
    else:
        raise SystemExit(f"protocol {protocol!r} not supported here; use holdout or leave-one-out")
    return inner, outer


def _key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return row["protocol"], row["model"], json.dumps(row["config"], sort_keys=True), int(row["seed"])


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def search(
    protocols: list[str], models: list[str], seeds: list[int], out: Path,
    grids: dict[str, list[dict[str, Any]]] | None = None,
) -> None:  # fmt: skip
    grids = grids or GRIDS
    done = {_key(r) for r in _read(out)}
    for protocol in protocols:
        for seed in seeds:
            inner, outer = outer_split(protocol, seed)
            for name in models:
                for cfg in grids[name]:
                    row = {"protocol": protocol, "model": name, "config": cfg, "seed": seed}
                    if _key(row) in done:
                        continue
                    t = time.perf_counter()
                    try:
                        model = B.make_model(name, cfg, seed).fit(inner)
                    except Exception as e:  # noqa: BLE001 - a failing candidate is recorded, the search goes on
                        row.update(error=f"{type(e).__name__}: {e}")
                    else:
                        fit = time.perf_counter() - t
                        r = evaluate(model, outer, k=[5, 10])
                        row.update(
                            fit_s=round(fit, 2), best_epoch=getattr(model, "best_epoch_", None),
                            **{m: round(float(r[m]), 5) for m in ("ndcg@10", "recall@10", "hr@10", "precision@5")},
                        )  # fmt: skip
                    with out.open("a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)


def select(rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, dict[str, Any]]], list[dict[str, Any]]]:
    """Per protocol and model, the grid entry with the best mean outer NDCG@10 over the seeds searched."""
    chosen: dict[str, dict[str, dict[str, Any]]] = {}
    table = []
    for protocol in sorted({r["protocol"] for r in rows}):
        for name in MODELS:
            scores = []
            for i, cfg in enumerate(GRIDS[name]):
                rs = [r for r in rows if r["protocol"] == protocol and r["model"] == name and r["config"] == cfg
                      and "ndcg@10" in r]  # fmt: skip
                if rs:
                    scores.append((round(float(np.mean([r["ndcg@10"] for r in rs])), 4), -i, cfg, rs))
            if not scores:
                continue
            ndcg, _, cfg, rs = max(scores, key=lambda s: (s[0], s[1]))
            chosen.setdefault(protocol, {})[name] = cfg
            table.append({"protocol": protocol, "model": name, "config": cfg, "ndcg@10": ndcg,
                          "recall@10": round(float(np.mean([r["recall@10"] for r in rs])), 4),
                          "fit_s": round(float(np.mean([r["fit_s"] for r in rs])), 1),
                          "n_configs": len(scores), "seeds": sorted(r["seed"] for r in rs)})  # fmt: skip
    return chosen, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default="holdout,leave-one-out")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default="benchmarks/tune_rows.jsonl")
    ap.add_argument("--configs", help="JSON list of configs to try instead of the grid (one model only): "
                    "exploration outside the equal budget; --select ignores configs not in the grid")  # fmt: skip
    ap.add_argument("--select", metavar="JSONL", help="summarise a search and write the chosen params")
    ap.add_argument("--params-out", default="benchmarks/tuned_params.json")
    args = ap.parse_args()
    if args.select:
        chosen, table = select(_read(Path(args.select)))
        print("| protocol | model | chosen | configs | outer NDCG@10 | outer Recall@10 | fit s |")
        print("|---|---|---|---|---|---|---|")
        for t in table:
            print(f"| {t['protocol']} | {t['model']} | `{json.dumps(t['config'])}` | {t['n_configs']} | "
                  f"{t['ndcg@10']:.4f} | {t['recall@10']:.4f} | {t['fit_s']} |")  # fmt: skip
        tmp = Path(args.params_out + ".tmp")
        tmp.write_text(json.dumps(chosen, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, args.params_out)
        print(f"wrote {args.params_out}")
        return
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(GRIDS))
    if unknown:
        raise SystemExit(f"no grid for {unknown}; known: {', '.join(GRIDS)}")
    grids = None
    if args.configs:
        if len(models) != 1:
            raise SystemExit("--configs needs exactly one model in --models")
        grids = {models[0]: json.loads(args.configs)}
    search([p.strip() for p in args.protocols.split(",")], models, [int(s) for s in args.seeds.split(",")],
           Path(args.out), grids)  # fmt: skip


if __name__ == "__main__":
    main()
