"""Compiled (Numba) non-local means with a per-pixel noise map and/or a mask.

Private module (no validation).  :func:`nl_means_masked` is the entry point,
called by :func:`nlm.denoise_nl_means` only when a noise map (``sigma`` an
array) or a mask with masked pixels is given: the scalar path
(:mod:`nlm.ops._nlm_kernels`) is untouched and pays nothing for this one.
Oracle: ``tests/naive.py::nl_means_masked``.

For a pixel ``i`` (valid) and every valid ``j`` of its clipped search window,
with ``m(p) = mask(p)`` over the reflect-padded patch offsets ``k``:

    M = sum_k m(i + k) m(j + k)                         (valid pixel pairs)
    d^2 = sum_k m m sum_c (v(i + k, c) - v(j + k, c))^2 / (C M)
    n = sum_k m m (s^2(i + k) + s^2(j + k)) / M           (map; else 2 sigma^2)
    h_ij^2 = hscale * n                                 (map; else h^2)
    w = exp(-max(d^2 - n, 0) / h_ij^2)                  (0 when M = 0)

and ``u(i) = (v(i) + sum_j w v(j)) / (1 + sum_j w)``; masked pixels keep
their value.  Without a mask, ``m = 1``; without a map, ``n = 2 sigma^2``.

Layout and parallelism: channel-first ``(C, Z, Y, X)`` (1-D and 2-D images
have ``Z = 1``); work items are (plane, band of ``_BAND`` rows), each output
pixel belongs to one item, which adds its window's offsets in a fixed order:
the result does not depend on the thread count.  Box sums are direct sums
(no running sums), so a tile with a margin computes exactly the sums of the
whole image (dask tiling is bit-identical).  Time ``O(N W (C + pz + py +
px))`` for window size ``W`` and patch sides ``p``; about 3 to 5 times the
scalar kernel.
"""

import numpy as np
from numba import njit, prange

from nlm._config import JIT, JIT_PARALLEL, defer_blas_probe
from nlm.ops._simd import INV_LN2, _exp2_neg, _fma, _wide_vectors
from nlm.ops.kernels import _SAFE_EXP, _unscale

defer_blas_probe()  # before any kernel runs: Numba's NumPy support without SciPy (see nlm._config)

JIT_BORROW = dict(JIT, _nrt=False)

#: rows per work item
_BAND = 16


# The helpers loop from 0 over views (never from a runtime lower bound): an index
# the compiler can prove non-negative needs no wrap-around test, and the loops
# vectorise (a runtime start costs about 4x).


@njit(**JIT_BORROW)
def _row_terms(vp, sp, mp, za, zb, py, ty, tx, lo, hi, use_map, use_mask, D, M, S, tmp, mm, first):
    """Add one padded row pair's squared differences (and valid counts, noise sums) into D, M, S[lo:hi]."""
    _wide_vectors()
    C = vp.shape[0]
    n = hi - lo
    t = tmp[lo:hi]
    a = vp[0, za, py, lo:hi]
    b = vp[0, zb, py + ty, lo + tx : hi + tx]
    for i in range(n):
        d = a[i] - b[i]
        t[i] = d * d
    for c in range(1, C):
        a = vp[c, za, py, lo:hi]
        b = vp[c, zb, py + ty, lo + tx : hi + tx]
        for i in range(n):
            d = a[i] - b[i]
            t[i] = _fma(d, d, t[i])
    d_ = D[lo:hi]
    if use_mask:
        m = mm[lo:hi]
        ma = mp[za, py, lo:hi]
        mb = mp[zb, py + ty, lo + tx : hi + tx]
        for i in range(n):
            m[i] = ma[i] * mb[i]
            t[i] *= m[i]
        m_ = M[lo:hi]
        if first:
            for i in range(n):
                m_[i] = m[i]
        else:
            for i in range(n):
                m_[i] += m[i]
    if first:
        for i in range(n):
            d_[i] = t[i]
    else:
        for i in range(n):
            d_[i] += t[i]
    if use_map:
        sa = sp[za, py, lo:hi]
        sb = sp[zb, py + ty, lo + tx : hi + tx]
        s_ = S[lo:hi]
        if first:
            for i in range(n):
                s_[i] = sa[i] - sa[i]
        if use_mask:
            m = mm[lo:hi]
            for i in range(n):
                s_[i] = _fma(m[i], sa[i] + sb[i], s_[i])
        else:
            for i in range(n):
                s_[i] += sa[i] + sb[i]


