"""Compiled (Numba) kernels of the non-local means filter.

Private module.  The kernels take validated, C-contiguous arrays and do no
checking; :func:`nl_means_windowed` is the only entry point, called by
:meth:`nlm.kernels.PatchEuclideanGaussian.fast_windowed`.

Algorithm (Darbon et al. 2008; Froment 2014), per row band and per offset t
of the half window (t > 0 lexicographically):

1. ``D(p) = sum_c (v(p, c) - v(p + t, c))^2`` on the band plus a patch-radius
   halo, from the reflect-padded image;
2. the patch distance of every pair ``(p, p + t)`` is the box sum of ``D``
   over the patch, obtained with separable running sums along y, z and x
   (``O(1)`` per pixel, independent of the patch size);
3. ``w = exp(-max(d^2 - 2 sigma^2, 0) / h^2)`` with ``d^2`` the box sum
   divided by ``patch_size^D * channels``;
4. the weight serves both pixels of the pair (``w(p, p+t) = w(p+t, p)``):
   ``p`` accumulates ``w v(p + t)`` and ``p + t`` accumulates ``w v(p)``.

Threads work on bands of rows (axis y).  Each band owns private accumulators
covering its rows plus the window radius above and below, since the symmetric
update writes to ``p + t``; a second parallel pass adds the band accumulators
into the result.  Memory: the image, its padded copy, the accumulators
(about ``(1 + 2 wy / band)`` image-sized copies of ``channels + 1`` planes) and
four band-sized scratch buffers per band.

Only pairs with both pixels inside the image are used (the search window is
clipped at the borders); patches that cross the border read the reflect
padding.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from nlm._config import JIT, JIT_PARALLEL


@intrinsic
def _bits_to_float32(typingctx, bits):
    """Reinterpret the bits of an int32 as a float32 (vectorises, unlike ldexp)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


# exp(-a) for float32: n = round(a / ln 2), r = a - n ln 2 (Cody-Waite split of
# ln 2, so the reduction is exact to float32 precision), exp(-a) = 2^-n e^-r
# with e^-r from its degree-7 Taylor polynomial on |r| <= ln(2)/2 (truncation
# < 5e-9).  Max relative error measured over [0, 87]: 9.7e-8 (1.6 ulp); tested
# in tests/test_kernels.py.  Branch-free, so LLVM vectorises the weight loop.
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_INV_LN2 = np.float32(1.4426950408889634)
_EXP_MAX = np.float32(87.0)  # exp(-87) ~ 1.6e-38, the smallest normal float32 scale
_E = tuple(np.float32((-1.0) ** k / math.factorial(k)) for k in range(8))


def _exp_neg(a):
    """exp(-a) for a >= 0 (float32: polynomial; float64: libm)."""
    return math.exp(-a)


@overload(_exp_neg, jit_options=dict(JIT))
def _exp_neg_ov(a):
    if a == types.float32:

        def impl(a):
            a = min(a, _EXP_MAX)
            k = np.int32(a * _INV_LN2 + np.float32(0.5))  # a >= 0: truncation rounds
            n = np.float32(k)
            r = (a - n * _LN2_HI) - n * _LN2_LO
            p = _E[7]
            p = p * r + _E[6]
            p = p * r + _E[5]
            p = p * r + _E[4]
            p = p * r + _E[3]
            p = p * r + _E[2]
            p = p * r + _E[1]
            p = p * r + _E[0]
            return p * _bits_to_float32(np.int32((127 - k) << 23))

        return impl
    return lambda a: math.exp(-a)


@njit(**JIT)
def _box_rows(src, dst, nrows, n, r):
    """dst[i, x] = sum_{k=0}^{2r} src[i, x + k] for x < n, i < nrows.

    Running sums along each row (O(1) per pixel whatever r); four rows advance
    together so that four independent add chains keep the pipeline full.
    """
    i = 0
    while i + 4 <= nrows:
        a0 = src[i, 0]
        a1 = src[i + 1, 0]
        a2 = src[i + 2, 0]
        a3 = src[i + 3, 0]
        for k in range(1, 2 * r + 1):
            a0 += src[i, k]
            a1 += src[i + 1, k]
            a2 += src[i + 2, k]
            a3 += src[i + 3, k]
        dst[i, 0] = a0
        dst[i + 1, 0] = a1
        dst[i + 2, 0] = a2
        dst[i + 3, 0] = a3
        for x in range(1, n):
            a0 += src[i, x + 2 * r] - src[i, x - 1]
            a1 += src[i + 1, x + 2 * r] - src[i + 1, x - 1]
            a2 += src[i + 2, x + 2 * r] - src[i + 2, x - 1]
            a3 += src[i + 3, x + 2 * r] - src[i + 3, x - 1]
            dst[i, x] = a0
            dst[i + 1, x] = a1
            dst[i + 2, x] = a2
            dst[i + 3, x] = a3
        i += 4
    while i < nrows:
        a0 = src[i, 0]
        for k in range(1, 2 * r + 1):
            a0 += src[i, k]
        dst[i, 0] = a0
        for x in range(1, n):
            a0 += src[i, x + 2 * r] - src[i, x - 1]
            dst[i, x] = a0
        i += 1


