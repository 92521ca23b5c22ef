"""Private Numba kernels of NL-Bayes on volumes (no validation; see :mod:`nlm.denoisers.bayes`).

The 3-D twin of :mod:`nlm.ops._bayes_kernels`: volumes are channel-first
``(C, Z, H, W)`` arrays in the working colour space; patches are boxes of
``psz = (pz, py, px)`` voxels addressed by their first corner, a patch vector
is ``C * pz * py * px`` values (channel-major, then raster order); the search
window is the box ``|q_a - r_a| <= rad[a]`` on every axis, clipped to the
volume.  The group estimate (:func:`nlm.ops._bayes_kernels.group_estimate`)
does not depend on the patch's shape and is shared with the 2-D kernels.

Cells and colours (the design of the exact tiled 2-D kernel, in 3-D): the
patch positions are cut into cells of ``cell = (cz, cy, cx)`` positions
(``cell[a] >= 2 rad[a] + psz[a]``) anchored at the volume's origin (a block
of a larger volume passes its ``origin``).  The cells are processed by
colour, the parities of their three indices in the volume, colour ``4 pz +
2 py + px`` from 0 to 7; the cells of one colour in parallel, each in raster
order.  Two cells of one colour are at least a cell apart along some axis,
so they never touch the same voxels of the accumulators nor read each
other's marks, and the order of every floating-point addition is fixed: the
result does not depend on the number of threads.  A cell's skipped positions
depend only on the cells of earlier colours around it (chains of at most 1 /
3 / 7 cells along the three axes), so a block with a margin
(``nlm.denoisers.bayes_passes.volume_margin``) computes its interior exactly as the
whole volume does.
"""

import numpy as np
from numba import njit, prange

from nlm._config import JIT, JIT_PARALLEL, defer_blas_probe
from nlm.ops._bayes_kernels import _spread_order, group_estimate, kth_smallest

defer_blas_probe()  # before any kernel runs: Numba's NumPy support without SciPy (see nlm._config)


@njit(**JIT)
def select(cd, m, ref, n_sim, n_max, tau, dist, sel, work):
    """The group among the ``m`` window distances ``cd``: its size; ``sel``/``dist`` its window indices.

    ``ref``: the reference's index.  The reference first, then the ``n - 1``
    other nearest (ties: window order) in window order, ``n = max(n_sim,
    min(n_max, 1 + #{others at distance <= tau}))``, at most ``m``.  ``cd``
    is modified (the reference's entry becomes ``inf``).  Entries of ``inf``
    (masked patches, :func:`search3`) are never chosen: ``n`` is at most the
    number of finite ones.
    """
    close = 0
    m_ok = m  # candidates (a masked patch's distance is inf: never one)
    for t in range(m):
        d = cd[t]
        if d <= tau:
            close += 1
        elif d == np.inf:
            m_ok -= 1
    if cd[ref] <= tau:
        close -= 1
    cd[ref] = np.inf
    n = max(n_sim, min(n_max, 1 + close))
    n = min(n, m_ok)
    dist[0] = 0.0
    sel[0] = ref
    k = n - 1
    if k == 0:
        return 1
    cnt = 1
    if k == m_ok - 1:
        for t in range(m):
            if cd[t] < np.inf:
                dist[cnt] = cd[t]
                sel[cnt] = t
                cnt += 1
        return n
    v = kth_smallest(cd, m, k - 1, work)
    ties = k
    for t in range(m):
        if cd[t] < v:
            ties -= 1
    for t in range(m):
        d = cd[t]
        if d < v or (d == v and ties > 0):
            if d == v:
                ties -= 1
            dist[cnt] = d
            sel[cnt] = t
            cnt += 1
    return n


