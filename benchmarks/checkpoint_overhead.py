"""What per-epoch checkpoints cost on ML-100k, and kill -9 + --resume at that scale.

1. ``NCF(seed=0).fit`` on ML-100k (leave-one-out by time) without and with ``checkpoint_dir``:
   wall time, checkpoint sizes, and whether the weights are identical (they must be: a
   checkpoint only reads state).
2. ``ncf train --data ml-100k --checkpoint-dir`` in a child process, SIGKILLed once the
   early-stopping run's epoch ``--kill-after`` is checkpointed; ``--resume`` in-process; the
   bundle compared with the uninterrupted run's (max |weight difference|, validation metric).

Usage: python benchmarks/checkpoint_overhead.py [--repeats 2] [--kill-after 3] [--no-kill]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ncf import NCF, split
from ncf.cli import main as cli_main
from ncf.data.movielens import movielens_100k
from ncf.persist import load_bundle

RUNNER = "import sys, torch; torch.set_num_threads(1); from ncf.cli import main; sys.exit(main(sys.argv[1:]))"


def stage_epoch(ck: Path, stage: str) -> int:
    from safetensors import safe_open

    f = ck / f"{stage}.safetensors"
    if not f.exists():
        return 0
    with safe_open(str(f), framework="pt") as fh:
        md = fh.metadata()
    return 10**6 if md["status"] == "done" else json.loads(md["loop"])["epoch"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--kill-after", type=int, default=3)
    ap.add_argument("--no-kill", action="store_true", help="only the overhead part")
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = movielens_100k()
    train, _ = split.leave_one_out(data, by="timestamp", seed=0)
    tmp = Path(tempfile.mkdtemp(prefix="ncf-ckbench-"))

    # Time spent inside the checkpoint writes themselves (serialise + write + fsync + rename),
    # measured within the same run: robust to the noise of a shared machine.
    from ncf.train.checkpoint import StageCheckpoint

    spent: list[float] = []
    original = StageCheckpoint.save_epoch

    def timed(self, *a, **kw):
        t = time.perf_counter()
        original(self, *a, **kw)
        if self.path is not None:
            spent.append(time.perf_counter() - t)

    StageCheckpoint.save_epoch = timed
    times: dict[str, list[float]] = {"plain": [], "checkpoint": []}
    weights = {}
    sizes: dict[str, int] = {}
    for r in range(args.repeats):
        for mode in ("plain", "checkpoint"):
            ck = tmp / f"ck{r}" if mode == "checkpoint" else None
            t = time.perf_counter()
            m = NCF(seed=0, device="cpu").fit(train, checkpoint_dir=ck)
            times[mode].append(time.perf_counter() - t)
            weights[mode] = {k: v.clone() for k, v in m.module_.state_dict().items()}
            if ck is not None:
                sizes = {f.name: f.stat().st_size for f in sorted(ck.iterdir())}
            epochs = {k: len(h["history"]) for k, h in m.history_.items()}
    same = all(torch.equal(weights["plain"][k], weights["checkpoint"][k]) for k in weights["plain"])
    n_epochs = sum(epochs.values())
    print(f"epochs per fit: {epochs} ({n_epochs} checkpoints written)")
    for mode, ts in times.items():
        print(f"fit {mode:<10}: " + ", ".join(f"{t:.2f}s" for t in ts) + f"  (min {min(ts):.2f}s)")
    extra = min(times["checkpoint"]) - min(times["plain"])
    print(f"overhead: {extra:+.2f}s per fit, {1000 * extra / n_epochs:+.0f} ms per epoch (min vs min)")
    print(f"checkpoint files: {sizes}")
    if spent:
        fit_ck = sum(times["checkpoint"])
        print(
            f"inside checkpoint writes: {len(spent)} writes, median {1000 * sorted(spent)[len(spent) // 2]:.1f} ms, "
            f"total {sum(spent):.2f}s = {100 * sum(spent) / fit_ck:.1f}% of the checkpointed fits' time"
        )
    print(f"weights identical with and without checkpoints: {same}")

    if args.no_kill:
        return
    # kill -9 at ML-100k scale
    argv = ["train", "--data", "ml-100k", "--seed", "0", "--device", "cpu", "--quiet"]
    ref_out, out, ck = tmp / "ref", tmp / "resumed", tmp / "kill-ck"
    assert cli_main([*argv, "--out", str(ref_out)]) == 0
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(Path(__file__).parents[1] / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *argv, "--out", str(out), "--checkpoint-dir", str(ck)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    while stage_epoch(ck, "neumf") < args.kill_after:
        if proc.poll() is not None:
            raise SystemExit(f"finished before the kill point: {proc.stderr.read()}")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    print(f"killed with SIGKILL after neumf epoch {stage_epoch(ck, 'neumf')} was checkpointed: rc {proc.wait()}")
    t = time.perf_counter()
    assert cli_main([*argv, "--out", str(out), "--resume", str(ck)]) == 0
    print(f"resume took {time.perf_counter() - t:.2f}s")
    a, b = load_bundle(ref_out), load_bundle(out)
    diff = max(float((a.weights[k] - b.weights[k]).abs().max()) for k in a.weights)
    print(f"max |weight difference| resumed vs uninterrupted: {diff:g}")
    print(f"validation: uninterrupted {a.extra['validation_metrics']}, resumed {b.extra['validation_metrics']}")


if __name__ == "__main__":
    main()
