"""Private Numba kernel of the NL-Ridge step (no validation; see :mod:`nlm.denoisers.bayes_passes`).

NL-Ridge (Herbreteau and Kervrann, ICIP 2022) re-estimates every patch of a
group of similar patches as a linear combination of the group's noisy
patches, ``x_i = sum_j theta_ij y_j``, with the weights of a ridge
regression whose regulariser is each patch's noise variance.  With the
group's noisy patches ``Y`` and guide patches ``G`` as the rows of ``n x
d`` matrices and ``Dn = diag(d_1 .. d_n)`` the summed noise variance of
each patch:

* from the noisy group (``oracle=False``, step 1):
  ``Q = Y Y^T + eps Dn`` and ``Theta = I - (1 + eps) Dn Q^-1``;
* with a guide (``oracle=True``, an earlier estimate):
  ``Q = G G^T + Dn`` and ``Theta = G G^T Q^-1 = I - Dn Q^-1``,

both written ``Theta = I - f Dn Q^-1`` and applied to the noisy group:
``X = Y - f Dn Q^-1 Y``.  Each estimated patch ``i`` is aggregated with the
weight ``1 / clip(||theta_i||^2, 1/n, 1)`` (the inverse of its noise
amplification).

The geometry is that of :func:`nlm.ops._bayes_kernels.bayes_step`
(channel-first images in the working colour space, patches by their top-left
corner, a reference grid visited in ``band x band`` cells by colour so the
result does not depend on the thread count, positions already estimated as
members of a group skipped as references, tiles exact within
:func:`nlm.denoisers.bayes_passes.tile_margin`-like margins); the patch
search is that kernel's :func:`~nlm.ops._bayes_kernels.search`.  The oracle
of this kernel is ``tests/naive_ridge.py``.
"""

import numpy as np
from numba import njit

from nlm._config import JIT, defer_blas_probe
from nlm.ops._bayes_kernels import cholesky, deal_cells, level, lower_gram, search
from nlm.ops._simd import _wide_vectors

defer_blas_probe()


@njit(**JIT)
def patch_variances(Y, G, n, C, pp, oracle, nlf, tmat, dpix, gm, dv):
    """Summed noise variance ``dv[i]`` of every patch of the group (oracle: ``tests/naive_ridge``).

    Per pixel and working channel ``c``: ``sum_j tmat[c, j]^2 level(u_j)``
    with ``u_j`` the input channel ``j`` (``tmat^T`` of the working values)
    at the guide patch's pixel (``oracle``) or at the group's mean patch
    (from the noisy group: a signal-dependent variance at a noisy value is
    biased).  ``dpix``: (pp,) or (0,): a noise variance map's values at the
    patch pixels are used instead, added up per patch in ``dv`` by the
    caller (then this function does nothing).
    """
    D = C * pp
    if not oracle:
        for k in range(D):
            s = 0.0
            for i in range(n):
                s += Y[i, k]
            gm[k] = s / n
        tot = _summed_level(gm, C, pp, nlf, tmat)
        for i in range(n):
            dv[i] = tot
        return
    for i in range(n):
        dv[i] = _summed_level(G[i], C, pp, nlf, tmat)


@njit(**JIT)
def _summed_level(m, C, pp, nlf, tmat):
    """``sum`` over the patch's pixels and working channels of ``sum_j tmat[c, j]^2 level(u_j)`` at patch ``m``."""
    tot = 0.0
    for q in range(pp):
        for c in range(C):
            v = 0.0
            for j in range(C):
                u = 0.0
                for cc in range(C):
                    u += tmat[cc, j] * m[cc * pp + q]
                v += tmat[c, j] * tmat[c, j] * level(u, nlf)
            tot += v
    return tot


