"""Performance at scale: the library's trainer and scorer against a plain dense-Adam NeuMF.

    python benchmarks/scale.py throughput [--shape ml-1m] [--batches 1024,4096,16384,65536] [--threads 1]
    python benchmarks/scale.py epoch --shape ml-20m [--batch 16384]       # one full epoch, peak RSS
    python benchmarks/scale.py scoring                                    # factorised vs plain forward, eval
    python benchmarks/scale.py recommend --shape ml-20m [--users N]       # recommend-all, users/s, RSS
    python benchmarks/scale.py twostage [--shape ml-1m]                   # recall vs exact, speed
    python benchmarks/scale.py compile                                    # torch.compile on/off, ML-100k

Every sub-command prints a markdown table. ``throughput`` alternates the reference and the
library on the same per-epoch tensors, repeats each measurement, and reports the best of
the repeats for both (the machine is shared; the best is the least disturbed run), and the
spread: the ratio of each repeat's pair (measured in the same minute) and the fused step's
lowest rate.
Model everywhere: NeuMF, 8 factors, MLP [64, 32, 16, 8], 4 negatives, as in the paper.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dense_reference import DenseNeuMF, epoch_tensors, train_epoch  # noqa: E402

from ncf import nn as ncf_nn  # noqa: E402
from ncf.synthetic import synthetic_interactions  # noqa: E402
from ncf.train.fused import FusedStep, fused_step  # noqa: E402
from ncf.train.sources import UniformNegatives  # noqa: E402
from ncf.train.steps import make_optimizers  # noqa: E402

FACTORS, LAYERS, NEG = 8, (64, 32, 16, 8), 4


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _data(shape: str):
    if shape == "ml-100k-real":
        from ncf.data.movielens import movielens_100k

        return movielens_100k()
    return synthetic_interactions(shape, seed=0)


def _autograd_steps(module, opts, tensors, bs: int, n: int) -> None:
    bce = torch.nn.BCEWithLogitsLoss()
    u, i, y = tensors
    for s in range(0, n, bs):
        loss = bce(module(u[s : s + bs], i[s : s + bs]), y[s : s + bs])
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()


def _fused_steps(fs: FusedStep, tensors, bs: int, n: int) -> None:
    u, i, y = tensors
    for s in range(0, n, bs):
        fs.step(u[s : s + bs], i[s : s + bs], y[s : s + bs])


def throughput(args: argparse.Namespace) -> None:
    d = _data(args.shape)
    print(
        f"{args.shape}: {d.n_users} users, {d.n_items} items, {len(d)} positives; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s)"
    )
    es = UniformNegatives(d, NEG, "bce", torch.device("cpu"))
    t = time.perf_counter()
    ep = es.epoch(torch.Generator().manual_seed(0))
    ours_t = (ep.u, ep.i, ep.target)
    t_ours_epoch = time.perf_counter() - t
    t = time.perf_counter()
    ref_t = epoch_tensors(d.user_idx, d.item_idx, d.n_items, NEG, np.random.default_rng(0))
    t_ref_epoch = time.perf_counter() - t
    n_epoch = len(ours_t[0])
    print(
        f"epoch tensors ({n_epoch} samples): library {t_ours_epoch:.2f} s (exact negatives), "
        f"reference {t_ref_epoch:.2f} s (unchecked uniform negatives)\n"
    )
    print(
        "| batch | dense reference samples/s | library fused samples/s | library autograd + RowAdam samples/s "
        "| fused / reference | per repeat: fused / reference min / median / max | fused samples/s min - max "
        "| reference s/epoch | fused s/epoch |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for bs in (int(b) for b in args.batches.split(",")):
        n = min(n_epoch, max(args.samples, 8 * bs))
        torch.manual_seed(0)
        ref = DenseNeuMF(d.n_users, d.n_items, FACTORS, LAYERS)
        ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
        lib = ncf_nn.NeuMF(d.n_users, d.n_items, FACTORS, LAYERS)
        fs = fused_step(lib, lr=1e-3)
        auto = ncf_nn.NeuMF(d.n_users, d.n_items, FACTORS, LAYERS)
        auto_opts = make_optimizers(auto, 1e-3)
        # warm-up (allocator, first-call costs)
        train_epoch(ref, ref_opt, ref_t, bs, 2 * bs)
        _fused_steps(fs, ours_t, bs, 2 * bs)
        _autograd_steps(auto, auto_opts, ours_t, bs, 2 * bs)
        rates: dict[str, list[float]] = {"ref": [], "fused": [], "auto": []}
        for _ in range(args.repeats):
            for name, run in (
                ("ref", partial(train_epoch, ref, ref_opt, ref_t, bs, n)),
                ("fused", partial(_fused_steps, fs, ours_t, bs, n)),
                ("auto", partial(_autograd_steps, auto, auto_opts, ours_t, bs, n)),
            ):
                t = time.perf_counter()
                run()
                rates[name].append(n / (time.perf_counter() - t))
        best = {name: max(r) for name, r in rates.items()}
        per_repeat = sorted(f / r for f, r in zip(rates["fused"], rates["ref"]))  # the same minute's pair
        print(
            f"| {bs} | {best['ref']:,.0f} | {best['fused']:,.0f} | {best['auto']:,.0f} | "
            f"{best['fused'] / best['ref']:.2f}x | {per_repeat[0]:.2f}x / {np.median(per_repeat):.2f}x / "
            f"{per_repeat[-1]:.2f}x | {min(rates['fused']):,.0f} - {best['fused']:,.0f} | "
            f"{t_ref_epoch + n_epoch / best['ref']:.1f} | {t_ours_epoch + n_epoch / best['fused']:.1f} |",
            flush=True,
        )
    print(f"\npeak RSS {peak_rss_gb():.2f} GB")


def epoch(args: argparse.Namespace) -> None:
    """One full training epoch through the library's trainer (sampling included)."""
    from ncf.train.trainer import TrainConfig, train_module

    t = time.perf_counter()
    d = _data(args.shape)
    t_gen = time.perf_counter() - t
    rss_data = peak_rss_gb()
    module = ncf_nn.NeuMF(d.n_users, d.n_items, FACTORS, LAYERS)
    cfg = TrainConfig(
        epochs=1,
        batch_size=args.batch,
        learning_rate=1e-3 * (args.batch / 1024) ** 0.5,
        weight_decay=0.0,
        negatives=NEG,
        seed=0,
    )
    t = time.perf_counter()
    res = train_module(module, d, None, cfg, device=torch.device(args.device), progress=False)
    t_epoch = time.perf_counter() - t
    n = len(d) * (1 + NEG)
    print("| data | samples | generate s | epoch s | samples/s | loss | peak RSS after data GB | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.shape} | {n:,} | {t_gen:.1f} | {t_epoch:.1f} | {n / t_epoch:,.0f} | "
        f"{res.history[0]['loss']:.4f} | {rss_data:.2f} | {peak_rss_gb():.2f} |"
    )


