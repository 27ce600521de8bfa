"""GPU benchmark (issue 14): the library's training step on ML-20M-shaped data, and full default fits.

    python benchmarks/gpu_bench.py                                  # CUDA, ML-20M shape (budget: < 5 min on one H200)
    NCF_DATA_DIR=data python benchmarks/gpu_bench.py                # the same, with the ML-100k rows (its cache)
    python benchmarks/gpu_bench.py --device cpu --quick             # readiness check: same code, small data, < 1 min

Prints markdown, in three parts:

1. **Step throughput.** Samples/s of the library's training step
   (:class:`ncf.train.fused.FusedStep`, what CUDA runs) on one epoch built on the device by
   :class:`ncf.train.sources.UniformNegatives` (exact negatives, shuffled), NeuMF with 8 factors
   and MLP [64, 32, 16, 8], 4 negatives, no L2 (as ``benchmarks/scale.py throughput``), per batch
   size and per ``rows`` mode of the step: ``distinct`` (the batch's distinct embedding rows; one
   host sync per table and step) and ``all`` (whole tables, no host sync). Timed between
   ``torch.cuda.synchronize()`` calls over a fixed number of full batches after 3 warm-up steps.
   Also: the epoch build's seconds (sampling + shuffling on the device), the host syncs per step
   counted by ``torch.cuda.set_sync_debug_mode`` (CUDA only), peak GPU memory.
2. **Mixed precision.** The fused step is hand-written float32 with no mixed-precision design,
   so bf16 autocast is not measured (``--autocast`` runs it anyway, as an unsupported experiment).
3. **Full fits.** ``NCF`` with its defaults (6 epochs, linear decay from 0.02, tuned at batch
   8192) on the same data at the best batch size of part 1, the rate scaled by the square-root
   rule from batch 8192 with a warm-up (``lr_scaling="sqrt"``, ``warmup_epochs``): wall time and
   its validation NDCG@10 (synthetic data has no real signal beyond popularity: the metric there
   is a sanity check, not a quality target). Skipped when the estimate from part 1 exceeds
   ``--fit-budget`` seconds. Then ML-100k (real; leave-one-out by time, seed 0) with the library
   defaults on the device and on the CPU: wall time to the default quality, validation and test
   NDCG@10 (needs the ML-100k cache: ``$NCF_DATA_DIR`` or ``~/.cache/ncf``).

On the CPU (``--device cpu``) part 1 times the same PyTorch step the GPU runs, not the CPU's
compiled kernels (``benchmarks/scale.py`` times those); the fits use the library's CPU path.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ncf import NCF, evaluate, split
from ncf import nn as ncf_nn
from ncf.data.interactions import Interactions
from ncf.errors import DataError, ModelDivergedError
from ncf.synthetic import SHAPES, synthetic_interactions
from ncf.train import kernels
from ncf.train.fused import FusedStep
from ncf.train.sources import UniformNegatives

FACTORS, LAYERS, NEG = 8, (64, 32, 16, 8), 4  # the step-throughput model (benchmarks/scale.py's)
LR_REFERENCE_BATCH = 8192  # the batch NCF's default learning rate was tuned at
WARMUP_STEPS = 3
SECTIONS = ("throughput", "fit", "ml100k")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def cuda_syncs(fn: Callable[[], Any], device: torch.device) -> int | None:
    """How many times ``fn`` made the host wait for the GPU (CUDA's sync debug mode); None elsewhere."""
    if device.type != "cuda":
        return None
    _sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def _fmt(x: float | None, spec: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, spec)


# -- 1. step throughput --------------------------------------------------------------------
def step_throughput(
    data: Interactions, device: torch.device, batches: Sequence[int], samples: int, modes: Sequence[str]
) -> tuple[list[dict[str, Any]], int]:
    """One row per (batch, rows mode): samples/s of the step over full batches of one device-built epoch."""
    source = UniformNegatives(data, NEG, "bce", device)
    gen = torch.Generator(device=device).manual_seed(0)
    source.epoch(gen)  # first build: allocator and kernel warm-up
    _sync(device)
    t = time.perf_counter()
    ep = source.epoch(gen)
    _sync(device)
    t_epoch = time.perf_counter() - t
    n_epoch = len(ep)
    rows: list[dict[str, Any]] = []
    for bs in batches:
        if bs > n_epoch:
            print(f"(batch {bs} skipped: one epoch has {n_epoch} samples)", file=sys.stderr)
            continue
        steps = max(1, min(n_epoch // bs, math.ceil(samples / bs)))
        for mode in modes:
            torch.manual_seed(0)
            module = ncf_nn.NeuMF(data.n_users, data.n_items, FACTORS, LAYERS).to(device)
            step = FusedStep(module, lr=1e-3 * (bs / 1024) ** 0.5, rows=mode)

            def run(first: int, n: int, step: FusedStep = step, bs: int = bs) -> torch.Tensor:
                total = torch.zeros((), device=device)
                for s in range(first * bs, (first + n) * bs, bs):
                    total += step.step(ep.u[s : s + bs], ep.i[s : s + bs], ep.target[s : s + bs])
                return total

            run(0, min(WARMUP_STEPS, steps))
            probe = min(2, steps)  # steps counted in the sync debug mode
            syncs = cuda_syncs(lambda run=run, probe=probe: run(0, probe), device)
            _reset_peak(device)
            _sync(device)
            t = time.perf_counter()
            total = run(0, steps)
            _sync(device)
            dt = time.perf_counter() - t
            rate = steps * bs / dt
            rows.append(
                {
                    "batch": bs,
                    "rows": mode,
                    "steps": steps,
                    "samples_per_s": rate,
                    "epoch_build_s": t_epoch,
                    "epoch_s": t_epoch + n_epoch / rate,
                    "syncs_per_step": None if syncs is None else syncs / probe,
                    "peak_gib": _peak_gib(device),
                    "mean_loss": float(total) / steps,
                }
            )
            del step, module
    return rows, n_epoch


def print_throughput(rows: list[dict[str, Any]], n_epoch: int) -> None:
    print(f"\n### 1. Step throughput (NeuMF 8 + {list(LAYERS)}, {NEG} negatives; one epoch = {n_epoch:,} samples)\n")
    print(
        "| batch | rows | steps timed | samples/s | epoch build s | epoch s (build + steps) "
        "| host syncs / step | peak GPU GiB | mean loss |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']:,} | {r['rows']} | {r['steps']} | {r['samples_per_s']:,.0f} | {r['epoch_build_s']:.2f} "
            f"| {r['epoch_s']:.2f} | {_fmt(r['syncs_per_step'], '.1f')} | {_fmt(r['peak_gib'], '.2f')} "
            f"| {r['mean_loss']:.4f} |",
            flush=True,
        )


# -- 2. mixed precision --------------------------------------------------------------------
AUTOCAST_NOTE = (
    "bf16 autocast: not measured. FusedStep is a hand-written forward, backward and update in float32 "
    "with no mixed-precision design: autocast would only lower whichever of its matrix products are on "
    "autocast's lists (on CUDA also the output layer's addmv, whose bf16 gradient then meets the float32 "
    "row-gradient buffers), and nothing checks what that does to quality. `--autocast` runs it anyway."
)


def autocast_experiment(data: Interactions, device: torch.device, bs: int, mode: str, samples: int) -> dict[str, Any]:
    """The best row of part 1 again under bf16 autocast: samples/s and loss, or the error it raised."""
    source = UniformNegatives(data, NEG, "bce", device)
    ep = source.epoch(torch.Generator(device=device).manual_seed(0))
    steps = max(1, min(len(ep) // bs, math.ceil(samples / bs)))
    out: dict[str, Any] = {"batch": bs, "rows": mode}
    for label, ctx in (("fp32", None), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        step = FusedStep(ncf_nn.NeuMF(data.n_users, data.n_items, FACTORS, LAYERS).to(device), lr=1e-3, rows=mode)
        try:
            with torch.autocast(device.type, dtype=ctx, enabled=ctx is not None):
                _sync(device)
                t = time.perf_counter()
                total = torch.zeros((), device=device)
                for s in range(0, steps * bs, bs):
                    total += step.step(ep.u[s : s + bs], ep.i[s : s + bs], ep.target[s : s + bs])
                _sync(device)
            out[label] = {"samples_per_s": steps * bs / (time.perf_counter() - t), "mean_loss": float(total) / steps}
        except RuntimeError as e:  # the expected failure mode: dtypes that do not meet
            out[label] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    return out


# -- 3. full fits --------------------------------------------------------------------------
def _timed_fit(model: NCF, train: Interactions, device: torch.device) -> tuple[NCF, float]:
    _reset_peak(device)
    _sync(device)
    t = time.perf_counter()
    model.fit(train)
    _sync(device)
    return model, time.perf_counter() - t


def _fit_row(label: str, model: NCF, seconds: float, device: torch.device, test: Interactions | None) -> dict[str, Any]:
    hist = next(iter(model.history_.values()))["history"]
    return {
        "data": label,
        "device": str(device),
        "batch": model.batch_size,
        "lr": model.learning_rate
        * ((model.batch_size / model.lr_reference_batch) ** 0.5 if model.lr_scaling == "sqrt" else 1.0),
        "epochs": len(hist),
        "best_epoch": model.best_epoch_,
        "fit_s": seconds,
        "s_per_epoch": hist[-1]["seconds"] / len(hist),
        "val_ndcg10": model.validation_metrics_.get("val_ndcg@10"),
        "test_ndcg10": None if test is None else evaluate(model, test, k=10)["ndcg@10"],
        "final_loss": hist[-1]["loss"],
        "peak_gib": _peak_gib(device),
    }


def shape_fit(
    data: Interactions, label: str, device: torch.device, batch: int, rate: float, budget: float, epochs: int | None
) -> dict[str, Any]:
    """The default recipe at ``batch`` with the square-root rule; skipped (with the reason) over budget."""
    d = NCF()
    n_epochs = epochs or d.epochs
    # part 1's model is lighter (8 factors, 4 negatives): x1.5 for the default's 32 factors, plus validation
    estimate = len(data) * (1 + d.negatives) * n_epochs / rate * 1.5
    if budget and estimate > budget:
        return {
            "data": label,
            "device": str(device),
            "batch": f"{batch:,}",
            "skipped": f"estimated {estimate:.0f} s > "
            f"--fit-budget {budget:.0f} s at {rate:,.0f} samples/s; rerun with --fit-budget 0",
        }
    model = NCF(
        batch_size=batch,
        lr_scaling="sqrt",
        lr_reference_batch=LR_REFERENCE_BATCH,
        warmup_epochs=1.0 if batch > LR_REFERENCE_BATCH else 0.0,
        epochs=n_epochs,
        seed=0,
        device=device,
    )
    try:
        model, seconds = _timed_fit(model, data, device)
    except (ModelDivergedError, torch.cuda.OutOfMemoryError) as e:  # a finding about this batch size, not a crash
        return {
            "data": label,
            "device": str(device),
            "batch": f"{batch:,}",
            "skipped": f"failed: {str(e).splitlines()[0]}",
        }
    return _fit_row(label, model, seconds, device, None)


def ml100k_fits(devices: Sequence[torch.device], epochs: int | None) -> list[dict[str, Any]]:
    """ML-100k (real), leave-one-out by time: the library defaults on each device, test NDCG@10 too."""
    from ncf.data.movielens import movielens_100k

    try:
        data = movielens_100k()
    except DataError as e:
        return [{"data": "ml-100k", "skipped": f"ML-100k not available ({str(e).splitlines()[0]}); set NCF_DATA_DIR"}]
    train, test = split.leave_one_out(data, by="timestamp", seed=0)
    rows = []
    for dev in devices:
        if dev.type == "cpu" and kernels.AVAILABLE:
            t = time.perf_counter()
            kernels.warmup()  # numba's compile is not the fit's time (a built package ships it)
            print(f"(CPU kernels loaded or compiled in {time.perf_counter() - t:.1f} s, not counted)", file=sys.stderr)
        model = NCF(seed=0, device=dev, **({"epochs": epochs} if epochs else {}))
        model, seconds = _timed_fit(model, train, dev)
        rows.append(_fit_row("ml-100k (real, leave-one-out)", model, seconds, dev, test))
    return rows


def print_fits(rows: list[dict[str, Any]]) -> None:
    print("\n### 3. Full fits with the default recipe\n")
    print(
        "| data | device | batch | lr | epochs (best) | fit wall s | s / epoch | val NDCG@10 | test NDCG@10 "
        "| final loss | peak GPU GiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['data']} | {r.get('device', '')} | {r.get('batch', '')} | skipped: {r['skipped']} |")
            continue
        print(
            f"| {r['data']} | {r['device']} | {r['batch']:,} | {r['lr']:.4f} | {r['epochs']} ({r['best_epoch']}) "
            f"| {r['fit_s']:.1f} | {r['s_per_epoch']:.2f} | {_fmt(r['val_ndcg10'], '.4f')} "
            f"| {_fmt(r['test_ndcg10'], '.4f')} | {r['final_loss']:.4f} | {_fmt(r['peak_gib'], '.2f')} |",
            flush=True,
        )


# -- main ----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    ap.add_argument(
        "--shape", default=None, help=f"synthetic data shape: {', '.join(SHAPES)} (default ml-20m; --quick: ml-100k)"
    )
    ap.add_argument("--quick", action="store_true", help="readiness check: small data and batches, 1-epoch fits")
    ap.add_argument("--batches", default=None, help="comma-separated (default 16384,65536,262144,1048576)")
    ap.add_argument("--rows", default="distinct,all", help="FusedStep rows modes to time (default distinct,all)")
    ap.add_argument("--samples", type=int, default=None, help="samples timed per row (default 16M; --quick 100k)")
    ap.add_argument(
        "--fit-budget", type=float, default=120.0, help="skip the shape's fit if estimated longer (s; 0: no limit)"
    )
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"which parts to run: {', '.join(SECTIONS)}")
    ap.add_argument("--autocast", action="store_true", help="also try bf16 autocast on the best row (unsupported)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    args.shape = args.shape or ("ml-100k" if args.quick else "ml-20m")
    args.batches = [
        int(b) for b in (args.batches or ("1024,8192" if args.quick else "16384,65536,262144,1048576")).split(",")
    ]
    args.rows = args.rows.split(",")
    args.samples = args.samples or (100_000 if args.quick else 16_000_000)
    args.sections = args.sections.split(",")
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown --sections {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print its tables; returns what it printed, as data (for tests)."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"gpu_bench: --device {args.device} asked for, but CUDA is not available here (torch {torch.__version__}); "
            "run `python benchmarks/gpu_bench.py --device cpu --quick` for the CPU readiness check"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"## gpu_bench: {name}, torch {torch.__version__} (CUDA {torch.version.cuda}), {torch.get_num_threads()} "
        f"CPU thread(s), numba kernels {'on' if kernels.AVAILABLE else 'off'}{', QUICK (readiness only)' * args.quick}"
    )
    out: dict[str, Any] = {"device": str(device), "device_name": name, "torch": torch.__version__}
    data = None
    if "throughput" in args.sections or "fit" in args.sections:
        t = time.perf_counter()
        data = synthetic_interactions(args.shape, seed=0)
        out["generate_s"] = time.perf_counter() - t
        print(
            f"\ndata: synthetic {args.shape} ({data.n_users:,} users x {data.n_items:,} items, {len(data):,} positives), "
            f"generated in {out['generate_s']:.1f} s on the CPU"
        )
    best = None
    if "throughput" in args.sections:
        rows, n_epoch = step_throughput(data, device, args.batches, args.samples, args.rows)
        out["throughput"] = rows
        print_throughput(rows, n_epoch)
        best = max(rows, key=lambda r: r["samples_per_s"])
        out["best"] = best
        goal = " (goal >= 20M/s on one H200)" if device.type == "cuda" else ""
        print(f"\nbest: batch {best['batch']:,}, rows={best['rows']}: {best['samples_per_s']:,.0f} samples/s{goal}")
        print(f"\n### 2. Mixed precision\n\n{AUTOCAST_NOTE}")
        if args.autocast:
            res = autocast_experiment(data, device, best["batch"], best["rows"], args.samples)
            out["autocast"] = res
            print(
                f"\n(unsupported experiment) batch {res['batch']:,}, rows={res['rows']}: fp32 {res['fp32']}, "
                f"bf16 {res['bf16']}"
            )
    fits: list[dict[str, Any]] = []
    epochs = 1 if args.quick else None
    if "fit" in args.sections:
        if best is None:
            bs, rate = LR_REFERENCE_BATCH, 0.0
        else:
            bs, rate = best["batch"], best["samples_per_s"]
        label = f"synthetic {args.shape}"
        if rate:
            fits.append(shape_fit(data, label, device, bs, rate, args.fit_budget, epochs))
        else:
            fits.append({"data": label, "skipped": "needs the throughput section for its batch size and estimate"})
    del data
    if "ml100k" in args.sections:
        devices = [device] + ([torch.device("cpu")] if device.type != "cpu" else [])
        fits += ml100k_fits(devices, epochs)
    if fits:
        out["fits"] = fits
        print_fits(fits)
    peaks = [r["peak_gib"] for r in out.get("throughput", []) + fits if r.get("peak_gib") is not None]
    if peaks:
        out["peak_gib"] = max(peaks)
        print(f"\npeak GPU memory (torch.cuda.max_memory_allocated) over all rows: {out['peak_gib']:.2f} GiB")
    return out


if __name__ == "__main__":
    main()
