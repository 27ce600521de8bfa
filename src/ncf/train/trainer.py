"""The trainer: a short epoch loop, and callbacks for everything around it.

:class:`Trainer` knows three things: an epoch source (:mod:`ncf.train.sources`) that yields
each epoch's shuffled rows, a step (:mod:`ncf.train.steps`) that updates the module on one
batch, and a list of :class:`Callback` objects. Early stopping on a validation metric,
the divergence guard, per-epoch checkpoints, the progress bar, TensorBoard, user
callbacks and the data-parallel stop broadcast are callbacks; :func:`train_module`
assembles the usual set.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ncf.data.interactions import Interactions
from ncf.errors import ModelDivergedError
from ncf.evaluation import evaluate_scores
from ncf.metrics import parse_metric
from ncf.train import distributed as D
from ncf.train.sources import EpochSource, make_source, recency_weights
from ncf.train.steps import make_step

if TYPE_CHECKING:
    from ncf.train.checkpoint import StageCheckpoint

__all__ = [
    "Callback",
    "Checkpointing",
    "DivergenceGuard",
    "EarlyStopping",
    "Progress",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "UserCallbacks",
    "effective_lr",
    "train_module",
]

UserCallback = Callable[[int, dict[str, Any]], Any]
"""Called after every epoch with (epoch, logs); returning True stops training."""


@dataclass
class TrainConfig:
    """How one module is trained (one stage of a fit)."""

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
    fused: bool = True  # the hand-written step for GMF/MLP/NeuMF with BCE/BPR (ncf.train.fused); same updates
    lr_scaling: str = "none"  # "none", "sqrt" or "linear": scale learning_rate from lr_reference_batch
    lr_reference_batch: int = 1024  # the batch size learning_rate was tuned at (used by lr_scaling)
    warmup_epochs: float = 0.0  # linear learning-rate warm-up over this many epochs' steps
    # "linear": the learning rate falls linearly to 0 over decay_epochs (None: over `epochs`);
    # a refit that trains fewer epochs keeps the horizon, so it sees the same rates epoch by epoch
    lr_schedule: str = "constant"
    decay_epochs: int | None = None
    compile: bool = False  # torch.compile the module (autograd path only)


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_metric: float | None
    stopped_early: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainState:
    """What the loop and its callbacks share; a checkpoint saves and restores it."""

    epoch: int = 0  # the last finished epoch
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs: int = 0
    stop: bool = False
    t0: float = field(default_factory=time.perf_counter)
    result: TrainResult | None = None  # set when a checkpoint says this stage had finished


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


class Callback:
    """Hooks around the loop; each may read and change ``trainer.state`` (e.g. set ``stop``)."""

    def on_train_begin(self, trainer: Trainer) -> None: ...

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, Any]) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


class Trainer:
    """Trains ``module`` in place with ``step`` on ``source``'s epochs; restores the best epoch's weights."""

    def __init__(
        self,
        module: nn.Module,
        source: EpochSource,
        step: Any,
        cfg: TrainConfig,
        *,
        gen: torch.Generator,
        shard_gen: torch.Generator | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.module, self.source, self.step, self.cfg, self.gen, self.shard_gen = (
            module,
            source,
            step,
            cfg,
            gen,
            shard_gen,
        )
        self.callbacks, self.state = list(callbacks), TrainState()
        self.device = source.device
        self.lr = effective_lr(cfg)
        # With several ranks batch_size stays the global batch: each rank takes its share.
        self.batch_size = max(1, cfg.batch_size // D.context().world)
        self.steps_per_epoch = max(1, math.ceil(source.n_positives * source.rows_per_positive / cfg.batch_size))
        self.warmup_steps = int(cfg.warmup_epochs * self.steps_per_epoch)
        if cfg.lr_schedule not in ("constant", "linear"):
            raise ValueError(f"lr_schedule == {cfg.lr_schedule!r}, must be 'constant' or 'linear'")
        horizon = cfg.decay_epochs if cfg.decay_epochs is not None else cfg.epochs
        self.decay_steps = horizon * self.steps_per_epoch if cfg.lr_schedule == "linear" else 0

    def lr_at(self, step_no: int) -> float:
        """The learning rate of step ``step_no`` (1-based): warm-up, then the schedule's decay."""
        lr = self.lr
        if self.warmup_steps:
            lr *= min(1.0, step_no / self.warmup_steps)
        if self.decay_steps:  # linear to 0 at the horizon; the last steps keep a sliver, never 0
            lr *= max(1.0 - (step_no - 1) / self.decay_steps, 1.0 / self.decay_steps)
        return lr

    def fit(self) -> TrainResult:
        s = self.state
        for cb in self.callbacks:
            cb.on_train_begin(self)  # a checkpoint may restore the state, or a finished stage's result
        if s.result is not None:
            self.module.eval()
            return s.result
        step_no = s.epoch * self.steps_per_epoch
        for epoch in range(s.epoch + 1, self.cfg.epochs + 1):
            self.module.train()
            rows = self.source.epoch(self.gen, self.shard_gen)
            total = torch.zeros((), device=self.device)
            for batch in rows.batches(self.batch_size):
                step_no += 1
                if self.warmup_steps or self.decay_steps:
                    self.step.set_lr(self.lr_at(step_no))
                total += self.step(batch) * len(batch)
            self.step.sync()  # a fused step trains working copies; the module gets them back here
            if D.context().active:
                total = D.all_mean(total)
            loss = float(total) / max(1, len(rows))  # one CPU-GPU sync per epoch, not per batch
            s.epoch = epoch
            logs: dict[str, Any] = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - s.t0}
            s.history.append(logs)
            for cb in self.callbacks:
                cb.on_epoch_end(self, logs)
            if s.stop:
                break
        if s.best_state is not None:
            self.module.load_state_dict(s.best_state)
        self.module.eval()
        stopped = s.stop and s.epoch < self.cfg.epochs
        s.result = TrainResult(s.history, s.best_epoch, s.best_metric, stopped, time.perf_counter() - s.t0)
        for cb in self.callbacks:
            cb.on_train_end(self)
        return s.result


