"""Compiled CPU kernels (numba) for the fused training step's indexing, loss and updates.

Why: on a CPU the NCF step is small, and PyTorch's row-indexing ops are slow at this
size (``index_add_`` of 1k x 40 floats 35-90 us, ``index_copy_`` ~60 us, a ``unique`` or
``bincount`` dedupe ~90 us a side) while a 1k-sample step needs dozens of them, each with
its own dispatch and temporaries. These kernels do that work in a few passes over the
batch; :class:`ncf.train.fused.FusedStep` keeps the matrix products in PyTorch (MKL):

* :func:`prepare` - distinct user and item rows (first-appearance order), each pair's
  position among them and each row's count, the rows gathered, the GMF features per pair,
  and the L2 term;
* :func:`gather_add_relu` - the MLP's first hidden layer per pair from its per-row halves;
* :func:`logits` / :func:`head_backward` - the output layer, and its backward with the
  last hidden layer's (the loss between them is PyTorch's, vectorised);
* :func:`relu_grad` - a ReLU's backward in place;
* :func:`scatter_backward` - per-pair gradients merged per distinct row;
* :func:`add_l2` - the L2 term of each looked-up row;
* :func:`row_adam` / :func:`flat_adam` - lazy Adam on the touched rows and Adam on the flat buffer of dense parameters, in place: the arithmetic of
  :func:`ncf.train.optim.row_adam_update` and ``torch.optim.Adam``;
* :func:`negatives_from_ranks` - the negative sampler's lookup (:mod:`ncf.sampling`), per user;
* :func:`assemble_bce` - a shuffled BCE epoch in one pass, for :class:`ncf.train.sources.UniformNegatives`.

numba is a dependency, but everything works without it: :data:`AVAILABLE` is False when
it cannot be imported (or ``NCF_NO_NUMBA=1``) and the step uses its pure-PyTorch path,
which computes the same update (``tests/test_fused.py`` checks both against autograd).
The kernels are compiled when the package is built and ship inside it
(:mod:`ncf.train.kernel_cache`), so a fit loads them; one that does not match this machine
(another CPU model, Python or numba) compiles on first use and is cached on disk.
:func:`warmup` loads or compiles every kernel for the trainer's signatures ahead of time. Each
parallel variant splits disjoint outputs, so every sum is computed serially: deterministic.
"""

from __future__ import annotations

import os
import types

import numpy as np

__all__ = ["AVAILABLE", "warmup"]

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

    The row updates and gathers read rows at random; fetching the rows a few iterations
    ahead hides part of the memory latency (~20% on a cold-cache row update here). If this
    numba/llvmlite cannot build the intrinsic, :data:`prefetch` is a no-op (same results).
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
    # Cached on disk with a tier compiled when the package is built (ncf.train.kernel_cache).
    return cached_njit(f, nogil=True, boundscheck=False, error_model="numpy", parallel=parallel)


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
AHEAD = 6  # rows fetched ahead


def _njit(f):  # noqa: ANN001, ANN202 - decorator
    return _jit(f) if AVAILABLE else f


@_njit
def _dedupe(idx, pos, rows, inv, counts):  # noqa: ANN001, ANN202
    n = 0
    n_rows = pos.shape[0]
    bad = False
    for j in range(idx.shape[0]):
        r = idx[j]
        if r < 0 or r >= n_rows:
            bad = True
            break
        p = pos[r]
        if p < 0:
            p = n
            pos[r] = n
            rows[n] = r
            counts[n] = 0
            n += 1
        inv[j] = p
        counts[p] += 1
    for q in range(n):  # leave the scratch clean (all -1) for the next call
        pos[rows[q]] = -1
    return -1 if bad else n


@_njit
def _gather(table, rows, n, out, counts, want_l2):  # noqa: ANN001, ANN202
    d = table.shape[1]
    l2 = 0.0
    for q in range(n):
        if q + AHEAD < n:
            ahead = table[rows[q + AHEAD]]
            for c in range(0, d, 16):
                prefetch(ahead, c)
        r = rows[q]
        s = 0.0
        for c in range(d):
            x = table[r, c]
            out[q, c] = x
            s += x * x
        if want_l2:
            l2 += s * counts[q]
    return l2


