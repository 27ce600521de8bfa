"""A fused training step for GMF / MLP / NeuMF: hand-written backward plus row-wise lazy Adam.

Why: on a CPU the NCF step is tiny (a few MFLOP per 1k-sample batch), so much of its
cost is per-op overhead (autograd bookkeeping, sparse COO gradients, the optimizer's
indexing) and memory traffic. This step computes the same loss, gradients and updates as
``module(u, i)`` + ``loss.backward()`` + :class:`ncf.train.optim.RowAdam` (embeddings) +
``torch.optim.Adam`` (dense layers) with fewer ops and less work:

* the batch's user and item rows are deduplicated first; each distinct row is gathered
  once (GMF and MLP tables side by side in one block) and its gradient comes out merged,
  as a dense block: no sparse tensors;
* the MLP's first layer is linear in [user; item], so it runs once per distinct user and
  item and only the sum of the halves is gathered per pair (the largest layer's per-pair
  cost disappears; its backward merges per row before the matrix products);
* the row update reads and writes only the touched rows, so its cost scales with the
  batch, not the catalogue; the dense layers live in one flat buffer (Adam = 7 ops);
* on an accelerator, where finding the distinct rows makes the host wait for the device
  (their number depends on the data), a big batch instead works on whole tables
  (``rows="all"``): the same update, no host sync in the step.

``tests/test_fused.py`` checks loss, gradients and parameters against the autograd path.
Dropout and losses other than BCE and BPR use the autograd path (see :func:`supports`).

For data-parallel training :class:`FusedStep` takes a ``reduce`` hook: it receives the
flat dense gradient and the (row index, row gradient) blocks before the update and
returns them reduced over the ranks (:func:`ncf.train.distributed.reduce_fused`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ncf import nn as ncf_nn
from ncf.train import kernels
from ncf.train.optim import row_adam_update, row_counts, unique_rows
from ncf.train.sources import Batch

__all__ = ["ALL_ROWS_FACTOR", "ROWS", "CompiledFusedStep", "FusedStep", "fused_step", "supports"]

_EMPTY = np.zeros(0, np.float32)  # "no labels / no sample weights" for the compiled step
_NO_ADAM = np.zeros(8, np.float32)  # the compiled step's Adam scalars when it does not update

#: ``rows="auto"`` on an accelerator works on whole tables (no host sync) while a table has at
#: most this many rows per batch row; above, the batch's distinct rows are gathered (one sync
#: per table and step) so that a small batch does not pay for a huge table. A first guess (the
#: bound of :func:`ncf.train.optim.unique_rows`' counting branch), not yet timed on a GPU:
#: benchmarks/gpu_bench.py times both modes per batch size.
ALL_ROWS_FACTOR = 16
ROWS = ("auto", "distinct", "all")


def supports(module: nn.Module, loss: str) -> bool:
    """Whether :class:`FusedStep` can train ``module`` with ``loss`` (else use autograd)."""
    if loss not in ("bce", "bpr") or not isinstance(module, (ncf_nn.GMF, ncf_nn.MLP, ncf_nn.NeuMF)):
        return False
    tower = getattr(module, "tower", None)
    return tower is None or isinstance(tower.dropout, nn.Identity)


Block = tuple[torch.Tensor, torch.Tensor]
Reduce = Callable[[torch.Tensor, list[Block]], tuple[torch.Tensor, list[Block]]]
"""(flat dense grad, [(row idx, row grads) for the user and item blocks]) -> the same, reduced over ranks."""


def loss_and_grad(
    kind: str, logits: torch.Tensor, y: torch.Tensor | None, w: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean loss, d loss / d logits) for "bce" (against labels ``y``) or "bpr" (logits of the
    positives, then of their negatives); ``w`` weighs each sample's term, as ``(w * loss).mean()``."""
    if kind == "bce":
        b = logits.numel()
        yy = y.to(logits.dtype)
        dz = (torch.sigmoid(logits) - yy).div_(b)
        if w is None:
            return nn.functional.binary_cross_entropy_with_logits(logits, yy), dz
        per = nn.functional.binary_cross_entropy_with_logits(logits, yy, reduction="none")
        return (per * w).mean(), dz.mul_(w)
    b = logits.numel() // 2
    diff = logits[:b] - logits[b:]
    dz = torch.sigmoid(-diff).div_(-b)
    per = -nn.functional.logsigmoid(diff)
    if w is not None:
        dz.mul_(w)
        per = per * w
    return per.mean(), torch.cat([dz, -dz])


