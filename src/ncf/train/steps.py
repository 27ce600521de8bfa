"""Training steps: one optimisation step on a :class:`~ncf.train.sources.Batch` per call.

Every step follows one small protocol, which is all the trainer knows about it::

    loss = step(batch)        # a 0-d tensor (no host sync), the batch's mean loss
    step.set_lr(lr)           # learning-rate schedules (warm-up)
    step.sync()               # make the module's own parameters current (before validation)
    step.optimizers           # what a checkpoint saves and restores

:class:`AutogradStep` is the reference: the module's forward, a per-loss function
(:func:`bce_loss`, :func:`bpr_loss`, :func:`softmax_loss`), ``backward`` and torch optimisers
(row-wise lazy Adam for sparse embeddings). The fused steps in :mod:`ncf.train.fused`
compute the same updates by hand (BCE and BPR), in PyTorch ops or compiled CPU kernels.
:func:`make_step` picks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ncf.train import distributed as D
from ncf.train.fused import fused_step, supports
from ncf.train.optim import RowAdam
from ncf.train.sources import Batch, EpochSource, SoftmaxNegatives

__all__ = ["AutogradStep", "bce_loss", "bpr_loss", "make_optimizers", "make_step", "softmax_loss"]

#: (module, batch, with L2?) -> (per-row loss, L2 of the looked-up rows or None)
LossFn = Callable[[nn.Module, Batch, bool], tuple[torch.Tensor, torch.Tensor | None]]


def _forward(module: nn.Module, u: torch.Tensor, i: torch.Tensor, l2: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    return module.forward_l2(u, i) if l2 else (module(u, i), None)


def bce_loss(module: nn.Module, b: Batch, l2: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pointwise: binary cross-entropy of each (user, item) against its label (the paper's)."""
    logits, reg = _forward(module, b.u, b.i, l2)
    return nn.functional.binary_cross_entropy_with_logits(logits, b.target, reduction="none"), reg


def bpr_loss(module: nn.Module, b: Batch, l2: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pairwise: ``-log sigmoid(s(u, i) - s(u, j))`` for a positive i and a negative j."""
    (s_pos, reg_pos), (s_neg, reg_neg) = _forward(module, b.u, b.i, l2), _forward(module, b.u, b.target, l2)
    return -nn.functional.logsigmoid(s_pos - s_neg), (reg_pos + reg_neg if l2 else None)


def softmax_loss(shared: SoftmaxNegatives, gen: torch.Generator) -> LossFn:
    """Sampled softmax: each positive against ``shared.n`` items drawn once per batch (known positives masked)."""

    def loss(module: nn.Module, b: Batch, l2: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        neg = shared.draw(gen)
        s_pos, reg = _forward(module, b.u, b.i, l2)
        s_neg = module.score_block(b.u, neg).masked_fill(shared.known(b.u, neg), float("-inf"))
        return torch.logsumexp(torch.cat([s_pos[:, None], s_neg], dim=1), dim=1).sub(s_pos), reg

    return loss


def make_optimizers(module: nn.Module, lr: float) -> list[torch.optim.Optimizer]:
    """Row-wise lazy Adam for sparse embeddings (cost scales with the batch), Adam for the rest."""
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


class AutogradStep:
    """Forward, ``loss_fn``, backward, optimiser step. ``weight_decay`` is L2 on the embedding
    rows the batch looked up, divided by the batch size (it scales with the batch, not the catalogue)."""

    def __init__(self, module: nn.Module, loss_fn: LossFn, lr: float, weight_decay: float, *, ddp: bool) -> None:
        self.module, self.loss_fn, self.weight_decay, self.ddp = module, loss_fn, weight_decay, ddp
        self.optimizers = make_optimizers(module, lr)

    def __call__(self, b: Batch) -> torch.Tensor:
        per, l2 = self.loss_fn(self.module, b, self.weight_decay > 0)
        loss = (per * b.w).mean() if b.w is not None else per.mean()
        if l2 is not None:
            loss = loss + self.weight_decay * l2 / len(b)
        for o in self.optimizers:
            o.zero_grad(set_to_none=True)
        loss.backward()
        if self.ddp:
            D.sync_autograd_grads(self.module)
        for o in self.optimizers:
            o.step()
        return loss.detach()

    def set_lr(self, lr: float) -> None:
        for o in self.optimizers:
            for group in o.param_groups:
                group["lr"] = lr

    def sync(self) -> None:
        """Autograd trains the module's own parameters: nothing to copy."""


def make_step(
    module: nn.Module,
    source: EpochSource,
    *,
    loss: str,
    lr: float,
    weight_decay: float,
    gen: torch.Generator,
    fused: bool = True,
) -> Any:
    """The fused step where it applies (GMF/MLP/NeuMF, BCE or BPR, sparse embeddings, no
    dropout), else the autograd step for ``loss``."""
    ddp = D.context().active
    sparse_emb = all(m.sparse for m in module.modules() if isinstance(m, nn.Embedding))
    if fused and sparse_emb and supports(module, loss):
        return fused_step(module, lr=lr, weight_decay=weight_decay, loss=loss, reduce=D.reduce_fused if ddp else None)
    loss_fn = {"bce": bce_loss, "bpr": bpr_loss}.get(loss) or softmax_loss(source.shared, gen)
    return AutogradStep(module, loss_fn, lr, weight_decay, ddp=ddp)
