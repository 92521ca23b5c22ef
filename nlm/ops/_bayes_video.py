"""Private Numba kernel of video NL-Bayes (no validation; see :mod:`nlm.denoisers.video_bayes`).

Space-time NL-Bayes (after Arias and Morel's VNLB) on a sliding window of
frames.  The frames live in ring buffers of ``S`` slots, frame ``f`` in slot
``f % S``: ``noisy`` and ``guide`` are ``(C, S, H, W)`` in the working colour
space, ``num`` ``(C, S, H, W)`` float64 and ``wgt`` ``(S, H, W)`` float32 are
the aggregation's accumulators, ``mask`` ``(S, H - p + 1, W - p + 1)`` marks
the patch positions already estimated as members of a group.  A patch is a
box of ``pt`` frames and ``p x p`` pixels addressed by its first frame and
top-left corner; its vector is ``C * pt * p * p`` values (channel-major, then
frame, row, column).

:func:`video_step` processes the references of one frame ``t``: the grid
positions not yet estimated.  A reference's group is searched in every frame
``qt`` of ``f_lo .. f_hi`` (patch start frames; ``t - R .. t + R`` clipped to
the clip), in the ``(2 rad + 1)^2`` window centred on the reference's
position moved by the motion from ``t`` to ``qt`` (:func:`chain`): the
optical flow between consecutive frames (``fwd[slot(f)]``: from ``f`` to
``f + 1``, ``bwd[slot(f)]``: from ``f`` to ``f - 1``; ``(dx, dy)`` per
pixel) followed from frame to frame, summed in float64 and rounded at the
end, clamped to ``reach`` pixels per axis.

Parallelism: the references of frame ``t`` are cut into cells of ``B x B``
positions, ``B = max(2 (rad + reach) + p, 8)``, processed by colour (the
parities of the cell's row and column), the cells of a colour in parallel,
raster order inside a cell.  A group touches pixels within ``rad + reach +
p - 1`` of its reference, in every frame of the window, so two cells of one
colour never touch the same accumulator or mark: the result does not depend
on the number of threads.  The frames are processed in order, one
:func:`video_step` call each.
"""

import numpy as np
from numba import njit, prange

from nlm._config import JIT, JIT_PARALLEL, defer_blas_probe
from nlm.ops._bayes_kernels import _spread_order, group_estimate
from nlm.ops._bayes_volume import select

defer_blas_probe()  # before any kernel runs: Numba's NumPy support without SciPy (see nlm._config)


@njit(**JIT)
def _round(v):
    """Nearest integer, halves up (``floor(v + 0.5)``)."""
    return int(np.floor(v + 0.5))


@njit(**JIT)
def chain(fwd, bwd, t, qt, ri, rj, half, reach):
    """Integer motion ``(dy, dx)`` of the patch at ``(ri, rj)`` of frame ``t`` to frame ``qt``.

    The flow is read at the patch's centre ``(ri + half, rj + half)`` moved
    by the motion so far (rounded, clamped to the frame), frame after frame
    (``fwd`` towards later frames, ``bwd`` towards earlier ones), summed in
    float64; the sum is rounded (halves up) and clamped to ``[-reach,
    reach]`` (oracle: ``tests/naive_bayes.chain``).
    """
    S = fwd.shape[0]
    H = fwd.shape[1]
    W = fwd.shape[2]
    oy = 0.0
    ox = 0.0
    f = t
    while f != qt:
        y = min(max(_round(ri + half + oy), 0), H - 1)
        x = min(max(_round(rj + half + ox), 0), W - 1)
        if qt > t:
            ox += fwd[f % S, y, x, 0]
            oy += fwd[f % S, y, x, 1]
            f += 1
        else:
            ox += bwd[f % S, y, x, 0]
            oy += bwd[f % S, y, x, 1]
            f -= 1
    dy = min(max(_round(oy), -reach), reach)
    dx = min(max(_round(ox), -reach), reach)
    return dy, dx


@njit(**JIT)
def vsearch(guide, fwd, bwd, t, f_lo, f_hi, ri, rj, p, pt, rad, reach, C_dist, n_sim, n_max, tau, dist, idx, cd,
            cpos, work):
    """The group of the reference patch at ``(t, ri, rj)``: its size; positions in ``idx``.

    Candidates: frame by frame (``f_lo .. f_hi``), the patches of the window
    ``|qi - ci|, |qj - cj| <= rad`` clipped to the frame, ``(ci, cj)`` the
    reference's position moved by :func:`chain` (in frame ``t``: itself),
    clamped to the frame; in raster order.  Distance: mean squared difference
    over the ``pt x p x p`` box and the first ``C_dist`` channels of
    ``guide``.  ``idx``: flat positions ``((qt - f_lo) * Hp + qi) * Wp +
    qj``, the reference first, then the others in candidate order
    (:func:`nlm.ops._bayes_volume.select`; oracle:
    ``tests/naive_bayes.vsearch``).
    """
    S = guide.shape[1]
    Hp = guide.shape[2] - p + 1
    Wp = guide.shape[3] - p + 1
    half = p // 2
    norm = 1.0 / (C_dist * pt * p * p)
    m = 0
    ref = 0
    for qt in range(f_lo, f_hi + 1):
        ci = ri
        cj = rj
        if qt != t:
            dy, dx = chain(fwd, bwd, t, qt, ri, rj, half, reach)
            ci = min(max(ri + dy, 0), Hp - 1)
            cj = min(max(rj + dx, 0), Wp - 1)
        i0 = max(ci - rad, 0)
        i1 = min(ci + rad, Hp - 1)
        j0 = max(cj - rad, 0)
        j1 = min(cj + rad, Wp - 1)
        nj = j1 - j0 + 1
        for qi in range(i0, i1 + 1):
            base = m
            for u in range(nj):
                cd[base + u] = 0.0
                cpos[base + u] = ((qt - f_lo) * Hp + qi) * Wp + j0 + u
            for c in range(C_dist):
                for az in range(pt):
                    sr = (t + az) % S
                    sq = (qt + az) % S
                    for a in range(p):
                        row = guide[c, sq, qi + a]
                        for b in range(p):
                            r = guide[c, sr, ri + a, rj + b]
                            for u in range(nj):
                                d = r - row[j0 + u + b]
                                cd[base + u] += d * d
            if qt == t and qi == ri:
                ref = base + rj - j0
            m += nj
    for u in range(m):
        cd[u] *= norm
    n = select(cd, m, ref, n_sim, n_max, tau, dist, idx, work)
    for g in range(n):
        idx[g] = cpos[idx[g]]
    return n