class FusedStep:
    """One optimisation step per call: forward, loss, backward and update, without autograd.

    The step trains working copies: the user tables side by side in one
    ``(n_users, factors + half)`` block (one gather, one merge, one row update per side),
    the item tables likewise, and every dense parameter in one flat buffer (Adam is
    then seven ops on one tensor). :meth:`sync` copies them back into the module; the
    trainer calls it before validation and at the end.

    ``lr`` is read at every step (so a schedule can change it), ``weight_decay`` is the
    L2 coefficient on the embedding rows a batch touches divided by the batch size (as
    in the autograd path), ``loss`` "bce" or "bpr".

    ``rows`` says how a step finds the embedding rows it touches (the PyTorch path; the
    compiled one dedupes in its kernels). ``"distinct"``: the batch's distinct rows, gathered
    and updated alone; cheap for any table, but their number depends on the data, so on an
    accelerator each table costs one host sync per step (``nonzero`` / ``unique``).
    ``"all"``: every row of the table takes part (a row the batch does not touch gets a zero
    gradient, and the lazy Adam update leaves it exactly as it was, moments included): the
    same update with no data-dependent sizes, so no host sync, at a cost per step that grows
    with the table. ``"auto"`` (default): ``"all"`` on an accelerator when a table has at most
    :data:`ALL_ROWS_FACTOR` rows per batch row and there is no data-parallel ``reduce``,
    else ``"distinct"``. CPU results do not depend on it.

    This class runs the step in PyTorch ops (any device); :class:`CompiledFusedStep` runs
    the same arithmetic in compiled CPU kernels. :func:`fused_step` picks one.
    """

    native = False

    def __init__(
        self,
        module: nn.Module,
        *,
        lr: float,
        weight_decay: float = 0.0,
        loss: str = "bce",
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        reduce: Reduce | None = None,
        rows: str = "auto",
    ) -> None:
        if not supports(module, loss):
            raise ValueError(f"FusedStep does not support {type(module).__name__} with loss {loss!r}")
        if rows not in ROWS:
            raise ValueError(f"rows == {rows!r}, must be one of {', '.join(map(repr, ROWS))}")
        self.module, self.lr, self.weight_decay, self.loss = module, lr, weight_decay, loss
        self.betas, self.eps, self.reduce, self.rows = betas, eps, reduce, rows
        m = module
        gmf = (
            (m.user, m.item)
            if isinstance(m, ncf_nn.GMF)
            else (m.gmf_user, m.gmf_item)
            if isinstance(m, ncf_nn.NeuMF)
            else None
        )
        tower = getattr(m, "tower", None)
        self.k = gmf[0].weight.shape[1] if gmf else 0  # GMF columns come first in each block
        self.half = tower.half if tower is not None else 0
        self.n_hidden = len(tower.hidden) if tower is not None else 0
        self.user_tables = [e.weight for e in ((gmf[0],) if gmf else ()) + ((tower.user,) if tower else ())]
        self.item_tables = [e.weight for e in ((gmf[1],) if gmf else ()) + ((tower.item,) if tower else ())]
        self.dense_params = [m.predict.weight, m.predict.bias]
        for lin in tower.hidden if tower is not None else ():
            self.dense_params += [lin.weight, lin.bias]
        self._read_module()
        self.mU, self.vU = torch.zeros_like(self.U), torch.zeros_like(self.U)
        self.mI, self.vI = torch.zeros_like(self.I), torch.zeros_like(self.I)
        self.m_flat, self.v_flat = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.t = 0

    @torch.no_grad()
    def _read_module(self) -> None:
        """(Re)build the working copies (user block, item block, flat dense buffer) from the module."""
        self.U = torch.cat([t.detach() for t in self.user_tables], 1).contiguous()
        self.I = torch.cat([t.detach() for t in self.item_tables], 1).contiguous()
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.dense_params])
        self.views, off = [], 0
        for p in self.dense_params:
            self.views.append(self.flat[off : off + p.numel()].view(p.shape))
            off += p.numel()

    def dense_params_of(self, module: nn.Module) -> list[torch.Tensor]:
        """``module``'s dense parameters in this step's flat-buffer order (for tests and tools)."""
        names = {id(p): n for n, p in self.module.named_parameters()}
        other = dict(module.named_parameters())
        return [other[names[id(p)]] for p in self.dense_params]

    def tables_of(self, module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``module``'s (user tables, item tables) in this step's block-column order."""
        names = {id(p): n for n, p in self.module.named_parameters()}
        other = dict(module.named_parameters())
        return [other[names[id(t)]] for t in self.user_tables], [other[names[id(t)]] for t in self.item_tables]

    # -- checkpoints: the optimiser-like state_dict protocol ncf.train.checkpoint saves -----------------
    def state_dict(self) -> dict[str, Any]:
        """Adam moments and step count, in ``torch.optim.Optimizer.state_dict()``'s shape."""
        state = {
            "mU": self.mU,
            "vU": self.vU,
            "mI": self.mI,
            "vI": self.vI,
            "m_flat": self.m_flat,
            "v_flat": self.v_flat,
            "step": self.t,
        }
        return {"state": {0: state}, "param_groups": [{"lr": self.lr, "params": [0]}]}

    @torch.no_grad()
    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore the moments, and re-read the working copies from the (restored) module."""
        self._read_module()
        st = sd["state"].get(0)
        if st is None:  # nothing stepped yet
            return
        for name in ("mU", "vU", "mI", "vI", "m_flat", "v_flat"):
            own = getattr(self, name)
            if st[name].shape != own.shape:
                raise ValueError(
                    f"fused optimiser state {name} has shape {tuple(st[name].shape)}, expected {tuple(own.shape)}"
                )
            own.copy_(st[name])
        self.t = int(st["step"])

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the working parameters into the module's own tensors."""
        for block, tables in ((self.U, self.user_tables), (self.I, self.item_tables)):
            off = 0
            for t in tables:
                t.copy_(block[:, off : off + t.shape[1]])
                off += t.shape[1]
        for p, v in zip(self.dense_params, self.views):
            p.copy_(v)

    # -- forward / backward ----------------------------------------------------------------
    def _all_rows(self, n_rows: int, n_idx: int) -> bool:
        """Whether this step works on the whole ``n_rows`` table for ``n_idx`` lookups (``rows``)."""
        if self.rows == "all":
            if self.reduce is not None:
                raise ValueError("rows='all' cannot be combined with a data-parallel reduce hook (it takes row ids)")
            return True
        if self.rows == "distinct" or self.reduce is not None or self.flat.device.type == "cpu":
            return False
        return n_rows <= ALL_ROWS_FACTOR * n_idx

    def _rows(self, idx: torch.Tensor, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows, each lookup's position among them, the gathered block) for one table.

        ``rows`` are the distinct ids (the block holds those rows), or, in whole-table mode, a
        boolean mask of the touched rows (the block is the table itself, positions are the ids):
        :func:`ncf.train.optim.row_adam_update` takes either.
        """
        n = table.shape[0]
        if self._all_rows(n, idx.numel()):
            inv = idx.reshape(-1).long()
            touched = torch.zeros(n, dtype=torch.bool, device=table.device).index_fill_(0, inv, True)
            return touched, inv, table
        rows, inv = unique_rows(idx, n)
        return rows, inv, table.index_select(0, rows)

    def _pairs(
        self,
        u: torch.Tensor,
        i: torch.Tensor,
        loss_grad: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        batch: int,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[Block]]:
        """Forward and backward over (u, i) pairs; returns (loss, dense grads, merged row grads).

        ``loss_grad`` maps the logits to (loss, d loss / d logits); ``batch`` divides the L2 term.

        Rows are deduplicated first, so embeddings are gathered once per distinct row and
        their gradients come out merged. The MLP's first layer is linear in [user; item],
        so its two halves run once per distinct user and item (``A_u``, ``A_i``) and only
        their sum is gathered per pair; its backward merges the per-pair gradient per
        row with one ``index_add_`` before the matrix products. That removes the largest
        layer's per-pair cost (64 x 32 of the 64-32-16-8 tower's 2,688 MACs a pair).
        """
        rows_u, inv_u, pu = self._rows(u, self.U)  # (nu, d): distinct rows, or the whole table
        rows_i, inv_i, qi = self._rows(i, self.I)  # (ni, d)
        nu, ni = pu.shape[0], qi.shape[0]
        w, k, half, nh = self.views[0][0], self.k, self.half, self.n_hidden
        ks = k if nh else k + half  # columns used per pair (GMF, plus the raw MLP halves without hidden layers)
        parts = []
        if ks:
            ps, qs = pu[:, :ks].index_select(0, inv_u), qi[:, :ks].index_select(0, inv_i)
            if k:
                parts.append(ps[:, :k] * qs[:, :k])
            if not nh:
                parts += [ps[:, k:], qs[:, k:]]
        hs: list[torch.Tensor] = []
        if nh:
            w1 = self.views[2]
            a_u = torch.addmm(self.views[3], pu[:, k:], w1[:, :half].T)  # once per distinct user
            a_i = qi[:, k:] @ w1[:, half:].T  # once per distinct item
            h = a_u.index_select(0, inv_u).add_(a_i.index_select(0, inv_i)).relu_()
            hs.append(h)
            for j in range(1, nh):
                h = torch.addmm(self.views[3 + 2 * j], h, self.views[2 + 2 * j].T).relu_()
                hs.append(h)
            parts.append(h)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        logits = torch.addmv(self.views[1], x, w)
        loss, dz = loss_grad(logits)

        grads: list[torch.Tensor] = [None] * len(self.views)  # type: ignore[list-item]
        grads[0], grads[1] = (dz @ x).unsqueeze(0), dz.sum().reshape(1)
        du = torch.zeros_like(pu)
        di = torch.zeros_like(qi)
        if ks:
            ws = w[:k] if nh else w  # weights of the per-pair columns of x
            d_s = dz[:, None] * ws  # (B, ks [+ ks-k])
            dps = torch.empty(len(dz), ks, dtype=dz.dtype, device=dz.device)
            dqs = torch.empty_like(dps)
            if k:
                dps[:, :k].copy_(d_s[:, :k] * qs[:, :k])
                dqs[:, :k].copy_(d_s[:, :k] * ps[:, :k])
            if not nh:
                dps[:, k:].copy_(d_s[:, k : k + half])
                dqs[:, k:].copy_(d_s[:, k + half :])
            du[:, :ks].index_add_(0, inv_u, dps)
            di[:, :ks].index_add_(0, inv_i, dqs)
        if nh:
            dh = dz[:, None] * w[k:]
            for j in range(nh - 1, 0, -1):
                da = dh.mul_(hs[j] > 0)
                grads[2 + 2 * j], grads[3 + 2 * j] = da.T @ hs[j - 1], da.sum(0)
                dh = da @ self.views[2 + 2 * j]
            da = dh.mul_(hs[0] > 0)
            d_au = torch.zeros(nu, da.shape[1], dtype=da.dtype, device=da.device).index_add_(0, inv_u, da)
            d_ai = torch.zeros(ni, da.shape[1], dtype=da.dtype, device=da.device).index_add_(0, inv_i, da)
            grads[2] = torch.cat([d_au.T @ pu[:, k:], d_ai.T @ qi[:, k:]], 1)
            grads[3] = d_au.sum(0)
            du[:, k:].copy_(d_au @ w1[:, :half])
            di[:, k:].copy_(d_ai @ w1[:, half:])
        if self.weight_decay > 0:
            # d/dx of weight_decay * sum(x^2) / b over every looked-up row, repeats counted.
            b = batch
            cu = row_counts(inv_u, nu, pu.dtype)[:, None]
            ci = row_counts(inv_i, ni, qi.dtype)[:, None]
            du.addcmul_(pu, cu, value=2 * self.weight_decay / b)
            di.addcmul_(qi, ci, value=2 * self.weight_decay / b)
            loss = loss + self.weight_decay * ((pu.pow(2) * cu).sum() + (qi.pow(2) * ci).sum()) / b
        return loss, grads, [(rows_u, du), (rows_i, di)]

    # -- the step --------------------------------------------------------------------------
    @torch.no_grad()
    def step(
        self, u: torch.Tensor, i: torch.Tensor, y_or_j: torch.Tensor, w: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One update on a batch; returns the batch's loss (a 0-d tensor, no sync).

        For "bce" the third tensor holds the labels, for "bpr" the negative items. ``w``
        (optional) weighs each sample's loss, as ``(w * loss).mean()`` does in autograd.
        """
        b = u.numel()
        if self.loss == "bce":
            loss, grads, blocks = self._pairs(u, i, lambda z: loss_and_grad("bce", z, y_or_j, w), b)
        else:
            loss, grads, blocks = self._pairs(
                torch.cat([u, u]), torch.cat([i, y_or_j]), lambda z: loss_and_grad("bpr", z, None, w), b
            )
            # The output bias cancels in s(u, i) - s(u, j): its gradient is exactly zero (summing
            # +dz and -dz would leave rounding noise that Adam would scale up to a full step).
            grads[1].zero_()
        return self._finish(loss, torch.cat([g.reshape(-1) for g in grads]), blocks)

    def _finish(self, loss: torch.Tensor, flat_grad: torch.Tensor, blocks: list[Block]) -> torch.Tensor:
        """Reduce over ranks (data-parallel) and update; returns ``loss``."""
        if self.reduce is not None:
            flat_grad, blocks = self.reduce(flat_grad, blocks)
        self._update(flat_grad, blocks)
        return loss

    def _update(self, g: torch.Tensor, blocks: list[Block]) -> None:
        self.t += 1
        t, lr, (b1, b2), eps = self.t, self.lr, self.betas, self.eps
        # torch.optim.Adam's update, on the one flat buffer of dense parameters.
        self.m_flat.lerp_(g, 1 - b1)
        self.v_flat.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.v_flat.sqrt() / (1 - b2**t) ** 0.5).add_(eps)
        self.flat.addcdiv_(self.m_flat, denom, value=-lr / (1 - b1**t))
        for (rows, grads), p, m, v in zip(blocks, (self.U, self.I), (self.mU, self.mI), (self.vU, self.vI)):
            row_adam_update(p, m, v, rows, grads, step=t, lr=lr, betas=self.betas, eps=eps)

    def __call__(self, batch: Batch) -> torch.Tensor:
        """The trainer's step protocol (:mod:`ncf.train.steps`): one update on a batch."""
        return self.step(batch.u, batch.i, batch.target, batch.w)

    @property
    def optimizers(self) -> list[Any]:
        """What a checkpoint saves as the optimiser: this step's own Adam state."""
        return [self]

    def set_lr(self, lr: float) -> None:
        self.lr = lr


