"""`ncf recommend --all-users --out FILE` streams users in chunks: its extra memory does not grow with users.

For each user count, a fresh subprocess builds synthetic data (n users x 2,000 items, 10
interactions each), fits a model, then resets the kernel's peak-RSS mark (``/proc/self/clear_refs``)
and calls :func:`ncf.batch.write_recommendations` (what the CLI calls). The peak RSS during the
write minus the RSS before it is the writer's working memory; the full score matrix it avoids
materialising is ``users x items x 4`` bytes. Linux only.

    python benchmarks/batch_memory.py --users 10000,40000,160000 --model popularity --format parquet
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, sys, tempfile, time
import numpy as np, pandas as pd
from ncf import NCF, load_interactions
from ncf.baselines import Popularity
from ncf.batch import write_recommendations

n_users, n_items, model_name, fmt = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

rng = np.random.default_rng(0)
u = np.repeat(np.arange(n_users), 10)
i = rng.integers(0, n_items, len(u))
data = load_interactions(pd.DataFrame({"user": u, "item": i}), user="user", item="item")
if model_name == "popularity":
    model = Popularity().fit(data)
else:
    model = NCF(factors=8, layers=(16, 8), epochs=1, negatives=1, batch_size=8192, seed=0, device="cpu").fit(data, validation=None)
with tempfile.TemporaryDirectory() as d:
    out = f"{d}/recs.{fmt}"
    before = status("VmRSS")
    open("/proc/self/clear_refs", "w").write("5")  # reset VmHWM (peak RSS) to the current RSS
    t0 = time.perf_counter()
    rows = write_recommendations(model, out, k=20)
    secs = time.perf_counter() - t0
    peak = status("VmHWM")
print(json.dumps({"users": n_users, "items": n_items, "model": model_name, "format": fmt, "rows": rows,
                  "rss_before_mb": round(before / 2**20, 1), "peak_extra_mb": round((peak - before) / 2**20, 1),
                  "full_score_matrix_mb": round(n_users * n_items * 4 / 2**20, 1), "seconds": round(secs, 2)}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", default="10000,40000,160000")
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--model", choices=("popularity", "ncf"), default="popularity")
    ap.add_argument("--format", choices=("csv", "parquet"), default="parquet")
    args = ap.parse_args()
    src = str(Path(__file__).resolve().parents[1] / "src")
    rows = []
    for n in (int(x) for x in args.users.split(",")):
        r = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(args.items), args.model, args.format],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
        )
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print()
    print(
        "| users | rows written | RSS before (MB) | peak extra RSS during write (MB) | full score matrix (MB) | seconds |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['users']:,} | {r['rows']:,} | {r['rss_before_mb']} | {r['peak_extra_mb']} | {r['full_score_matrix_mb']} | {r['seconds']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
