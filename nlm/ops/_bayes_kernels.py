"""Private Numba kernels of NL-Bayes (no validation; see :mod:`nlm.denoisers.bayes`).

Layout: images are channel-first ``(C, H, W)`` arrays in the working colour
space (an orthonormal transform of the input channels, ``tmat`` rows are the
working channels).  Patches are addressed by their top-left corner; a patch
vector is ``C * p * p`` values, channel-major.

One step (:func:`bayes_step`) visits reference patches on a grid of the given
stride, skipping every position already estimated as a member of an earlier
group, and for each:

1. computes the distance (mean squared difference) from the reference to every
   patch in its search window, on ``guide`` (step 1: only the first working
   channel, the luminance; step 2: all channels), and keeps the ``n_sim``
   nearest (step 2 also every further one closer than ``tau``, up to
   ``n_max``);
2. estimates the group (:func:`group_estimate`);
3. adds every estimated patch to the numerator/weight images and marks its
   position as done.

Parallelism and tiles: the reference positions are cut into cells of
``band x band`` (a fixed size, independent of the thread count, with
``band >= 2 * radius + p``), anchored at the image's position ``(0, 0)``
(a block of the image is told its origin ``(oy, ox)``).  The cells are
processed by colour, the parities of their row and column in the image:
(even, even), (even, odd), (odd, even), (odd, odd); the cells of one colour
in parallel, each in raster order.  Two cells of one colour never touch the
same pixels of the accumulators nor read each other's marks in the mask, and
the order of every floating-point addition is fixed, so the result does not
depend on the number of threads.  A cell's skipped positions depend only on
the cells of earlier colours around it (at most one cell away along the
rows, three along the columns, chained), so a block with a margin
(``nlm.denoisers.bayes_passes.tile_margin``) computes its interior exactly as the
whole image does.
"""

import numpy as np
from numba import njit

from nlm._config import JIT, defer_blas_probe
from nlm.ops._simd import _wide_vectors
from nlm.ops._threads import parallel_for

defer_blas_probe()  # before any kernel runs: Numba's NumPy support without SciPy (see nlm._config)


@njit(**JIT)
def nlf_var(v, a, b, c):
    """Noise level function at ``v`` (negative values count as 0)."""
    if v < 0.0:
        v = 0.0
    return a + (b + c * v) * v


@njit(**JIT)
def level(u, nlf):
    """Noise variance at the (input channel) value ``u``.

    ``nlf``: ``(a, b, c)`` of the level function, optionally followed by a
    table of the clipped observation's variance: ``t0``, ``s`` and ``K + 1``
    variances at ``t0, t0 + 1/s, ..., t0 + K/s``, interpolated linearly in
    ``u`` clamped to the table's span.
    """
    if nlf.shape[0] == 3:
        return nlf_var(u, nlf[0], nlf[1], nlf[2])
    K = nlf.shape[0] - 6
    z = (u - nlf[3]) * nlf[4]
    if z <= 0.0:
        return nlf[5]
    if z >= K:
        return nlf[5 + K]
    i = int(z)
    w = z - i
    return (1.0 - w) * nlf[5 + i] + w * nlf[6 + i]


@njit(**JIT)
def lower_gram(A, rows, cols, out):
    """``out[k, l] = sum_i A[i, k] A[i, l]`` for ``l <= k < cols`` (the lower triangle of ``A^T A``).

    The sums run over the rows ``i < rows`` in order, the pairs ``l`` of a
    row side by side through views indexed from 0 (LLVM vectorises them).
    The upper triangle is left as it was.
    """
    for k in range(cols):
        ok = out[k, :k + 1]
        for l in range(k + 1):
            ok[l] = 0.0
        for i in range(rows):
            a = A[i, k]
            ai = A[i, :k + 1]
            for l in range(k + 1):
                ok[l] += a * ai[l]


@njit(**JIT)
def cholesky(A, d):
    """In-place lower Cholesky factor of the leading ``d x d`` block of ``A``.

    A non-positive pivot is replaced by a tiny positive one (the matrix is a
    covariance plus a ridge, so this only happens for degenerate groups).
    """
    for j in range(d):
        s = A[j, j]
        for k in range(j):
            s -= A[j, k] * A[j, k]
        if s <= 1e-300:
            s = 1e-300
        ljj = np.sqrt(s)
        A[j, j] = ljj
        for i in range(j + 1, d):
            t = A[i, j]
            for k in range(j):
                t -= A[i, k] * A[j, k]
            A[i, j] = t / ljj


