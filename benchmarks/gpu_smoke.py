"""GPU smoke check: the whole pipeline on CUDA, compared with the same model on CPU.

    NCF_DATA_DIR=... python benchmarks/gpu_smoke.py

Trains NeuMF on ML-100k (leave-one-out) on CUDA, evaluates (full and sampled), recommends,
saves and loads, and checks that a CUDA-trained model loaded on CPU gives the same scores.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch

from ncf import NCF, evaluate, split
from ncf.data.movielens import movielens_100k


def main() -> None:
    assert torch.cuda.is_available(), "no CUDA device"
    print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
    data = movielens_100k()
    train, test = split.leave_one_out(data, by="timestamp", seed=0)
    for dev in ("cuda", "cpu"):
        t = time.perf_counter()
        m = NCF(seed=0, device=dev).fit(train)
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
        if dev == "cuda":
            ids, scores = m.recommend(list(data.user_map.ids[:5]), k=5)
            sim, _ = m.similar_items(data.item_map.ids[0], k=5)
            print("recommend ok", ids.shape, "similar ok", sim.shape)
            with tempfile.TemporaryDirectory() as d:
                m.save(d)
                on_cpu = NCF.load(d, device="cpu")
                on_gpu = NCF.load(d, device="cuda")
            u, i = data.user_map.ids[:100], data.item_map.ids[:100]
            a, b, c = m.score(u, i), on_cpu.score(u, i), on_gpu.score(u, i)
            print(
                "save/load max |diff| cuda->cpu:", float(np.abs(a - b).max()), "cuda->cuda:", float(np.abs(a - c).max())
            )


if __name__ == "__main__":
    main()