@_njit
def prepare(u, i, pos_u, pos_i, users, items, k, rows_u, inv_u, cnt_u, rows_i, inv_i, cnt_i, pu, qi, gmf, want_l2):  # noqa: ANN001, ANN201
    """Dedupe and gather a batch of (user, item) pairs.

    Writes the distinct rows (``rows_*[:n]``), each pair's position among them
    (``inv_*``), each row's count (``cnt_*[:n]``), the gathered rows (``pu[:nu]``,
    ``qi[:ni]``) and the GMF features ``gmf[j] = pu[inv_u[j], :k] * qi[inv_i[j], :k]``.
    ``pos_u`` / ``pos_i`` are scratch arrays, one entry per table row, all -1 on entry
    and on return. Returns ``(nu, ni, l2)`` with ``l2`` the sum over looked-up rows of
    their squared norm (repeats counted; 0 unless ``want_l2``); ``nu`` (``ni``) is -1 if a
    user (item) id is outside its table.
    """
    nu = _dedupe(u, pos_u, rows_u, inv_u, cnt_u)
    ni = _dedupe(i, pos_i, rows_i, inv_i, cnt_i)
    if nu < 0 or ni < 0:
        return nu, ni, 0.0
    l2 = _gather(users, rows_u, nu, pu, cnt_u, want_l2) + _gather(items, rows_i, ni, qi, cnt_i, want_l2)
    for j in range(gmf.shape[0]):
        a, b = inv_u[j], inv_i[j]
        for c in range(k):
            gmf[j, c] = pu[a, c] * qi[b, c]
    return nu, ni, l2


def _row_adam_both(pU, mU, vU, rU, gU, pI, mI, vI, rI, gI, step_size, b1, c1, b2, c2, eps):  # noqa: ANN001, ANN202
    """:func:`row_adam` on the user and the item block (two threads in the parallel variant)."""
    for side in numba.prange(2):
        if side == 0:
            row_adam(pU, mU, vU, rU, gU, step_size, b1, c1, b2, c2, eps)
        else:
            row_adam(pI, mI, vI, rI, gI, step_size, b1, c1, b2, c2, eps)


def _gather_add_relu(a_u, a_i, bias, inv_u, inv_i, out):  # noqa: ANN001, ANN202
    """``out[j] = relu(a_u[inv_u[j]] + a_i[inv_i[j]] + bias)`` (the first hidden layer per pair)."""
    h = out.shape[1]
    for j in numba.prange(out.shape[0]):
        a, b = inv_u[j], inv_i[j]
        for c in range(h):
            v = a_u[a, c] + a_i[b, c] + bias[c]
            out[j, c] = v if v > 0 else 0.0


@_njit
def logits(gmf, h, w, bias, z):  # noqa: ANN001, ANN201
    """``z = [gmf | h] @ w + bias``: the output layer on the GMF features and the last hidden layer."""
    k, H = gmf.shape[1], h.shape[1]
    for j in range(z.shape[0]):
        acc = bias
        for c in range(k):
            acc += gmf[j, c] * w[c]
        for c in range(H):
            acc += h[j, c] * w[k + c]
        z[j] = acc


@_njit
def head_backward(dz, gmf, h, w, gw, da):  # noqa: ANN001, ANN201
    """The output layer's backward from ``dz`` (d loss / d logits), in one pass.

    Writes ``gw`` (d loss / d w, summed in float64) and ``da = dz * w[k:]`` masked by
    ``h > 0`` (the last hidden layer's pre-activation gradient); returns d loss / d bias.
    (The loss itself and ``dz`` come from PyTorch's vectorised ``exp`` / ``log1p``: per
    element in numba they cost ~0.5 ms an 8k batch, as much as the rest of this kernel.)
    """
    k, H = gmf.shape[1], h.shape[1]
    acc = np.zeros(k + H, np.float64)
    gb = 0.0
    zero = np.float32(0.0)
    for j in range(dz.shape[0]):
        g = dz[j]
        gb += g
        for c in range(k):
            acc[c] += g * gmf[j, c]
        for c in range(H):
            hc = h[j, c]
            acc[k + c] += g * hc
            da[j, c] = g * w[k + c] if hc > 0 else zero
    for c in range(k + H):
        gw[c] = acc[c]
    return gb