@njit(**JIT)
def group_estimate(Y, G, n, C, pp, step1, nlf, tmat, beta, flat, M, dvar, mean, gm, Z, X, pvar):
    """Bayes estimate of one group (oracle: ``tests/naive_bayes.group_estimate``).

    Parameters
    ----------
    Y : (C * pp, n_max) float64
        Noisy patches as columns (columns ``:n``), channel-major rows.
    G : (C * pp, n_max) float64, C-contiguous
        Guide patches (step 2: the basic estimate; step 1: ignored);
        overwritten (scratch of the covariance).
    step1 : bool
        Step 1: every channel on its own (``d = pp``), covariance of the noisy
        group ``C_Y``, ``X = m + (C_Y - beta D) C_Y^-1 (Y - m)``.  Step 2: all
        channels jointly (``d = C pp``), covariance ``C_B`` of the guide group,
        ``X = m_Y + C_B (C_B + beta D)^-1 (Y - m_Y)``.
    nlf : (3,) or (6 + K,) float64
        ``a, b, c`` of the noise level function (input channel units),
        optionally followed by a table of the clipped observation's variance
        (see :func:`level`).
    tmat : (C, C) float64
        Orthonormal colour transform (working channel ``k`` =
        ``sum_j tmat[k, j] input_j``).
    flat : float
        Flat-area threshold ``gamma``: when the variance of all the group's
        values (per channel in step 1) is at most ``gamma`` times the mean
        noise variance, every patch becomes the group's mean value.
    M, dvar, mean, gm, Z : scratch arrays
    X : (C * pp, n_max) float64
        Output estimates (columns ``:n``).
    pvar : (pp,) or (0,) float64
        With a noise map: the noise variance at each patch pixel (the map's
        mean over the group's patches), the same in every working channel
        (the colour transform is orthonormal); ``D`` is then ``diag(pvar)``.
        Empty: ``D`` from the level function.

    Notes
    -----
    The noise covariance is ``D = diag(NLF(x_k))`` (or the table's variance)
    with ``x_k`` the group's
    mean at patch pixel ``k`` (step 2: the guide's), taken back to the input
    channels: working channel ``k`` has variance ``sum_j tmat[k, j]^2
    NLF(input_j)``.  Both estimates are written ``x_i = y_i - beta D M^-1
    (y_i - m)`` with ``M = C_Y`` (step 1) or ``C_B + beta D`` (step 2) plus a
    tiny ridge (``1e-6`` of the mean noise variance plus ``1e-10`` of the
    mean of ``M``'s diagonal, which keeps the factorisation stable when the
    noise is far below the signal), solved by Cholesky factorisation for all
    columns at once.  Where ``D`` is 0 (noise-free values) the estimate is
    the noisy value itself.
    """
    D = C * pp
    for k in range(D):
        s = 0.0
        for i in range(n):
            s += Y[k, i]
        mean[k] = s / n
        if not step1:
            s = 0.0
            for i in range(n):
                s += G[k, i]
            gm[k] = s / n
        else:
            gm[k] = mean[k]
    for q in range(pp):
        for c in range(C):
            if pvar.shape[0] > 0:
                dvar[c * pp + q] = pvar[q]
                continue
            v = 0.0
            for j in range(C):
                u = 0.0  # input channel j at this pixel
                for cc in range(C):
                    u += tmat[cc, j] * gm[cc * pp + q]
                v += tmat[c, j] * tmat[c, j] * level(u, nlf)
            dvar[c * pp + q] = v
    nblocks = C if step1 else 1
    d = pp if step1 else D
    for blk in range(nblocks):
        o = blk * d
        tot = 0.0
        tot2 = 0.0
        nv = 0.0
        for k in range(d):
            nv += dvar[o + k]
            for i in range(n):
                t = Y[o + k, i]
                tot += t
                tot2 += t * t
        cnt = n * d
        mu = tot / cnt
        var = tot2 / cnt - mu * mu
        if n < 2 or var <= flat * nv / d:
            for k in range(d):
                for i in range(n):
                    X[o + k, i] = mu
            continue
        # centred guide (step 2) or noisy (step 1) group -> covariance
        for k in range(d):
            if step1:
                for i in range(n):
                    Z[k, i] = Y[o + k, i] - mean[o + k]
            else:
                for i in range(n):
                    Z[k, i] = G[o + k, i] - gm[o + k]
        # covariance: row k of the lower triangle summed over the patches i in
        # order, the pairs l <= k side by side (vectorised), from the centred
        # group transposed into G's storage (no longer needed)
        Zt = G.reshape(G.size)[:n * d].reshape((n, d))
        for i in range(n):
            for k in range(d):
                Zt[i, k] = Z[k, i]
        inv = 1.0 / (n - 1)
        lower_gram(Zt, n, d, M)
        for k in range(d):
            mk = M[k, :k + 1]
            for l in range(k + 1):
                s = mk[l] * inv
                M[k, l] = s
                M[l, k] = s
        if not step1:
            for k in range(d):
                M[k, k] += beta * dvar[o + k]
        tr = 0.0
        for k in range(d):
            tr += M[k, k]
        ridge = 1e-6 * nv / d + 1e-10 * tr / d + 1e-30
        for k in range(d):
            M[k, k] += ridge
        cholesky(M, d)
        # Z <- M^-1 (Y - m): forward then backward substitution on all columns
        for k in range(d):
            for i in range(n):
                Z[k, i] = Y[o + k, i] - mean[o + k]
        for r in range(d):
            for k in range(r):
                lrk = M[r, k]
                for i in range(n):
                    Z[r, i] -= lrk * Z[k, i]
            inv_d = 1.0 / M[r, r]
            for i in range(n):
                Z[r, i] *= inv_d
        for r in range(d - 1, -1, -1):
            for k in range(r + 1, d):
                lkr = M[k, r]
                for i in range(n):
                    Z[r, i] -= lkr * Z[k, i]
            inv_d = 1.0 / M[r, r]
            for i in range(n):
                Z[r, i] *= inv_d
        for k in range(d):
            f = beta * dvar[o + k]
            if f == 0.0:
                for i in range(n):
                    X[o + k, i] = Y[o + k, i]
                continue
            for i in range(n):
                X[o + k, i] = Y[o + k, i] - f * Z[k, i]


