"""Per-block statistics of an image for :func:`nlm.noise.estimate_noise`.

Block means, detail energies (of the two halves of every block too), the
spread of the sub-block means, residual moments and the plateau / clipped
flags, computed slab by slab (tests/naive.py ``block_stats`` is the
whole-image oracle).  Private: :func:`nlm.noise.estimate_noise` is the
public entry.
"""

from __future__ import annotations

import numpy as np

from nlm.noise._special import erfc

_DETAIL = np.array([1.0, -3.0, 3.0, -1.0]) / np.sqrt(20.0)  # unit norm per axis (third difference)


def _filter_valid(a, taps, axes):
    """Correlate ``a`` with ``taps`` along each axis in ``axes`` ('valid')."""
    m = len(taps)
    for ax in axes:
        n = a.shape[ax]
        sl = [slice(None)] * a.ndim
        out = 0.0
        for k in range(m):
            sl[ax] = slice(k, n - m + 1 + k)
            out = out + taps[k] * a[tuple(sl)]
        a = out
    return a


def _detail(a, axes, ends):
    """The 4-tap detail ``_DETAIL`` of ``a`` along each axis in ``axes``, on the core ``a[1:-1]``.

    The value at a core pixel ``i`` reads ``a[i - 1 .. i + 2]``; when ``ends[ax]`` is true, ``a``
    stops at the image's far edge along ``ax`` and the last core pixel, which has no ``a[i + 2]``,
    gets its neighbour's value (the filter read on ``a[i - 2 .. i + 1]``, unbiased for noise).
    ``a`` may have one more entry at the far end along an axis whose ``ends`` is false (the next
    slab's first row): the result is the core of ``a`` without it.
    """
    for ax in axes:
        a = _filter_valid(a, _DETAIL, (ax,))
        if ends[ax]:
            last = [slice(None)] * a.ndim
            last[ax] = slice(-1, None)
            a = np.concatenate([a, a[tuple(last)]], axis=ax)
    return a


def _block_reduce(a, B, nd):
    """Mean of ``a`` (spatial ``nd`` dims, cropped to multiples of ``B``) over
    ``B^nd`` blocks; returns a flat array of block means."""
    shape = []
    sl = []
    for ax in range(nd):
        n = a.shape[ax] // B
        sl.append(slice(0, n * B))
        shape += [n, B]
    a = a[tuple(sl)].reshape(shape)
    return a.mean(axis=tuple(range(1, 2 * nd, 2))).ravel()


