"""The trainer: per-epoch sample tensors, sparse/dense optimisers, early stopping.

The nn.Module holds parameters and ``forward`` only; everything about batches,
negatives, optimisers, devices, logging and stopping lives here.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ncf import kernels
from ncf.data.interactions import Interactions
from ncf.errors import ConfigError, ModelDivergedError

if TYPE_CHECKING:
    from ncf.checkpoint import StageCheckpoint

Callback = Callable[[int, dict[str, Any]], Any]
"""Called after every epoch with (epoch, logs); returning True stops training."""


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    negatives: int | str = 4
    loss: str = "bce"
    patience: int = 3
    metric: str = "ndcg@10"
    seed: int = 0
    min_delta: float = 0.0
    recency: float | None = None  # per-user half-life of the recency weights (None: unweighted)
    recency_floor: float = 0.1
    # Performance knobs (see benchmarks/RESULTS.md, "Performance at scale").
    fused: bool = True  # hand-written step for GMF/MLP/NeuMF with BCE/BPR (ncf.fused); same updates
    lr_scaling: str = "none"  # "none", "sqrt" or "linear": scale learning_rate from lr_reference_batch
    lr_reference_batch: int = 1024  # the batch size learning_rate was tuned at (used by lr_scaling)
    warmup_epochs: float = 0.0  # linear learning-rate warm-up over this many epochs' steps
    compile: bool = False  # torch.compile the module (autograd path only; see RESULTS for when it pays)


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float | None
    stopped_early: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_optimizers(module: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    """Row-wise lazy Adam for sparse embeddings (cost scales with the batch), Adam for the rest."""
    from ncf.optim import RowAdam

    sparse, dense = [], []
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            (sparse if m.sparse else dense).append(m.weight)
    emb_ids = {id(p) for p in sparse} | {id(p) for p in dense}
    dense += [p for p in module.parameters() if id(p) not in emb_ids]
    opts: list[torch.optim.Optimizer] = []
    if sparse:
        opts.append(RowAdam(sparse, lr=lr))
    if dense:
        opts.append(torch.optim.Adam(dense, lr=lr))
    return opts


def effective_lr(cfg: TrainConfig) -> float:
    """``learning_rate`` scaled from ``lr_reference_batch`` to the (global) batch by ``lr_scaling``."""
    ratio = cfg.batch_size / max(1, cfg.lr_reference_batch)
    if cfg.lr_scaling == "sqrt":
        return cfg.learning_rate * ratio**0.5
    if cfg.lr_scaling == "linear":
        return cfg.learning_rate * ratio
    if cfg.lr_scaling != "none":
        raise ValueError(f"lr_scaling == {cfg.lr_scaling!r}, must be 'none', 'sqrt' or 'linear'")
    return cfg.learning_rate


#: Users per negative-sampling chunk: bounds the sampler's int64 temporaries (an ML-20M
#: epoch would otherwise hold several 20M x 4 int64 arrays at once).
SAMPLE_CHUNK = 1 << 21


class EpochSamples:
    """Builds each epoch's (users, items, labels[, weights]) tensors by indexing, never per sample.

    Indices stay int32 (half the memory of int64; embedding lookups take them as is).
    With ``world`` > 1 each rank takes a disjoint, equal-sized shard of the positives
    (a permutation shared by all ranks through ``shard_gen``) and draws its own negatives.
    With ``recency`` each positive carries its recency weight, and its negatives share it.
    """

    def __init__(
        self,
        train: Interactions,
        negatives: int | str,
        loss: str,
        device: torch.device,
        recency: float | None = None,
        recency_floor: float = 0.1,
        *,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        from ncf.sampling import NegativeSampler, all_negatives

        self.device = device
        self.loss = loss
        self.negatives = negatives
        self.rank, self.world = rank, world
        self.pos_u = torch.as_tensor(train.user_idx, device=device).to(torch.int32)
        self.pos_i = torch.as_tensor(train.item_idx, device=device).to(torch.int32)
        self.pos_w = None if recency is None else recency_weights(train, recency, recency_floor).to(device)
        if loss == "softmax":
            self.shared = SoftmaxNegatives(train, int(negatives), device)
        elif negatives == "all":
            nu, ni = all_negatives(train)
            self.all_u = torch.cat([self.pos_u, torch.as_tensor(nu, device=device).to(torch.int32)])
            self.all_i = torch.cat([self.pos_i, torch.as_tensor(ni, device=device).to(torch.int32)])
            self.all_y = torch.cat([torch.ones(len(self.pos_u), device=device), torch.zeros(len(nu), device=device)])
            if self.pos_w is not None:
                # An unobserved pair has no time: it takes its user's mean weight (1 on average).
                self.all_w = torch.cat([self.pos_w, torch.ones(len(nu), device=device)])
        else:
            self.sampler = NegativeSampler(train, device=device)

    def _shard(self, n: int, shard_gen: torch.Generator | None) -> torch.Tensor | None:
        if self.world <= 1:
            return None
        per = n // self.world  # equal shards: every rank runs the same number of steps
        perm = torch.randperm(n, generator=shard_gen)
        return perm[self.rank * per : (self.rank + 1) * per].to(self.device)

    def epoch(self, gen: torch.Generator, shard_gen: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        weighted = self.pos_w is not None
        if self.negatives == "all":  # (never with softmax: it draws its own negatives per batch)
            cols = [self.all_u, self.all_i, self.all_y] + ([self.all_w] if weighted else [])
            take = self._shard(len(self.all_u), shard_gen)
            if take is not None:
                cols = [c[take] for c in cols]
            perm = torch.randperm(len(cols[0]), generator=gen, device=self.device)
            return tuple(c[perm] for c in cols)
        take = self._shard(len(self.pos_u), shard_gen)
        pos = [self.pos_u, self.pos_i] + ([self.pos_w] if weighted else [])
        if take is not None:
            pos = [c[take] for c in pos]
        pos_u, pos_i = pos[0], pos[1]
        pos_w = pos[2] if weighted else None
        if self.loss == "softmax":
            # Positives only: each batch draws its own shared negatives (see SoftmaxNegatives).
            perm = torch.randperm(len(pos_u), generator=gen, device=self.device)
            return tuple(c[perm] for c in pos)
        n = int(self.negatives)
        # (P, n) negatives, re-drawn every epoch, in chunks so the temporaries stay small.
        step = max(1, SAMPLE_CHUNK // max(1, n))
        neg = torch.cat(
            [self.sampler.sample(pos_u[s : s + step], n, gen).to(pos_i.dtype) for s in range(0, len(pos_u), step)]
        ) if len(pos_u) else torch.zeros(0, n, dtype=pos_i.dtype, device=self.device)  # fmt: skip
        if self.loss == "bpr":
            u = pos_u.repeat_interleave(n)
            perm = torch.randperm(len(u), generator=gen, device=self.device)
            cols = [u, pos_i.repeat_interleave(n), neg.reshape(-1)]
            if pos_w is not None:
                cols.append(pos_w.repeat_interleave(n))
            return tuple(c[perm] for c in cols)
        if self.device.type == "cpu" and kernels.AVAILABLE:
            # The rows below (concatenate, repeat, gather by a permutation) in one compiled pass.
            perm = torch.randperm(len(pos_u) * (n + 1), generator=gen)
            cols = [torch.empty(len(perm), dtype=pos_u.dtype), torch.empty(len(perm), dtype=pos_i.dtype),
                    torch.empty(len(perm)), torch.empty(len(perm) if pos_w is not None else 0)]  # fmt: skip
            w_in = pos_w if pos_w is not None else cols[3]
            kernels.assemble_bce(perm.numpy(), pos_u.numpy(), pos_i.numpy(), w_in.numpy(), neg.numpy(),
                                 *(c.numpy() for c in cols))  # fmt: skip
            return tuple(cols) if pos_w is not None else tuple(cols[:3])
        u = torch.cat([pos_u, pos_u.repeat_interleave(n)])
        i = torch.cat([pos_i, neg.reshape(-1)])
        del neg
        y = torch.zeros(len(u), device=self.device)
        y[: len(pos_u)] = 1.0
        cols = [u, i, y]
        if pos_w is not None:
            cols.append(torch.cat([pos_w, pos_w.repeat_interleave(n)]))
        perm = torch.randperm(len(u), generator=gen, device=self.device)
        return tuple(c[perm] for c in cols)


def recency_weights(train: Interactions, half_life: float, floor: float) -> torch.Tensor:
    """Per-interaction weights that favour each user's latest interactions.

    ``w = floor + (1 - floor) * 2 ** (-r / half_life)`` where ``r`` is how many of the
    user's interactions come later (0 for the latest), rescaled to mean 1 so the
    learning rate keeps its meaning. Leave-one-out-by-time asks for each user's *next*
    item, and that is far more like their recent items than their old ones.
    """
    from ncf.split import rank_from_end

    if train.timestamps is None:
        raise ConfigError("recency weighting needs timestamps; load the data with timestamp=... or set recency=None")
    r = rank_from_end(train)
    w = floor + (1.0 - floor) * np.exp2(-r / half_life)
    return torch.as_tensor(w / w.mean(), dtype=torch.float32)


class SoftmaxNegatives:
    """Shared negatives for the sampled-softmax loss, with known positives masked out.

    Each batch of positives is scored against ``n`` items drawn uniformly once for the
    whole batch (one factorised ``score_block`` call instead of ``B x n`` pair lookups).
    A drawn item that is a known positive of a row's user (the row's own positive among
    them) is masked from that row's softmax, so no positive is ever pushed down as a
    negative. Uniform proposals need no log-Q correction: it is the same constant for
    every candidate.
    """

    def __init__(self, train: Interactions, n: int, device: torch.device) -> None:
        from ncf.sampling import positive_keys

        self.n = n
        keys, _, self.n_items = positive_keys(train, None)  # sorted user * n_items + item
        self.keys = torch.as_tensor(keys, device=device)

    def draw(self, gen: torch.Generator) -> torch.Tensor:
        return torch.randint(0, self.n_items, (self.n,), generator=gen, device=gen.device)

    def known(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, n) mask: is ``items[j]`` a known positive of ``users[b]``?"""
        q = users.long()[:, None] * self.n_items + items.long()[None, :]  # int64: no overflow on big catalogues
        pos = torch.searchsorted(self.keys, q).clamp_(max=len(self.keys) - 1)
        return self.keys[pos] == q