# -- callbacks -----------------------------------------------------------------------------
class DivergenceGuard(Callback):
    """A non-finite loss or weight raises :class:`ModelDivergedError` with advice, after
    restoring the best weights so far."""

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        s, cfg = trainer.state, trainer.cfg
        if math.isfinite(logs["loss"]) and all(torch.isfinite(p).all() for p in trainer.module.parameters()):
            return
        if s.best_state is not None:
            trainer.module.load_state_dict(s.best_state)
        raise ModelDivergedError(
            f"training diverged at epoch {logs['epoch']} (loss {logs['loss']}); lower the learning rate "
            f"(now {cfg.learning_rate}) or add regularisation (weight_decay, now {cfg.weight_decay})"
            + (f"; the best model so far (epoch {s.best_epoch}) was restored" if s.best_state is not None else "")
        )


class EarlyStopping(Callback):
    """Scores ``validation`` after every epoch (rank 0), keeps the best weights, and stops after
    ``patience`` epochs without improvement. Without validation every epoch is the best."""

    def __init__(self, train: Interactions, validation: Interactions | None) -> None:
        self.train, self.validation = train, validation if validation is not None and len(validation) else None

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        s, cfg, module = trainer.state, trainer.cfg, trainer.module
        if self.validation is None:
            s.best_epoch = logs["epoch"]
            return
        name = cfg.metric
        base, k, key = parse_metric(name)
        module.eval()
        value = None
        if D.context().is_main:  # rank 0 validates; every rank then takes the same decision
            with torch.inference_mode():
                res = evaluate_scores(
                    module.score_block, None, self.train, self.validation, k=k, metrics=[base], device=trainer.device
                )
            value = float(res[key])
        if D.context().active:
            value = D.broadcast_float(value, trainer.device)
        logs[f"val_{name}"] = value
        if s.best_metric is None or value > s.best_metric + cfg.min_delta:
            s.best_metric, s.best_epoch, s.bad_epochs = value, logs["epoch"], 0
            s.best_state = copy.deepcopy(module.state_dict())
        else:
            s.bad_epochs += 1
        if cfg.patience >= 0 and s.bad_epochs > cfg.patience:
            s.stop = True