@njit(**JIT_BORROW)
def _vsum(A, r0, n, lo, hi, out):
    """out[lo:hi] = sum of the rows r0 .. r0 + n - 1 of A."""
    _wide_vectors()
    o = out[lo:hi]
    m = hi - lo
    row = A[r0, lo:hi]
    for i in range(m):
        o[i] = row[i]
    for k in range(1, n):
        row = A[r0 + k, lo:hi]
        for i in range(m):
            o[i] += row[i]


@njit(**JIT_BORROW)
def _vslide(A, r0, n, lo, hi, out):
    """out[lo:hi] += A[r0 + n] - A[r0]: the box of rows moved down by one."""
    _wide_vectors()
    o = out[lo:hi]
    a = A[r0 + n, lo:hi]
    b = A[r0, lo:hi]
    for i in range(hi - lo):
        o[i] += a[i] - b[i]


@njit(**JIT_BORROW)
def _hsum(a_full, lo, hi, n, out_full):
    """out[x] = sum_{k < n} a[x + k] for x in [lo, hi)."""
    _wide_vectors()
    a = a_full[lo:]
    out = out_full[lo:hi]
    m = hi - lo
    if n == 7:
        for x in range(m):
            out[x] = ((a[x] + a[x + 1]) + (a[x + 2] + a[x + 3])) + ((a[x + 4] + a[x + 5]) + a[x + 6])
        return
    if n == 5:
        for x in range(m):
            out[x] = ((a[x] + a[x + 1]) + (a[x + 2] + a[x + 3])) + a[x + 4]
        return
    if n == 3:
        for x in range(m):
            out[x] = (a[x] + a[x + 1]) + a[x + 2]
        return
    for x in range(m):
        out[x] = a[x]
    for k in range(1, n):
        for x in range(m):
            out[x] += a[x + k]


@njit(**JIT_BORROW)
def _weights(Dh_f, Mh_f, Sh_f, mi_f, mj_f, oi, oj, lo, hi, inv_c, cnt_full, var2, gamma, hinf, use_map, use_mask,
             w_f):
    """Weights of one row of pairs (see the module notes); 0 for invalid pairs."""
    _wide_vectors()
    zero = var2 - var2
    one = zero + 1
    n = hi - lo
    Dh = Dh_f[lo:hi]
    w = w_f[lo:hi]
    if hinf and not use_mask:
        for x in range(n):
            w[x] = one
        return
    if not use_mask and not use_map:
        beta = var2 * gamma
        alpha = inv_c / cnt_full * gamma
        for x in range(n):
            t = _fma(Dh[x], alpha, -beta)
            w[x] = _exp2_neg(t if t > zero else zero)
        return
    Mh = Mh_f[lo:hi] if use_mask else Dh
    Sh = Sh_f[lo:hi] if use_map else Dh
    mi = mi_f[lo + oi : hi + oi] if use_mask else Dh
    mj = mj_f[lo + oj : hi + oj] if use_mask else Dh
    for x in range(n):
        cnt = Mh[x] if use_mask else cnt_full
        ok = cnt > zero
        cs = cnt if ok else one
        d2 = Dh[x] * inv_c / cs
        nv = Sh[x] / cs if use_map else var2
        t = d2 - nv
        t = t if t > zero else zero
        if use_map:
            # gamma / nv, 0 / 0 -> 0 (t = 0: weight 1), t / 0 -> inf (weight 0)
            g = gamma / nv if nv > zero else (zero if t == zero else gamma / zero)
        else:
            g = gamma
        e = t * g
        v = one if hinf else _exp2_neg(e if e == e else zero)
        if use_mask:
            v = v * mi[x] * mj[x]
        w[x] = v if ok else zero


