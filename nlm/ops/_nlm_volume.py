"""Compiled (Numba) kernels of non-local means on volumes (private).

Split from :mod:`nlm.ops._nlm_kernels` (see its docstring, "Volumes"):
per row band and per offset on whole band buffers, differences, box sums by
running sums along y, z and x, weights, then accumulation into band-private
accumulators with a halo of the window radius, added together by
:func:`_nlm_reduce`.
"""

import numpy as np
from numba import njit, prange

from nlm._config import JIT, JIT_PARALLEL, defer_blas_probe
from nlm.ops._simd import _exp2_neg, _fma, _wide_vectors

defer_blas_probe()  # before any kernel runs: Numba's NumPy support without SciPy (see nlm._config)

JIT_BORROW = dict(JIT, _nrt=False)


@njit(**JIT_BORROW)
def _box_sum(out, src, i0, j0, step_i, step_j, n, r):
    """out[:n] = sum_{k=0}^{2r} src[i0 + k step_i, j0 + k step_j : ... + n].

    A direct sum of 2r + 1 rows of the 2-D ``src`` (shifted along its second
    axis when ``step_j = 1``), in one fixed order: every value is the same
    float wherever the box sums of an image start (unlike a running sum,
    whose rounding depends on its first element).  Straight-line code for
    r <= 3 (one pass, pairwise), passes otherwise.
    """
    _wide_vectors()
    if r == 0:
        a0 = src[i0, j0 : j0 + n]
        for x in range(n):
            out[x] = a0[x]
    elif r == 1:
        a0 = src[i0, j0 : j0 + n]
        a1 = src[i0 + step_i, j0 + step_j : j0 + step_j + n]
        a2 = src[i0 + 2 * step_i, j0 + 2 * step_j : j0 + 2 * step_j + n]
        for x in range(n):
            out[x] = (a0[x] + a1[x]) + a2[x]
    elif r == 2:
        a0 = src[i0, j0 : j0 + n]
        a1 = src[i0 + step_i, j0 + step_j : j0 + step_j + n]
        a2 = src[i0 + 2 * step_i, j0 + 2 * step_j : j0 + 2 * step_j + n]
        a3 = src[i0 + 3 * step_i, j0 + 3 * step_j : j0 + 3 * step_j + n]
        a4 = src[i0 + 4 * step_i, j0 + 4 * step_j : j0 + 4 * step_j + n]
        for x in range(n):
            out[x] = ((a0[x] + a1[x]) + (a2[x] + a3[x])) + a4[x]
    elif r == 3:
        a0 = src[i0, j0 : j0 + n]
        a1 = src[i0 + step_i, j0 + step_j : j0 + step_j + n]
        a2 = src[i0 + 2 * step_i, j0 + 2 * step_j : j0 + 2 * step_j + n]
        a3 = src[i0 + 3 * step_i, j0 + 3 * step_j : j0 + 3 * step_j + n]
        a4 = src[i0 + 4 * step_i, j0 + 4 * step_j : j0 + 4 * step_j + n]
        a5 = src[i0 + 5 * step_i, j0 + 5 * step_j : j0 + 5 * step_j + n]
        a6 = src[i0 + 6 * step_i, j0 + 6 * step_j : j0 + 6 * step_j + n]
        for x in range(n):
            out[x] = ((a0[x] + a1[x]) + (a2[x] + a3[x])) + ((a4[x] + a5[x]) + a6[x])
    else:
        a0 = src[i0, j0 : j0 + n]
        for x in range(n):
            out[x] = a0[x]
        for k in range(1, 2 * r + 1):
            a0 = src[i0 + k * step_i, j0 + k * step_j : j0 + k * step_j + n]
            for x in range(n):
                out[x] += a0[x]


@njit(**JIT_BORROW)
def _box_rows(src, dst, nrows, n, r):
    """dst[i, x] = sum_{k=0}^{2r} src[i, x + k] for x < n, i < nrows (direct, :func:`_box_sum`)."""
    for i in range(nrows):
        _box_sum(dst[i], src[i : i + 1], 0, 0, 0, 1, n, r)