class Progress(Callback):
    """A tqdm bar over the epochs (rank 0) and, with ``writer``, TensorBoard scalars."""

    def __init__(self, tag: str, enabled: bool, writer: Any = None) -> None:
        self.tag, self.enabled, self.writer, self.bar = tag, enabled and D.context().is_main, writer, None

    def on_train_begin(self, trainer: Trainer) -> None:
        from tqdm.auto import tqdm  # noqa: PLC0415 - only when a bar is wanted

        if self.enabled:
            todo = trainer.cfg.epochs - trainer.state.epoch
            self.bar = tqdm(total=todo, desc=self.tag or "train", leave=False, unit="epoch")

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in logs.items() if k != "epoch"}
            )
        if self.writer is not None and D.context().is_main:
            prefix = f"{self.tag}/" if self.tag else ""
            for key in ("loss", f"val_{trainer.cfg.metric}"):
                if key in logs:
                    self.writer.add_scalar(f"{prefix}{key}", logs[key], logs["epoch"])

    def on_train_end(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()


class UserCallbacks(Callback):
    """The ``callbacks=`` of :class:`ncf.NCF`: plain ``(epoch, logs) -> True to stop`` functions."""

    def __init__(self, fns: Sequence[UserCallback]) -> None:
        self.fns = fns

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        if any(fn(logs["epoch"], logs) is True for fn in self.fns):
            trainer.state.stop = True


class StopBroadcast(Callback):
    """Data parallel: rank 0's stop decision for every rank, so none waits in a collective."""

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        trainer.state.stop = bool(D.broadcast_float(float(trainer.state.stop), trainer.device))


class Checkpointing(Callback):
    """An atomic checkpoint after every epoch (:mod:`ncf.train.checkpoint`); resumes a stage found there."""

    def __init__(self, checkpoint: StageCheckpoint) -> None:
        self.ck = checkpoint

    def on_train_begin(self, trainer: Trainer) -> None:
        s = trainer.state
        resumed = self.ck.restore(trainer.module, trainer.step.optimizers, trainer.gen)
        if resumed is None:
            return
        if resumed.result is not None:  # the stage had finished
            s.result = TrainResult(**resumed.result)
            return
        s.history, s.best_metric, s.best_state = resumed.history, resumed.best_metric, resumed.best_state
        s.best_epoch, s.bad_epochs, s.epoch = resumed.best_epoch, resumed.bad_epochs, resumed.epoch
        s.t0 -= resumed.elapsed

    def on_epoch_end(self, trainer: Trainer, logs: dict[str, Any]) -> None:
        s = trainer.state
        if s.stop:  # saved after the stop decision: a resumed run re-decides identically
            return
        self.ck.save_epoch(
            s.epoch,
            trainer.module,
            trainer.step.optimizers,
            trainer.gen,
            history=s.history,
            best_metric=s.best_metric,
            best_epoch=s.best_epoch,
            bad_epochs=s.bad_epochs,
            best_state=s.best_state,
            elapsed=time.perf_counter() - s.t0,
        )

    def on_train_end(self, trainer: Trainer) -> None:
        self.ck.finish(trainer.module, trainer.state.result.to_dict())


def train_module(
    module: nn.Module,
    train: Interactions,
    validation: Interactions | None,
    cfg: TrainConfig,
    *,
    device: torch.device,
    callbacks: Sequence[UserCallback] = (),
    progress: bool = True,
    writer: Any = None,
    tag: str = "",
    checkpoint: StageCheckpoint | None = None,
    exclude: Interactions | None = None,
) -> TrainResult:
    """Train ``module`` in place with the usual source, step and callbacks; restore the best
    validation epoch's weights.

    With ``checkpoint`` the state after every epoch is recorded, and a stage found there is
    resumed where it stopped (or skipped if done). Under ``torchrun`` (:mod:`ncf.train.distributed`)
    every rank trains on its shard and rank 0 alone validates; the stopping decision is broadcast.
    ``exclude`` holds known positives outside ``train`` that are never drawn as negatives (an
    incremental update trains on a sample of the data: the rest are still positives).
    """
    ctx = D.context()
    module.to(device)
    if ctx.active:
        D.broadcast_module(module)  # identical replicas, whatever each rank's init did
    weights = None if cfg.recency is None else recency_weights(train, cfg.recency, cfg.recency_floor)
    source = make_source(
        train, cfg.negatives, cfg.loss, device, weights, rank=ctx.rank, world=ctx.world, exclude=exclude
    )
    # Negatives and shuffling differ per rank; the shard permutation is shared by all ranks.
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 7919 * ctx.rank)
    shard_gen = torch.Generator().manual_seed(cfg.seed) if ctx.active else None
    step = make_step(
        module,
        source,
        loss=cfg.loss,
        lr=effective_lr(cfg),
        weight_decay=cfg.weight_decay,
        gen=gen,
        fused=cfg.fused and not cfg.compile,
    )
    cbs: list[Callback] = [DivergenceGuard(), EarlyStopping(train, validation), Progress(tag, progress, writer)]
    cbs += [UserCallbacks(callbacks)] if callbacks else []
    cbs += [StopBroadcast()] if ctx.active else []
    cbs += [Checkpointing(checkpoint)] if checkpoint is not None else []
    if cfg.compile:  # instance attributes shadow the methods, so module(u, i) and forward_l2 run compiled
        module.forward, module.forward_l2 = torch.compile(module.forward), torch.compile(module.forward_l2)
    try:
        return Trainer(module, source, step, cfg, gen=gen, shard_gen=shard_gen, callbacks=cbs).fit()
    finally:
        if cfg.compile:
            del module.forward, module.forward_l2