@njit(**JIT)
def ridge_estimate(Y, G, n, D, oracle, eps, centre, dv, Q, Li, Z, X, w, my, mg):
    """The NL-Ridge estimate of one group (oracle: ``tests/naive_ridge.ridge_estimate``).

    ``Y``, ``G``: (n_max, D) noisy and guide patches as rows (rows ``:n``);
    ``dv``: (n,) summed noise variance of each patch; ``eps``: the step-1
    regulariser.  Writes the estimated patches to ``X`` and their
    aggregation weights to ``w``.  ``Q``, ``Li``, ``Z``: scratch.

    ``Q`` gets a tiny ridge (``1e-10`` of its mean diagonal plus ``1e-300``)
    so that a group of identical noise-free patches stays factorisable; a
    patch without noise (``dv[i] = 0``) is its own estimate.
    """
    _wide_vectors()
    src = G if oracle else Y
    if centre:
        # deviations from the group's mean patch (noisy: mean of Y; guide: mean of G); the mean of Y is added back.
        # Every sum in the order of the patches; the loops over the patch values inner (vectorised)
        for k in range(D):
            my[k] = 0.0
            mg[k] = 0.0
        for i in range(n):
            yi = Y[i, :D]
            for k in range(D):
                my[k] += yi[k]
            if oracle:
                gi = G[i, :D]
                for k in range(D):
                    mg[k] += gi[k]
        for k in range(D):
            my[k] = my[k] / n
            mg[k] = mg[k] / n
        for i in range(n):
            yi = Y[i, :D]
            for k in range(D):
                yi[k] -= my[k]
            if oracle:
                gi = G[i, :D]
                for k in range(D):
                    gi[k] -= mg[k]
    # Gram matrix: row i of the lower triangle summed over the values k in order, the pairs j <= i side by
    # side (vectorised), from the group transposed into Z's storage (free until Z = Q^-1 Y)
    St = Z.reshape(Z.size)[:D * n].reshape((D, n))
    for i in range(n):
        si = src[i, :D]
        for k in range(D):
            St[k, i] = si[k]
    tr = 0.0
    lower_gram(St, D, n, Q)
    for i in range(n):
        qi = Q[i, :i + 1]
        for j in range(i + 1):
            Q[j, i] = qi[j]
        tr += Q[i, i]
    reg = 1.0 if oracle else eps
    f = 1.0 if oracle else 1.0 + eps
    dsum = 0.0
    for i in range(n):
        Q[i, i] += reg * dv[i]
        dsum += dv[i]
    ridge = 1e-10 * (tr + reg * dsum) / n + 1e-300
    for i in range(n):
        Q[i, i] += ridge
    cholesky(Q, n)  # left-looking (measured: faster here than a vectorised right-looking one)
    # Li <- L^-1 (lower triangular), row by row: Li[i, j] = -sum_{k=j}^{i-1} L[i, k] Li[k, j] / L[i, i],
    # the sums over k in order, the columns j side by side
    for i in range(n):
        li = Li[i, :i + 1]
        for j in range(i):
            li[j] = 0.0
        for k in range(i):
            lik = Q[i, k]
            lk = Li[k, :k + 1]
            for j in range(k + 1):
                li[j] += lik * lk[j]
        dii = Q[i, i]
        for j in range(i):
            li[j] = -li[j] / dii
        li[i] = 1.0 / dii
    # Q <- Q^-1 = L^-T L^-1 (full, symmetric): Q[i, j] = sum_{k=i}^{n-1} Li[k, i] Li[k, j], j <= i, the sums over
    # k in order, the columns j side by side (Q's factor is no longer read)
    for i in range(n):
        qi = Q[i, :i + 1]
        for j in range(i + 1):
            qi[j] = 0.0
        for k in range(i, n):
            lki = Li[k, i]
            lk = Li[k, :i + 1]
            for j in range(i + 1):
                qi[j] += lki * lk[j]
        for j in range(i):
            Q[j, i] = qi[j]
    # Z <- Q^-1 Y; X = Y - f dv_i Z_i; weight from ||theta_i||^2, theta_i = e_i - f dv_i Q^-1_i
    lo = 1.0 / n
    for i in range(n):
        zi = Z[i, :D]
        for k in range(D):
            zi[k] = 0.0
        s2 = 0.0
        for j in range(n):
            qij = Q[i, j]
            s2 += qij * qij
            yj = Y[j, :D]
            for k in range(D):
                zi[k] += qij * yj[k]
        g = f * dv[i]
        xi = X[i, :D]
        yi = Y[i, :D]
        for k in range(D):
            xi[k] = yi[k] - g * zi[k]
        if centre:
            for k in range(D):
                xi[k] += my[k]
        t = 1.0 - 2.0 * g * Q[i, i] + g * g * s2
        if t < lo:
            t = lo
        elif t > 1.0:
            t = 1.0
        w[i] = 1.0 / t