def sampled_softmax_loss(
    module: nn.Module, shared: SoftmaxNegatives, u: torch.Tensor, i: torch.Tensor, gen: torch.Generator, l2: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cross-entropy of each positive against the batch's shared negatives (and its L2)."""
    neg = shared.draw(gen)
    if l2:
        s_pos, reg = module.forward_l2(u, i)
    else:
        s_pos, reg = module(u, i), None
    s_neg = module.score_block(u, neg).masked_fill(shared.known(u, neg), float("-inf"))
    logits = torch.cat([s_pos[:, None], s_neg], dim=1)
    return torch.logsumexp(logits, dim=1).sub(s_pos), reg


def train_module(
    module: nn.Module,
    train: Interactions,
    validation: Interactions | None,
    cfg: TrainConfig,
    *,
    device: torch.device,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    writer: Any = None,
    tag: str = "",
    checkpoint: StageCheckpoint | None = None,
) -> TrainResult:
    """Train ``module`` in place and restore the best validation epoch's weights.

    With ``checkpoint`` (see :mod:`ncf.checkpoint`), the state after every epoch is
    recorded, and a stage found there is resumed where it stopped (or skipped if done).
    Under ``torchrun`` (see :mod:`ncf.distributed`) every rank trains on its shard and
    rank 0 alone validates; the stopping decision is broadcast.
    """
    from tqdm.auto import tqdm

    from ncf import distributed as D
    from ncf.evaluation import evaluate_scores
    from ncf.fused import FusedStep, supports

    t0 = time.perf_counter()
    module.to(device)
    ctx = D.context()
    if ctx.active:
        D.broadcast_module(module)  # identical replicas, whatever each rank's init did
    samples = EpochSamples(
        train, cfg.negatives, cfg.loss, device, cfg.recency, cfg.recency_floor, rank=ctx.rank, world=ctx.world
    )
    lr = effective_lr(cfg)
    sparse_emb = all(m.sparse for m in module.modules() if isinstance(m, nn.Embedding))
    fused = None
    if cfg.fused and not cfg.compile and sparse_emb and supports(module, cfg.loss):
        fused = FusedStep(module, lr=lr, weight_decay=cfg.weight_decay, loss=cfg.loss,
                          reduce=D.reduce_fused if ctx.active else None)  # fmt: skip
        opts: list[Any] = []
    else:
        opts = make_optimizers(module, lr)
    if cfg.compile:
        # Instance attributes shadow the methods, so module(u, i) and forward_l2 run compiled.
        module.forward = torch.compile(module.forward)
        module.forward_l2 = torch.compile(module.forward_l2)
    # Negatives and shuffling differ per rank; the shard permutation is shared by all ranks.
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 7919 * ctx.rank)
    shard_gen = torch.Generator().manual_seed(cfg.seed) if ctx.active else None
    # With several ranks, batch_size stays the global batch: each rank takes its share.
    batch_size = max(1, cfg.batch_size // ctx.world)
    per_positive = 1 + cfg.negatives if cfg.loss == "bce" and isinstance(cfg.negatives, int) else (
        cfg.negatives if cfg.loss == "bpr" else 1)  # fmt: skip
    steps_per_epoch = max(1, math.ceil(len(train) * per_positive / cfg.batch_size))
    warmup_steps = int(cfg.warmup_epochs * steps_per_epoch)
    step_no = 0
    metric_name = cfg.metric
    k = int(metric_name.split("@")[1]) if "@" in metric_name else 10
    base_metric = metric_name.split("@")[0]
    # What a checkpoint saves as "the optimisers": the fused step's own Adam state, or torch's.
    ck_opts: list[Any] = [fused] if fused is not None else opts

    history: list[dict[str, Any]] = []
    best_metric: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch = 0
    bad_epochs = 0
    stopped = False
    first = 1
    resumed = checkpoint.restore(module, ck_opts, gen) if checkpoint is not None else None
    if resumed is not None and resumed.result is not None:  # the stage had finished
        module.eval()
        return TrainResult(**resumed.result)
    if resumed is not None:
        history, best_metric, best_state = resumed.history, resumed.best_metric, resumed.best_state
        best_epoch, bad_epochs, first, t0 = resumed.best_epoch, resumed.bad_epochs, resumed.epoch + 1, t0 - resumed.elapsed
        step_no = (first - 1) * steps_per_epoch
    bar = tqdm(range(first, cfg.epochs + 1), desc=tag or "train", disable=not progress or not ctx.is_main,
               leave=False, unit="epoch")  # fmt: skip
    for epoch in bar:
        module.train()
        tensors = samples.epoch(gen, shard_gen)
        n = len(tensors[0])
        total = torch.zeros((), device=device)
        for s in range(0, n, batch_size):
            batch = [t[s : s + batch_size] for t in tensors]
            u, i = batch[0], batch[1]
            w = batch[-1] if samples.pos_w is not None else None
            step_no += 1
            if warmup_steps:
                step_lr = lr * min(1.0, step_no / warmup_steps)
                if fused is not None:
                    fused.lr = step_lr
                for o in opts:
                    for group in o.param_groups:
                        group["lr"] = step_lr
            if fused is not None:
                total += fused.step(u, i, batch[2], w) * len(u)
                continue
            l2 = None
            if cfg.loss == "softmax":
                per, l2 = sampled_softmax_loss(module, samples.shared, u, i, gen, cfg.weight_decay > 0)
            elif cfg.loss == "bpr":
                j = batch[2]
                if cfg.weight_decay > 0:
                    (s_pos, l2_pos), (s_neg, l2_neg) = module.forward_l2(u, i), module.forward_l2(u, j)
                    l2 = l2_pos + l2_neg
                else:
                    s_pos, s_neg = module(u, i), module(u, j)
                per = -nn.functional.logsigmoid(s_pos - s_neg)
            else:
                if cfg.weight_decay > 0:
                    logits, l2 = module.forward_l2(u, i)
                else:
                    logits = module(u, i)
                per = nn.functional.binary_cross_entropy_with_logits(logits, batch[2], reduction="none")
            loss = (per * w).mean() if w is not None else per.mean()
            if l2 is not None:
                # L2 on the embedding rows this batch touched: scales with the batch, not the catalogue.
                loss = loss + cfg.weight_decay * l2 / len(u)
            for o in opts:
                o.zero_grad(set_to_none=True)
            loss.backward()
            if ctx.active:
                D.sync_autograd_grads(module)
            for o in opts:
                o.step()
            total += loss.detach() * len(u)
        if fused is not None:
            fused.sync()  # the fused step trains working copies; the module gets them back here
        if ctx.active:
            total = D.all_mean(total)
        epoch_loss = float(total) / max(1, n)  # one CPU-GPU sync per epoch, not per batch
        logs: dict[str, Any] = {"epoch": epoch, "loss": epoch_loss, "seconds": time.perf_counter() - t0}
        if not math.isfinite(epoch_loss) or not all(torch.isfinite(p).all() for p in module.parameters()):
            if best_state is not None:
                module.load_state_dict(best_state)
            raise ModelDivergedError(
                f"training diverged at epoch {epoch} (loss {epoch_loss}); lower the learning rate "
                f"(now {cfg.learning_rate}) or add regularisation (weight_decay, now {cfg.weight_decay})"
                + (f"; the best model so far (epoch {best_epoch}) was restored" if best_state is not None else "")
            )
        if validation is not None and len(validation):
            module.eval()
            value = None
            if ctx.is_main:  # rank 0 validates; every rank then takes the same stopping decision
                with torch.inference_mode():
                    res = evaluate_scores(
                        module.score_block, None, train, validation, k=k, metrics=[base_metric], device=device
                    )
                value = float(res[metric_name if base_metric not in ("mrr", "auc") else base_metric])
            if ctx.active:
                value = D.broadcast_float(value, device)
            logs[f"val_{metric_name}"] = value
            if best_metric is None or value > best_metric + cfg.min_delta:
                best_metric, best_epoch, bad_epochs = value, epoch, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                bad_epochs += 1
        else:
            best_epoch = epoch
        history.append(logs)
        bar.set_postfix({k2: (round(v, 4) if isinstance(v, float) else v) for k2, v in logs.items() if k2 != "epoch"})
        if writer is not None and ctx.is_main:
            prefix = f"{tag}/" if tag else ""
            writer.add_scalar(f"{prefix}loss", epoch_loss, epoch)
            if f"val_{metric_name}" in logs:
                writer.add_scalar(f"{prefix}val_{metric_name}", logs[f"val_{metric_name}"], epoch)
        stop_requested = any(cb(epoch, logs) is True for cb in callbacks)
        stop = stop_requested or (validation is not None and cfg.patience >= 0 and bad_epochs > cfg.patience)
        if ctx.active:  # rank 0 decides, so no rank is left waiting in a collective
            stop = bool(D.broadcast_float(float(stop), device))
        if stop:
            stopped = epoch < cfg.epochs
            break
        if checkpoint is not None:  # after the stop decision: a resumed run re-decides identically
            checkpoint.save_epoch(
                epoch, module, ck_opts, gen, history=history, best_metric=best_metric, best_epoch=best_epoch,
                bad_epochs=bad_epochs, best_state=best_state, elapsed=time.perf_counter() - t0,
            )  # fmt: skip
    bar.close()
    if cfg.compile:
        del module.forward, module.forward_l2
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    result = TrainResult(history, best_epoch, best_metric, stopped, time.perf_counter() - t0)
    if checkpoint is not None:
        checkpoint.finish(module, result.to_dict())
    return result
