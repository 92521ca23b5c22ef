"""Slow, obviously-correct NumPy twins of the compiled kernels (test oracles).

Written straight from the formulas, one pixel at a time, for tiny inputs only.
"""

import itertools

import numpy as np

import nlm.noise._blocks as NB


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


def block_stats(y, nd, B, clipped=None):
    """The whole-image form of :func:`nlm.noise.estimate._block_stats` (``y``: float64), its oracle.

    Per-block mean, detail energy, variance, plateau flag and residual moments, from float64 copies of the
    whole image (the estimator computes the same values slab by slab).

    The levels (the image's minimum or maximum) found to be noise clipped
    there are added to the set ``clipped`` as ``(sign, level)``: -1 for a
    lower bound, +1 for an upper one."""
    axes = tuple(range(nd))
    # the 4-tap detail at core pixel i reads y[i - 1 .. i + 2]; the last core pixel of an axis (no y[i + 2])
    # takes its neighbour's value, the filter read on y[i - 2 .. i + 1]
    d = y
    for ax in axes:
        d = NB._filter_valid(d, NB._DETAIL, (ax,))
        d = np.concatenate([d, np.take(d, [-1], axis=ax)], axis=ax)
    core = y[tuple(slice(1, n - 1) for n in y.shape)]
    box = NB._filter_valid(y, np.ones(3), axes)
    r = core - (box - core) / (3**nd - 1)  # centre minus the mean of its neighbours
    mu = NB._block_reduce(core, B, nd)
    v = NB._block_reduce(d * d, B, nd)
    # the two halves of every block along its last axis, each with its own
    # mean and detail energy: a block is ordered by one half and measured
    # (mean and variance) on the other, whose noise is independent of the
    # ordering.  Ordering by the measured mean itself would place a block by
    # its noise (regression dilution, which flattens the level function on a
    # narrow intensity range) and, for skewed noise (gamma, Poisson), would
    # tie the variance measured to the ordering.
    half = (np.arange(core.shape[-1]) % B < B // 2).reshape((1,) * (nd - 1) + (-1,))
    mu_a = 2.0 * NB._block_reduce(np.where(half, core, 0.0), B, nd)
    mu_b = 2.0 * NB._block_reduce(np.where(half, 0.0, core), B, nd)
    dd = d * d
    v_a = 2.0 * NB._block_reduce(np.where(half, dd, 0.0), B, nd)
    v_b = 2.0 * NB._block_reduce(np.where(half, 0.0, dd), B, nd)
    v[v <= (64 * np.finfo(np.float64).eps * max(1.0, float(np.abs(core).max()))) ** 2] = 0.0
    # spread of the sub-block means (scaled to a per-pixel variance): nearly
    # independent of the detail energy for noise (the detail filter sums to 0
    # inside a sub-block), large on edges, ramps and texture
    sub = B // 2 if nd > 1 else B // 4
    q = NB._sub_means(core, B, sub, nd)
    var = q.var(axis=1, ddof=1) * sub**nd
    r2 = NB._block_reduce(r * r, B, nd)
    r3 = NB._block_reduce(r * r * r, B, nd)
    lo, hi = float(y.min()), float(y.max())
    plateau = np.zeros(mu.shape, dtype=bool)
    rough = None
    for ext, sign in ((lo, -1.0), (hi, 1.0)):
        hits = core == ext
        if not (hits.mean() > 1e-3 or np.count_nonzero(y == ext) > 16):
            continue
        touch = NB._block_reduce(hits.astype(np.float64), B, nd) > 0
        if rough is None:
            rough = np.maximum(NB._rough_level(mu, v), 1e-300)
        # Noise clipped at the level (the noisy blocks near it touch it about
        # as often as Gaussian noise of the rough level would) or a plateau of
        # the signal (an exactly zero background, a saturated area, isolated
        # black pixels; multiplicative noise beside it never reaches 0)?
        # Decided on the blocks with noise only: constant blocks at the level
        # touch it whatever the noise is.
        d = sign * (ext - mu) / np.sqrt(rough)
        near = (d < 3.0) & (v > 0)
        expected = float(np.sum(1.0 - (1.0 - 0.5 * NB.erfc(np.maximum(d[near], 0.0) / np.sqrt(2.0))) ** B**nd))
        if expected >= 2.0 and np.count_nonzero(touch[near]) >= 0.5 * expected:
            # clipped: every block within two deviations of the level is dropped
            plateau |= d < 2.0
            if clipped is not None:
                clipped.add((sign, ext))
        else:
            # a plateau of the signal: its edges are signal, not noise
            plateau |= touch
    return mu, mu_a, mu_b, v_a, v_b, v, var, r2, r3, plateau