@njit(**JIT)
def _box_y(src, dst, nplanes, ny, nx, r):
    """dst[a, y, :nx] = sum_{k=0}^{2r} src[a, y + k, :nx] for y < ny (vectorised over x)."""
    for a in range(nplanes):
        for x in range(nx):
            dst[a, 0, x] = src[a, 0, x]
        for k in range(1, 2 * r + 1):
            for x in range(nx):
                dst[a, 0, x] += src[a, k, x]
        for y in range(1, ny):
            for x in range(nx):
                dst[a, y, x] = dst[a, y - 1, x] + src[a, y + 2 * r, x] - src[a, y - 1, x]


@njit(**JIT)
def _box_z(src, dst, nz, ny, nx, r):
    """dst[z, :ny, :nx] = sum_{k=0}^{2r} src[z + k, :ny, :nx] for z < nz."""
    for y in range(ny):
        for x in range(nx):
            dst[0, y, x] = src[0, y, x]
    for k in range(1, 2 * r + 1):
        for y in range(ny):
            for x in range(nx):
                dst[0, y, x] += src[k, y, x]
    for z in range(1, nz):
        for y in range(ny):
            for x in range(nx):
                dst[z, y, x] = dst[z - 1, y, x] + src[z + 2 * r, y, x] - src[z - 1, y, x]


@njit(**JIT_PARALLEL)
def _nlm_bands(padded, offsets, pz, py, px, wy, band, inv_norm, var2, inv_h2):
    """Band-private numerators and denominators of the NLM filter.

    padded : (C, Z + 2 pz, Y + 2 py, X + 2 px), reflect-padded image
    offsets : (n, 3) int64, half window (tz, ty, tx) > 0 lexicographically
    Returns bnum (nb, C, Z, band + 2 wy, X) and bden (nb, Z, band + 2 wy, X);
    local row ``l`` of band ``b`` is image row ``b * band - wy + l``.
    """
    C = padded.shape[0]
    Z = padded.shape[1] - 2 * pz
    Y = padded.shape[2] - 2 * py
    X = padded.shape[3] - 2 * px
    dt = padded.dtype
    one = inv_h2 / inv_h2  # 1 in the kernel's float type (keeps float32 float32)
    zero = one - one
    nb = (Y + band - 1) // band
    H = band + 2 * wy
    bnum = np.zeros((nb, C, Z, H, X), dt)
    bden = np.zeros((nb, Z, H, X), dt)
    for b in prange(nb):
        y0 = b * band
        y1 = min(Y, y0 + band)
        num = bnum[b]
        den = bden[b]
        D = np.empty((Z + 2 * pz, y1 - y0 + 2 * py, X + 2 * px), dt)
        V = np.empty((Z + 2 * pz, y1 - y0, X + 2 * px), dt)
        Vz = np.empty((Z, y1 - y0, X + 2 * px), dt)
        P = np.empty((Z, y1 - y0, X), dt)
        # the pixel itself: distance 0, weight exp(0) = 1
        for z in range(Z):
            for y in range(y0, y1):
                ly = y - y0 + wy
                for x in range(X):
                    den[z, ly, x] += one
                for c in range(C):
                    for x in range(X):
                        num[c, z, ly, x] += padded[c, z + pz, y + py, x + px]
        for o in range(offsets.shape[0]):
            tz = offsets[o, 0]
            ty = offsets[o, 1]
            tx = offsets[o, 2]
            zlo = max(0, -tz)
            zhi = min(Z, Z - tz)
            ylo = max(y0, -ty)
            yhi = min(y1, Y - ty)
            xlo = max(0, -tx)
            xhi = min(X, X - tx)
            if zlo >= zhi or ylo >= yhi or xlo >= xhi:
                continue
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
                    li = ylo + y - y0 + wy
                    yi = ylo + y
                    w = P[z, y, :nx]
                    for x in range(nx):
                        d = w[x] * inv_norm - var2
                        d = d if d > zero else zero
                        w[x] = _exp_neg(d * inv_h2)
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
    return bnum, bden