@njit(**JIT_BORROW)
def _accumulate(num, den, vp, zj, yj, tx, w_f, lo, hi, rx):
    """num[c, lo:hi] += w v(j), den[lo:hi] += w (``num``: (C, X) of the row)."""
    _wide_vectors()
    n = hi - lo
    w = w_f[lo:hi]
    d = den[lo:hi]
    for x in range(n):
        d[x] += w[x]
    for c in range(vp.shape[0]):
        src = vp[c, zj, yj, lo + tx + rx : hi + tx + rx]
        dst = num[c, lo:hi]
        for x in range(n):
            dst[x] = _fma(w[x], src[x], dst[x])


@njit(**JIT_BORROW)
def _offset_rows(vp, sp, mp, z, y0, y1, tz, ty, tx, Z, Y, X, rz, ry, rx, inv_c, cnt_full, var2, gamma, hinf,
                 use_map, use_mask, D, M, S, tmp, mm, Dv, Mv, Sv, Dh, Mh, Sh, w, num, den):
    """The pairs of rows ``[y0, y1)`` of plane ``z`` with the offset ``(tz, ty, tx)``."""
    if z + tz < 0 or z + tz >= Z:
        return
    ylo = max(y0, -ty)
    yhi = min(y1, Y - ty)
    xlo = max(0, -tx)
    xhi = min(X, X - tx)
    if ylo >= yhi or xlo >= xhi:
        return
    # per padded row: squared differences summed over the patch's z extent and the channels
    for r in range(ylo - y0, yhi - y0 + 2 * ry):
        for kz in range(2 * rz + 1):
            _row_terms(vp, sp, mp, z + kz, z + tz + kz, y0 + r, ty, tx, xlo, xhi + 2 * rx, use_map,
                       use_mask, D[r], M[r if use_mask else 0], S[r if use_map else 0], tmp, mm, kz == 0)
    py = 2 * ry + 1
    for y in range(ylo, yhi):
        r0 = y - y0
        # vertical box sums: direct at the band's first row, then slid one row at a time
        # (rows of bands fixed in the image: the same sums for any thread count)
        if y == ylo:
            _vsum(D, r0, py, xlo, xhi + 2 * rx, Dv)
            if use_mask:
                _vsum(M, r0, py, xlo, xhi + 2 * rx, Mv)
            if use_map:
                _vsum(S, r0, py, xlo, xhi + 2 * rx, Sv)
        else:
            _vslide(D, r0 - 1, py, xlo, xhi + 2 * rx, Dv)
            if use_mask:
                _vslide(M, r0 - 1, py, xlo, xhi + 2 * rx, Mv)
            if use_map:
                _vslide(S, r0 - 1, py, xlo, xhi + 2 * rx, Sv)
        _hsum(Dv, xlo, xhi, 2 * rx + 1, Dh)
        if use_mask:
            _hsum(Mv, xlo, xhi, 2 * rx + 1, Mh)
        if use_map:
            _hsum(Sv, xlo, xhi, 2 * rx + 1, Sh)
        mi = mp[z + rz if use_mask else 0, y + ry if use_mask else 0]
        mj = mp[z + tz + rz if use_mask else 0, y + ty + ry if use_mask else 0]
        _weights(Dh, Mh, Sh, mi, mj, rx, rx + tx, xlo, xhi, inv_c, cnt_full, var2, gamma, hinf, use_map, use_mask, w)
        _accumulate(num[r0], den[r0], vp, z + tz + rz, y + ty + ry, tx, w, xlo, xhi, rx)