def _trained(shape: str, epochs: int):
    from ncf import NCF

    d = _data(shape)
    m = NCF(
        factors=FACTORS,
        layers=LAYERS,
        negatives=NEG,
        epochs=epochs,
        batch_size=8192,
        learning_rate=0.003,
        weight_decay=0.0,
        seed=0,
        refit=False,
        device="cpu",
    )
    return m.fit(d, validation=None), d


def scoring(args: argparse.Namespace) -> None:
    """Factorised score_block vs the plain pairwise forward; full-ranking evaluation of ML-100k."""
    from ncf import NCF, evaluate, split
    from ncf.data.movielens import movielens_100k

    train, test = split.holdout(movielens_100k(min_rating=3), n=10, by="random", seed=0)
    m = NCF(seed=0, factors=FACTORS, layers=LAYERS).fit(train)
    mod = m.module_
    users = torch.arange(train.n_users)
    items = torch.arange(train.n_items)
    with torch.inference_mode():
        t = time.perf_counter()
        for _ in range(3):
            fact = mod.score_block(users)
        t_fact = (time.perf_counter() - t) / 3
        t = time.perf_counter()
        uu, ii = users.repeat_interleave(len(items)), items.repeat(len(users))
        plain = torch.cat([mod(uu[s : s + 2**20], ii[s : s + 2**20]) for s in range(0, len(uu), 2**20)])
        t_plain = time.perf_counter() - t
    diff = float((fact.reshape(-1) - plain).abs().max())
    evaluate(m, test, k=10)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        res = evaluate(m, test, k=10)
        times.append(time.perf_counter() - t)
    print("| what | value |\n|---|---|")
    print(f"| ML-100k all {train.n_users} x {train.n_items} scores, factorised score_block | {t_fact * 1e3:.0f} ms |")
    print(f"| same, plain pairwise forward | {t_plain * 1e3:.0f} ms |")
    print(f"| speed-up | {t_plain / t_fact:.1f}x |")
    print(f"| max abs difference | {diff:.2e} |")
    print(
        f"| full-ranking evaluation of {res['users']} users, best / median of 5 | {min(times):.3f} s / "
        f"{np.median(times):.3f} s ({res['users'] / min(times):,.0f} users/s at best) |"
    )


