"""Compiled (Numba) kernels of the non-local means filter.

Private module.  The kernels take validated, C-contiguous arrays and do no
checking; :func:`nl_means_windowed` is the only entry point, called by
:meth:`nlm.ops.kernels.PatchEuclideanGaussian.fast_windowed`.

Algorithm (Darbon et al. 2008; Froment 2014): for every offset t of the half
window (t > 0 lexicographically),

1. ``D(p) = sum_c (v(p, c) - v(p + t, c))^2`` from the reflect-padded image;
2. the patch distance of every pair ``(p, p + t)`` is the box sum of ``D``
   over the patch (``O(1)`` per pixel along the streamed axis);
3. ``w = exp(-max(d^2 - 2 sigma^2, 0) / h^2)`` with ``d^2`` the box sum
   divided by ``patch_size^D * channels``, computed as ``2^-(...)`` with a
   vectorisable polynomial (:func:`_exp2_neg`);
4. the weight serves both pixels of the pair (``w(p, p+t) = w(p+t, p)``):
   ``p`` accumulates ``w v(p + t)`` and ``p + t`` accumulates ``w v(p)``.

1-D and 2-D images (:func:`_nlm_rows`) stream rows: threads take bands of
rows, and per offset a band keeps one row of vertical patch sums, slid down
one row at a time (one row in, one out) in the same pass that computes the
row's weights (horizontal box sum of shifted loads, then the exponential).
Groups of four offsets with the same ty accumulate together into a ring of
``wy + 1`` accumulator rows, so every pass works on rows that stay in cache
whatever the image size.  The per-row work runs in helpers compiled without
reference counting (``_nrt=False``): otherwise every array view in the hot
loop costs atomic increments of counters shared between threads.  Memory:
the padded image, ``channels + 1`` accumulator planes, the output, and per
band ``n_offsets`` state rows (capped at 1 MiB by splitting wide images into
column strips).

The row kernel (:func:`_rows_accumulate`) takes two images: a frame against
itself (the half window) or two frames against each other (every offset, each
pair's weight going to both frames).  :class:`FramePairs` wraps it; 4-D and
higher images (:func:`_nl_means_frames`) are 2-D frames compared with the
frames within the window on the leading axes, a patch that extends over those
axes entering as extra distance channels.

Volumes (:func:`_nlm_bands`, in :mod:`nlm.ops._nlm_volume`) work per row band
and per offset on whole band buffers: differences, box sums by running sums
along y, z and x, weights, then accumulation into band-private accumulators
with a halo of the window radius, added together by :func:`_nlm_reduce`.

Only pairs with both pixels inside the image are used (the search window is
clipped at the borders); patches that cross the border read the reflect
padding.
"""

import contextlib
import contextvars
import functools

import numpy as np
from numba import njit

from nlm._config import JIT, defer_blas_probe
from nlm.ops._simd import INV_LN2, _exp2_neg, _fma, _wide_vectors  # noqa: F401 - re-exported
from nlm.ops._threads import parallel_for
from nlm.ops.scratch import borrow as borrow_scratch

defer_blas_probe()  # before any kernel runs: Numba's NumPy support without SciPy (see nlm._config)

#: helpers that only read and write arrays they are given (no allocation): no
#: reference counting, so calls in the hot loops cost no atomic operations
JIT_BORROW = dict(JIT, _nrt=False)


#: offsets accumulated together by _nlm_rows (the kernel is written for 4)
_GROUP = 4
#: the running vertical patch sums of the row kernel restart from a direct sum
#: at every image row that is a multiple of this (see _rows_accumulate)
_ANCHOR = 16
#: rows per band of the row kernel (a multiple of _ANCHOR; see _row_tiles)
_BAND = 128
@njit(**JIT_BORROW)
def _slide(cs, i, a1, b1, a0, b0):
    """cs[i] += (a1[i] - b1[i])^2 - (a0[i] - b0[i])^2: one patch row in, one out."""
    d1 = a1[i] - b1[i]
    d0 = a0[i] - b0[i]
    cs[i] = _fma(d1, d1, _fma(-d0, d0, cs[i]))