@njit(**JIT)
def search3(guide, rz, ri, rj, psz, rad, C_dist, n_sim, n_max, tau, dist, idx, cd, work, pvalid):
    """The group of the reference patch at ``(rz, ri, rj)``: its size; positions in ``idx``.

    Distance: mean squared difference over the patch and the first ``C_dist``
    channels of ``guide``, to every patch of the window (oracle:
    ``tests/naive_bayes.search3``).  ``idx``: flat positions ``(qz * Hp + qi)
    * Wp + qj`` (``Hp, Wp``: patch positions per row / column), the
    reference first, then the others in raster order (see :func:`select`).
    ``pvalid``: (patch positions per axis) bool, the patches without a
    masked voxel (only those are candidates), or (0, 0, 0): every patch.
    """
    pz, py, px = psz[0], psz[1], psz[2]
    Zp = guide.shape[1] - pz + 1
    Hp = guide.shape[2] - py + 1
    Wp = guide.shape[3] - px + 1
    z0 = max(rz - rad[0], 0)
    z1 = min(rz + rad[0], Zp - 1)
    i0 = max(ri - rad[1], 0)
    i1 = min(ri + rad[1], Hp - 1)
    j0 = max(rj - rad[2], 0)
    j1 = min(rj + rad[2], Wp - 1)
    ni = i1 - i0 + 1
    nj = j1 - j0 + 1
    m = (z1 - z0 + 1) * ni * nj
    norm = 1.0 / (C_dist * pz * py * px)
    for qz in range(z0, z1 + 1):
        for qi in range(i0, i1 + 1):
            base = ((qz - z0) * ni + qi - i0) * nj
            for t in range(nj):
                cd[base + t] = 0.0
            for c in range(C_dist):
                for az in range(pz):
                    for a in range(py):
                        row = guide[c, qz + az, qi + a]
                        for b in range(px):
                            r = guide[c, rz + az, ri + a, rj + b]
                            for t in range(nj):
                                u = r - row[j0 + t + b]
                                cd[base + t] += u * u
    for t in range(m):
        cd[t] *= norm
    if pvalid.shape[0] > 0:
        for qz in range(z0, z1 + 1):
            for qi in range(i0, i1 + 1):
                base = ((qz - z0) * ni + qi - i0) * nj
                for t in range(nj):
                    if not pvalid[qz, qi, j0 + t]:
                        cd[base + t] = np.inf  # never a candidate
    ref = ((rz - z0) * ni + ri - i0) * nj + rj - j0
    n = select(cd, m, ref, n_sim, n_max, tau, dist, idx, work)
    for g in range(n):
        t = idx[g]
        tz = t // (ni * nj)
        t -= tz * ni * nj
        idx[g] = ((z0 + tz) * Hp + i0 + t // nj) * Wp + j0 + t % nj
    return n


@njit(**JIT)
def _cell3(noisy, guide, num, wgt, mask, lo, hi, zs, rows, cols, psz, rad, n_sim, n_max, tau,
           step1, nlf, tmat, beta, flat, vmap, pvalid):
    """The references of the grid inside the cell ``lo[a] <= r_a < hi[a]``, in raster order.

    With a mask (``pvalid`` not empty), then every valid patch of the cell
    still holding a voxel that no group covered, in raster order.
    """
    C = noisy.shape[0]
    pz, py, px = psz[0], psz[1], psz[2]
    pp = pz * py * px
    D = C * pp
    cap = n_max if not step1 else n_sim
    side = (2 * rad[0] + 1) * (2 * rad[1] + 1) * (2 * rad[2] + 1)
    cd = np.empty(side)
    work = np.empty(side)
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
    pvar = np.empty(pp if vmap.shape[0] > 0 else 0)  # empty: D from the level function
    Z = np.empty((dd, cap))
    masked = pvalid.shape[0] > 0
    for rz in zs:
        if rz < lo[0] or rz >= hi[0]:
            continue
        for ri in rows:
            if ri < lo[1] or ri >= hi[1]:
                continue
            for rj in cols:
                if rj < lo[2] or rj >= hi[2] or mask[rz, ri, rj] or (masked and not pvalid[rz, ri, rj]):
                    continue
                _group3(noisy, guide, num, wgt, mask, rz, ri, rj, psz, rad, n_sim, cap, tau, step1, nlf, tmat,
                        beta, flat, vmap, pvalid, cd, work, dist, idx, Y, G, X, M, dvar, mean, gm, Z, pvar)
    if masked:
        # valid voxels that no valid reference of the grid reached (next to
        # masked ones) get groups of their own: any valid patch still holding
        # an uncovered voxel becomes a reference, in raster order
        for rz in range(max(lo[0], 0), min(hi[0], mask.shape[0])):
            for ri in range(max(lo[1], 0), min(hi[1], mask.shape[1])):
                for rj in range(max(lo[2], 0), min(hi[2], mask.shape[2])):
                    if mask[rz, ri, rj] or not pvalid[rz, ri, rj]:
                        continue
                    bare = False
                    for az in range(pz):
                        for a in range(py):
                            for b in range(px):
                                if wgt[rz + az, ri + a, rj + b] == 0:
                                    bare = True
                    if bare:
                        _group3(noisy, guide, num, wgt, mask, rz, ri, rj, psz, rad, n_sim, cap, tau, step1, nlf,
                                tmat, beta, flat, vmap, pvalid, cd, work, dist, idx, Y, G, X, M, dvar, mean, gm, Z,
                                pvar)


@njit(**JIT)
def _group3(noisy, guide, num, wgt, mask, rz, ri, rj, psz, rad, n_sim, cap, tau, step1, nlf, tmat, beta, flat,
            vmap, pvalid, cd, work, dist, idx, Y, G, X, M, dvar, mean, gm, Z, pvar):
    """One reference patch: its group, the group's estimate, the aggregation (see :func:`bayes_step3`)."""
    C = noisy.shape[0]
    pz, py, px = psz[0], psz[1], psz[2]
    pp = pz * py * px
    Hp = noisy.shape[2] - py + 1
    Wp = noisy.shape[3] - px + 1
    c_dist = 1 if step1 else C
    n = search3(guide, rz, ri, rj, psz, rad, c_dist, n_sim, cap, tau if not step1 else -1.0,
                dist, idx, cd, work, pvalid)
    for g in range(n):
        q = idx[g]
        qj = q % Wp
        q //= Wp
        qi = q % Hp
        qz = q // Hp
        for c in range(C):
            k = c * pp
            for az in range(pz):
                for a in range(py):
                    for b in range(px):
                        Y[k, g] = noisy[c, qz + az, qi + a, qj + b]
                        if not step1:
                            G[k, g] = guide[c, qz + az, qi + a, qj + b]
                        k += 1
    if pvar.shape[0] > 0:
        # the group's noise variance per patch voxel: the map's mean over its patches
        for k in range(pp):
            pvar[k] = 0.0
        for g in range(n):
            q = idx[g]
            qj = q % Wp
            q //= Wp
            qi = q % Hp
            qz = q // Hp
            k = 0
            for az in range(pz):
                for a in range(py):
                    for b in range(px):
                        pvar[k] += vmap[qz + az, qi + a, qj + b]
                        k += 1
        for k in range(pp):
            pvar[k] /= n
    group_estimate(Y, G, n, C, pp, step1, nlf, tmat, beta, flat, M, dvar, mean, gm, Z, X, pvar)
    for g in range(n):
        q = idx[g]
        qj = q % Wp
        q //= Wp
        qi = q % Hp
        qz = q // Hp
        mask[qz, qi, qj] = True
        k = 0
        for az in range(pz):
            for a in range(py):
                for b in range(px):
                    wgt[qz + az, qi + a, qj + b] += 1.0
                    for c in range(C):
                        num[c, qz + az, qi + a, qj + b] += X[c * pp + k, g]
                    k += 1


@njit(**JIT_PARALLEL)
def bayes_step3(noisy, guide, zs, rows, cols, psz, rad, n_sim, n_max, tau, step1, nlf, tmat, beta, flat, cell,
                origin, vmap, pvalid):
    """One NL-Bayes step on a volume; returns the aggregated estimate (``noisy``'s dtype).

    ``zs``/``rows``/``cols``: the reference grid per axis (sorted, in the
    block's coordinates); ``psz``, ``rad``, ``cell``, ``origin``: patch
    sides, window radii, cell sides (``cell[a] >= 2 rad[a] + psz[a]``) and
    the position of the block's first voxel in the volume, per axis (int64
    arrays of 3).  Voxels no group covers keep their noisy value.  Memory:
    a float64 numerator, the result (whose last channel holds the weights
    until it is written) and the mask of the positions.  The cells
    (global indices) that reach the block, colour by colour; within a colour
    in parallel, dealt in :func:`nlm.ops._bayes_kernels._spread_order`.

    ``vmap``: (Z, H, W) float64 noise variance map, or (0, 0, 0) (the level
    function ``nlf`` then gives the covariance; with a map, ``D`` is the
    map's mean over the group's patches at every patch voxel); ``pvalid``:
    (Z - pz + 1, H - py + 1, W - px + 1) bool, the patches without a masked
    voxel, or (0, 0, 0) (no mask).  With a mask, only valid patches are
    references or group members, and the valid patches still holding a
    voxel no group covered become references after the grid (in each cell,
    raster order); masked voxels keep their noisy value.
    """
    C, Zn, H, W = noisy.shape
    num = np.zeros((C, Zn, H, W))
    out = np.zeros_like(noisy)
    wgt = out[C - 1]  # the weights (whole counts: exact in any float) in the result's last channel, written last
    npos = np.array([Zn - psz[0] + 1, H - psz[1] + 1, W - psz[2] + 1])
    mask = np.zeros((npos[0], npos[1], npos[2]), dtype=np.bool_)
    k0 = np.empty(3, dtype=np.int64)  # first cell reaching the block, per axis
    nk = np.empty(3, dtype=np.int64)  # cells reaching it
    for a in range(3):
        k0[a] = origin[a] // cell[a]
        nk[a] = (origin[a] + npos[a] - 1) // cell[a] + 1 - k0[a]
    for colour in range(8):
        f = np.empty(3, dtype=np.int64)  # first local cell of this colour
        m = np.empty(3, dtype=np.int64)  # cells of this colour
        for a in range(3):
            par = (colour >> (2 - a)) & 1
            f[a] = (par - k0[a]) % 2
            m[a] = (nk[a] - f[a] + 1) // 2
        ncell = m[0] * m[1] * m[2]
        order = _spread_order(ncell)
        for t in prange(ncell):
            u = order[t]
            lo = np.empty(3, dtype=np.int64)
            hi = np.empty(3, dtype=np.int64)
            for a in range(2, -1, -1):
                kk = k0[a] + f[a] + 2 * (u % m[a])
                u //= m[a]
                lo[a] = kk * cell[a] - origin[a]
                hi[a] = lo[a] + cell[a]
            _cell3(noisy, guide, num, wgt, mask, lo, hi, zs, rows, cols, psz, rad, n_sim, n_max, tau, step1,
                   nlf, tmat, beta, flat, vmap, pvalid)
    for c in range(C):  # channel C - 1 (the weights) after the others; a voxel's weight read before it is replaced
        for z in prange(Zn):
            for i in range(H):
                for j in range(W):
                    w = wgt[z, i, j]
                    if w > 0:
                        out[c, z, i, j] = num[c, z, i, j] / w
                    else:
                        out[c, z, i, j] = noisy[c, z, i, j]
    return out