@njit(**JIT)
def _group(noisy, guide, num, wgt, mark, ri, rj, p, radius, n_sim, tau, oracle, nlf, tmat, eps, centre, vmap, pvalid,
           c_dist, cd, work, dist, idx, Y, G, X, Q, Li, Z, w, dv, gm, dpix, my, mg):
    """One reference patch: its group, the group's estimate, the weighted aggregation."""
    C = noisy.shape[0]
    pp = p * p
    Wp = noisy.shape[2] - p + 1
    n = search(guide, ri, rj, p, radius, c_dist, n_sim, n_sim, tau, dist, idx, cd, work, pvalid)
    # the patches' rows through views indexed from 0 (no index wraparound to check)
    for g in range(n):
        qi = idx[g] // Wp
        qj = idx[g] % Wp
        for c in range(C):
            for a in range(p):
                o = c * pp + a * p
                yr = Y[g, o:o + p]
                src = noisy[c, qi + a, qj:qj + p]
                for b in range(p):
                    yr[b] = src[b]
                if oracle:
                    gr = G[g, o:o + p]
                    src = guide[c, qi + a, qj:qj + p]
                    for b in range(p):
                        gr[b] = src[b]
    if vmap.shape[0] > 0:
        # a noise map: each patch's own summed variance (the same in every working channel)
        for g in range(n):
            qi = idx[g] // Wp
            qj = idx[g] % Wp
            s = 0.0
            for a in range(p):
                for b in range(p):
                    s += vmap[qi + a, qj + b]
            dv[g] = C * s
    else:
        patch_variances(Y, G, n, C, pp, oracle, nlf, tmat, dpix, gm, dv)
    ridge_estimate(Y, G, n, C * pp, oracle, eps, centre, dv, Q, Li, Z, X, w, my, mg)
    for g in range(n):
        qi = idx[g] // Wp
        qj = idx[g] % Wp
        mark[qi, qj] = True
        wg = w[g]
        # each pixel gets one term per patch: the loops' order does not change any sum's order
        for a in range(p):
            wr = wgt[qi + a, qj:qj + p]
            for b in range(p):
                wr[b] += wg
        for c in range(C):
            for a in range(p):
                o = c * pp + a * p
                nr = num[c, qi + a, qj:qj + p]
                xr = X[g, o:o + p]
                for b in range(p):
                    nr[b] += wg * xr[b]


