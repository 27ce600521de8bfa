"""Process wall time of `ncf train` on ML-100k, process start to saved bundle, per recipe (issue 14).

    python benchmarks/train_wall.py [--seeds 0,1,2] [--json benchmarks/train_wall.json]

Run as a user runs ``ncf train``: every thread the machine has (no OMP_NUM_THREADS). For each
protocol (the `--test-protocol` split holds the test part out first; training sees the rest)
and seed, in one run, side by side: the default recipe (one-stage NeuMF, 6 epochs on a linear
learning-rate decay, no refit, the item-item term), the default it replaced (constant learning
rate, up to 30 epochs, refit), the issue's original recipe (GMF/MLP pretraining, fused NeuMF,
refit, no item-item term), and LightFM WARP (``--model lightfm-warp``, the issue's reference)
with its defaults and with the settings the benchmark tuned for it on validation
(``tuned_params.json``: 50 / 20 epochs, the WARP of the benchmark table). Each is a fresh
``ncf train`` process; wall = process start to exit (the bundle is
saved and the test part scored, as a user sees it). The validation metric is the one ``ncf
train`` prints (the model's own validation part); the test line is printed as well.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OLD = ["--lr-schedule", "constant", "--learning-rate", "0.005", "--epochs", "30", "--refit"]
RECIPES = {
    "default": [],
    "previous": OLD,  # the default before: constant learning rate, up to 30 epochs, refit
    "original": [*OLD, "--pretrain", "--item-item", "0"],  # the issue's: pretraining, refit, no item-item term
    "lightfm-warp": ["--model", "lightfm-warp"],
    # the settings the benchmark's equal-budget search chose on validation (the WARP of its table)
    "lightfm-warp-tuned": lambda protocol: ["--model", "lightfm-warp", "--params", json.dumps(_tuned(protocol))],
}


def _tuned(protocol: str) -> dict:
    return json.loads(TUNED.read_text(encoding="utf-8"))[protocol]["lightfm-warp"]


TUNED = Path(__file__).with_name("tuned_params.json")


def run(protocol: str, seed: int, extra: list[str], out: Path) -> dict:
    argv = [sys.executable, "-m", "ncf.cli", "train", "--data", "ml-100k", "--test-protocol", protocol]
    argv += ["--seed", str(seed), "--quiet", "--out", str(out), *extra]
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    val = re.search(r"val_ndcg@10=([0-9.]+)", p.stdout)
    test = re.search(r"ndcg@10=([0-9.]+)", p.stdout.split("test (", 1)[-1]) if "test (" in p.stdout else None
    fit = re.search(r"in ([0-9.]+)s", p.stdout)
    return {
        "wall_s": round(wall, 2),
        "fit_s": float(fit.group(1)) if fit else None,
        "val_ndcg@10": float(val.group(1)) if val else None,
        "test_ndcg@10": float(test.group(1)) if test else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--json", default=None)
    ap.add_argument("--recipes", default=",".join(RECIPES), help="a comma-separated subset of: " + ", ".join(RECIPES))
    args = ap.parse_args()
    unknown = [name for name in args.recipes.split(",") if name not in RECIPES]
    if unknown:
        ap.error(f"--recipes: unknown {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    recipes = {name: RECIPES[name] for name in args.recipes.split(",")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in ("holdout", "leave-one-out"):
            for seed in (int(s) for s in args.seeds.split(",")):
                for name, extra in recipes.items():
                    extra = extra(protocol) if callable(extra) else extra
                    r = run(protocol, seed, extra, Path(tmp) / f"{protocol}-{seed}-{len(rows)}")
                    rows.append({"protocol": protocol, "seed": seed, "recipe": name, **r})
                    print(json.dumps(rows[-1]), flush=True)
    head = "| protocol | recipe | wall s (mean) | fit s | val NDCG@10 | test NDCG@10 | wall / WARP wall |"
    head += " wall / tuned WARP wall | fit / tuned WARP fit |"
    print("\n" + head + "\n" + "|---" * 9 + "|")
    for protocol in ("holdout", "leave-one-out"):
        for name in recipes:

            def of(recipe: str, key: str, protocol: str = protocol) -> float:
                """Mean of ``key`` over ``recipe``'s rows of this protocol (NaN when it was not run)."""
                vals = [
                    r[key] for r in rows if (r["protocol"], r["recipe"]) == (protocol, recipe) and r[key] is not None
                ]
                return sum(vals) / len(vals) if vals else float("nan")

            ratios = [
                of(name, "wall_s") / of("lightfm-warp", "wall_s"),
                of(name, "wall_s") / of("lightfm-warp-tuned", "wall_s"),
                of(name, "fit_s") / of("lightfm-warp-tuned", "fit_s"),
            ]
            print(
                f"| {protocol} | {name} | {of(name, 'wall_s'):.1f} | {of(name, 'fit_s'):.1f} "
                f"| {of(name, 'val_ndcg@10'):.4f} | {of(name, 'test_ndcg@10'):.4f} | "
                + " | ".join(f"{x:.2f}" for x in ratios)
                + " |"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