@njit(**JIT_PARALLEL)
def _masked_kernel(vp, sp, mp, offsets, Z, Y, X, rz, ry, rx, var2, gamma, hinf, use_map, use_mask, first, out):
    C = vp.shape[0]
    dt = vp.dtype.type
    # bands of _BAND rows at image rows that are multiples of _BAND (``first``: the
    # local row where the first whole band starts), so that a tile slides its
    # vertical sums from the same rows as the whole image
    nb = (Y - first + _BAND - 1) // _BAND + (1 if first > 0 else 0)
    Xp = X + 2 * rx
    inv_c = dt(1.0) / dt(C)
    cnt_full = dt((2 * rz + 1) * (2 * ry + 1) * (2 * rx + 1))
    for item in prange(Z * nb):
        z = item // nb
        k = item % nb
        if first > 0:
            y0 = 0 if k == 0 else first + (k - 1) * _BAND
        else:
            y0 = k * _BAND
        y1 = min(Y, first + k * _BAND if first > 0 else y0 + _BAND)
        nrow = y1 - y0 + 2 * ry
        D = np.zeros((nrow, Xp), vp.dtype)
        M = np.zeros((nrow if use_mask else 1, Xp), vp.dtype)
        S = np.zeros((nrow if use_map else 1, Xp), vp.dtype)
        tmp = np.zeros(Xp, vp.dtype)
        mm = np.zeros(Xp, vp.dtype)
        Dv = np.zeros(Xp, vp.dtype)
        Mv = np.zeros(Xp, vp.dtype)
        Sv = np.zeros(Xp, vp.dtype)
        Dh = np.zeros(Xp, vp.dtype)
        Mh = np.zeros(Xp, vp.dtype)
        Sh = np.zeros(Xp, vp.dtype)
        w = np.zeros(Xp, vp.dtype)
        num = np.zeros((y1 - y0, C, X), vp.dtype)
        den = np.zeros((y1 - y0, X), vp.dtype)
        for o in range(offsets.shape[0]):
            tz = offsets[o, 0]
            ty = offsets[o, 1]
            tx = offsets[o, 2]
            _offset_rows(vp, sp, mp, z, y0, y1, tz, ty, tx, Z, Y, X, rz, ry, rx, inv_c, cnt_full, var2, gamma,
                         hinf, use_map, use_mask, D, M, S, tmp, mm, Dv, Mv, Sv, Dh, Mh, Sh, w, num, den)
        for y in range(y0, y1):
            for x in range(X):
                valid = True
                if use_mask:
                    valid = mp[z + rz, y + ry, x + rx] != 0
                for c in range(C):
                    v = vp[c, z + rz, y + ry, x + rx]
                    if valid:
                        out[c, z, y, x] = (v + num[y - y0, c, x]) / (dt(1.0) + den[y - y0, x])
                    else:
                        out[c, z, y, x] = v


def _full_offsets(win):
    """Every offset of the window except 0, lexicographic, as (n, 3) int64."""
    wz, wy, wx = win
    grid = np.mgrid[-wz : wz + 1, -wy : wy + 1, -wx : wx + 1].reshape(3, -1).T
    keep = np.any(grid != 0, axis=1)
    return np.ascontiguousarray(grid[keep], dtype=np.int64)


