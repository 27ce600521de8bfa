"""GPU smoke check: the whole pipeline on CUDA, compared with the same model on CPU.

    NCF_DATA_DIR=... python benchmarks/gpu_smoke.py
    python benchmarks/gpu_smoke.py --device cpu --epochs 1      # dry run of the same calls on the CPU

Trains NeuMF on ML-100k (leave-one-out) on CUDA, evaluates (full and sampled), recommends,
saves and loads, and checks that a CUDA-trained model loaded on CPU gives the same scores.
``tests/test_gpu_bench.py`` runs the CPU dry run, so the script keeps up with the API.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import torch

from ncf import NCF, evaluate, split
from ncf.data.movielens import movielens_100k


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="the device under test (default cuda; cpu: a dry run)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the library's)")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("gpu_smoke: no CUDA device here; `--device cpu --epochs 1` runs the same calls on the CPU")
        print("device:", torch.cuda.get_device_name(args.device), "torch", torch.__version__)
    data = movielens_100k()
    train, test = split.leave_one_out(data, by="timestamp", seed=0)
    extra = {} if args.epochs is None else {"epochs": args.epochs}
    for dev in dict.fromkeys((args.device, "cpu")):  # the device under test, then the CPU (once)
        t = time.perf_counter()
        m = NCF(seed=0, device=dev, **extra).fit(train)
        fit = time.perf_counter() - t
        t = time.perf_counter()
        full = evaluate(m, test, k=10)
        ev = time.perf_counter() - t
        sampled = evaluate(m, test, k=10, protocol="sampled")
        print(
            f"{dev}: fit {fit:.1f}s (best epoch {m.best_epoch_}), eval {ev:.3f}s; "
            f"full hr@10={full['hr@10']:.4f} ndcg@10={full['ndcg@10']:.4f}; "
            f"sampled hr@10={sampled['hr@10']:.4f} ndcg@10={sampled['ndcg@10']:.4f}"
        )
        if dev == args.device:
            ids, scores = m.recommend(list(data.user_map.ids[:5]), k=5)
            sim, _ = m.similar_items(data.item_map.ids[0], k=5)
            print("recommend ok", ids.shape, "similar ok", sim.shape)
            with tempfile.TemporaryDirectory() as d:
                m.save(d)
                on_cpu = NCF.load(d, device="cpu")
                on_dev = NCF.load(d, device=dev)
            u, i = data.user_map.ids[:100], data.item_map.ids[:100]
            a, b, c = m.score(u, i), on_cpu.score(u, i), on_dev.score(u, i)
            print(
                f"save/load max |diff| {dev}->cpu:",
                float(np.abs(a - b).max()),
                f"{dev}->{dev}:",
                float(np.abs(a - c).max()),
            )


if __name__ == "__main__":
    main()