class CompiledFusedStep(FusedStep):
    """:class:`FusedStep` in compiled kernels (CPU float32, numba: :mod:`ncf.train.kernels`): the
    same arithmetic, checked against it in tests.

    A step is two kernel calls (:func:`~ncf.train.kernels.step_forward`,
    :func:`~ncf.train.kernels.step_backward`, which also updates unless a ``reduce`` hook comes
    between), on buffers kept per batch size. The matrix products run inside the kernels (BLAS
    via numba), so with two or more torch threads the kernels' two halves (of the batch, of
    each side's distinct rows) run on two threads, and no product is split by a thread team
    of its own: on the ML-1M shape at batch 1024 the step went from ~1.6 to ~4 M samples/s on
    two cores (``benchmarks/RESULTS.md``).
    """

    native = True

    def __init__(self, module: nn.Module, **kw: Any) -> None:
        super().__init__(module, **kw)
        # dedupe scratch, one entry per table row, -1 between calls
        self._pos = (np.full(self.U.shape[0], -1, np.int64), np.full(self.I.shape[0], -1, np.int64))
        self._row_m = tuple(t.numpy() for t in (self.mU, self.vU, self.mI, self.vI))  # Adam moments, in place
        self._flat_m = (self.m_flat.numpy(), self.v_flat.numpy())

    @torch.no_grad()
    def _read_module(self) -> None:
        super()._read_module()
        self._g_flat = torch.zeros_like(self.flat)  # the kernels write the dense gradient here
        # numpy views of the working copies, and where each hidden layer sits in the flat
        # buffer: (weight offset, bias offset, out, in); the output layer is at offset 0.
        self._np = {"U": self.U.numpy(), "I": self.I.numpy(), "flat": self.flat.numpy(), "g": self._g_flat.numpy()}
        offs = np.cumsum([0] + [p.numel() for p in self.dense_params])
        hidden = range(2, len(self.dense_params), 2)
        self._lay = np.array([[offs[j], offs[j + 1], *self.dense_params[j].shape] for j in hidden], np.int64)
        self._lay = self._lay.reshape(-1, 4)
        self._bufs: dict[int, dict[str, Any]] = {}

    @torch.no_grad()
    def step(
        self, u: torch.Tensor, i: torch.Tensor, y_or_j: torch.Tensor, w: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self._step_native(u, i, y_or_j, w)

    def _adam_scalars(self) -> np.ndarray:
        """Step ``self.t``'s Adam scalars, float32: (row step size, b1, 1 - b1, b2, 1 - b2, eps,
        dense step size, sqrt(1 - b2**t)); see :func:`ncf.train.kernels.row_adam` / ``flat_adam``."""
        t, lr, (b1, b2), eps = self.t, self.lr, self.betas, self.eps
        bc2 = (1 - b2**t) ** 0.5
        return np.array([lr * bc2 / (1 - b1**t), b1, 1 - b1, b2, 1 - b2, eps, lr / (1 - b1**t), bc2], np.float32)

    def _update(self, g: torch.Tensor, blocks: list[Block]) -> None:
        """:meth:`FusedStep._update`'s arithmetic in the compiled kernels, in place, float32 scalars
        (the step fuses it into its last kernel unless a ``reduce`` hook comes between)."""
        self.t += 1
        step_size, b1, c1, b2, c2, eps, lr_t, bc2 = self._adam_scalars()
        mU, vU, mI, vI = self._row_m
        kernels.flat_adam(self._np["flat"], *self._flat_m, g.contiguous().numpy(), lr_t, c1, b2, c2, bc2, eps)
        (ru, gu), (ri, gi) = blocks
        both = kernels.row_adam_both_parallel if torch.get_num_threads() > 1 else kernels.row_adam_both
        both(
            self._np["U"], mU, vU, ru.numpy(), gu.contiguous().numpy(),
            self._np["I"], mI, vI, ri.numpy(), gi.contiguous().numpy(),
            step_size, b1, c1, b2, c2, eps,
        )  # fmt: skip

    def _buffers(self, n_pairs: int) -> dict[str, Any]:
        """The kernels' scratch for ``n_pairs`` pairs (:func:`ncf.train.kernels.step_buffers`), kept
        per batch size (an epoch has one full and one short last batch); per side, as many rows as
        the batch or the table can have."""
        buf = self._bufs.get(n_pairs)
        if buf is None:
            if len(self._bufs) > 3:
                self._bufs.clear()
            cap = min(n_pairs, max(self.U.shape[0], self.I.shape[0]))
            widths = [int(p.shape[0]) for p in self.dense_params[2::2]]
            buf = kernels.step_buffers(n_pairs, cap, self.k, self.half, widths, self.flat.numel())
            buf["z_t"], buf["g_t"], buf["rows_t"] = (torch.from_numpy(buf[n]) for n in ("z", "g", "rows"))
            self._bufs[n_pairs] = buf
        return buf

    def _step_native(
        self, u: torch.Tensor, i: torch.Tensor, y_or_j: torch.Tensor, w: torch.Tensor | None
    ) -> torch.Tensor:
        """:meth:`step` in the compiled kernels; the same update."""
        b, bpr, wd = u.numel(), self.loss == "bpr", self.weight_decay
        uu, ii = (torch.cat([u, u]), torch.cat([i, y_or_j])) if bpr else (u, i)
        n_pairs = uu.numel()
        buf, st = self._buffers(n_pairs), self._np
        two = torch.get_num_threads() > 1  # the kernels' halves and sides on two threads
        forward = kernels.step_forward_parallel if two else kernels.step_forward
        backward = kernels.step_backward_parallel if two else kernels.step_backward
        k, lay, ns, l2s = self.k, self._lay, buf["ns"], buf["l2s"]
        forward(uu.numpy(), ii.numpy(), *self._pos, st["U"], st["I"], k, st["flat"], lay, 0, wd > 0, *buf["forward"])
        nu, ni = int(ns[0]), int(ns[1])
        if nu < 0 or ni < 0:
            what, n = ("user", self.U.shape[0]) if nu < 0 else ("item", self.I.shape[0])
            raise IndexError(f"a training batch has a {what} index outside [0, {n})")
        loss_here = n_pairs < kernels.TORCH_LOSS_PAIRS  # else PyTorch's vectorised exp / log1p
        if loss_here:
            y = _EMPTY if bpr else y_or_j.contiguous().numpy()
            wts = _EMPTY if w is None else w.contiguous().numpy()
            dz = buf["dz"]
        else:
            loss, dz_t = loss_and_grad(self.loss, buf["z_t"], None if bpr else y_or_j, w)
            y, wts, dz = _EMPTY, _EMPTY, dz_t.contiguous().numpy()
        fuse = self.reduce is None  # the update in the kernel, else after the hook
        if fuse:
            self.t += 1
        total = backward(
            loss_here, y, wts, bpr, dz, np.float32(2 * wd / b), k, st["flat"], lay, 0, st["g"],
            fuse, st["U"], st["I"], self._row_m, self._flat_m, self._adam_scalars() if fuse else _NO_ADAM,
            *buf["backward"],
        )  # fmt: skip
        if loss_here:
            loss = torch.scalar_tensor(total / b)  # BCE: b pairs; BPR: b positive-negative pairs
        if wd > 0:  # d/dx of wd * sum(x^2) / b over every looked-up row is in the row gradients
            loss = loss + wd * float(l2s.sum()) / b
        if not fuse:
            g, r = buf["g_t"], buf["rows_t"]
            flat_grad, blocks = self.reduce(self._g_flat, [(r[0, :nu], g[0, :nu]), (r[1, :ni], g[1, :ni])])
            self._update(flat_grad, blocks)
        return loss


def fused_step(module: nn.Module, **kw: Any) -> FusedStep:
    """The compiled step where its kernels apply (CPU float32 with numba, an MLP with hidden
    layers or none at all), else the PyTorch one (CUDA, no numba)."""
    p = next(module.parameters())
    tower = getattr(module, "tower", None)
    compiled = kernels.AVAILABLE and p.device.type == "cpu" and p.dtype == torch.float32
    compiled = compiled and (tower is None or len(tower.hidden) > 0)
    return (CompiledFusedStep if compiled else FusedStep)(module, **kw)