def nl_means_masked(x, patch_size, window, h, sigma, var_map, mask, spatial_ndim, origin=None):
    """Non-local means of a channel-last map with a noise map and/or a mask.

    Parameters
    ----------
    x : ndarray, shape (*spatial, C), float32 or float64, finite
    patch_size : tuple of int, odd, one per spatial axis (1 to 3 axes)
    window : tuple of int, one radius per spatial axis
    h : float, > 0 or inf
    sigma : float
        Scalar noise std (used when ``var_map`` is None).
    var_map : ndarray of ``spatial`` shape (noise variance), or None
    mask : bool ndarray of ``spatial`` shape (True = valid), or None
    spatial_ndim : int, 1 to 3
    origin : tuple of int, optional
        Position of ``x``'s first pixel in the image it is a tile of (default
        all 0): the row bands, whose vertical sums slide, start at image rows
        that are multiples of ``_BAND``, so that a tile with ``_BAND - 1``
        more rows before its margin computes exactly the whole image's sums.

    ``h`` with a map: ``h_ij^2 = h^2 n_ij / (2 sigma_ref^2)`` with ``sigma_ref``
    passed as ``sigma`` (the caller's reference level, > 0).

    Returns
    -------
    ndarray, same shape and dtype as ``x``.
    """
    dtype = x.dtype
    typ = dtype.type
    x_in = x
    if mask is not None:
        # masked pixels are never read: zero them, so that their values (huge, say) cannot set the scale
        x = np.where(np.asarray(mask)[..., None], x, dtype.type(0))
    x0 = x
    # the weights are invariant under x, h, sigma, s -> 2^k (x, h, sigma, s): scale far magnitudes (exact)
    big = float(np.abs(x).max())
    shift = 0
    if big > 0:
        e = int(np.frexp(big)[1])
        if abs(e) > _SAFE_EXP.get(dtype.itemsize, 24):
            shift = -e
            x = np.ldexp(x, shift).astype(dtype, copy=False)
            with np.errstate(over="ignore", under="ignore"):
                h, sigma = float(np.ldexp(h, shift)), float(np.ldexp(sigma, shift))
                if var_map is not None:
                    var_map = np.ldexp(np.asarray(var_map, np.float64), 2 * shift)
    spatial = x.shape[:spatial_ndim]
    C = x.shape[-1]
    pad3 = (1,) * (3 - spatial_ndim) + tuple(spatial)
    win = (0,) * (3 - spatial_ndim) + tuple(int(w) for w in window)
    win = tuple(min(w, n - 1) for w, n in zip(win, pad3))
    radii = (0,) * (3 - spatial_ndim) + tuple(min(int(p) // 2, n - 1) for p, n in zip(patch_size, spatial))
    pads = [(r, r) for r in radii]
    img = np.ascontiguousarray(np.moveaxis(x, -1, 0).reshape((C,) + pad3), dtype=dtype)
    vp = np.pad(img, [(0, 0)] + pads, mode="reflect")
    use_map = var_map is not None
    use_mask = mask is not None
    dummy = np.zeros((1, 1, 1), dtype)
    sp = np.pad(np.asarray(var_map, dtype).reshape(pad3), pads, mode="reflect") if use_map else dummy
    mp = np.pad(np.asarray(mask, dtype).reshape(pad3), pads, mode="reflect") if use_mask else dummy
    hinf = not np.isfinite(h)
    # w = 2^-(t gamma): gamma = 1 / (h^2 ln 2), or with a map 1 / (hscale n ln 2), hscale = h^2 / (2 sigma_ref^2)
    with np.errstate(over="ignore", divide="ignore"):
        if hinf:
            gamma = 0.0
        elif use_map:
            gamma = INV_LN2 * 2.0 * float(sigma) ** 2 / float(h) ** 2
        else:
            gamma = INV_LN2 / float(h) ** 2
    info = np.finfo(dtype)
    gamma = min(max(gamma, float(info.tiny)), float(info.max)) if not hinf else 0.0
    var2 = min(2.0 * float(sigma) ** 2, float(info.max))
    gy = 0 if origin is None or spatial_ndim < 2 else int(origin[-2])
    first = (-gy) % _BAND
    out = np.empty((C,) + pad3, dtype)
    _masked_kernel(vp, np.ascontiguousarray(sp), np.ascontiguousarray(mp), _full_offsets(win), pad3[0], pad3[1],
                   pad3[2], radii[0], radii[1], radii[2], typ(var2), typ(gamma), hinf, use_map, use_mask,
                   first, out)
    y = _unscale(np.moveaxis(out.reshape((C,) + tuple(spatial)), 0, -1), shift, x0)
    if mask is not None:
        keep = ~np.asarray(mask)
        y[keep] = x_in[keep]  # masked pixels come back unchanged
    return y
