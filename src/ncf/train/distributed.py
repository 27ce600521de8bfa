"""Data-parallel training over ``torch.distributed`` (gloo on CPU, NCCL on GPU).

Launch with ``torchrun --nproc_per_node N -m ncf train ...``; :func:`init_from_env`
joins the process group torchrun describes in the environment. Every rank holds the
whole model (NCF tables are small next to the data) and trains on its own shard of
the positives with its own negatives; gradients are averaged over the ranks before
every update, so all replicas stay identical.

Why not ``DistributedDataParallel``: DDP all-reduces *dense* buckets, so sparse
embedding gradients either fail (NCCL) or are densified to the whole catalogue per
step, which is what the sparse trainer exists to avoid, and DDP hooks autograd,
which the fused step (:mod:`ncf.train.fused`) does not use. Here the dense layers' gradient
(one flat buffer, a few KB) is all-reduced and the embedding gradients are exchanged
as (row index, row gradient) blocks with ``all_gather``: the traffic scales with the
batch, not the catalogue, and works the same on gloo and NCCL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ncf.train.fused import Block
from ncf.train.optim import unique_rows

__all__ = [
    "Context",
    "context",
    "init_from_env",
    "local_device",
    "reduce_fused",
    "sync_autograd_grads",
    "broadcast_module",
    "broadcast_float",
    "all_mean",
]


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context() -> Context:
    """The current process group's rank and size (rank 0 of 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size())
    return Context()


def init_from_env(device: str | None = None) -> Context:
    """Join the process group torchrun set up (``WORLD_SIZE`` > 1); no-op otherwise.

    Returns the context; ``device`` "cuda"/None with CUDA present selects NCCL and
    ``cuda:LOCAL_RANK``, anything else gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_initialized()):
        return context()
    use_cuda = _use_cuda(device)
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return context()


def local_device(device: str | None) -> str | None:
    """Each rank's device: ``cuda:LOCAL_RANK`` under torchrun with CUDA, else ``device``."""
    if context().active and _use_cuda(device):  # one GPU per rank, also for --device cuda:N
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def _use_cuda(device: str | None) -> bool:
    """Whether a data-parallel run on ``device`` uses CUDA (NCCL, one GPU per rank)."""
    return torch.cuda.is_available() and (device is None or device == "auto" or str(device).startswith("cuda"))


def _gather_rows(rows: torch.Tensor, grads: torch.Tensor, world: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every rank's (rows, grads); sizes differ per rank, so pad to the largest."""
    n = torch.tensor([rows.numel()], device=rows.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    sizes_l = [int(s) for s in sizes]
    top = max(sizes_l)
    pad_r = torch.zeros(top, dtype=torch.int64, device=rows.device)
    pad_r[: rows.numel()] = rows
    pad_g = torch.zeros(top, grads.shape[1], dtype=grads.dtype, device=grads.device)
    pad_g[: rows.numel()] = grads
    all_r = [torch.empty_like(pad_r) for _ in range(world)]
    all_g = [torch.empty_like(pad_g) for _ in range(world)]
    dist.all_gather(all_r, pad_r)
    dist.all_gather(all_g, pad_g)
    return (
        torch.cat([r[:s] for r, s in zip(all_r, sizes_l)]),
        torch.cat([g[:s] for g, s in zip(all_g, sizes_l)]),
    )


def reduce_fused(flat_grad: torch.Tensor, blocks: list[Block]) -> tuple[torch.Tensor, list[Block]]:
    """The :class:`ncf.train.fused.FusedStep` reduce hook: mean over ranks of every gradient."""
    world = dist.get_world_size()
    dist.all_reduce(flat_grad)
    flat_grad /= world
    out = []
    for rows, grads in blocks:
        all_rows, all_grads = _gather_rows(rows.long(), grads.contiguous(), world)
        n_rows = int(all_rows.max()) + 1 if all_rows.numel() else 1
        uniq, inv = unique_rows(all_rows, n_rows)
        merged = torch.zeros(len(uniq), grads.shape[1], dtype=grads.dtype, device=grads.device)
        merged.index_add_(0, inv, all_grads).div_(world)
        out.append((uniq, merged))
    return flat_grad, out


def sync_autograd_grads(module: torch.nn.Module) -> None:
    """Average ``.grad`` over ranks after ``backward()`` (the autograd path).

    Dense gradients are all-reduced; sparse embedding gradients are all-gathered as
    (rows, values) and rebuilt as one sparse tensor whose duplicate rows the row-wise
    optimizer merges.
    """
    world = dist.get_world_size()
    for p in module.parameters():
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            g = g.coalesce()
            rows, vals = _gather_rows(g.indices()[0], g.values(), world)
            p.grad = torch.sparse_coo_tensor(rows[None], vals / world, p.shape)
        else:
            dist.all_reduce(g)
            g /= world


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters (and buffers)."""
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, 0)


def broadcast_float(value: float | None, device: torch.device) -> float | None:
    """Rank 0's value on every rank (``None`` travels as NaN)."""
    t = torch.tensor([float("nan") if value is None else float(value)], dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    v = float(t.item())
    return None if v != v else v


def all_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks."""
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()