@njit(**JIT)
def kth_smallest(vals, m, k, work):
    """The ``k``-th smallest (0-based) of ``vals[:m]``: quickselect on a copy in ``work``."""
    for i in range(m):
        work[i] = vals[i]
    lo = 0
    hi = m - 1
    while lo < hi:
        a = work[lo]
        b = work[(lo + hi) // 2]
        c = work[hi]
        if a > b:
            a, b = b, a
        if b > c:
            b = c
        pivot = a if a > b else b  # median of the three
        i = lo
        j = hi
        while i <= j:
            while work[i] < pivot:
                i += 1
            while work[j] > pivot:
                j -= 1
            if i <= j:
                t = work[i]
                work[i] = work[j]
                work[j] = t
                i += 1
                j -= 1
        # work[lo:j+1] <= pivot, work[i:hi+1] >= pivot, values strictly between equal pivot
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return pivot
    return work[k]


@njit(**JIT)
def kth_select(vals, m, k, work):
    """The ``k``-th smallest (0-based) of ``vals[:m]`` (:func:`kth_smallest`'s value), faster for small ``k``.

    When ``k`` is small against ``m``, a threshold comes from a sample (every
    8th value; its rank chosen so that about ``2 (k + 1)`` values are
    expected at or below it); when at least ``k + 1`` values are at or below
    it, they are a prefix of the sorted values, so their ``k``-th smallest is
    the answer, found by quickselect among them only.  Otherwise (or for a
    large ``k``): quickselect on all ``m`` values.  ``work``: scratch of
    ``m`` values.
    """
    if m >= 512 and 16 * (k + 1) <= m:
        ms = 0
        for i in range(0, m, 8):
            work[ms] = vals[i]
            ms += 1
        thr = kth_smallest(work, ms, min(ms - 1, (k + 1) // 4 + 2), work)
        cnt = 0
        for i in range(m):  # branch-free: vectorised
            cnt += vals[i] <= thr
        if cnt > k:
            c = 0
            for i in range(m):
                if vals[i] <= thr:
                    work[c] = vals[i]
                    c += 1
            return kth_smallest(work, c, k, work)
    return kth_smallest(vals, m, k, work)


@njit(**JIT)
def search(guide, ri, rj, p, radius, C_dist, n_sim, n_max, tau, dist, idx, cd, work, pvalid):
    """The group of the reference patch at ``(ri, rj)``: its size, positions and distances.

    Distance: mean squared difference over the ``p x p`` patch and the first
    ``C_dist`` channels of ``guide``, to every patch of the window
    ``|qi - ri|, |qj - rj| <= radius`` clipped to the image (oracle:
    ``tests/naive_bayes.search``).  The group is the reference and the
    ``n - 1`` other patches nearest to it (ties: raster order), with ``n =
    max(n_sim, min(n_max, 1 + #{others at distance <= tau}))``, at most the
    window's size.  Written to ``dist``/``idx`` (flat positions ``qi * W +
    qj``, ``W``: number of patch columns): the reference first, then the
    others in raster order.  ``cd``, ``work``: scratch of ``(2 radius + 1)^2``
    values.  Selection by quickselect (linear time), not by sorting.
    ``pvalid``: (patch rows, patch columns) bool, the patches without a
    masked pixel (only those are candidates), or (0, 0): every patch.
    """
    _wide_vectors()
    H = guide.shape[1] - p + 1
    W = guide.shape[2] - p + 1
    i0 = max(ri - radius, 0)
    i1 = min(ri + radius, H - 1)
    j0 = max(rj - radius, 0)
    j1 = min(rj + radius, W - 1)
    nj = j1 - j0 + 1
    m = (i1 - i0 + 1) * nj
    norm = 1.0 / (C_dist * p * p)
    for qi in range(i0, i1 + 1):
        # one window row: every candidate's sum in the fixed order (c, a, b), the
        # candidates side by side; through views indexed from 0, so that LLVM,
        # without index wraparound to check, vectorises the loop over them
        acc = cd[(qi - i0) * nj:(qi - i0 + 1) * nj]
        for t in range(nj):
            acc[t] = 0.0
        for c in range(C_dist):
            for a in range(p):
                for b in range(p):
                    r = guide[c, ri + a, rj + b]
                    row = guide[c, qi + a, j0 + b:j0 + b + nj]
                    for t in range(nj):
                        u = r - row[t]
                        acc[t] += u * u
    close = 0
    masked = pvalid.shape[0] > 0
    m_ok = m
    if masked:
        for t in range(m):
            cd[t] *= norm
            if not pvalid[i0 + t // nj, j0 + t % nj]:
                cd[t] = np.inf  # never a candidate
                m_ok -= 1
            if cd[t] <= tau:
                close += 1
    else:
        for t in range(m):  # branch-free: vectorised
            cd[t] *= norm
            close += cd[t] <= tau
    ref = (ri - i0) * nj + (rj - j0)
    if cd[ref] <= tau:
        close -= 1
    cd[ref] = np.inf  # never selected among the others
    n = max(n_sim, min(n_max, 1 + close))
    n = min(n, m_ok)
    dist[0] = 0.0
    idx[0] = ri * W + rj
    k = n - 1
    if k == 0:
        return 1
    cnt = 1
    if k == m_ok - 1:  # every other (valid) patch
        for t in range(m):
            if t != ref and cd[t] < np.inf:
                dist[cnt] = cd[t]
                idx[cnt] = (i0 + t // nj) * W + j0 + t % nj
                cnt += 1
        return n
    v = kth_select(cd, m, k - 1, work)
    ties = k
    for t in range(m):  # branch-free: vectorised
        ties -= cd[t] < v
    for t in range(m):
        d = cd[t]
        if d < v or (d == v and ties > 0):
            if d == v:
                ties -= 1
            dist[cnt] = d
            idx[cnt] = (i0 + t // nj) * W + j0 + t % nj
            cnt += 1
    return n


@njit(**JIT)
def _band(noisy, guide, num, wgt, mask, r0, r1, rows, cols, p, radius, n_sim, n_max, tau,
          step1, nlf, tmat, beta, flat, vmap, pvalid, c0, c1):
    C = noisy.shape[0]
    pp = p * p
    D = C * pp
    cap = n_max if not step1 else n_sim
    side = 2 * radius + 1
    cd = np.empty(side * side)
    work = np.empty(side * side)
    dist = np.empty(cap)
    idx = np.empty(cap, dtype=np.int64)
    Y = np.empty((D, cap))
    G = np.empty((D, cap))
    X = np.empty((D, cap))
    dd = pp if step1 else D
    M = np.empty((dd, dd))
    dvar = np.empty(D)
    mean = np.empty(D)
    gm = np.empty(D)
    Z = np.empty((dd, cap))
    c_dist = 1 if step1 else C
    pvar = np.empty(pp if vmap.shape[0] > 0 else 0)
    masked = pvalid.shape[0] > 0
    for ri in rows:
        if ri < r0 or ri >= r1:
            continue
        for rj in cols:
            if rj < c0 or rj >= c1 or mask[ri, rj] or (masked and not pvalid[ri, rj]):
                continue
            _group(noisy, guide, num, wgt, mask, ri, rj, p, radius, n_sim, cap, tau, step1, nlf, tmat, beta, flat,
                   vmap, pvalid, c_dist, cd, work, dist, idx, Y, G, X, M, dvar, mean, gm, Z, pvar)
    if masked:
        # with a mask, valid pixels that no valid reference of the grid reached
        # (next to masked ones) get groups of their own: any valid patch still
        # holding an uncovered pixel becomes a reference, in raster order
        for ri in range(max(r0, 0), min(r1, mask.shape[0])):
            for rj in range(max(c0, 0), min(c1, mask.shape[1])):
                if mask[ri, rj] or not pvalid[ri, rj]:
                    continue
                bare = False
                for a in range(p):
                    for b in range(p):
                        if wgt[ri + a, rj + b] == 0:
                            bare = True
                if bare:
                    _group(noisy, guide, num, wgt, mask, ri, rj, p, radius, n_sim, cap, tau, step1, nlf, tmat, beta,
                           flat, vmap, pvalid, c_dist, cd, work, dist, idx, Y, G, X, M, dvar, mean, gm, Z, pvar)


@njit(**JIT)
def _group(noisy, guide, num, wgt, mask, ri, rj, p, radius, n_sim, cap, tau, step1, nlf, tmat, beta, flat, vmap,
           pvalid, c_dist, cd, work, dist, idx, Y, G, X, M, dvar, mean, gm, Z, pvar):
    """One reference patch: its group, the group's estimate, the aggregation (see :func:`bayes_step`)."""
    C = noisy.shape[0]
    pp = p * p
    Wp = noisy.shape[2] - p + 1
    n = search(guide, ri, rj, p, radius, c_dist, n_sim, cap, tau if not step1 else -1.0,
               dist, idx, cd, work, pvalid)
    for g in range(n):
        qi = idx[g] // Wp
        qj = idx[g] % Wp
        for c in range(C):
            for a in range(p):
                for b in range(p):
                    k = c * pp + a * p + b
                    Y[k, g] = noisy[c, qi + a, qj + b]
                    if not step1:
                        G[k, g] = guide[c, qi + a, qj + b]
    if pvar.shape[0] > 0:
        # the group's noise variance per patch pixel: the map's mean over its patches
        for a in range(p):
            for b in range(p):
                s = 0.0
                for g in range(n):
                    s += vmap[idx[g] // Wp + a, idx[g] % Wp + b]
                pvar[a * p + b] = s / n
    group_estimate(Y, G, n, C, pp, step1, nlf, tmat, beta, flat, M, dvar, mean, gm, Z, X, pvar)
    for g in range(n):
        qi = idx[g] // Wp
        qj = idx[g] % Wp
        mask[qi, qj] = True
        for a in range(p):
            for b in range(p):
                wgt[qi + a, qj + b] += 1.0
                for c in range(C):
                    num[c, qi + a, qj + b] += X[c * pp + a * p + b, g]


@njit(**JIT)
def _spread_order(n):
    """0 .. n - 1 in bit-reversed (van der Corput) order.

    Any contiguous run of it is spread evenly over ``0 .. n - 1``: ``prange``
    hands each thread a contiguous run of iterations, so in this order every
    thread gets bands from all over the image (work differs between flat and
    textured areas), whatever the thread count.
    """
    bits = 0
    while (1 << bits) < n:
        bits += 1
    out = np.empty(n, dtype=np.int64)
    pos = 0
    for k in range(1 << bits):
        r = 0
        for i in range(bits):
            r |= ((k >> i) & 1) << (bits - 1 - i)
        if r < n:
            out[pos] = r
            pos += 1
    return out


def bayes_step(noisy, guide, rows, cols, p, radius, n_sim, n_max, tau, step1, nlf, tmat, beta, flat, band,
               vmap, pvalid, oy=0, ox=0):
    """One NL-Bayes step; returns the aggregated estimate (``noisy``'s dtype).

    ``vmap``: (H, W) float64 noise variance map, or (0, 0) (the level
    function ``nlf`` then gives the covariance); ``pvalid``: (H - p + 1, W -
    p + 1) bool, the patches without a masked pixel, or (0, 0) (no mask).
    With a mask, only valid patches are references or group members, and
    the valid patches still holding a pixel no group covered become
    references after the grid (in each cell, raster order).

    ``rows``/``cols``: the reference grid (sorted, covering ``0`` and the last
    patch position of the image), in block coordinates.  Pixels no group
    covers (none, with a valid grid) keep their noisy value.

    ``oy``, ``ox``: the position of the block's ``(0, 0)`` in the image (0 for
    the whole image).  Threads take cells of ``band x band`` reference
    positions (``band`` at least ``2 radius + p``) anchored at the image's
    ``(0, 0)``, one colour (row and column parities in the image) after the
    other: two cells processed at once are a cell apart, so the groups of
    one never reach the pixels or the mask the other writes, and the result
    does not depend on the order or the thread count.  Within a colour the
    cells are dealt in :func:`_spread_order`, one at a time to whichever
    thread is free (:func:`nlm.ops._threads.parallel_for`: the compiled
    :func:`_band` releases the GIL): cells differ in work (flat or textured,
    whole or cut by the border), and a 256 x 256 image has only 4 to 9 cells
    of a colour in steps 2 and 3, so a fixed split (``prange``) left one of
    two threads idle for 10-15 % of such a step.
    """
    C, H, W = noisy.shape
    num = np.zeros((C, H, W))
    out = np.zeros_like(noisy)
    wgt = out[C - 1]  # the weights (whole counts: exact in any float) in the result's last channel, written last
    mask = np.zeros((H - p + 1, W - p + 1), dtype=np.bool_)

    def cell(r0, r1, c0, c1):
        _band(noisy, guide, num, wgt, mask, r0, r1, rows, cols, p, radius, n_sim, n_max, tau, step1, nlf, tmat,
              beta, flat, vmap, pvalid, c0, c1)

    deal_cells(H, W, p, band, oy, ox, cell)
    _normalise(noisy, num, out)
    return out


def deal_cells(H, W, p, band, oy, ox, cell):
    """Run ``cell(r0, r1, c0, c1)`` on every ``band x band`` cell of reference positions that reaches the block.

    The cells are the image's (``oy``, ``ox``: the block's origin in it;
    bounds in the block's indices, possibly outside it), in four colours by
    row and column parity; the cells of one colour, which never touch the
    same pixels, are dealt in :func:`_spread_order`, one at a time to
    whichever thread is free (:func:`nlm.ops._threads.parallel_for`: ``cell``
    should release the GIL), and a colour starts when the previous one is
    done.  Shared by :func:`bayes_step` and
    :func:`nlm.ops._ridge_kernels.ridge_step`.
    """
    b0 = oy // band  # cells of the image (global indices) that reach this block
    nb = (oy + H - p) // band + 1 - b0
    k0 = ox // band
    nk = (ox + W - p) // band + 1 - k0
    for colour in range(4):
        fy = (colour // 2 - b0) % 2  # first local cell row / column of this colour
        fx = (colour % 2 - k0) % 2
        nx = (nk - fx + 1) // 2
        ncell = ((nb - fy + 1) // 2) * nx
        order = _spread_order(ncell)

        def one(t, fy=fy, fx=fx, nx=nx, order=order):
            b = b0 + fy + 2 * (int(order[t]) // nx)
            k = k0 + fx + 2 * (int(order[t]) % nx)
            cell(b * band - oy, (b + 1) * band - oy, k * band - ox, (k + 1) * band - ox)

        parallel_for(one, ncell)


@njit(**JIT)
def _normalise(noisy, num, out):
    """``out = num / weight`` where a pixel has a weight, else the noisy value; the weight is ``out``'s last channel."""
    C, H, W = noisy.shape
    wgt = out[C - 1]
    for i in range(H):
        for c in range(C):  # channel C - 1 (the weights) last: a pixel's weight is read before it is replaced
            for j in range(W):
                w = wgt[i, j]
                if w > 0:
                    out[c, i, j] = num[c, i, j] / w
                else:
                    out[c, i, j] = noisy[c, i, j]