@njit(**JIT)
def _cell(noisy, guide, num, wgt, mark, r0, r1, c0, c1, rows, cols, p, radius, n_sim, tau, oracle, nlf, tmat, eps,
          centre, vmap, pvalid):
    C = noisy.shape[0]
    pp = p * p
    D = C * pp
    side = 2 * radius + 1
    cd = np.empty(side * side)
    work = np.empty(side * side)
    dist = np.empty(n_sim)
    idx = np.empty(n_sim, dtype=np.int64)
    Y = np.empty((n_sim, D))
    G = np.empty((n_sim, D))
    X = np.empty((n_sim, D))
    Z = np.empty((n_sim, D))
    Q = np.empty((n_sim, n_sim))
    Li = np.empty((n_sim, n_sim))
    w = np.empty(n_sim)
    dv = np.empty(n_sim)
    gm = np.empty(D)
    dpix = np.empty(0)
    my = np.empty(D)
    mg = np.empty(D)
    c_dist = C if oracle else 1
    masked = pvalid.shape[0] > 0
    for ri in rows:
        if ri < r0 or ri >= r1:
            continue
        for rj in cols:
            if rj < c0 or rj >= c1 or mark[ri, rj] or (masked and not pvalid[ri, rj]):
                continue
            _group(noisy, guide, num, wgt, mark, ri, rj, p, radius, n_sim, tau, oracle, nlf, tmat, eps, centre, vmap,
                   pvalid, c_dist, cd, work, dist, idx, Y, G, X, Q, Li, Z, w, dv, gm, dpix, my, mg)
    if masked:
        # valid pixels no valid reference of the grid reached get groups of their own (raster order)
        for ri in range(max(r0, 0), min(r1, mark.shape[0])):
            for rj in range(max(c0, 0), min(c1, mark.shape[1])):
                if not pvalid[ri, rj]:
                    continue
                bare = False
                for a in range(p):
                    for b in range(p):
                        if wgt[ri + a, rj + b] == 0:
                            bare = True
                if bare:
                    _group(noisy, guide, num, wgt, mark, ri, rj, p, radius, n_sim, tau, oracle, nlf, tmat, eps,
                           centre, vmap, pvalid, c_dist, cd, work, dist, idx, Y, G, X, Q, Li, Z, w, dv, gm, dpix,
                           my, mg)


def ridge_step(noisy, guide, rows, cols, p, radius, n_sim, oracle, nlf, tmat, eps, centre, band, vmap, pvalid, oy=0,
               ox=0):
    """One NL-Ridge step; returns the aggregated estimate (``noisy``'s dtype).

    ``noisy``, ``guide``: (C, H, W) in the working colour space (``guide``:
    the earlier estimate with ``oracle``; else ignored but for its shape,
    pass ``noisy``).  Groups: the ``n_sim`` patches nearest to the
    reference (mean squared difference on ``guide``'s channels with
    ``oracle``, on the first working channel of ``noisy`` without) in the
    window of ``radius``.  ``nlf``/``tmat``: the level function (or clipped
    table) and colour transform of :func:`nlm.ops._bayes_kernels.group_estimate`;
    ``vmap``: (H, W) noise variance map or (0, 0); ``pvalid``: the valid
    patches or (0, 0).  ``rows``/``cols``/``band``/``oy``/``ox``: the
    reference grid and the cells, as in
    :func:`nlm.ops._bayes_kernels.bayes_step` (same order, same
    thread-count independence: the cells dealt by
    :func:`nlm.ops._bayes_kernels.deal_cells`, the compiled :func:`_cell`
    releasing the GIL).  Pixels no group covers keep
    their noisy value.
    """
    C, H, W = noisy.shape
    num = np.zeros((C, H, W))
    wgt = np.zeros((H, W))
    mark = np.zeros((H - p + 1, W - p + 1), dtype=np.bool_)
    src = guide if oracle else noisy

    def cell(r0, r1, c0, c1):
        _cell(noisy, src, num, wgt, mark, r0, r1, c0, c1, rows, cols, p, radius, n_sim, -1.0, oracle, nlf, tmat,
              eps, centre, vmap, pvalid)

    deal_cells(H, W, p, band, oy, ox, cell)
    out = np.empty_like(noisy)
    _ridge_normalise(noisy, num, wgt, out)
    return out


@njit(**JIT)
def _ridge_normalise(noisy, num, wgt, out):
    """``out = num / wgt`` where a pixel has a weight, else the noisy value."""
    C, H, W = noisy.shape
    for c in range(C):
        for i in range(H):
            for j in range(W):
                wv = wgt[i, j]
                if wv > 0:
                    out[c, i, j] = num[c, i, j] / wv
                else:
                    out[c, i, j] = noisy[c, i, j]