@njit(**JIT_BORROW)
def _box_y(src, dst, nplanes, ny, nx, r):
    """dst[a, y, :nx] = sum_{k=0}^{2r} src[a, y + k, :nx] for y < ny (direct, :func:`_box_sum`)."""
    for a in range(nplanes):
        for y in range(ny):
            _box_sum(dst[a, y], src[a], y, 0, 1, 0, nx, r)


@njit(**JIT_BORROW)
def _box_z(src, dst, nz, ny, nx, r):
    """dst[z, :ny, :nx] = sum_{k=0}^{2r} src[z + k, :ny, :nx] for z < nz (direct, :func:`_box_sum`)."""
    for z in range(nz):
        for y in range(ny):
            _box_sum(dst[z, y], src[:, y, :], z, 0, 1, 0, nx, r)


@njit(**JIT_BORROW)
def _band_offset(padded, num, den, D, V, Vz, P, tz, ty, tx, y0, y1, base, pz, py, px, wy, inv_norm, var2, gamma):
    """One offset ``t = (tz, ty, tx)`` of :func:`_nlm_bands` on the band ``[y0, y1)``.

    Row ``y`` of the image is row ``y - base + wy`` of the band's accumulators.

    Compiled without reference counting (no atomic operations on shared
    counters for the many views it takes).
    """
    _wide_vectors()
    C = padded.shape[0]
    Z = padded.shape[1] - 2 * pz
    Y = padded.shape[2] - 2 * py
    X = padded.shape[3] - 2 * px
    zero = var2 - var2
    zlo = max(0, -tz)
    zhi = min(Z, Z - tz)
    ylo = max(y0, -ty)
    yhi = min(y1, Y - ty)
    xlo = max(0, -tx)
    xhi = min(X, X - tx)
    if zlo >= zhi or ylo >= yhi or xlo >= xhi:
        return
    nz = zhi - zlo
    ny = yhi - ylo
    nx = xhi - xlo
    W = nx + 2 * px
    # 1. squared differences over the pairs' patches (padded coordinates);
    #    inner loops index row views from 0 so that Numba can vectorise them
    for zz in range(nz + 2 * pz):
        for yy in range(ny + 2 * py):
            drow = D[zz, yy, :W]
            a = padded[0, zlo + zz, ylo + yy, xlo : xlo + W]
            bb = padded[0, zlo + zz + tz, ylo + yy + ty, xlo + tx : xlo + tx + W]
            for xx in range(W):
                d = a[xx] - bb[xx]
                drow[xx] = d * d
            for c in range(1, C):
                a = padded[c, zlo + zz, ylo + yy, xlo : xlo + W]
                bb = padded[c, zlo + zz + tz, ylo + yy + ty, xlo + tx : xlo + tx + W]
                for xx in range(W):
                    d = a[xx] - bb[xx]
                    drow[xx] += d * d
    # 2. box sums over the patch: y, then z, then x
    _box_y(D, V, nz + 2 * pz, ny, W, py)
    if pz > 0:
        _box_z(V, Vz, nz, ny, W, pz)
        S = Vz
    else:
        S = V
    for z in range(nz):
        _box_rows(S[z], P[z], ny, nx, px)
    # 3. weights, 4. symmetric accumulation
    for z in range(nz):
        zi = zlo + z
        for y in range(ny):
            li = ylo + y - base + wy
            yi = ylo + y
            w = P[z, y, :nx]
            for x in range(nx):
                d = _fma(w[x], inv_norm, -var2)
                d = d if d > zero else zero
                w[x] = _exp2_neg(d * gamma)
            row = den[zi, li, xlo : xlo + nx]
            for x in range(nx):
                row[x] += w[x]
            row = den[zi + tz, li + ty, xlo + tx : xlo + tx + nx]
            for x in range(nx):
                row[x] += w[x]
            for c in range(C):
                row = num[c, zi, li, xlo : xlo + nx]
                src = padded[c, zi + tz + pz, yi + ty + py, xlo + tx + px : xlo + tx + px + nx]
                for x in range(nx):
                    row[x] += w[x] * src[x]
                row = num[c, zi + tz, li + ty, xlo + tx : xlo + tx + nx]
                src = padded[c, zi + pz, yi + py, xlo + px : xlo + px + nx]
                for x in range(nx):
                    row[x] += w[x] * src[x]