def recommend(args: argparse.Namespace) -> None:
    """Recommend-all (top-10, seen filtered) through NCF.recommend, in user chunks."""
    from ncf import NCF
    from ncf.model import resolve_device

    d = _data(args.shape)
    m = NCF(factors=FACTORS, layers=LAYERS, seed=0, device="cpu")
    # Scoring costs the same with any weights, so skip training (an ML-20M epoch is minutes):
    # set up the fitted state by hand with freshly initialised weights.
    torch.manual_seed(0)
    m.module_ = ncf_nn.NeuMF(d.n_users, d.n_items, FACTORS, LAYERS).eval()
    m.train_, m.device_, m.seed_ = d, resolve_device("cpu"), 0
    users = m.user_map_.ids if args.users is None else m.user_map_.ids[: args.users]
    rows = []
    for cand in [None] + ([int(c) for c in args.candidates.split(",")] if args.candidates else []):
        t = time.perf_counter()
        step = 8192
        for s in range(0, len(users), step):
            m.recommend(users[s : s + step], k=10, candidates=cand)
        dt = time.perf_counter() - t
        rows.append((cand, dt))
    print(f"{args.shape}: {d.n_users} users x {d.n_items} items; recommended for {len(users)} users")
    print("| ranking | seconds | users/s | peak RSS GB |\n|---|---|---|---|")
    for cand, dt in rows:
        label = "exact (all items, factorised NeuMF)" if cand is None else f"two-stage, {cand} GMF candidates"
        print(f"| {label} | {dt:.1f} | {len(users) / dt:,.0f} | {peak_rss_gb():.2f} |")


def twostage(args: argparse.Namespace) -> None:
    """Recall of the two-stage top-10 against the exact top-10, and the speed-up."""
    m, d = _trained(args.shape, args.epochs)
    users = m.user_map_.ids[: args.users] if args.users else m.user_map_.ids
    m.recommend(users[:100], k=10)
    t = time.perf_counter()
    exact, _ = m.recommend(users, k=10)
    t_exact = time.perf_counter() - t
    print(
        f"{args.shape}, NeuMF trained {args.epochs} epochs; {len(users)} users, {d.n_items} items; "
        f"exact top-10 {t_exact:.2f} s\n"
    )
    print("| candidates M | recall@10 vs exact | seconds | speed-up |\n|---|---|---|---|")
    for cand in (int(c) for c in args.candidates.split(",")):
        t = time.perf_counter()
        ids, _ = m.recommend(users, k=10, candidates=cand)
        dt = time.perf_counter() - t
        hit = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids.tolist(), exact.tolist())])
        print(f"| {cand} | {hit:.3f} | {dt:.2f} | {t_exact / dt:.1f}x |", flush=True)


def compile_cmp(args: argparse.Namespace) -> None:
    """torch.compile (autograd path) vs eager autograd vs the fused step: one NeuMF stage with the
    library's default sizes and rates, fixed 5 epochs on ML-100k, no validation.

    Each path is chosen through the trainer's own switches (``TrainConfig.fused``, ``.compile``
    and sparse or dense embeddings), not by patching the library. ``NCF(sparse=False)`` alone
    already means the autograd path, but NCF has no switch for "autograd with sparse
    gradients + RowAdam", so every row calls the trainer ``NCF.fit`` uses, on one module.
    """
    from ncf import NCF, split
    from ncf.data.movielens import movielens_100k
    from ncf.train.trainer import TrainConfig, train_module

    train, _ = split.holdout(movielens_100k(min_rating=3), n=10, by="random", seed=0)
    d = NCF()  # the defaults (constructor only stores them)
    print("| path | fit s (5 epochs, no validation) | s/epoch after the first (steady state) |\n|---|---|---|")
    for label, sparse, fused, compiled in (
        ("fused step (default)", True, True, False),
        ("autograd eager, sparse + RowAdam", True, False, False),
        ("autograd eager, dense embeddings + Adam", False, False, False),
        ("autograd + torch.compile, dense embeddings + Adam (compile time included)", False, False, True),
    ):
        torch.manual_seed(0)
        module = ncf_nn.build("neumf", train.n_users, train.n_items, d.factors, tuple(d.layers), 0.0, sparse)
        cfg = TrainConfig(
            epochs=5,
            batch_size=d.batch_size,
            learning_rate=d.learning_rate,
            weight_decay=d.weight_decay,
            negatives=d.negatives,
            seed=0,
            fused=fused,
            compile=compiled,
        )
        t = time.perf_counter()
        res = train_module(module, train, None, cfg, device=torch.device("cpu"), progress=False)
        sec = [h["seconds"] for h in res.history]
        print(f"| {label} | {time.perf_counter() - t:.1f} | {(sec[-1] - sec[0]) / (len(sec) - 1):.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--shape", default="ml-1m")
    p.add_argument("--batches", default="1024,4096,16384,65536")
    p.add_argument("--samples", type=int, default=300_000, help="samples timed per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("epoch")
    p.add_argument("--shape", default="ml-20m")
    p.add_argument("--batch", type=int, default=16384)
    p.add_argument("--device", default="cpu")
    sub.add_parser("scoring")
    p = sub.add_parser("recommend")
    p.add_argument("--shape", default="ml-20m")
    p.add_argument("--users", type=int, default=None)
    p.add_argument("--candidates", default="")
    p = sub.add_parser("twostage")
    p.add_argument("--shape", default="ml-1m")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--candidates", default="50,100,200,500")
    sub.add_parser("compile")
    for q in sub.choices.values():
        q.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    {
        "throughput": throughput,
        "epoch": epoch,
        "scoring": scoring,
        "recommend": recommend,
        "twostage": twostage,
        "compile": compile_cmp,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
