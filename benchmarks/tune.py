"""Equal tuning budget for every model, on validation data only (never the test part).

    OMP_NUM_THREADS=1 python benchmarks/tune.py [--protocols holdout,leave-one-out] [--models ...]
        [--seeds 0] [--out benchmarks/tune_rows.jsonl]
    python benchmarks/tune.py --select benchmarks/tune_rows.jsonl --params-out benchmarks/tuned_params.json

For each protocol the data is binarised and split exactly as ``ncf benchmark`` does
(:func:`ncf.benchmark.binarise_for`, :func:`ncf.benchmark.split_for`, same seed), and the
test part is dropped unseen. From the training part an *outer* validation part is carved
by the same rule (10 random items per user for the holdout, each user's latest item for
leave-one-out: :func:`ncf.benchmark.tuning_split`); each candidate is fitted on
what is left and scored on the outer part with :func:`ncf.evaluate` (full ranking, seen
items excluded). NDCG@10 selects; ties (to 4 decimals) go to the earlier grid entry
(:func:`ncf.benchmark.select_tuned`).

Every model gets a small documented grid (:data:`ncf.benchmark.TUNING_GRIDS`, 6-12 configs each); NeuMF's is
a few points around its defaults (the first entry is the defaults). That is stage 1, run with
each model's default ``recency="auto"``. Stage 2 (:func:`ncf.benchmark.recency_stage`), on
leave-one-out only (the protocol with timestamps where recency is on; on the random holdout
it stays off for every model): each model that can weigh interactions tries its stage-1
choice with every half-life in :data:`ncf.benchmark.RECENCY_GRID` (None, 2, 5, 10, 25): the
same 5 extra fits per model; implicit's BPR cannot use weights and has none. Rows are appended to
the jsonl as they finish, and configs already there are skipped, so an interrupted search
resumes. ``--select`` writes the winners as ``{protocol: {model: kwargs}}``, the form
``ncf benchmark --params`` takes per protocol. ``--configs '[...]'`` (one model) tries
configs outside the grid, for exploration after the equal-budget search; ``--select``
ignores them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from ncf import benchmark as B
from ncf import evaluate
from ncf.fsutil import atomic_write

GRIDS = B.TUNING_GRIDS
MODELS = tuple(GRIDS)


def _key(row: dict[str, Any]) -> tuple[str, str, str, int]:
    return row["protocol"], row["model"], json.dumps(row["config"], sort_keys=True), int(row["seed"])


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def search(
    protocols: list[str],
    models: list[str],
    seeds: list[int],
    out: Path,
    grids: dict[str, list[dict[str, Any]]] | None = None,
    data: Any = None,
) -> None:
    """Stage 1 (``grids``), then, unless ``grids`` was given (exploration), stage 2: the recency
    half-lives on top of each model's stage-1 choice. ``data``: instead of the built-in ML-100k."""
    explore = grids is not None
    grids = {m: (grids or GRIDS)[m] for m in models}
    for protocol in protocols:
        parts = {seed: B.tuning_split(protocol, seed, data) for seed in seeds}
        _run(protocol, parts, grids, out)
        if explore:
            continue
        stage1, _ = B.select_tuned([r for r in _read(out) if r["seed"] in parts], grids, recency=False)
        stage2 = B.recency_stage(protocol, stage1.get(protocol, {}))
        if stage2:
            _run(protocol, parts, stage2, out)


def _run(protocol: str, parts: dict[int, Any], grids: dict[str, list[dict[str, Any]]], out: Path) -> None:
    done = {_key(r) for r in _read(out)}
    for seed, (inner, outer) in parts.items():
        for name, grid in grids.items():
            for cfg in grid:
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
                        fit_s=round(fit, 2),
                        best_epoch=getattr(model, "best_epoch_", None),
                        recency_used=getattr(model, "recency_", None),
                        **{m: round(float(r[m]), 5) for m in ("ndcg@10", "recall@10", "hr@10", "precision@5")},
                    )
                with out.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(row) + "\n")
                done.add(_key(row))
                print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", default="holdout,leave-one-out")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default="benchmarks/tune_rows.jsonl")
    ap.add_argument(
        "--configs",
        help="JSON list of configs to try instead of the grid (one model only): "
        "exploration outside the equal budget; --select ignores configs not in the grid",
    )
    ap.add_argument("--select", metavar="JSONL", help="summarise a search and write the chosen params")
    ap.add_argument("--params-out", default="benchmarks/tuned_params.json")
    args = ap.parse_args()
    if args.select:
        chosen, table = B.select_tuned(_read(Path(args.select)))
        print("| protocol | model | chosen | configs | outer NDCG@10 | outer Recall@10 | fit s |")
        print("|---|---|---|---|---|---|---|")
        for t in table:
            print(
                f"| {t['protocol']} | {t['model']} | `{json.dumps(t['config'])}` | {t['n_configs']} | "
                f"{t['ndcg@10']:.4f} | {t['recall@10']:.4f} | {t['fit_s']} |"
            )
        atomic_write(args.params_out, json.dumps(chosen, indent=2) + "\n")
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
    search(
        [p.strip() for p in args.protocols.split(",")],
        models,
        [int(s) for s in args.seeds.split(",")],
        Path(args.out),
        grids,
    )


if __name__ == "__main__":
    main()