@njit(**JIT)
def _cellv(noisy, guide, num, wgt, mask, fwd, bwd, t, f_lo, f_hi, r0, r1, c0, c1, rows, cols, p, pt, rad, reach,
           n_sim, n_max, tau, step1, nlf, tmat, beta, flat):
    """The references of frame ``t`` inside the cell ``r0 <= ri < r1``, ``c0 <= rj < c1``, in raster order."""
    C, S, H, W = noisy.shape
    Hp = H - p + 1
    Wp = W - p + 1
    pp = pt * p * p
    D = C * pp
    cap = n_max if not step1 else n_sim
    side = (f_hi - f_lo + 1) * (2 * rad + 1) * (2 * rad + 1)
    cd = np.empty(side)
    work = np.empty(side)
    cpos = np.empty(side, dtype=np.int64)
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
    nomap = np.empty(0)
    c_dist = 1 if step1 else C
    st = t % S
    for ri in rows:
        if ri < r0 or ri >= r1:
            continue
        for rj in cols:
            if rj < c0 or rj >= c1 or mask[st, ri, rj]:
                continue
            n = vsearch(guide, fwd, bwd, t, f_lo, f_hi, ri, rj, p, pt, rad, reach, c_dist, n_sim, cap,
                        tau if not step1 else -1.0, dist, idx, cd, cpos, work)
            for g in range(n):
                q = idx[g]
                qj = q % Wp
                q //= Wp
                qi = q % Hp
                sq = f_lo + q // Hp
                for c in range(C):
                    k = c * pp
                    for az in range(pt):
                        s = (sq + az) % S
                        for a in range(p):
                            for b in range(p):
                                Y[k, g] = noisy[c, s, qi + a, qj + b]
                                if not step1:
                                    G[k, g] = guide[c, s, qi + a, qj + b]
                                k += 1
            group_estimate(Y, G, n, C, pp, step1, nlf, tmat, beta, flat, M, dvar, mean, gm, Z, X, nomap)
            for g in range(n):
                q = idx[g]
                qj = q % Wp
                q //= Wp
                qi = q % Hp
                sq = f_lo + q // Hp
                mask[sq % S, qi, qj] = True
                k = 0
                for az in range(pt):
                    s = (sq + az) % S
                    for a in range(p):
                        for b in range(p):
                            wgt[s, qi + a, qj + b] += 1.0
                            for c in range(C):
                                num[c, s, qi + a, qj + b] += X[c * pp + k, g]
                            k += 1


@njit(**JIT_PARALLEL)
def video_step(noisy, guide, num, wgt, mask, fwd, bwd, t, f_lo, f_hi, rows, cols, p, pt, rad, reach, n_sim, n_max,
               tau, step1, nlf, tmat, beta, flat):
    """The references of frame ``t`` (grid ``rows`` x ``cols``, those not marked in ``mask``).

    Adds every group's estimates to ``num``/``wgt`` and marks its members in
    ``mask`` (the ring buffers; see the module's docstring).  ``f_lo``,
    ``f_hi``: the first and last patch start frames searched (every frame of
    their patches is in the ring).  Step 1 (``step1``): groups of the
    ``n_sim`` nearest on the luminance of ``guide`` (= ``noisy``), each
    channel estimated on its own; step 2: the ``n_sim`` nearest on all
    channels of ``guide`` (the previous estimate) plus those closer than
    ``tau``, up to ``n_max``, all channels jointly
    (:func:`nlm.ops._bayes_kernels.group_estimate`).
    """
    H = noisy.shape[2]
    W = noisy.shape[3]
    Hp = H - p + 1
    Wp = W - p + 1
    band = max(2 * (rad + reach) + p, 8)
    nb = (Hp - 1) // band + 1
    nk = (Wp - 1) // band + 1
    for colour in range(4):
        fy = colour // 2
        fx = colour % 2
        nx = (nk - fx + 1) // 2
        ncell = ((nb - fy + 1) // 2) * nx
        order = _spread_order(ncell)
        for u in prange(ncell):
            b = fy + 2 * (order[u] // nx)
            k = fx + 2 * (order[u] % nx)
            _cellv(noisy, guide, num, wgt, mask, fwd, bwd, t, f_lo, f_hi, b * band, (b + 1) * band, k * band,
                   (k + 1) * band, rows, cols, p, pt, rad, reach, n_sim, n_max, tau, step1, nlf, tmat, beta, flat)