@_njit
def head(gmf, h, w, bias, y, wts, bpr, dz, gw, da):  # noqa: ANN001, ANN201
    """Output layer, loss and the first steps of the backward, for features ``[gmf | h]``.

    logits ``z = [gmf | h] @ w + bias``; the loss is the mean BCE-with-logits against
    ``y`` or, when ``bpr``, the mean ``-log sigmoid(z[:n] - z[n:])`` over the ``n`` pairs;
    each term weighted by ``wts`` when it is non-empty. Writes ``dz`` (d loss / d z),
    ``gw`` (d loss / d w) and ``da = dz * w[k:]`` masked by ``h > 0`` (the last hidden
    layer's pre-activation gradient). Returns ``(loss, d loss / d bias)``; the bias
    gradient of BPR is exactly 0 (it cancels in the difference). Stable forms throughout:
    ``max(z, 0) - z y + log1p(exp(-|z|))``; sums in float64. Used for small batches, where
    one kernel beats PyTorch's per-op dispatch; from :data:`PARALLEL_PAIRS` pairs the step
    computes the loss with PyTorch's vectorised ``exp`` / ``log1p`` instead (per element here
    they cost ~0.5 ms an 8k batch) around :func:`logits` and :func:`head_backward`.
    """
    B = dz.shape[0]
    logits(gmf, h, w, bias, dz)  # dz holds the logits until the loss loop overwrites them
    weighted = wts.shape[0] > 0
    total = 0.0
    one, zero = np.float32(1.0), np.float32(0.0)  # float32 transcendental calls (expf, log1pf): ~2x cheaper
    if not bpr:
        for j in range(B):
            x = dz[j]
            t = np.float32(y[j])
            e = np.exp(-x if x > 0 else x)
            per = (x if x > 0 else zero) - x * t + np.log1p(e)
            s = one / (one + e) if x >= 0 else e / (one + e)  # sigmoid(x)
            g = (s - t) / np.float32(B)
            if weighted:
                per *= wts[j]
                g *= wts[j]
            dz[j] = g
            total += per
        total /= B
    else:
        n = B // 2
        for j in range(n):
            d = dz[j] - dz[n + j]
            e = np.exp(-d if d > 0 else d)
            per = (-d if d < 0 else zero) + np.log1p(e)  # softplus(-d) = -log sigmoid(d)
            s_neg = e / (one + e) if d >= 0 else one / (one + e)  # sigmoid(-d)
            g = -s_neg / np.float32(n)
            if weighted:
                per *= wts[j]
                g *= wts[j]
            dz[j] = g
            dz[n + j] = -g
            total += per
        total /= n
    gb = head_backward(dz, gmf, h, w, gw, da)
    return total, (0.0 if bpr else gb)


def _relu_grad(dh, h):  # noqa: ANN001, ANN202
    """``dh[h <= 0] = 0`` in place (a ReLU's backward, ``h`` its output)."""
    for j in numba.prange(dh.shape[0]):
        for c in range(dh.shape[1]):
            if h[j, c] <= 0:
                dh[j, c] = 0.0


@_njit
def _scatter_side(dz, wg, da, other, inv_self, inv_other, k, g, d_a, col_sums):  # noqa: ANN001, ANN202
    """One side of :func:`scatter_backward`: ``g[a, :k] += dz_j * wg * other[b, :k]``, ``d_a[a] += da[j]``
    for pair j = (a on this side, b on the other); ``col_sums`` (if non-empty) = the column sums of ``da``."""
    h = da.shape[1]
    g[:, :k] = 0.0
    d_a[:] = 0.0
    acc = np.zeros(h, np.float64)
    sums = col_sums.shape[0] > 0
    for j in range(inv_self.shape[0]):
        a, b = inv_self[j], inv_other[j]
        gj = dz[j]
        for c in range(k):
            g[a, c] += gj * wg[c] * other[b, c]
        for c in range(h):
            x = da[j, c]
            d_a[a, c] += x
            if sums:
                acc[c] += x
    for c in range(col_sums.shape[0]):
        col_sums[c] = acc[c]


def _scatter_backward(dz, wg, da, pu, qi, inv_u, inv_i, k, gu, gi, d_au, d_ai, gb1):  # noqa: ANN001, ANN202
    """Per-pair gradients merged per distinct row (the outputs are zeroed here first).

    GMF: ``gu[a, :k] += dz_j * wg * qi[b, :k]`` and ``gi[b, :k] += dz_j * wg * pu[a, :k]``
    (only the first k columns of ``gu`` / ``gi`` are written: they are the full row-gradient
    blocks, whose MLP columns the caller fills); MLP: ``d_au[a] += da[j]`` and
    ``d_ai[b] += da[j]``, for pair j = (a, b) in distinct-row positions; ``gb1`` (the
    first layer's bias gradient) = the column sums of ``da``. The user side and the item
    side write disjoint outputs: one pass each, on two threads in the parallel variant.
    """
    for side in numba.prange(2):
        if side == 0:
            _scatter_side(dz, wg, da, qi, inv_u, inv_i, k, gu, d_au, gb1)
        else:
            _scatter_side(dz, wg, da, pu, inv_i, inv_u, k, gi, d_ai, gb1[:0])