def _sub_means(a, B, sub, nd):
    """Means of the ``sub^nd`` sub-blocks of every ``B^nd`` block: (blocks, k)."""
    shape, sl = [], []
    for ax in range(nd):
        n = a.shape[ax] // B
        sl.append(slice(0, n * B))
        shape += [n, B // sub, sub]
    a = a[tuple(sl)].reshape(shape).mean(axis=tuple(range(2, 3 * nd, 3)))
    # (n0, k0, n1, k1, ...) -> (n0 n1 ..., k0 k1 ...)
    order = list(range(0, 2 * nd, 2)) + list(range(1, 2 * nd, 2))
    a = a.transpose(order)
    nblocks = int(np.prod(a.shape[:nd]))
    return a.reshape(nblocks, -1)


def _rough_level(mu, v):
    """Rough level function at every block: the median detail energy of the
    blocks of similar mean (24 groups of equal count, interpolated)."""
    good = np.flatnonzero(v > 0)
    if good.size < 2:
        return np.full(mu.shape, float(np.max(v, initial=0.0)))
    order = good[np.argsort(mu[good], kind="stable")]
    parts = np.array_split(order, int(np.clip(order.size // 40, 1, 24)))
    xs = np.array([np.median(mu[p]) for p in parts])
    vs = np.array([np.median(v[p]) for p in parts])
    return np.interp(mu, xs, vs)


def _block_stats(y, nd, B, clipped=None, slab_values=None):
    """Per-block mean, detail energy, variance, plateau flag and residual moments.

    ``y``: one channel, any real dtype; it is read in slabs of whole block
    rows along the first axis (about ``slab_values`` values, by default a
    sixteenth of the image between 2^14 and 2^17, converted to float64 one
    slab at a time), so the memory is the per-block results and a few
    slabs, not float64 copies of the image.  Every value is the one
    the whole float64 image gives, bit for bit (the filters are elementwise
    along the slab's axis with a halo of one pixel before and two after; the block means reduce
    within a block; tests/naive.py ``block_stats`` is the whole-image form).

    The levels (the image's minimum or maximum) found to be noise clipped
    there are added to the set ``clipped`` as ``(sign, level)``: -1 for a
    lower bound, +1 for an upper one."""
    axes = tuple(range(nd))
    lo, hi = float(y.min()), float(y.max())  # float64(y) is monotone: its extremes are y's
    inner = (slice(1, -1),) * nd
    core_shape = tuple(n - 2 for n in y.shape)
    n0 = core_shape[0] // B
    if slab_values is None:
        slab_values = min(1 << 17, max(1 << 14, y.size // 16))
    kb = max(1, slab_values // (B * int(np.prod(core_shape[1:], dtype=np.int64))))  # block rows per slab
    # the two halves of every block along its last axis, each with its own
    # mean and detail energy: a block is ordered by one half and measured
    # (mean and variance) on the other, whose noise is independent of the
    # ordering.  Ordering by the measured mean itself would place a block by
    # its noise (regression dilution, which flattens the level function on a
    # narrow intensity range) and, for skewed noise (gamma, Poisson), would
    # tie the variance measured to the ordering.  (Slabs start at whole
    # blocks, so an index mod B in a slab is the image's.)
    def halves(n):
        return (np.arange(n) % B < B // 2).reshape((1,) * (nd - 1) + (-1,))

    # spread of the sub-block means (scaled to a per-pixel variance): nearly
    # independent of the detail energy for noise (the detail filter sums to 0
    # inside a sub-block), large on edges, ramps and texture
    sub = max(1, B // 2 if nd > 1 else B // 4)  # at least a pixel (tiny 1-D signals: B = 2)
    per_row = int(np.prod([n // B for n in core_shape[1:]], dtype=np.int64))  # blocks per block row
    cols = [np.empty(n0 * per_row) for _ in range(9)] + [np.empty(n0 * per_row, dtype=bool) for _ in range(2)]
    amax = 0.0  # max |core|
    core_hits = [0, 0]  # core pixels at lo, hi
    y_hits = [0, 0]  # pixels of y at lo, hi

    def extremes(ys, core):
        nonlocal amax
        for k, ext in enumerate((lo, hi)):
            y_hits[k] += int(np.count_nonzero(ys == ext))
            core_hits[k] += int(np.count_nonzero(core == ext))
        if core.size:
            amax = max(amax, float(core.max()), -float(core.min()))

    for b0 in range(0, n0, kb):
        b1 = min(n0, b0 + kb)
        ys3 = np.asarray(y[b0 * B : b1 * B + 3], dtype=np.float64)  # one more row for the 4-tap detail
        at_end = b1 * B + 3 > y.shape[0]
        ys = ys3 if at_end else ys3[:-1]
        core = ys[inner]
        extremes(ys[:-2], core)  # y's rows b0 B .. b1 B - 1 (the slabs and the rest below partition y)
        d = _detail(ys if at_end else ys3, axes, (at_end,) + (True,) * (nd - 1))
        del ys3
        box = _filter_valid(ys, np.ones(3), axes)
        r = core - (box - core) / (3**nd - 1)  # centre minus the mean of its neighbours
        del box
        dd = d * d
        del d
        q = _sub_means(core, B, sub, nd)
        half = halves(core.shape[-1])
        for col, part in zip(cols, (  # the slab's blocks
            _block_reduce(core, B, nd),
            2.0 * _block_reduce(np.where(half, core, 0.0), B, nd),
            2.0 * _block_reduce(np.where(half, 0.0, core), B, nd),
            2.0 * _block_reduce(np.where(half, dd, 0.0), B, nd),
            2.0 * _block_reduce(np.where(half, 0.0, dd), B, nd),
            _block_reduce(dd, B, nd),
            q.var(axis=1, ddof=1) * sub**nd,
            _block_reduce(r * r, B, nd),
            _block_reduce(r * r * r, B, nd),
            _block_reduce((core == lo).astype(np.float64), B, nd) > 0,
            _block_reduce((core == hi).astype(np.float64), B, nd) > 0,
        )):
            col[b0 * per_row : b1 * per_row] = part
        del ys, core, r, dd, q
    # the rows past the last whole block: only in the extremes
    ys = np.asarray(y[n0 * B :], dtype=np.float64)
    extremes(ys, ys[inner])
    del ys
    mu, mu_a, mu_b, v_a, v_b, v, var, r2, r3, touch_lo, touch_hi = cols
    del cols
    v[v <= (64 * np.finfo(np.float64).eps * max(1.0, amax)) ** 2] = 0.0
    core_size = int(np.prod(core_shape, dtype=np.int64))
    plateau = np.zeros(mu.shape, dtype=bool)
    rough = None
    for ext, sign, nc, ny, touch in ((lo, -1.0, core_hits[0], y_hits[0], touch_lo),
                                     (hi, 1.0, core_hits[1], y_hits[1], touch_hi)):
        if not (nc / core_size > 1e-3 or ny > 16):
            continue
        if rough is None:
            rough = np.maximum(_rough_level(mu, v), 1e-300)
        # Noise clipped at the level, or a plateau of the signal (an exactly
        # zero background, a saturated area of the clean image, isolated
        # black pixels)?  Clipped noise reaches the level from every block
        # close to it: a block at d noise deviations from it touches it with
        # probability 1 - (1 - Q(d))^pixels.  Far fewer touching blocks than
        # that (multiplicative noise near a zero background never reaches 0)
        # is a plateau.
        # The test is on the blocks with noise: a constant block at the level
        # (an exactly-zero background) touches it whatever the noise is, and
        # a large one would outvote the noisy blocks (gamma speckle beside a
        # zero background, which never reaches 0, was taken for clipped noise
        # and every block near 0 dropped: no block left at L = 1).
        d = sign * (ext - mu) / np.sqrt(rough)
        near = (d < 3.0) & (v > 0)
        expected = float(np.sum(1.0 - (1.0 - 0.5 * erfc(np.maximum(d[near], 0.0) / np.sqrt(2.0))) ** B**nd))
        if expected >= 2.0 and np.count_nonzero(touch[near]) >= 0.5 * expected:
            # clipped noise: a block within two noise deviations of the level
            # has lost variance to the clipping, and one of them that does
            # not touch it is a biased (low-variance) survivor: the test is
            # on the block's mean, never on its own variance.  Farther blocks
            # keep their occasional clipped pixel (the variance lost is < 1 %).
            plateau |= d < 2.0
            if clipped is not None:
                clipped.add((sign, ext))
        else:
            # a plateau of the signal: its edges are signal, not noise
            plateau |= touch
    return mu, mu_a, mu_b, v_a, v_b, v, var, r2, r3, plateau