@njit(**JIT_BORROW)
def _row_weights(cs, w, n, rx, rtag, inv_norm, var2, gamma, slide, a1, b1, a0, b0):
    """Weights of one row for one offset, optionally sliding ``cs`` down a row.

    ``w[i] = 2^-(max(inv_norm * sum_{k=0}^{2 rx} cs[i + k] - var2, 0) * gamma)``
    for i < n; with ``slide``, also ``cs[i] += (a1 - b1)^2 - (a0 - b0)^2`` for
    ``i < n + 2 rx`` in the same pass (entry i is updated after its last read).

    The horizontal box sum is a direct sum of shifted loads (vectorised over
    i; no serial running-sum chain), straight-line code for patch widths 3, 5
    and 7.  The exponent is ``max(s * alpha - beta, 0)`` with ``alpha =
    inv_norm * gamma`` and ``beta = var2 * gamma`` (one fused multiply-add);
    when h is so small that these products overflow, the three-step form.

    ``rtag`` (:func:`_radius_tag`) carries the patch radius in its type: a
    compiled specialisation holds only the loops of its own radius.
    """
    _wide_vectors()
    kr = len(rtag)  # a compile-time constant: rx for radii 1-3, 0 for any other
    zero = var2 - var2
    alpha = inv_norm * gamma
    beta = var2 * gamma
    big = np.finfo(var2).max
    fast = alpha <= big and beta <= big
    if fast and kr == 3 and slide:
        for i in range(n):
            s = cs[i] + cs[i + 1] + cs[i + 2] + cs[i + 3] + cs[i + 4] + cs[i + 5] + cs[i + 6]
            _slide(cs, i, a1, b1, a0, b0)
            t = _fma(s, alpha, -beta)
            w[i] = _exp2_neg(t if t > zero else zero)
    elif fast and kr == 3:
        for i in range(n):
            t = _fma(cs[i] + cs[i + 1] + cs[i + 2] + cs[i + 3] + cs[i + 4] + cs[i + 5] + cs[i + 6], alpha, -beta)
            w[i] = _exp2_neg(t if t > zero else zero)
    elif fast and kr == 2 and slide:
        for i in range(n):
            s = cs[i] + cs[i + 1] + cs[i + 2] + cs[i + 3] + cs[i + 4]
            _slide(cs, i, a1, b1, a0, b0)
            t = _fma(s, alpha, -beta)
            w[i] = _exp2_neg(t if t > zero else zero)
    elif fast and kr == 2:
        for i in range(n):
            t = _fma(cs[i] + cs[i + 1] + cs[i + 2] + cs[i + 3] + cs[i + 4], alpha, -beta)
            w[i] = _exp2_neg(t if t > zero else zero)
    elif fast and kr == 1 and slide:
        for i in range(n):
            s = cs[i] + cs[i + 1] + cs[i + 2]
            _slide(cs, i, a1, b1, a0, b0)
            t = _fma(s, alpha, -beta)
            w[i] = _exp2_neg(t if t > zero else zero)
    elif fast and kr == 1:
        for i in range(n):
            t = _fma(cs[i] + cs[i + 1] + cs[i + 2], alpha, -beta)
            w[i] = _exp2_neg(t if t > zero else zero)
    else:
        _row_weights_any(cs, w, n, rx, inv_norm, var2, gamma, alpha, beta, fast)
        if slide:
            for i in range(n):
                _slide(cs, i, a1, b1, a0, b0)
    if slide:
        for i in range(n, n + 2 * rx):
            _slide(cs, i, a1, b1, a0, b0)


@njit(**JIT_BORROW)
def _row_weights_any(cs, w, n, rx, inv_norm, var2, gamma, alpha, beta, fast):
    """:func:`_row_weights` for any patch radius (box sum in 2 rx passes), no slide."""
    _wide_vectors()
    zero = var2 - var2
    for i in range(n):
        w[i] = cs[i]
    for k in range(1, 2 * rx + 1):
        for i in range(n):
            w[i] += cs[i + k]
    if fast:
        for i in range(n):
            t = _fma(w[i], alpha, -beta)
            w[i] = _exp2_neg(t if t > zero else zero)
    else:
        for i in range(n):
            d = _fma(w[i], inv_norm, -var2)
            w[i] = _exp2_neg((d if d > zero else zero) * gamma)


def _radius_tag(rx):
    """A tuple whose type tells the row kernels the patch radius: ``rx`` zeros for 1-3, else empty.

    The kernels specialise on argument types, so each patch radius gets its
    own compiled loops and a first call compiles only its own (about a third
    of the code a runtime radius would make LLVM optimise); radii 0 and 4 or
    more share the general loops of :func:`_row_weights_any`.
    """
    return (0,) * rx if 1 <= rx <= 3 else ()


#: rows per work item of :func:`_pad_rows` and :func:`_rows_finish` (NumPy on
#: threads: bounded temporaries, and nothing to compile)
_CHUNK = 256