@_njit
def add_l2(grad, rows_val, counts, wdc):  # noqa: ANN001, ANN201
    """``grad += wdc * counts[:, None] * rows_val`` in place (the L2 term of each looked-up row, repeats counted)."""
    for q in range(grad.shape[0]):
        wq = wdc * np.float32(counts[q])
        for c in range(grad.shape[1]):
            grad[q, c] += wq * rows_val[q, c]


@_njit
def row_adam(p, m, v, rows, grad, step_size, b1, c1, b2, c2, eps):  # noqa: ANN001, ANN201
    """Lazy Adam on ``rows`` of ``p`` (distinct), in place, with their merged gradients ``grad``.

    The arithmetic of :func:`ncf.train.optim.row_adam_update`, in float32 (float32 scalars,
    ``c1 = 1 - b1``, ``c2 = 1 - b2``). Row views and nothing read before it is written
    keep the inner loop vectorised (reading ``p`` for an L2 term here made it 2x slower:
    :func:`add_l2` adds that term first).
    """
    d, n = p.shape[1], rows.shape[0]
    for q in range(n):
        if q + AHEAD < n:
            r2 = rows[q + AHEAD]
            p2, m2, v2 = p[r2], m[r2], v[r2]
            for c in range(0, d, 16):
                prefetch(p2, c)
                prefetch(m2, c)
                prefetch(v2, c)
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
    """(serial, parallel) compiled variants of a kernel whose outer loop is a ``numba.prange``.

    The parallel one starts a thread team (~20-40 us here), so the step uses it only with
    two torch threads and, for the per-pair kernels, large batches (:data:`PARALLEL_PAIRS`).
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


row_adam_both, row_adam_both_parallel = _variants(_row_adam_both)
scatter_backward, scatter_backward_parallel = _variants(_scatter_backward)
gather_add_relu, gather_add_relu_parallel = _variants(_gather_add_relu)
relu_grad, relu_grad_parallel = _variants(_relu_grad)
PARALLEL_PAIRS = 4096  # per-pair kernels go parallel from this many pairs a step


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
    for idx_dtype in (np.int32, np.int64):
        idx = np.zeros(4, idx_dtype)
        pos = np.full(3, -1, i64)
        r, inv, cnt = (np.zeros(4, i64) for _ in range(3))
        tab = np.zeros((3, 2), f32)
        prepare(
            idx,
            idx,
            pos,
            pos.copy(),
            tab,
            tab,
            1,
            r,
            inv,
            cnt,
            r.copy(),
            inv.copy(),
            cnt.copy(),
            np.zeros((4, 2), f32),
            np.zeros((4, 2), f32),
            np.zeros((4, 1), f32),
            True,
        )
    a = np.zeros((1, 2), f32)
    out = np.zeros((4, 2), f32)
    z2 = np.zeros(2, f32)
    for gar in (gather_add_relu, gather_add_relu_parallel):
        gar(a, a, z2, inv, inv, out)
    z = np.zeros(4, f32)
    gmf, h = np.zeros((4, 1), f32), np.zeros((4, 1), f32)  # C-contiguous, as the step's tensors
    for wts in (z[:0], z):
        head(gmf, h, z[:2], s, z, wts, False, z.copy(), z[:2].copy(), h.copy())
        head(gmf, h, z[:2], s, z[:0], wts[:2], True, z.copy(), z[:2].copy(), h.copy())
    logits(gmf, h, z[:2], s, z.copy())
    head_backward(z, gmf, h, z[:2], z[:2].copy(), h.copy())
    for rg in (relu_grad, relu_grad_parallel):
        rg(out, out.copy())
    for sb in (scatter_backward, scatter_backward_parallel):
        sb(z, z[:1], out, a, a, inv, inv, 1, a[:, :1].copy(), a[:, :1].copy(), a.copy(), a.copy(), z2)
    add_l2(a.copy(), a, cnt, s)
    for both in (row_adam_both, row_adam_both_parallel):
        both(tab, tab.copy(), tab.copy(), r[:1], a, tab, tab.copy(), tab.copy(), r[:1], a, s, s, s, s, s, s)
    f = np.zeros(3, f32)
    flat_adam(f, f.copy(), f.copy(), f.copy(), s, s, s, s, s, s)
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
