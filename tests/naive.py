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
