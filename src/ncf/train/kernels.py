"""Compiled CPU kernels (numba) for the fused training step, and the epoch builder's lookups.

Why: on a CPU the NCF step is small (a few MFLOP a 1k-sample batch), so PyTorch's per-op
cost dominates it: row indexing (``index_add_`` of 1k x 40 floats 35-90 us, a ``unique``
dedupe ~90 us a side), ~10 us of dispatch per matrix product, and with two threads MKL's own
team splitting products too small to share (a 1k x 16 @ 16 x 8 product took 16 us on one
thread, more on two). The step here is two kernel calls, the update included:

* :func:`step_forward` - per side (users, items): the distinct rows (in table order when the
  table is small next to the batch) and each pair's position among them; per half of each
  side's distinct rows: the rows gathered and the MLP's first layer once per row; per half of
  the batch: the GMF features, the first hidden layer per pair from the per-row halves, the
  other hidden layers, the logits;
* :func:`step_backward` - per half of the batch: the loss and its gradient (unless PyTorch's
  vectorised ``exp`` / ``log1p`` computed them, for big batches), the output layer's and the
  hidden layers' gradients; per half of each side's distinct rows: the per-pair gradients merged
  per row, the first layer's backward, the L2 term and the rows' lazy Adam update; then the
  dense gradient, the halves' partial sums added in a fixed order, and its Adam update;
* :func:`row_adam` / :func:`flat_adam` (:func:`row_adam_both`) - lazy Adam on the touched rows
  and Adam on the flat buffer of dense parameters, in place: the arithmetic of
  :func:`ncf.train.optim.row_adam_update` and ``torch.optim.Adam`` (called from Python when a
  data-parallel ``reduce`` hook comes between the gradients and the update);
* :func:`negatives_from_ranks` - the negative sampler's lookup (:mod:`ncf.sampling`), per user;
* :func:`assemble_bce` - a shuffled BCE epoch in one pass, for :class:`ncf.train.sources.UniformNegatives`.

The matrix products go to the BLAS numba calls for ``np.dot`` (scipy's: OpenBLAS in its
wheels), cut into products of at most :data:`CHUNK_MACS` multiply-adds, which OpenBLAS runs on
the calling thread: the halves run on the step's two threads and OpenBLAS's own thread pool
never competes with them. Two threads at most: the step uses the parallel variants when torch
has more than one thread, and splits everything in two.

numba is a dependency, but everything works without it: :data:`AVAILABLE` is False when
it cannot be imported (or ``NCF_NO_NUMBA=1``) and the step uses its pure-PyTorch path,
which computes the same update (``tests/test_fused.py`` checks both against autograd).
The kernels are compiled when the package is built and ship inside it
(:mod:`ncf.train.kernel_cache`), so a fit loads them; one that does not match this machine
(another CPU model, Python or numba) compiles on first use and is cached on disk.
:func:`warmup` loads or compiles every kernel for the trainer's signatures ahead of time.
The halves are fixed, whatever the thread count, and their partial results are added in a
fixed order: one and two threads give bit-identical updates.
"""

from __future__ import annotations

import os
import types

import numpy as np

__all__ = ["AVAILABLE", "step_buffers", "warmup"]

try:  # pragma: no cover - exercised by whichever environment runs the tests
    if os.environ.get("NCF_NO_NUMBA") == "1":
        raise ImportError("disabled by NCF_NO_NUMBA=1")
    import numba

    AVAILABLE = True
except ImportError:  # pragma: no cover
    numba = None
    AVAILABLE = False

if AVAILABLE:
    try:  # numba's cache, plus the kernels compiled when the package was built
        from ncf.train.kernel_cache import cached_njit
    except (ImportError, AttributeError):  # pragma: no cover - numba's caching internals moved

        def cached_njit(f, **options):  # noqa: ANN001, ANN003, ANN202
            try:
                return numba.njit(cache=True, **options)(f)
            except RuntimeError:  # no writable cache location: compiled per process
                return numba.njit(**options)(f)


def _prefetch_intrinsic():  # noqa: ANN202
    """``prefetch(row_view, c)``: a software prefetch hint (LLVM ``llvm.prefetch``) for ``&row_view[c]``.

    The row updates and gathers read rows at random; hinting the rows :data:`AHEAD` iterations
    ahead hides part of the memory latency (:func:`_prefetch_row`). If this numba/llvmlite
    cannot build the intrinsic, :data:`prefetch` is a no-op (same results).
    """
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, arr, i):  # noqa: ANN001, ANN202
        def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
            aryty = signature.args[0]
            ary = context.make_array(aryty)(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
            i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8"
            )
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return types.void(arr, i), codegen

    return prefetch