@njit(**JIT_PARALLEL)
def _nlm_reduce(bnum, bden, band, wy, Y):
    """Add the band accumulators into the image and divide: (C, Z, Y, X)."""
    nb, C, Z, H, X = bnum.shape
    out = np.empty((C, Z, Y, X), bnum.dtype)
    for y in prange(Y):
        bmin = max(0, (y - band - wy) // band)
        bmax = min(nb - 1, (y + wy) // band)
        for z in range(Z):
            for x in range(X):
                den = bden[0, 0, 0, 0] * 0  # 0 in the kernel's float type
                for b in range(bmin, bmax + 1):
                    ly = y - b * band + wy
                    if 0 <= ly < H:
                        den += bden[b, z, ly, x]
                for c in range(C):
                    s = den * 0
                    for b in range(bmin, bmax + 1):
                        ly = y - b * band + wy
                        if 0 <= ly < H:
                            s += bnum[b, c, z, ly, x]
                    out[c, z, y, x] = s / den
    return out


def _half_offsets(window):
    """Offsets t of the window with t > 0 lexicographically, as (n, 3) int64."""
    wz, wy, wx = window
    grid = np.mgrid[-wz : wz + 1, -wy : wy + 1, -wx : wx + 1].reshape(3, -1).T
    keep = (grid[:, 0] > 0) | ((grid[:, 0] == 0) & ((grid[:, 1] > 0) | ((grid[:, 1] == 0) & (grid[:, 2] > 0))))
    return np.ascontiguousarray(grid[keep], dtype=np.int64)


def _band_rows(Y, wy):
    """Rows per band: enough bands to feed every thread, not so thin that halos dominate."""
    import numba

    threads = numba.get_num_threads()
    band = -(-Y // (4 * threads))
    return int(max(band, min(Y, 16, 2 * wy + 1), 1))


def nl_means_windowed(x, patch_size, window, h, sigma, spatial_ndim):
    """Non-local means of a channel-last map with the compiled kernel.

    Parameters
    ----------
    x : ndarray, shape (*spatial, C), float32 or float64
        Finite values (validated by the caller).
    patch_size : int, odd
    window : tuple of int, one radius per spatial axis
    h, sigma : float
    spatial_ndim : int, 1 to 3

    Returns
    -------
    ndarray, same shape and dtype as ``x``.
    """
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    spatial = x.shape[:spatial_ndim]
    C = x.shape[-1]
    # to channel-first (C, Z, Y, X), missing spatial axes of size 1
    pad3 = (1,) * (3 - spatial_ndim) + tuple(spatial)
    img = np.ascontiguousarray(np.moveaxis(x, -1, 0).reshape((C,) + pad3), dtype=dtype)
    r = patch_size // 2
    radii = (0,) * (3 - spatial_ndim) + (r,) * spatial_ndim
    win = (0,) * (3 - spatial_ndim) + tuple(window)
    # a window wider than the image adds no pairs; clip it
    win = tuple(min(w, n - 1) for w, n in zip(win, pad3))
    padded = np.pad(img, [(0, 0)] + [(p, p) for p in radii], mode="reflect")
    offsets = _half_offsets(win)
    Y = pad3[1]
    band = _band_rows(Y, win[1])
    norm = float(patch_size**spatial_ndim * C)
    typ = dtype.type if hasattr(dtype, "type") else np.dtype(dtype).type
    bnum, bden = _nlm_bands(
        padded,
        offsets,
        radii[0],
        radii[1],
        radii[2],
        win[1],
        band,
        typ(1.0 / norm),
        typ(2.0 * sigma * sigma),
        # 1/h^2 clamped to the largest finite value: a tiny h must give weights
        # 0 (or exactly 1 for d^2 = 0), never inf * 0 = NaN
        typ(min(1.0 / (h * h), float(np.finfo(dtype).max))),
    )
    out = _nlm_reduce(bnum, bden, band, win[1], Y)
    return np.moveaxis(out.reshape((C,) + tuple(spatial)), 0, -1)
