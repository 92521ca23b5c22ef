"""Slow, obviously-correct NumPy twins of the compiled kernels (test oracles).

Written straight from the formulas, one pixel at a time, for tiny inputs only.
"""

import itertools

import numpy as np


def nl_means(x, patch_size, patch_distance, h, sigma):
    """Non-local means of a channel-last map ``x`` of shape (*spatial, C).

    For every pixel i and every j with ``|j_a - i_a| <= patch_distance`` (an
    int, or one radius per spatial axis) inside
    the image: ``d2`` = mean over the patch (``patch_size``: an odd int, or one
    per spatial axis; reflect padding; the patch radius is clipped to
    ``n - 1`` along an axis of ``n`` pixels) and channels of
    the squared difference, ``w = exp(-max(d2 - 2 sigma^2, 0) / h^2)``,
    ``u(i) = sum_j w v(j) / sum_j w``.  Computed in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    spatial = x.shape[:-1]
    sizes = tuple(patch_size) if np.ndim(patch_size) else (patch_size,) * len(spatial)
    # patch radius clipped to n - 1 along an axis of n pixels (small images)
    pr = [min(s // 2, n - 1) for s, n in zip(sizes, spatial)]
    padded = np.pad(x, [(r, r) for r in pr] + [(0, 0)], mode="reflect")
    radii = tuple(patch_distance) if np.ndim(patch_distance) else (patch_distance,) * len(spatial)

    def patch(p):
        return padded[tuple(slice(c, c + 2 * r + 1) for c, r in zip(p, pr))]

    out = np.empty_like(x)
    for i in itertools.product(*map(range, spatial)):
        pi = patch(i)
        ranges = [range(max(0, c - d), min(n, c + d + 1)) for c, n, d in zip(i, spatial, radii)]
        num = np.zeros(x.shape[-1])
        den = 0.0
        for j in itertools.product(*ranges):
            d2 = np.mean((pi - patch(j)) ** 2)
            w = np.exp(-max(d2 - 2 * sigma**2, 0.0) / h**2)
            num += w * x[j]
            den += w
        out[i] = num / den
    return out


def window_mean(x, patch_distance):
    """Mean of each pixel's (clipped) search window: the h -> inf limit."""
    x = np.asarray(x, dtype=np.float64)
    spatial = x.shape[:-1]
    out = np.empty_like(x)
    for i in itertools.product(*map(range, spatial)):
        sl = tuple(slice(max(0, c - patch_distance), c + patch_distance + 1) for c in i)
        out[i] = x[sl].reshape(-1, x.shape[-1]).mean(axis=0)
    return out


def numeric_grad(fun, a, eps=1e-6):
    """Central differences of the scalar ``fun()`` with respect to every entry of ``a`` (in place)."""
    g = np.empty_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = fun()
        flat[i] = old - eps
        lo = fun()
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return g


def png_unfilter(rows, bpp):
    """PNG scanline unfiltering, byte by byte from the specification (section 9).

    ``rows`` (H, 1 + stride) uint8 with the filter type first; returns (H, stride).
    """
    height, width = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, width), np.uint8)
    for y in range(height):
        ftype = int(rows[y, 0])
        for i in range(width):
            a = int(out[y, i - bpp]) if i >= bpp else 0
            b = int(out[y - 1, i]) if y > 0 else 0
            c = int(out[y - 1, i - bpp]) if y > 0 and i >= bpp else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[y, i] = (int(rows[y, i + 1]) + pred) % 256
    return out


def nl_means_masked(x, patch_size, patch_distance, h, sigma=0.0, sigma_map=None, mask=None):
    """Non-local means with a per-pixel noise std map and/or a validity mask.

    The oracle of :mod:`nlm.ops._nlm_masked`, written from the formulas of
    :func:`nlm.denoise_nl_means` (Notes): for a valid pixel ``i`` and every
    valid ``j`` of its clipped window, over the reflect-padded patch offsets
    ``k`` where both ``i + k`` and ``j + k`` are valid (``M`` of them):
    ``d2`` = mean squared difference (over those offsets and the channels),
    ``n`` = mean of ``s(i + k)^2 + s(j + k)^2`` (``2 sigma^2`` without a map),
    ``h_ij^2 = h^2 n / (2 sigma_ref^2)`` with ``sigma_ref = sigma`` (the
    caller's reference; ``h^2`` without a map), ``w = exp(-max(d2 - n, 0) /
    h_ij^2)`` (0 when ``M = 0``; 1 for ``j = i``).  Masked pixels keep their
    value.  Computed in float64.
    """
    x = np.asarray(x, dtype=np.float64)
    spatial = x.shape[:-1]
    nd = len(spatial)
    sizes = tuple(patch_size) if np.ndim(patch_size) else (patch_size,) * nd
    pr = [min(s // 2, n - 1) for s, n in zip(sizes, spatial)]
    pads = [(r, r) for r in pr]
    padded = np.pad(x, pads + [(0, 0)], mode="reflect")
    m = np.ones(spatial) if mask is None else np.asarray(mask, dtype=np.float64)
    mpad = np.pad(m, pads, mode="reflect")
    s2 = None if sigma_map is None else np.asarray(sigma_map, dtype=np.float64) ** 2
    spad = None if s2 is None else np.pad(s2, pads, mode="reflect")
    radii = tuple(patch_distance) if np.ndim(patch_distance) else (patch_distance,) * nd

    def box(a, p):
        return a[tuple(slice(c, c + 2 * r + 1) for c, r in zip(p, pr))]

    out = x.copy()
    for i in itertools.product(*map(range, spatial)):
        if not m[i]:
            continue
        ranges = [range(max(0, c - d), min(n, c + d + 1)) for c, n, d in zip(i, spatial, radii)]
        num = x[i].copy()
        den = 1.0
        for j in itertools.product(*ranges):
            if j == i or not m[j]:
                continue
            pair = box(mpad, i) * box(mpad, j)
            cnt = pair.sum()
            if cnt == 0:
                continue
            d2 = (pair[..., None] * (box(padded, i) - box(padded, j)) ** 2).sum() / (cnt * x.shape[-1])
            if spad is None:
                n2, hh = 2 * sigma**2, h**2
            else:
                n2 = (pair * (box(spad, i) + box(spad, j))).sum() / cnt
                hh = h**2 * n2 / (2 * sigma**2)
            t = max(d2 - n2, 0.0)
            if t == 0 or np.isinf(h):
                w = 1.0
            elif hh > 0:
                w = np.exp(-t / hh)
            else:
                w = 0.0
            num += w * x[j]
            den += w
        out[i] = num / den
    return out