def _jit(f, parallel: bool = False):  # noqa: ANN001, ANN202
    # error_model="numpy": float division follows IEEE (no ZeroDivisionError branch), which
    # is what lets LLVM vectorise the Adam loops (~6x faster than numba's Python error model).
    # parallel: only the explicit prange loops (no fusion of the step's consecutive loops, whose
    # second reads what the first wrote, and no automatic parallel array expressions).
    # Cached on disk with a tier compiled when the package is built (ncf.train.kernel_cache).
    par = {"prange": True, "fusion": False, "comprehension": False, "reduction": False}
    par.update({"inplace_binop": False, "setitem": False, "numpy": False, "stencil": False})
    return cached_njit(f, nogil=True, boundscheck=False, error_model="numpy", parallel=par if parallel else False)


def _njit(f):  # noqa: ANN001, ANN202 - decorator
    return _jit(f) if AVAILABLE else f


def _probe_prefetch(a):  # noqa: ANN001, ANN202
    _prefetch_hint(a, 0)


def _choose_prefetch():  # noqa: ANN202
    """The intrinsic if a kernel that uses it compiles (or loads from the cache), else a no-op.
    The probe is a cached kernel like the others, so an import compiles nothing."""
    try:
        _prefetch_probe(np.zeros(1, np.float32))
        return _prefetch_hint
    except Exception:  # noqa: BLE001 - any build failure: fall back to no hint

        @numba.njit
        def no_prefetch(a, i):  # noqa: ANN001, ANN202
            pass

        return no_prefetch


if AVAILABLE:
    _prefetch_hint = _prefetch_intrinsic()
    _prefetch_probe = _jit(_probe_prefetch)
    prefetch = _choose_prefetch()
else:
    prefetch = None
AHEAD = 8  # rows fetched ahead


