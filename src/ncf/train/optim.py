"""Row-wise lazy Adam for sparse embedding gradients.

``torch.optim.SparseAdam`` is correct but slow on CPU: its sparse-tensor bookkeeping
(coalesce, sparse_mask, sparse adds) costs several times the forward/backward of a
small NCF batch. This optimizer does the same lazy-Adam update with plain dense
indexing: merge the batch's duplicate rows with one ``index_add_``, then update only
those rows of the moments and the weights. Its cost is O(rows in the batch x dim),
independent of the catalogue size.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class RowAdam(torch.optim.Optimizer):
    """Lazy Adam: only rows with a gradient in this step are updated (moments included)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch's signature
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                if g.is_sparse:
                    idx = g._indices()[0]
                    rows, inv = unique_rows(idx, p.shape[0])
                    grad = torch.zeros(len(rows), p.shape[1], dtype=p.dtype, device=p.device)
                    grad.index_add_(0, inv, g._values())
                else:  # dense gradient: update the rows that got a non-zero gradient
                    rows = torch.nonzero(g.abs().sum(1) > 0).squeeze(1)
                    grad = g[rows]
                row_adam_update(
                    p, state["exp_avg"], state["exp_avg_sq"], rows, grad, step=t, lr=lr, betas=(b1, b2), eps=eps
                )
        return None


def unique_rows(idx: torch.Tensor, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct row ids of a batch (sorted) and each entry's position among them.

    Their number depends on the data, so on an accelerator this waits for the device (one
    host sync); :class:`ncf.train.fused.FusedStep` avoids it there with ``rows="all"``.

    ``torch.unique`` sorts (O(B log B)) and is slow on CPU (~0.5 ms for 2k ids here); when
    the table is small next to the batch a count over the table (:func:`row_counts`) is several times
    faster and still O(B) since n_rows <= 16 B.
    """
    if n_rows <= 16 * idx.numel():
        present = row_counts(idx, n_rows) > 0
        rows = torch.nonzero(present).squeeze(1)  # a host sync on an accelerator: its size depends on the data
        pos = torch.cumsum(present, 0) - 1
        return rows, pos[idx]
    rows, inv = torch.unique(idx, return_inverse=True)  # a host sync on an accelerator, like nonzero above
    return rows.long(), inv


def row_counts(idx: torch.Tensor, n_rows: int, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    """How often each of ``n_rows`` rows occurs in ``idx`` (length ``n_rows``, ``dtype``).

    ``torch.bincount`` gives the same counts, but on an accelerator it reads the index's
    min and max back to the host to size its output (host syncs on every call); summing ones
    with ``index_add_`` into a table of known size does not wait. Counts are exact integers,
    so the result is the same on every device.
    """
    ones = torch.ones(idx.numel(), dtype=dtype, device=idx.device)
    return torch.zeros(n_rows, dtype=dtype, device=idx.device).index_add_(0, idx.reshape(-1).long(), ones)


def row_adam_update(
    p: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    rows: torch.Tensor,
    grad: torch.Tensor,
    *,
    step: int,
    lr: float,
    betas: tuple[float, float],
    eps: float,
) -> None:
    """Lazy Adam on ``rows`` (distinct) of ``p`` with their merged gradient ``grad`` (one row each).

    Reads and writes only those rows, so its cost scales with the batch, not the table.

    ``rows`` may instead be a boolean mask over all of ``p``'s rows, with ``grad`` the whole
    table's gradient: the rows outside the mask stay exactly as they were (moments included),
    the rows inside get the same update as above. The whole table is read and written, but
    nothing has a data-dependent size, so on an accelerator nothing waits for the host
    (:class:`ncf.train.fused.FusedStep`'s ``rows="all"``).
    """
    b1, b2 = betas
    step_size = lr * (1 - b2**step) ** 0.5 / (1 - b1**step)
    if rows.dtype == torch.bool:
        keep = rows[:, None]
        m = exp_avg.mul(b1).add_(grad, alpha=1 - b1)
        v = exp_avg_sq.mul(b2).addcmul_(grad, grad, value=1 - b2)
        exp_avg.copy_(torch.where(keep, m, exp_avg))
        exp_avg_sq.copy_(torch.where(keep, v, exp_avg_sq))
        p.add_(torch.where(keep, m.div_(v.sqrt_().add_(eps)), 0.0), alpha=-step_size)
        return
    m = exp_avg.index_select(0, rows).mul_(b1).add_(grad, alpha=1 - b1)
    v = exp_avg_sq.index_select(0, rows).mul_(b2).addcmul_(grad, grad, value=1 - b2)
    exp_avg.index_copy_(0, rows, m)
    exp_avg_sq.index_copy_(0, rows, v)
    p.index_add_(0, rows, m.div_(v.sqrt_().add_(eps)), alpha=-step_size)
