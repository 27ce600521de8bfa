"""Process wall time of `ncf train` on ML-100k, process start to saved bundle, per recipe (issue 14).

    python benchmarks/train_wall.py [--seeds 0,1,2] [--json benchmarks/train_wall.json]

Run as a user runs ``ncf train``: every thread the machine has (no OMP_NUM_THREADS). For each
protocol (the `--test-protocol` split holds the test part out first; training sees the rest)
and seed, in one run, side by side: the default recipe (one-stage NeuMF, 6 epochs on a linear
learning-rate decay, no refit, the item-item term), the default it replaced (constant learning
rate, up to 30 epochs, refit), the issue's original recipe (GMF/MLP pretraining, fused NeuMF,
refit, no item-item term), and LightFM WARP (``--model lightfm-warp``, the issue's reference). Each is a fresh ``ncf train`` process; wall = process start to exit (the bundle is
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
    "previous default (constant lr, refit)": OLD,
    "original (pretrain, refit, no item-item)": [*OLD, "--pretrain", "--item-item", "0"],
    "lightfm-warp": ["--model", "lightfm-warp"],
}


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
    recipes = {name: RECIPES[name] for name in args.recipes.split(",")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in ("holdout", "leave-one-out"):
            for seed in (int(s) for s in args.seeds.split(",")):
                for name, extra in recipes.items():
                    r = run(protocol, seed, extra, Path(tmp) / f"{protocol}-{seed}-{len(rows)}")
                    rows.append({"protocol": protocol, "seed": seed, "recipe": name, **r})
                    print(json.dumps(rows[-1]), flush=True)
    print("\n| protocol | recipe | wall s (mean) | fit s | val NDCG@10 | test NDCG@10 | wall / WARP wall |")
    print("|---|---|---|---|---|---|---|")
    for protocol in ("holdout", "leave-one-out"):
        warp = [r["wall_s"] for r in rows if r["protocol"] == protocol and r["recipe"] == "lightfm-warp"]
        for name in recipes:
            rs = [r for r in rows if r["protocol"] == protocol and r["recipe"] == name]

            def mean(key: str, rs: list = rs) -> float:
                vals = [r[key] for r in rs if r[key] is not None]
                return sum(vals) / len(vals) if vals else float("nan")

            ratio = mean("wall_s") / (sum(warp) / len(warp))
            print(
                f"| {protocol} | {name} | {mean('wall_s'):.1f} | {mean('fit_s'):.1f} | {mean('val_ndcg@10'):.4f} "
                f"| {mean('test_ndcg@10'):.4f} | {ratio:.2f} |"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