@_njit
def _prefetch_row(row):  # noqa: ANN001, ANN202
    """Hint a row's first, middle and last element (a 40-float row spans 3 cache lines).

    Three hints and no loop: a loop of hints (every 16 floats, for each of the 3 Adam arrays)
    made :func:`row_adam` ~4x slower on the ML-1M tables (87 vs 17 us for 950 rows). These three
    per array, :data:`AHEAD` rows ahead: :func:`row_adam` 1,257 -> 583 us for 14,400 of 138k rows
    (ML-20M's users, cold), 15 -> 12 us for 900 of ML-1M's 6,040 (the gather: ~-20% on ML-20M).
    """
    d = row.shape[0]
    prefetch(row, 0)
    prefetch(row, d // 2)
    prefetch(row, d - 1)


#: Rows come out in table order (one scan of the table's scratch) when the table has <= 16 x batch rows.
SORT_SCAN = 16
#: Multiply-adds per BLAS call at most: OpenBLAS runs a product up to 4 x 65,536 on the calling thread
#: (its GEMM_MULTITHREAD_THRESHOLD), above that on its own thread pool, which would fight the step's threads.
CHUNK_MACS = 262_144
#: From this many pairs a step the loss is PyTorch's (vectorised exp / log1p; numba's are scalar libm calls).
TORCH_LOSS_PAIRS = 4096


@_njit
def _dedupe(idx, pos, rows, inv, counts):  # noqa: ANN001, ANN202
    """Distinct rows of ``idx`` (``rows[:n]``), each entry's position among them (``inv``) and
    each row's count; returns n, or -1 if an id is outside ``[0, len(pos))``. ``pos`` is
    scratch, one entry per table row, all -1 on entry and on return.

    The rows come out in ascending order when the table is small next to the batch (one scan
    over ``pos``), else in order of first appearance: in table order the gathers and row
    updates walk memory forwards, which the hardware prefetcher follows.
    """
    n = 0
    n_rows = pos.shape[0]
    b = idx.shape[0]
    for j in range(b):
        r = idx[j]
        if r < 0 or r >= n_rows:
            for q in range(n):  # leave the scratch clean
                pos[rows[q]] = -1
            return -1
        if pos[r] < 0:
            pos[r] = n
            rows[n] = r
            n += 1
    if n_rows <= SORT_SCAN * b:  # renumber in table order
        q = 0
        for r in range(n_rows):
            if pos[r] >= 0:
                pos[r] = q
                rows[q] = r
                q += 1
    for q in range(n):
        counts[q] = 0
    for j in range(b):
        p = pos[idx[j]]
        inv[j] = p
        counts[p] += 1
    for q in range(n):  # leave the scratch clean (all -1) for the next call
        pos[rows[q]] = -1
    return n


@_njit
def _dot(a, b, out):  # noqa: ANN001, ANN202
    """``out = a @ b``, ``a``'s rows cut so each BLAS call has at most :data:`CHUNK_MACS` multiply-adds."""
    n, m = a.shape
    p = b.shape[1]
    step = max(1, CHUNK_MACS // max(1, m * p))
    for s in range(0, n, step):
        e = min(n, s + step)
        np.dot(a[s:e], b, out[s:e])


@_njit
def _dot_tn(a, b, out):  # noqa: ANN001, ANN202
    """``out = a.T @ b`` (a sum over rows), in row chunks of at most :data:`CHUNK_MACS` multiply-adds."""
    n, m = a.shape
    p = b.shape[1]
    step = max(1, CHUNK_MACS // max(1, m * p))
    out[:, :] = 0.0
    tmp = np.empty((m, p), np.float32)
    for s in range(0, n, step):
        e = min(n, s + step)
        np.dot(a[s:e].T, b[s:e], tmp)
        for r in range(m):
            for c in range(p):
                out[r, c] += tmp[r, c]


@_njit
def _layer(flat, lay, ell):  # noqa: ANN001, ANN202
    """Hidden layer ``ell``'s (weight (out, in), bias) views into the flat parameter buffer."""
    w_off, b_off, n_out, n_in = lay[ell, 0], lay[ell, 1], lay[ell, 2], lay[ell, 3]
    return flat[w_off : w_off + n_out * n_in].reshape((n_out, n_in)), flat[b_off : b_off + n_out]


@_njit
def _acts(buf, lay, ell, n_pairs):  # noqa: ANN001, ANN202
    """Layer ``ell``'s per-pair block ``(n_pairs, width)`` of an activation buffer (layers one after another)."""
    off = 0
    for q in range(ell):
        off += n_pairs * lay[q, 2]
    return buf[off : off + n_pairs * lay[ell, 2]].reshape((n_pairs, lay[ell, 2]))


@_njit
def _rows_forward(side, r0, r1, users, items, k, lay, rows, cnt, pg, pm, w1t, a, want_l2):  # noqa: ANN001, ANN202
    """Distinct rows ``r0:r1`` of one side (0: users, 1: items): gathered (GMF columns into
    ``pg[side]``, MLP columns into ``pm[side]``), and the first layer's half for this side,
    ``a[side] = pm[side] @ w1t[side]`` (``w1t[side]``: ``W1[:, side * half:(side + 1) * half].T``).
    Returns the L2 sum of these rows over the batch (repeats counted; 0 unless ``want_l2``)."""
    table = users if side == 0 else items
    rows, cnt, pg, pm, w1t, a = rows[side], cnt[side], pg[side], pm[side], w1t[side], a[side]
    half = pm.shape[1]
    l2 = 0.0
    for q in range(r0, r1):
        if q + AHEAD < r1:
            _prefetch_row(table[rows[q + AHEAD]])
        r = rows[q]
        s = 0.0
        for c in range(k):
            x = table[r, c]
            pg[q, c] = x
            s += x * x
        for c in range(half):
            x = table[r, k + c]
            pm[q, c] = x
            s += x * x
        if want_l2:
            l2 += s * cnt[q]
    if lay.shape[0] > 0:
        _dot(pm[r0:r1], w1t, a[r0:r1])
    return l2


@_njit
def _pairs_forward(j0, j1, inv_u, inv_i, pg_u, pg_i, a_u, a_i, k, flat, lay, out_off, hbuf, gmf, z):  # noqa: ANN001, ANN202
    """Pairs ``j0:j1``: GMF features, the hidden layers (the first from the per-row halves), logits ``z``."""
    n_pairs, nh = z.shape[0], lay.shape[0]
    for j in range(j0, j1):
        a, b = inv_u[j], inv_i[j]
        for c in range(k):
            gmf[j, c] = pg_u[a, c] * pg_i[b, c]
    width = 0
    if nh > 0:
        _, b1 = _layer(flat, lay, 0)
        h = _acts(hbuf, lay, 0, n_pairs)
        width = h.shape[1]
        for j in range(j0, j1):
            a, b = inv_u[j], inv_i[j]
            for c in range(width):
                v = a_u[a, c] + a_i[b, c] + b1[c]
                h[j, c] = 0.0 if v <= 0 else v  # relu (NaN stays NaN, as torch's)
        for ell in range(1, nh):
            w, bias = _layer(flat, lay, ell)
            prev, h = h, _acts(hbuf, lay, ell, n_pairs)
            width = h.shape[1]
            _dot(prev[j0:j1], w.T, h[j0:j1])
            for j in range(j0, j1):
                for c in range(width):
                    v = h[j, c] + bias[c]
                    h[j, c] = 0.0 if v <= 0 else v
    w_out, b_out = flat[out_off : out_off + k + width], flat[out_off + k + width]
    last = _acts(hbuf, lay, nh - 1, n_pairs) if nh > 0 else np.zeros((n_pairs, 0), np.float32)
    for j in range(j0, j1):
        acc = b_out
        for c in range(k):
            acc += gmf[j, c] * w_out[c]
        for c in range(width):
            acc += last[j, c] * w_out[k + c]
        z[j] = acc


@_njit
def _loss(j0, j1, z, y, wts, bpr, dz):  # noqa: ANN001, ANN202
    """Mean-loss terms of pairs ``j0:j1`` (their sum, float64) and ``dz`` = d loss / d logits there.

    "bce" against ``y``; when ``bpr``, pairs ``j`` and ``j + n`` (n = half the pairs) are a
    positive and its negative: ``-log sigmoid(z[j] - z[j + n])``, counted at ``j < n``. Each term
    weighted by ``wts`` (per positive) when it is non-empty. Stable forms:
    ``max(z, 0) - z y + log1p(exp(-|z|))``; float32 ``expf`` / ``log1pf``.
    """
    n_pairs = z.shape[0]
    weighted = wts.shape[0] > 0
    total = 0.0
    one, zero = np.float32(1.0), np.float32(0.0)
    if not bpr:
        for j in range(j0, j1):
            x = z[j]
            t = np.float32(y[j])
            e = np.exp(-x if x > 0 else x)
            per = (x if x > 0 else zero) - x * t + np.log1p(e)
            s = one / (one + e) if x >= 0 else e / (one + e)  # sigmoid(x)
            g = (s - t) / np.float32(n_pairs)
            if weighted:
                per *= wts[j]
                g *= wts[j]
            dz[j] = g
            total += per
    else:
        n = n_pairs // 2
        for j in range(j0, j1):
            p = j if j < n else j - n
            d = z[p] - z[n + p]
            e = np.exp(-d if d > 0 else d)
            s_neg = e / (one + e) if d >= 0 else one / (one + e)  # sigmoid(-d)
            g = -s_neg / np.float32(n)
            if weighted:
                g *= wts[p]
            dz[j] = g if j < n else -g
            if j < n:
                per = (-d if d < 0 else zero) + np.log1p(e)  # softplus(-d) = -log sigmoid(d)
                total += per * wts[p] if weighted else per
    return total


@_njit
def _pairs_backward(j0, j1, k, flat, lay, out_off, hbuf, dabuf, gmf, dz, gpart):  # noqa: ANN001, ANN202
    """Pairs ``j0:j1`` from ``dz``: their share of every dense gradient but the first layer's weight
    (into ``gpart``, zeroed here; float64 sums over the pairs), and the first hidden layer's
    pre-activation gradient per pair (``dabuf``'s layer 0)."""
    n_pairs, nh = dz.shape[0], lay.shape[0]
    gpart[:] = 0.0
    width = lay[nh - 1, 2] if nh > 0 else 0
    w_out = flat[out_off : out_off + k + width]
    acc = np.zeros(k + width, np.float64)
    gb = 0.0
    if nh > 0:
        h, da = _acts(hbuf, lay, nh - 1, n_pairs), _acts(dabuf, lay, nh - 1, n_pairs)
        for j in range(j0, j1):
            g = dz[j]
            gb += g
            for c in range(k):
                acc[c] += g * gmf[j, c]
            for c in range(width):
                hc = h[j, c]
                acc[k + c] += g * hc
                da[j, c] = g * w_out[k + c] if hc > 0 else np.float32(0.0)
    else:
        for j in range(j0, j1):
            g = dz[j]
            gb += g
            for c in range(k):
                acc[c] += g * gmf[j, c]
    for c in range(k + width):
        gpart[out_off + c] = acc[c]
    gpart[out_off + k + width] = gb
    for ell in range(nh - 1, -1, -1):
        da = _acts(dabuf, lay, ell, n_pairs)
        n_out = da.shape[1]
        b_off = lay[ell, 1]
        sums = np.zeros(n_out, np.float64)
        for j in range(j0, j1):
            for c in range(n_out):
                sums[c] += da[j, c]
        for c in range(n_out):
            gpart[b_off + c] = sums[c]
        if ell == 0:
            break  # the first layer's weight gradient is per side (step_backward)
        w, _ = _layer(flat, lay, ell)
        gw = gpart[lay[ell, 0] : lay[ell, 0] + n_out * w.shape[1]].reshape((n_out, w.shape[1]))
        prev, dprev = _acts(hbuf, lay, ell - 1, n_pairs), _acts(dabuf, lay, ell - 1, n_pairs)
        _dot_tn(da[j0:j1], prev[j0:j1], gw)
        _dot(da[j0:j1], w, dprev[j0:j1])
        for j in range(j0, j1):
            for c in range(dprev.shape[1]):
                if prev[j, c] <= 0:
                    dprev[j, c] = 0.0


@_njit
def _rows_backward(side, r0, r1, inv, dz, k, flat, lay, out_off, pg, pm, da1, w1t, cnt, wdc, d, g, gm, gw1):  # noqa: ANN001, ANN202
    """Distinct rows ``r0:r1`` of one side (0: users, 1: items): the per-pair gradients merged per
    row into ``g[side]`` (GMF columns, then the MLP's; pairs in batch order), through the first
    layer (``d[side]``: the merged pre-activation gradient; ``gm[side]`` scratch); these rows'
    share of the first layer's weight gradient (this side's columns) into ``gw1``; plus the L2
    term ``wdc * count * row`` if ``wdc > 0``."""
    inv_self, inv_other, pg_other = inv[side], inv[1 - side], pg[1 - side]
    pg, pm, w1t, cnt, d, g, gm = pg[side], pm[side], w1t[side], cnt[side], d[side], g[side], gm[side]
    half = pm.shape[1]
    width = d.shape[1]
    w_gmf = flat[out_off : out_off + k]
    for q in range(r0, r1):
        for c in range(k):
            g[q, c] = 0.0
        for c in range(width):
            d[q, c] = 0.0
    for j in range(inv_self.shape[0]):
        a = inv_self[j]
        if a < r0 or a >= r1:
            continue
        b = inv_other[j]
        gj = dz[j]
        for c in range(k):
            g[a, c] += gj * w_gmf[c] * pg_other[b, c]
        for c in range(width):
            d[a, c] += da1[j, c]
    if lay.shape[0] > 0:
        _dot_tn(d[r0:r1], pm[r0:r1], gw1)
        _dot(d[r0:r1], w1t.T, gm[r0:r1])
        for q in range(r0, r1):
            for c in range(half):
                g[q, k + c] = gm[q, c]
    if wdc > 0:
        for q in range(r0, r1):
            wq = wdc * np.float32(cnt[q])
            for c in range(k):
                g[q, c] += wq * pg[q, c]
            for c in range(half):
                g[q, k + c] += wq * pm[q, c]


def _step_forward(
    u, i, pos_u, pos_i, users, items, k, flat, lay, out_off, want_l2,
    rows, inv, cnt, pg, pm, w1t, a, hbuf, gmf, z, ns, l2s,
):  # noqa: ANN001, ANN202  # fmt: skip
    """The forward pass of a batch of (user, item) pairs, to the logits ``z``.

    Per side (two threads in the parallel variant): :func:`_dedupe`; ``ns`` receives each side's
    number of distinct rows (-1: an id outside its table, and nothing else is computed). Then per
    half of each side's distinct rows: the gather and the first layer (:func:`_rows_forward`;
    ``l2s[side, half]`` its L2 sum); per half of the pairs: GMF features, hidden layers, logits.
    ``rows``, ``inv``, ``cnt``, ``pg``, ``pm``, ``w1t`` and ``a`` have a leading axis of 2 (users,
    items); ``pos_*`` are the tables' scratch (all -1); ``lay`` the hidden layers' (weight offset,
    bias offset, out, in) in ``flat``; ``out_off`` the output layer's weight offset (its bias
    follows it). Halves of the rows, not one side a thread: on ML-20M a batch has ~3x as many
    distinct users as items.
    """
    for side in numba.prange(2):
        if side == 0:
            ns[0] = _dedupe(u, pos_u, rows[0], inv[0], cnt[0])
        else:
            ns[1] = _dedupe(i, pos_i, rows[1], inv[1], cnt[1])
    if ns[0] < 0 or ns[1] < 0:
        return
    if lay.shape[0] > 0:  # each side's block of the first layer, transposed
        w1, _ = _layer(flat, lay, 0)
        half = pm.shape[2]
        for side in range(2):
            for c in range(half):
                for o in range(w1.shape[0]):
                    w1t[side, c, o] = w1[o, side * half + c]
    for part in numba.prange(2):
        for side in range(2):
            mid = ns[side] // 2
            r0, r1 = (0, mid) if part == 0 else (mid, ns[side])
            l2s[side, part] = _rows_forward(side, r0, r1, users, items, k, lay, rows, cnt, pg, pm, w1t, a, want_l2)
    n_pairs = z.shape[0]
    mid = n_pairs // 2
    for part in numba.prange(2):
        j0, j1 = (0, mid) if part == 0 else (mid, n_pairs)
        _pairs_forward(j0, j1, inv[0], inv[1], pg[0], pg[1], a[0], a[1], k, flat, lay, out_off, hbuf, gmf, z)


def _step_backward(
    loss_here, y, wts, bpr, dz, wdc, k, flat, lay, out_off, grad, update, users, items, row_moments, flat_moments, adam,
    rows, inv, ns, cnt, pg, pm, w1t, hbuf, dabuf, gmf, z, d, g, gm, gw1, gpart,
):  # noqa: ANN001, ANN202  # fmt: skip
    """The backward pass after :func:`step_forward`: the row gradients ``g`` (per side, the first
    ``ns[side]`` rows) and the flat dense gradient ``grad``; returns the sum of the loss terms.

    When ``loss_here``, the loss and ``dz`` come from :func:`_loss` (``y`` the BCE labels, ``bpr``,
    ``wts`` the weights or empty), else ``dz`` holds d loss / d logits already. Per half of the
    pairs (two threads in the parallel variant) the dense gradients into ``gpart[half]``; per half
    of each side's distinct rows the row gradients and their share of the first layer's weight
    gradient (``gw1[side, half]``); then ``grad``, the halves added in a fixed order. The output
    bias cancels in BPR: its gradient is exactly 0.

    With ``update``, the Adam steps too: each half's rows right after their gradients
    (:func:`row_adam`; ``row_moments`` = (m, v) of the users, then of the items), then
    :func:`flat_adam` (``flat_moments``); ``adam`` = (row step size, b1, 1 - b1, b2, 1 - b2,
    eps, dense step size ``lr / (1 - b1**t)``, ``sqrt(1 - b2**t)``), float32.
    """
    n_pairs = z.shape[0]
    mid = n_pairs // 2
    losses = np.zeros(2, np.float64)
    for part in numba.prange(2):
        j0, j1 = (0, mid) if part == 0 else (mid, n_pairs)
        if loss_here:
            losses[part] = _loss(j0, j1, z, y, wts, bpr, dz)
        _pairs_backward(j0, j1, k, flat, lay, out_off, hbuf, dabuf, gmf, dz, gpart[part])
    nh = lay.shape[0]
    da1 = _acts(dabuf, lay, 0, n_pairs) if nh > 0 else np.zeros((n_pairs, 0), np.float32)
    step_size, b1, c1, b2, c2, eps = adam[0], adam[1], adam[2], adam[3], adam[4], adam[5]
    for part in numba.prange(2):
        for side in range(2):
            mid_r = ns[side] // 2
            r0, r1 = (0, mid_r) if part == 0 else (mid_r, ns[side])
            _rows_backward(
                side, r0, r1, inv, dz, k, flat, lay, out_off, pg, pm, da1, w1t, cnt, wdc, d, g, gm, gw1[side, part]
            )
            if update:
                table = users if side == 0 else items
                m, v = row_moments[2 * side], row_moments[2 * side + 1]
                row_adam(table, m, v, rows[side, r0:r1], g[side, r0:r1], step_size, b1, c1, b2, c2, eps)
    for q in range(grad.shape[0]):
        grad[q] = gpart[0, q] + gpart[1, q]
    if nh > 0:  # the first layer's weight: users' columns, then items'
        w1_off, stride, half = lay[0, 0], lay[0, 3], pm.shape[2]
        for side in range(2):
            for o in range(gw1.shape[2]):
                for c in range(half):
                    grad[w1_off + o * stride + side * half + c] = gw1[side, 0, o, c] + gw1[side, 1, o, c]
    if bpr:
        width = lay[nh - 1, 2] if nh > 0 else 0
        grad[out_off + k + width] = 0.0
    if update:
        flat_adam(flat, flat_moments[0], flat_moments[1], grad, adam[6], c1, b2, c2, adam[7], eps)
    return losses[0] + losses[1]


def _row_adam_both(pU, mU, vU, rU, gU, pI, mI, vI, rI, gI, step_size, b1, c1, b2, c2, eps):  # noqa: ANN001, ANN202
    """:func:`row_adam` on the user and the item block (two threads in the parallel variant)."""
    for side in numba.prange(2):
        if side == 0:
            row_adam(pU, mU, vU, rU, gU, step_size, b1, c1, b2, c2, eps)
        else:
            row_adam(pI, mI, vI, rI, gI, step_size, b1, c1, b2, c2, eps)


@_njit
def row_adam(p, m, v, rows, grad, step_size, b1, c1, b2, c2, eps):  # noqa: ANN001, ANN201
    """Lazy Adam on ``rows`` of ``p`` (distinct), in place, with their merged gradients ``grad``.

    The arithmetic of :func:`ncf.train.optim.row_adam_update`, in float32 (float32 scalars,
    ``c1 = 1 - b1``, ``c2 = 1 - b2``). Row views and nothing read before it is written
    keep the inner loop vectorised (reading ``p`` for an L2 term here made it 2x slower: the
    step adds that term to the gradient first); the rows :data:`AHEAD` are hinted (:func:`_prefetch_row`).
    """
    d, n = p.shape[1], rows.shape[0]
    for q in range(n):
        if q + AHEAD < n:
            r2 = rows[q + AHEAD]
            _prefetch_row(p[r2])
            _prefetch_row(m[r2])
            _prefetch_row(v[r2])
        r = rows[q]
        pr, mr, vr, gr = p[r], m[r], v[r], grad[q]
        for c in range(d):
            g = gr[c]
            mm = mr[c] * b1 + c1 * g
            vv = vr[c] * b2 + c2 * g * g
            mr[c] = mm
            vr[c] = vv
            pr[c] -= step_size * (mm / (np.sqrt(vv) + eps))


@_njit
def flat_adam(p, m, v, g, lr_t, c1, b2, c2, bc2_sqrt, eps):  # noqa: ANN001, ANN201
    """``torch.optim.Adam``'s update on one flat buffer, in place (``lr_t = lr / (1 - b1**t)``, float32 scalars)."""
    for q in range(p.shape[0]):
        gq = g[q]
        mm = m[q] + c1 * (gq - m[q])  # lerp towards g with weight 1 - b1, as torch.optim.Adam
        vv = v[q] * b2 + c2 * gq * gq
        m[q] = mm
        v[q] = vv
        p[q] -= lr_t * (mm / (np.sqrt(vv) / bc2_sqrt + eps))


@_njit
def negatives_from_ranks(users, r, qkeys, indptr, n_items):  # noqa: ANN001, ANN201
    """:meth:`ncf.sampling.NegativeSampler.sample`'s lookup, in place: rank ``r[a, j]`` among
    user ``users[a]``'s negatives becomes the item ``r + #{k : q_k <= r}``.

    A binary search in the user's own keys instead of ``torch.searchsorted`` over everyone's;
    with the trainer's positives (sorted by user) each user's keys stay in cache.
    """
    for a in range(users.shape[0]):
        u = users[a]
        lo0, hi0, base = indptr[u], indptr[u + 1], u * n_items
        for j in range(r.shape[1]):
            rr = r[a, j]
            lo, hi, x = lo0, hi0, base + rr
            while lo < hi:
                mid = (lo + hi) >> 1
                if qkeys[mid] <= x:
                    lo = mid + 1
                else:
                    hi = mid
            r[a, j] = rr + (lo - lo0)


@_njit
def assemble_bce(perm, pos_u, pos_i, neg, out_u, out_i, out_y):  # noqa: ANN001, ANN201
    """A shuffled BCE epoch in one pass: row ``t`` is sample ``s = perm[t]`` of the unshuffled
    ``[positives; negatives]``, so ``s < P`` is positive ``s`` and otherwise negative
    ``(s - P) % n`` of positive ``(s - P) // n`` (``neg`` is ``(P, n)``). The same rows as
    :class:`ncf.train.sources.UniformNegatives`' torch ops (concatenate, repeat, gather by ``perm``).
    """
    n_pos, n = pos_u.shape[0], neg.shape[1]
    for t in range(perm.shape[0]):
        s = perm[t]
        if s < n_pos:
            p = s
            out_i[t] = pos_i[p]
            out_y[t] = 1.0
        else:
            p = (s - n_pos) // n
            out_i[t] = neg[p, s - n_pos - p * n]
            out_y[t] = 0.0
        out_u[t] = pos_u[p]


def _variants(f):  # noqa: ANN001, ANN202
    """(serial, parallel) compiled variants of a kernel whose loops over sides or halves are ``numba.prange``.

    The step uses the parallel one with two or more torch threads; both split the work the
    same way, so they give bit-identical results.
    """
    if not AVAILABLE:
        return f, f
    return _jit(f), _jit(_renamed(f, "_parallel"), parallel=True)


def _renamed(f, suffix: str):  # noqa: ANN001, ANN202
    """A copy of ``f`` under another name. numba's on-disk cache is keyed by the function's
    qualified name, line and signature, not by ``parallel``: two variants of one function
    would share one cache entry, and whichever was compiled first would answer for both
    (a serial kernel running a thread team, or the reverse). Distinct names, distinct entries."""
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__ + suffix, f.__defaults__, f.__closure__)
    g.__qualname__ = f.__qualname__ + suffix
    return g


step_forward, step_forward_parallel = _variants(_step_forward)
step_backward, step_backward_parallel = _variants(_step_backward)
row_adam_both, row_adam_both_parallel = _variants(_row_adam_both)


#: The scratch arrays :func:`step_forward` and :func:`step_backward` take last, in their order.
FORWARD_SCRATCH = ("rows", "inv", "cnt", "pg", "pm", "w1t", "a", "h", "gmf", "z", "ns", "l2s")
BACKWARD_SCRATCH = (
    "rows",
    "inv",
    "ns",
    "cnt",
    "pg",
    "pm",
    "w1t",
    "h",
    "da",
    "gmf",
    "z",
    "d",
    "g",
    "gm",
    "gw1",
    "gpart",
)


def step_buffers(n_pairs: int, cap: int, k: int, half: int, widths: list[int], n_flat: int) -> dict:
    """The step's scratch for batches of ``n_pairs`` pairs: at most ``cap`` distinct rows a side,
    ``k`` GMF factors, MLP halves of ``half``, hidden layers ``widths``, ``n_flat`` dense
    parameters. ``forward`` / ``backward`` hold the arrays in :data:`FORWARD_SCRATCH` /
    :data:`BACKWARD_SCRATCH` order (C-contiguous, as :func:`warmup` compiles for)."""
    h1, acts = (widths[0] if widths else 0), n_pairs * sum(widths)
    shapes = {
        "pg": (2, cap, k), "pm": (2, cap, half), "w1t": (2, half, h1), "a": (2, cap, h1), "d": (2, cap, h1),
        "g": (2, cap, k + half), "gm": (2, cap, half), "h": (acts,), "da": (acts,), "gmf": (n_pairs, k),
        "z": (n_pairs,), "dz": (n_pairs,), "gw1": (2, 2, h1, half), "gpart": (2, n_flat),
    }  # fmt: skip
    buf = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    i64 = np.int64
    buf |= {"rows": np.zeros((2, cap), i64), "inv": np.zeros((2, n_pairs), i64), "cnt": np.zeros((2, cap), i64)}
    buf |= {"ns": np.zeros(2, i64), "l2s": np.zeros((2, 2), np.float64)}
    buf["forward"], buf["backward"] = (tuple(buf[x] for x in names) for names in (FORWARD_SCRATCH, BACKWARD_SCRATCH))
    return buf


def warmup() -> bool:
    """Load (or compile) every kernel for the trainer's signatures; False without numba.

    The signatures must be the trainer's exactly (dtypes, dimensions and layout: a slice
    ``a[:, :1]`` is layout ``A``, a different kernel from a C-contiguous array), since the
    package's build compiles what this calls (:mod:`ncf.train.kernel_cache`).
    ``tests/test_kernel_cache.py`` checks that fits through every path of the step, in an
    installed copy, load each kernel they call from the build (no cache miss).
    """
    if not AVAILABLE:
        return False
    f32, i64 = np.float32, np.int64
    s = f32(0.1)
    # A NeuMF with 1 GMF factor, MLP halves of 2 and hidden layers 4 -> 2 -> 1 (16 dense
    # parameters), on 4 pairs of a 3 x 3 table.
    k, n = 1, 4
    lay = np.array([[3, 11, 2, 4], [13, 15, 1, 2]], i64)
    flat, grad, tab = np.zeros(16, f32), np.zeros(16, f32), np.zeros((3, 3), f32)
    buf = step_buffers(n, 3, k, 2, [2, 1], 16)
    row_m, flat_m, adam = tuple(tab.copy() for _ in range(4)), (flat.copy(), flat.copy()), np.zeros(8, f32)
    z = buf["z"]
    for forward, backward in ((step_forward, step_backward), (step_forward_parallel, step_backward_parallel)):
        for idx_dtype in (np.int32, np.int64):
            idx, pos = np.zeros(n, idx_dtype), np.full(3, -1, i64)
            forward(idx, idx, pos, pos.copy(), tab, tab, k, flat, lay, 0, True, *buf["forward"])
        for loss_here, bpr in ((True, False), (True, True), (False, False)):
            y = z[:0] if bpr or not loss_here else z
            for wts in (z[:0], z):
                for update in (False, True):
                    backward(
                        loss_here, y, wts, bpr, buf["dz"], s, k, flat, lay, 0, grad, update, tab, tab.copy(), row_m,
                        flat_m, adam, *buf["backward"],
                    )  # fmt: skip
    side = (tab, tab.copy(), tab.copy(), buf["rows"][0, :1], buf["g"][0, :1])
    for both in (row_adam_both, row_adam_both_parallel):
        both(*side, *side, s, s, s, s, s, s)
    flat_adam(flat, flat.copy(), flat.copy(), grad, s, s, s, s, s, s)
    negatives_from_ranks(np.zeros(1, i64), np.zeros((1, 2), i64), np.zeros(1, i64), np.array([0, 1], i64), 2)
    i32 = np.int32
    assemble_bce(
        np.arange(2, dtype=i64),
        np.zeros(1, i32),
        np.zeros(1, i32),
        np.zeros((1, 1), i32),
        np.zeros(2, i32),
        np.zeros(2, i32),
        np.zeros(2, f32),
    )
    return True