@njit(**JIT_PARALLEL)
def _nlm_bands(padded, offsets, pz, py, px, wy, band, first, inv_norm, var2, gamma):
    """Band-private numerators and denominators of the NLM filter.

    padded : (C, Z + 2 pz, Y + 2 py, X + 2 px), reflect-padded image
    offsets : (n, 3) int64, half window (tz, ty, tx) > 0 lexicographically
    band, first : bands of ``band`` rows, the first one ``first`` rows short
        (a tile starting ``first`` rows into a band of the whole image)
    Returns bnum (nb, C, Z, band + 2 wy, X) and bden (nb, Z, band + 2 wy, X);
    local row ``l`` of band ``b`` is image row ``b * band - first - wy + l``.
    """
    _wide_vectors()
    C = padded.shape[0]
    Z = padded.shape[1] - 2 * pz
    Y = padded.shape[2] - 2 * py
    X = padded.shape[3] - 2 * px
    dt = padded.dtype
    one = gamma / gamma  # 1 in the kernel's float type (keeps float32 float32)
    nb = (Y + first + band - 1) // band
    H = band + 2 * wy
    bnum = np.zeros((nb, C, Z, H, X), dt)
    bden = np.zeros((nb, Z, H, X), dt)
    for b in prange(nb):
        base = b * band - first
        y0 = max(0, base)
        y1 = min(Y, base + band)
        num = bnum[b]
        den = bden[b]
        D = np.empty((Z + 2 * pz, y1 - y0 + 2 * py, X + 2 * px), dt)
        V = np.empty((Z + 2 * pz, y1 - y0, X + 2 * px), dt)
        Vz = np.empty((Z, y1 - y0, X + 2 * px), dt)
        P = np.empty((Z, y1 - y0, X), dt)
        # the pixel itself: distance 0, weight exp(0) = 1
        for z in range(Z):
            for y in range(y0, y1):
                ly = y - base + wy
                for x in range(X):
                    den[z, ly, x] += one
                for c in range(C):
                    for x in range(X):
                        num[c, z, ly, x] += padded[c, z + pz, y + py, x + px]
        for o in range(offsets.shape[0]):
            _band_offset(
                padded, num, den, D, V, Vz, P, offsets[o, 0], offsets[o, 1], offsets[o, 2],
                y0, y1, base, pz, py, px, wy, inv_norm, var2, gamma,
            )
    return bnum, bden


@njit(**JIT_PARALLEL)
def _nlm_reduce(bnum, bden, band, first, wy, Y):
    """Add the band accumulators (in band order) into the image and divide: (C, Z, Y, X)."""
    _wide_vectors()
    nb, C, Z, H, X = bnum.shape
    out = np.empty((C, Z, Y, X), bnum.dtype)
    for y in prange(Y):
        bmin = max(0, (y + first - wy - band) // band)
        bmax = min(nb - 1, (y + first + wy) // band)
        for z in range(Z):
            for x in range(X):
                den = bden[0, 0, 0, 0] * 0  # 0 in the kernel's float type
                for b in range(bmin, bmax + 1):
                    ly = y - b * band + first + wy
                    if 0 <= ly < H:
                        den += bden[b, z, ly, x]
                for c in range(C):
                    s = den * 0
                    for b in range(bmin, bmax + 1):
                        ly = y - b * band + first + wy
                        if 0 <= ly < H:
                            s += bnum[b, c, z, ly, x]
                    out[c, z, y, x] = s / den
    return out


def _band_rows(wy):
    """Rows per band of :func:`_nlm_bands`: fixed by the window (never by the
    image size or the thread count), so that a pixel's band sums are added in
    the same order whatever the thread count and wherever a tile starts."""
    return max(16, 2 * wy + 1)