def _row_chunks(fn, n):
    """``fn(r0, r1)`` over ``[0, n)`` in chunks of ``_CHUNK`` rows, on the kernel threads."""
    parallel_for(lambda i: fn(i * _CHUNK, min(n, (i + 1) * _CHUNK)), (n + _CHUNK - 1) // _CHUNK)


def _reflect_indices(n, r):
    """Indices of ``np.pad(mode="reflect")`` by ``r`` on both sides of an axis of length ``n``."""
    return np.array([_reflect_index(i - r, n) for i in range(n + 2 * r)], dtype=np.intp)


def _pad_rows(img, ry, rx, ex):
    """(C, Y, X) -> (C, Y + 2 ry, X + 2 rx + 2 ex): reflect padding by (ry, rx)
    (as ``np.pad(mode="reflect")``), then ``ex`` columns of zeros each side."""
    C, Y, X = img.shape
    out = np.zeros((C, Y + 2 * ry, X + 2 * rx + 2 * ex), img.dtype)
    rows = _reflect_indices(Y, ry)
    cols = rx + _reflect_indices(X, rx)  # in the padded row: the column each pad column copies

    def chunk(r0, r1):
        a, b = max(r0, ry), min(r1, ry + Y)  # rows of the image itself
        for c in range(C):
            dst = out[c, r0:r1, ex : ex + X + 2 * rx]
            if a < b:
                dst[a - r0 : b - r0, rx : rx + X] = img[c, a - ry : b - ry]
            for r in (*range(r0, min(r1, ry)), *range(max(r0, ry + Y), r1)):
                dst[r - r0, rx : rx + X] = img[c, rows[r]]
            dst[:, :rx] = dst[:, cols[:rx]]
            dst[:, rx + X :] = dst[:, cols[rx + X :]]

    _row_chunks(chunk, Y + 2 * ry)
    return out


@njit(**JIT_BORROW)
def _nlm_row(pa, pb, cs, wb, ra, rb, groups, y, y1, x0, n, s0, ry, rx, rtag, ex, wx, inv_norm, var2, gamma):
    """All the offsets of row ``y`` of ``pa`` against ``pb`` in the strip ``[x0, x0 + n)``.

    The vertical sums ``cs`` are slid down to row ``y + 1`` when ``y + 1 <
    y1`` (``y1``: the end of the current chain, see :func:`_rows_accumulate`).
    See :func:`_rows_accumulate`: ``p`` in ``pa`` accumulates into the ring
    ``ra``, ``p + t`` in ``pb`` into ``rb`` (the same arrays for an image
    against itself).  ``pa``/``pb`` hold ``F`` distance channels; the first
    ``C = ra.shape[0] - 1`` of them are the values.  Compiled without
    reference counting: the views it takes of its arguments would otherwise
    cost atomic operations on shared counters in the hot loop.
    """
    _wide_vectors()
    F = pa.shape[0]
    C = ra.shape[0] - 1
    Y = pa.shape[1] - 2 * ry
    X = pa.shape[2] - 2 * rx - 2 * ex
    K = _GROUP
    R = ra.shape[1]
    W = n + 2 * rx
    for g in range(groups.shape[0]):
        ty = groups[g, 0]
        if y + ty >= Y:
            continue
        t0 = groups[g, 1]
        cnt = groups[g, 2]
        for k in range(K):
            wk = wb[k, K : K + n]
            if k >= cnt:
                for i in range(n):
                    wk[i] = 0
                continue
            o = groups[g, 3] + k
            tx = t0 + k
            row = cs[o, :W]
            # weights, and the vertical sums slid down one row
            # (fused for one channel, a second pass otherwise)
            slide = y + 1 < y1 and y + 1 + ty < Y
            yn = y + 1 + 2 * ry if slide else y  # the row entering (unused without slide)
            a1 = pa[0, yn, ex + x0 : ex + x0 + W]
            b1 = pb[0, yn + ty, ex + x0 + tx : ex + x0 + tx + W]
            a0 = pa[0, y, ex + x0 : ex + x0 + W]
            b0 = pb[0, y + ty, ex + x0 + tx : ex + x0 + tx + W]
            _row_weights(row, wk, n, rx, rtag, inv_norm, var2, gamma, slide and F == 1, a1, b1, a0, b0)
            if slide and F > 1:
                for c in range(F):
                    a1 = pa[c, y + 1 + 2 * ry, ex + x0 : ex + x0 + W]
                    b1 = pb[c, y + 1 + 2 * ry + ty, ex + x0 + tx : ex + x0 + tx + W]
                    a0 = pa[c, y, ex + x0 : ex + x0 + W]
                    b0 = pb[c, y + ty, ex + x0 + tx : ex + x0 + tx + W]
                    for i in range(W):
                        _slide(row, i, a1, b1, a0, b0)
            # pairs that leave the image weigh nothing
            for i in range(min(n, -tx - x0)):
                wk[i] = 0
            for i in range(max(0, X - tx - x0), n):
                wk[i] = 0
        # p = (y, x0 + i) accumulates w_k v(p + t_k) ...
        s1 = (y + ty) % R
        w0 = wb[0, K : K + n]
        w1 = wb[1, K : K + n]
        w2 = wb[2, K : K + n]
        w3 = wb[3, K : K + n]
        den = ra[C, s0, wx : wx + n]
        num = ra[0, s0, wx : wx + n]
        p = ex + rx + x0 + t0
        v0 = pb[0, y + ry + ty, p : p + n]
        v1 = pb[0, y + ry + ty, p + 1 : p + 1 + n]
        v2 = pb[0, y + ry + ty, p + 2 : p + 2 + n]
        v3 = pb[0, y + ry + ty, p + 3 : p + 3 + n]
        for i in range(n):
            den[i] += (w0[i] + w1[i]) + (w2[i] + w3[i])
            num[i] = _fma(w0[i], v0[i], _fma(w1[i], v1[i], _fma(w2[i], v2[i], _fma(w3[i], v3[i], num[i]))))
        for c in range(1, C):
            num = ra[c, s0, wx : wx + n]
            v0 = pb[c, y + ry + ty, p : p + n]
            v1 = pb[c, y + ry + ty, p + 1 : p + 1 + n]
            v2 = pb[c, y + ry + ty, p + 2 : p + 2 + n]
            v3 = pb[c, y + ry + ty, p + 3 : p + 3 + n]
            for i in range(n):
                num[i] = _fma(w0[i], v0[i], _fma(w1[i], v1[i], _fma(w2[i], v2[i], _fma(w3[i], v3[i], num[i]))))
        # ... and p + t_k = (y + ty, x0 + m + t0), m = i + k, accumulates w_k v(p)
        m1 = n + K - 1
        w0 = wb[0, K : K + m1]
        w1 = wb[1, K - 1 : K - 1 + m1]
        w2 = wb[2, K - 2 : K - 2 + m1]
        w3 = wb[3, K - 3 : K - 3 + m1]
        den = rb[C, s1, wx + t0 : wx + t0 + m1]
        num = rb[0, s1, wx + t0 : wx + t0 + m1]
        p = ex + rx + x0
        v0 = pa[0, y + ry, p : p + m1]
        v1 = pa[0, y + ry, p - 1 : p - 1 + m1]
        v2 = pa[0, y + ry, p - 2 : p - 2 + m1]
        v3 = pa[0, y + ry, p - 3 : p - 3 + m1]
        for i in range(m1):
            den[i] += (w0[i] + w1[i]) + (w2[i] + w3[i])
            num[i] = _fma(w0[i], v0[i], _fma(w1[i], v1[i], _fma(w2[i], v2[i], _fma(w3[i], v3[i], num[i]))))
        for c in range(1, C):
            num = rb[c, s1, wx + t0 : wx + t0 + m1]
            v0 = pa[c, y + ry, p : p + m1]
            v1 = pa[c, y + ry, p - 1 : p - 1 + m1]
            v2 = pa[c, y + ry, p - 2 : p - 2 + m1]
            v3 = pa[c, y + ry, p - 3 : p - 3 + m1]
            for i in range(m1):
                num[i] = _fma(w0[i], v0[i], _fma(w1[i], v1[i], _fma(w2[i], v2[i], _fma(w3[i], v3[i], num[i]))))


@njit(**JIT_BORROW)
def _start_sums(pa, pb, cs, offsets, y0, x0, W, ry, ex):
    """cs[o, :W]: vertical patch sums of the squared differences of ``pa`` and ``pb`` for row y0."""
    C = pa.shape[0]
    Y = pa.shape[1] - 2 * ry
    for o in range(offsets.shape[0]):
        ty = offsets[o, 0]
        tx = offsets[o, 1]
        if y0 + ty >= Y:
            continue
        row = cs[o, :W]
        for i in range(W):
            row[i] = 0
        for k in range(2 * ry + 1):  # padded rows y0 .. y0 + 2 ry
            for c in range(C):
                a = pa[c, y0 + k, ex + x0 : ex + x0 + W]
                b = pb[c, y0 + k + ty, ex + x0 + tx : ex + x0 + tx + W]
                for i in range(W):
                    d = a[i] - b[i]
                    row[i] = _fma(d, d, row[i])


@njit(**JIT_BORROW)
def _drain(dst, y, ring, s, offset, c0, c1):
    """dst[:, y, c0:c1] += ring[:, s, c0 - offset : c1 - offset], then ring[:, s] = 0."""
    for c in range(ring.shape[0]):
        out = dst[c, y, c0:c1]
        rr = ring[c, s, c0 - offset : c1 - offset]
        for i in range(c1 - c0):
            out[i] += rr[i]
        rr = ring[c, s]
        for i in range(rr.shape[0]):
            rr[i] = 0


@njit(**JIT_BORROW)
def _rows_band(b, pa, pb, acc_a, acc_b, same, offsets, groups, ry, rx, rtag, ex, wy, wx, band, strip, gy, gx,
               inv_norm, var2, gamma, ovf, cs, ra, rb, wb):
    """Band ``b`` of :func:`_rows_accumulate`; its last ``wy`` rows of ``pb`` go to ``ovf`` (C + 1, wy, X).

    cs, ra, rb, wb: the band's state, allocated by :func:`_rows_accumulate`
    (``ra`` is ``rb`` when ``same``).
    """
    _wide_vectors()
    X = pa.shape[2] - 2 * rx - 2 * ex
    Y = pa.shape[1] - 2 * ry
    K = _GROUP
    first = gy % band  # image row of local row 0, within its band
    first_x = gx % strip
    ns = (X + first_x + strip - 1) // strip
    R = wy + 1
    sw = min(strip, X)
    phase = gy % _ANCHOR
    y0 = max(0, b * band - first)
    y1 = min(Y, (b + 1) * band - first)
    for s in range(ns):
        x0 = max(0, s * strip - first_x)
        x1 = min(X, (s + 1) * strip - first_x)
        n = x1 - x0
        W = n + 2 * rx
        for k in range(K):
            for i in range(K + n, sw + 2 * K):
                wb[k, i] = 0
        stop = y0
        for y in range(y0, y1):
            if y == y0 or (y + phase) % _ANCHOR == 0:
                # a chain starts: direct sums, then slid down to its end
                _start_sums(pa, pb, cs, offsets, y, x0, W, ry, ex)
                stop = min(y1, y + _ANCHOR - (y + phase) % _ANCHOR)
            s0 = y % R
            _nlm_row(pa, pb, cs, wb, ra, rb, groups, y, stop, x0, n, s0, ry, rx, rtag, ex, wx, inv_norm, var2, gamma)
            # row y is complete for this strip
            _drain(acc_b, y, rb, s0, x0 - wx, max(0, x0 - wx), min(X, x1 + wx))
            if not same:
                _drain(acc_a, y, ra, s0, x0 - wx, max(0, x0 - wx), min(X, x1 + wx))
        # rows y1 .. y1 + wy - 1 of pb belong to the next band(s)
        for k in range(min(wy, Y - y1)):
            _drain(ovf, k, rb, (y1 + k) % R, x0 - wx, max(0, x0 - wx), min(X, x1 + wx))


def _rows_accumulate(pa, pb, acc_a, acc_b, same, offsets, groups, ry, rx, ex, wy, wx, band, strip, gy, gx,
                     inv_norm, var2, gamma):
    """Non-local means sums of the pairs (p in ``pa``, p + t in ``pb``), streaming rows.

    pa, pb : (F, Y + 2 ry, X + 2 rx + 2 ex), reflect-padded images (patch
        radii ry, rx) with ``ex`` more columns of zeros on each side; ``F``
        distance channels, of which the first ``C`` are the values
    acc_a, acc_b : (C + 1, Y, X), numerators (planes ``:C``) and
        denominators (plane ``C``) of ``pa`` and ``pb``, added to in place;
        ``same``: ``pb`` is ``pa`` and ``acc_b`` is ``acc_a``
    offsets : (n, 2) int64, offsets (ty, tx) with ty >= 0 (ty = 0: tx >= 0)
    groups : (ng, 4) int64, runs of ``_GROUP`` offsets sharing ty with
        consecutive tx: (ty, tx of the first, count, index of the first)
    band, strip : rows per band (a multiple of ``_ANCHOR``), columns per strip
    gy, gx : image row and column of ``pa``'s first pixel (0 unless ``pa`` is
        a tile of a larger image)

    Every pair's weight goes to both of its pixels.  An image against itself
    (``same``) takes the half window (t > 0 lexicographically); two frames
    take t = 0 and the half window one way and the half window the other way.

    Threads (:func:`nlm.ops._threads.parallel_for`) take bands of rows; each band walks its rows top to bottom, in
    column strips.  Per offset the band keeps ``cs``, the vertical patch sums
    of the squared differences for the current row (one row of state per
    offset, slid down by one row in and one row out), so that distances,
    weights and both symmetric accumulations of a row happen while the row
    is in cache.  Weights are computed over the whole strip width and set to
    0 where the pair leaves the image (so every loop has the same length), and
    the ``_GROUP`` offsets of a group accumulate in one pass over the
    accumulator rows.  Accumulators live in rings of ``wy + 1`` rows (row
    ``y`` is complete once row ``y`` has been processed, since the first pixel
    of every pair is above or left of its second); complete rows go to the
    accumulators, the last ``wy`` rows of a band to a per-band overflow added
    afterwards.

    Exactness (rounding independent of the thread count and of the tile
    origin): the running sums ``cs`` are chains that restart from a direct
    sum at every *anchor* row, a row whose image row ``gy + y`` is a
    multiple of ``_ANCHOR``, and at the first row of ``pa``.  Bands start at
    image rows that are multiples of ``band`` and strips at image columns
    that are multiples of ``strip``: every pixel receives the same terms in
    the same order whatever the thread count, and a tile with
    :func:`anchor_margin` more rows before its margin computes its kept
    pixels bit for bit as the whole image does.
    """
    C = acc_a.shape[0] - 1
    Y = pa.shape[1] - 2 * ry
    X = pa.shape[2] - 2 * rx - 2 * ex
    first = gy % band
    nb = (Y + first + band - 1) // band
    ovf = np.zeros((nb, C + 1, wy, X), pa.dtype)
    rtag = _radius_tag(rx)
    dt = pa.dtype
    K = _GROUP
    sw = min(strip, X)

    def one_band(b):
        cs = np.empty((offsets.shape[0], sw + 2 * rx), dt)
        rb = np.zeros((C + 1, wy + 1, sw + 2 * wx + K), dt)
        ra = rb if same else np.zeros_like(rb)
        wb = np.zeros((K, sw + 2 * K), dt)  # weights at [K, K + n), zeros around
        _rows_band(b, pa, pb, acc_a, acc_b, same, offsets, groups, ry, rx, rtag, ex, wy, wx, band, strip, gy, gx,
                   inv_norm, var2, gamma, ovf[b], cs, ra, rb, wb)

    parallel_for(one_band, nb)
    # the overflow rows of each band, in band order
    for b in range(nb):
        y1 = min(Y, (b + 1) * band - first)
        k = min(wy, Y - y1)
        if k > 0:
            acc_b[:, y1 : y1 + k] += ovf[b, :, :k]


def _rows_finish(acc, padded, ry, rx, ex, one, out):
    """(C, Y, X) result from the sums into ``out``: the pixel itself adds weight ``one`` (distance 0).

    ``out`` may be ``acc[:C]`` (each value overwrites the numerator it is made
    from), which saves an image-sized buffer.
    """
    C = acc.shape[0] - 1
    X = acc.shape[2]

    def chunk(r0, r1):
        den = acc[C, r0:r1] + one
        for c in range(C):
            dst = out[c, r0:r1]
            np.add(acc[c, r0:r1], padded[c, r0 + ry : r1 + ry, ex + rx : ex + rx + X], out=dst)
            np.divide(dst, den, out=dst)

    _row_chunks(chunk, acc.shape[1])
    return out


def _nlm_rows(padded, offsets, groups, ry, rx, ex, wy, wx, band, strip, gy, gx, inv_norm, var2, gamma, acc=None):
    """Non-local means of a 2-D (or 1-D) image, streaming rows: (C, Y, X).

    padded : (C, Y + 2 ry, X + 2 rx + 2 ex) (see :func:`_rows_accumulate`);
    offsets, groups: the half window (t > 0 lexicographically); gy, gx: image
    row and column of the first pixel;
    acc : None or a C-contiguous (C + 1, Y, X) buffer of ``padded``'s dtype
        to accumulate in (its contents are overwritten; the result is a view
        of it).
    """
    C = padded.shape[0]
    Y = padded.shape[1] - 2 * ry
    X = padded.shape[2] - 2 * rx - 2 * ex
    if acc is None:
        acc = np.zeros((C + 1, Y, X), padded.dtype)
    else:
        acc.fill(0)
    _rows_accumulate(padded, padded, acc, acc, True, offsets, groups, ry, rx, ex, wy, wx, band, strip, gy, gx,
                     inv_norm, var2, gamma)
    # the result overwrites the numerator planes: no third image-sized buffer
    # (the returned view keeps the denominator plane allocated with it)
    return _rows_finish(acc, padded, ry, rx, ex, padded.dtype.type(1), acc[: acc.shape[0] - 1])


def _offset_groups(offsets):
    """Runs of up to ``_GROUP`` offsets with equal ty and consecutive tx: (ty, tx0, count, first)."""
    groups = []
    o = 0
    while o < len(offsets):
        ty, tx = offsets[o]
        k = 1
        while k < _GROUP and o + k < len(offsets) and offsets[o + k, 0] == ty and offsets[o + k, 1] == tx + k:
            k += 1
        groups.append((ty, tx, k, o))
        o += k
    return np.array(groups, dtype=np.int64).reshape(-1, 4)


@functools.lru_cache(maxsize=64)
def _half_offsets(window):
    """Offsets t of the window with t > 0 lexicographically, as (n, 3) int64 (read-only, cached)."""
    wz, wy, wx = window
    grid = np.mgrid[-wz : wz + 1, -wy : wy + 1, -wx : wx + 1].reshape(3, -1).T
    keep = (grid[:, 0] > 0) | ((grid[:, 0] == 0) & ((grid[:, 1] > 0) | ((grid[:, 1] == 0) & (grid[:, 2] > 0))))
    out = np.ascontiguousarray(grid[keep], dtype=np.int64)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _row_offsets(wy, wx):
    """(ty, tx) half-window offsets and their groups for :func:`_nlm_rows` (read-only, cached)."""
    offsets = np.ascontiguousarray(_half_offsets((0, wy, wx))[:, 1:])
    groups = _offset_groups(offsets)
    offsets.flags.writeable = False
    groups.flags.writeable = False
    return offsets, groups


def _row_tiles(n_off, r, dtype, state_bytes=1 << 20):
    """Band height and strip width of :func:`_rows_accumulate`.

    Both are fixed by the window and the dtype, never by the image size or
    the thread count: bands and strips start at image rows and columns that
    are multiples of them, so every pixel's sums are added in the same order
    whatever the thread count and wherever a tile starts (bit-identical
    results).  Bands: ``_BAND`` rows (threads take bands; an image of fewer
    than ``2 _BAND`` rows runs on one or two threads).  Strips: as wide as the
    per-offset state ``n_off * (strip + 2 r)`` allows within ``state_bytes``
    (it must stay in L2), a multiple of 16.
    """
    widest = max(64, state_bytes // (max(n_off, 1) * np.dtype(dtype).itemsize) - 2 * r)
    return _BAND, int(widest // 16 * 16)


def _scalars(patch, C, h, sigma, dtype):
    """(inv_norm, 2 sigma^2, gamma) in the kernel's float type; ``h`` may be ``inf``."""
    typ = np.dtype(dtype).type
    info = np.finfo(dtype)
    gamma = INV_LN2 / h / h if h > 0 else np.inf
    return (
        typ(1.0 / float(np.prod(patch, dtype=np.float64) * C)),
        typ(min(2.0 * sigma * sigma, float(info.max))),
        # exp(-a / h^2) = 2^-(a gamma) with gamma = 1 / (h^2 ln 2), clamped to
        # the finite normal range: a tiny h must give weights 0 (or exactly 1
        # for d^2 <= 2 sigma^2), never inf * 0 = NaN; a huge (or infinite) h
        # gives weights 1 (the kernels also divide gamma by itself for a 1)
        typ(min(max(gamma, float(info.tiny)), float(info.max))),
    )


class FramePairs:
    """Non-local means between 2-D frames with the row-streaming kernel.

    The building block of the N-D path and of video: frames are (F, Y, X)
    channel-first arrays whose first ``C`` channels are the values and all
    ``F`` channels enter the patch distance (for a patch that extends over
    leading axes, the frames at the patch's other positions are stacked after
    the centre frame).  :meth:`self_pair` adds the pairs of a frame with
    itself, :meth:`cross_pair` those of two different frames (each pair's
    weight goes to both), :meth:`finish` divides.

    Parameters
    ----------
    shape : (Y, X)
    ry, rx : patch radii along y and x
    wy, wx : search radii along y and x (clipped to the frame)
    C : value channels
    h, sigma : filter parameters; ``norm``: patch pixels times distance
        channels (the divisor of the summed squared differences)
    dtype : float32 or float64
    gy, gx : image row and column of the frames' first pixel (tiles; see
        :func:`anchor_margin`)
    """

    def __init__(self, shape, ry, rx, wy, wx, C, h, sigma, norm, dtype, gy=0, gx=0):
        Y, X = shape
        self.gy, self.gx = int(gy), int(gx)
        self.ry, self.rx = ry, rx
        self.wy, self.wx = min(wy, Y - 1), min(wx, X - 1)
        self.ex = self.wx + _GROUP
        self.C = C
        self.dtype = np.dtype(dtype)
        self.shape = (Y, X)
        self.half, self.half_groups = _row_offsets(self.wy, self.wx)
        self.full, self.full_groups = _cross_offsets(self.wy, self.wx)
        self.band, self.strip = _row_tiles(self.full.shape[0], rx, dtype)
        self.scalars = _scalars((norm,), 1, h, sigma, dtype)

    def pad(self, img):
        """(F, Y, X) -> the padded layout of the kernel (reflect, then zero columns)."""
        return _pad_rows(np.ascontiguousarray(img, dtype=self.dtype), self.ry, self.rx, self.ex)

    def zeros(self):
        """A fresh accumulator (C + 1, Y, X)."""
        return np.zeros((self.C + 1,) + self.shape, self.dtype)

    def _run(self, pa, pb, acc_a, acc_b, same, offsets, groups):
        _rows_accumulate(pa, pb, acc_a, acc_b, same, offsets, groups, self.ry, self.rx, self.ex, self.wy,
                         self.wx, self.band, self.strip, self.gy, self.gx, *self.scalars)

    def self_pair(self, pa, acc):
        """Pairs within one padded frame (the half window, symmetric)."""
        if self.half.shape[0]:
            self._run(pa, pa, acc, acc, True, self.half, self.half_groups)

    def cross_pair(self, pa, pb, acc_a, acc_b):
        """Pairs (p in ``pa``, q in ``pb``) over the whole window, both accumulated."""
        self._run(pa, pb, acc_a, acc_b, False, self.full, self.full_groups)
        if self.half.shape[0]:
            self._run(pb, pa, acc_b, acc_a, False, self.half, self.half_groups)

    def finish(self, acc, pa):
        """(C, Y, X) result of a frame: its own pixel adds weight 1."""
        out = np.empty((acc.shape[0] - 1,) + acc.shape[1:], acc.dtype)
        return _rows_finish(acc, pa, self.ry, self.rx, self.ex, self.dtype.type(1), out)


@functools.lru_cache(maxsize=64)
def _cross_offsets(wy, wx):
    """t = 0 and the half window (ty, tx), with groups: one direction of a pair of frames."""
    half = _half_offsets((0, wy, wx))[:, 1:]
    offsets = np.ascontiguousarray(np.concatenate([np.zeros((1, 2), np.int64), half]))
    groups = _offset_groups(offsets)
    offsets.flags.writeable = False
    groups.flags.writeable = False
    return offsets, groups


def _reflect_index(i, n):
    """NumPy ``reflect`` padding index (Python ints)."""
    if n == 1:
        return 0
    period = 2 * (n - 1)
    i %= period
    return period - i if i >= n else i


def _lead_offsets(radii):
    """Offsets of the leading axes with t > 0 lexicographically (list of tuples)."""
    out = []
    for t in np.ndindex(*[2 * r + 1 for r in radii]):
        t = tuple(int(a - r) for a, r in zip(t, radii))
        if any(t) and next(a for a in t if a) > 0:
            out.append(t)
    return out


def _nl_means_frames(img, patch, window, h, sigma, dtype, gy=0, gx=0):
    """N-D non-local means as 2-D frames (the last two axes) against each other.

    img : (C, *lead, Y, X) channel-first, float; patch, window: one size /
    radius per spatial axis.  Each frame is compared with itself and with
    every frame within the window on the leading axes (each pair once, its
    weights serving both frames); the patch extent on the leading axes is
    stacked into distance channels.  Memory: the padded image, ``C + 1``
    accumulator volumes, and one frame's stack per frame of a pair.
    """
    C = img.shape[0]
    lead = img.shape[1:-2]
    Y, X = img.shape[-2:]
    lr = tuple(p // 2 for p in patch[:-2])
    lw = tuple(min(w, n - 1) for w, n in zip(window[:-2], lead))
    fp = FramePairs((Y, X), patch[-2] // 2, patch[-1] // 2, window[-2], window[-1], C, h, sigma,
                    int(np.prod(patch)) * C, dtype, gy, gx)
    # the patch offsets on the leading axes, centre first (its channels are the values)
    ks = sorted(np.ndindex(*[2 * r + 1 for r in lr]), key=lambda k: k != tuple(lr))
    padded_frames = {}

    def stack(i):
        if i not in padded_frames:
            parts = []
            for k in ks:
                j = tuple(_reflect_index(a + b - r, n) for a, b, r, n in zip(i, k, lr, lead))
                parts.append(img[(slice(None),) + j])
            padded_frames[i] = fp.pad(np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0])
        return padded_frames[i]

    acc = {}
    out = np.empty((C,) + tuple(lead) + (Y, X), fp.dtype)
    offsets = _lead_offsets(lw)
    order = list(np.ndindex(*lead))
    pos = {i: n for n, i in enumerate(order)}
    for n, i in enumerate(order):
        pa = stack(i)
        acc_i = acc.setdefault(i, fp.zeros())
        fp.self_pair(pa, acc_i)
        for t in offsets:
            j = tuple(a + b for a, b in zip(i, t))
            if all(0 <= a < m for a, m in zip(j, lead)):
                fp.cross_pair(pa, stack(j), acc_i, acc.setdefault(j, fp.zeros()))
        out[(slice(None),) + i] = fp.finish(acc.pop(i), pa)
        # frames before every offset's reach are done with: free their stacks
        for k in list(padded_frames):
            if pos[k] <= n and k not in acc:
                del padded_frames[k]
    return out


def anchor_margin(spatial_ndim):
    """Extra rows a tile needs before its margin for the row kernel's exact sums.

    Per spatial axis.  1-D images have no running sums; in 2-D and higher
    the row axis (the second to last spatial axis) does: a tile of an image
    reproduces the whole image's running sums from its first anchor row on
    (``_ANCHOR`` rows apart in the image, see :func:`_rows_accumulate`), so
    the rows its kept part uses must start at least ``_ANCHOR - 1`` rows
    after the tile's first row whose patch lies inside the tile.  3-D
    volumes add their box sums directly (no running sums across tiles).
    """
    out = [0] * spatial_ndim
    if spatial_ndim == 2 or spatial_ndim > 3:
        out[-2] = _ANCHOR - 1
    return tuple(out)


#: origin of the arrays filtered in this context within the image they are
#: tiles of (set per block by nlm.tiling; see tile_origin)
_TILE_ORIGIN = contextvars.ContextVar("nlm_tile_origin", default=None)


@contextlib.contextmanager
def tile_origin(origin):
    """Within this context, :func:`nl_means_windowed` treats its input as the
    tile of a larger image whose first pixel is at ``origin`` (one int per
    spatial axis).

    For callers that reach the kernel through layers that do not pass an
    origin (:mod:`nlm.tiling` runs the public in-memory function on each
    block): the value is local to the thread (a ``contextvars`` variable).
    """
    token = _TILE_ORIGIN.set(tuple(int(o) for o in origin))
    try:
        yield
    finally:
        _TILE_ORIGIN.reset(token)


def nl_means_windowed(x, patch_size, window, h, sigma, spatial_ndim, origin=None):
    """Non-local means of a channel-last map with the compiled kernel.

    Parameters
    ----------
    x : ndarray, shape (*spatial, C), float32 or float64
        Finite values (validated by the caller).
    patch_size : int or tuple of int, odd, one per spatial axis
    window : tuple of int, one radius per spatial axis
    h, sigma : float
        ``h`` may be ``inf`` (every weight 1).
    spatial_ndim : int >= 1
    origin : tuple of int, optional
        Position of ``x[0, ..., 0]`` in a larger image ``x`` is a tile of
        (default: the :func:`tile_origin` of the context, else all 0).  The result does not depend on it, except in the
        last bits: the running sums restart at rows fixed in the image, so
        that with :func:`anchor_margin` more rows before its margin a tile
        computes the same sums as the whole image.

    Returns
    -------
    ndarray, same shape and dtype as ``x``.
    """
    # any byte order; float16 computes in float32
    dtype = np.dtype(np.float32 if x.dtype.kind == "f" and x.dtype.itemsize <= 4 else np.float64)
    spatial = x.shape[:spatial_ndim]
    C = x.shape[-1]
    patch = (int(patch_size),) * spatial_ndim if np.ndim(patch_size) == 0 else tuple(int(p) for p in patch_size)
    window = tuple(int(w) for w in window)
    if origin is None:
        origin = _TILE_ORIGIN.get()
    if origin is None or len(origin) != spatial_ndim:
        origin = (0,) * spatial_ndim
    origin = tuple(int(o) for o in origin)
    gy = origin[-2] if spatial_ndim >= 2 else 0
    gx = origin[-1]
    if spatial_ndim > 3:
        img = np.ascontiguousarray(np.moveaxis(x, -1, 0), dtype=dtype)
        out = _nl_means_frames(img, patch, window, h, sigma, dtype, gy, gx)
        return np.moveaxis(out, 0, -1)
    # channel-first (C, Z, Y, X), missing spatial axes of size 1
    pad3 = (1,) * (3 - spatial_ndim) + tuple(spatial)
    win = (0,) * (3 - spatial_ndim) + window
    radii = (0,) * (3 - spatial_ndim) + tuple(p // 2 for p in patch)
    # a window wider than the image adds no pairs; clip it
    win = tuple(min(w, n - 1) for w, n in zip(win, pad3))
    scalars = _scalars(patch, C, h, sigma, dtype)
    if spatial_ndim <= 2:
        ry, rx = radii[1], radii[2]
        offsets, groups = _row_offsets(win[1], win[2])
        band, strip = _row_tiles(offsets.shape[0], rx, dtype)
        ex = win[2] + _GROUP
        img = np.moveaxis(x, -1, 0).reshape((C, pad3[1], pad3[2]))
        # channel-last colour is padded from its strided view: no channel-first copy first
        padded = _pad_rows(img if img.dtype == dtype else np.ascontiguousarray(img, dtype=dtype), ry, rx, ex)
        # x is not read after this point: a lent buffer holding it may become the accumulators
        acc = borrow_scratch(x, C, pad3[1], pad3[2], dtype)
        del img
        out = _nlm_rows(
            padded,
            offsets,
            groups,
            ry,
            rx,
            ex,
            win[1],
            win[2],
            band,
            strip,
            gy,
            gx,
            *scalars,
            acc=acc,
        )
        return np.moveaxis(out.reshape((C,) + tuple(spatial)), 0, -1)
    # the volume kernels: imported here, so that a 2-D run does not load them (issue 19)
    from nlm.ops._nlm_volume import _band_rows, _nlm_bands, _nlm_reduce

    img = np.ascontiguousarray(np.moveaxis(x, -1, 0).reshape((C,) + pad3), dtype=dtype)
    padded = np.pad(img, [(0, 0)] + [(p, p) for p in radii], mode="reflect")
    offsets = _half_offsets(win)
    Y = pad3[1]
    band = _band_rows(win[1])
    first = origin[-2] % band
    bnum, bden = _nlm_bands(padded, offsets, radii[0], radii[1], radii[2], win[1], band, first, *scalars)
    out = _nlm_reduce(bnum, bden, band, first, win[1], Y)
    return np.moveaxis(out.reshape((C,) + tuple(spatial)), 0, -1)
