"""Slow, obviously-correct NumPy twins of the NL-Bayes kernels (nlm.ops._bayes_kernels)."""

import numpy as np


def nlf_var(v, nlf):
    """The level function ``a + b v + c v^2``; with ``t0, s`` and a table after the
    three coefficients (clipped data), the table (values at ``t0 + k / s``)
    interpolated at ``v``, constant beyond its ends."""
    if len(nlf) > 3:
        tab = np.asarray(nlf[5:])
        t0, s = nlf[3], nlf[4]
        return np.interp(v, t0 + np.arange(tab.size) / s, tab)
    v = np.maximum(v, 0.0)
    return nlf[0] + nlf[1] * v + nlf[2] * v * v


def group_estimate(Y, G, C, pp, step1, nlf, tmat, beta, flat, pvar=None):
    """Y, G: (n, C * pp) patches as rows; returns X (n, C * pp).

    ``pvar`` (pp,): the noise variance per patch pixel (a noise map), the same in every working channel;
    None: from the level function at the group's mean."""
    n, D = Y.shape
    gm = (Y if step1 else G).mean(axis=0).reshape(C, pp)
    inp = tmat.T @ gm  # input channels at every pixel: (C, pp)
    dvar = ((tmat**2) @ nlf_var(inp, nlf)).reshape(D)
    if pvar is not None:
        dvar = np.tile(np.asarray(pvar, dtype=np.float64), C)
    X = np.empty_like(Y)
    blocks = [slice(c * pp, (c + 1) * pp) for c in range(C)] if step1 else [slice(0, D)]
    for sl in blocks:
        y = Y[:, sl]
        d = y.shape[1]
        dv = dvar[sl]
        if n < 2 or y.var() <= flat * dv.mean():
            X[:, sl] = y.mean()
            continue
        m = y.mean(axis=0)
        if step1:
            M = np.cov(y, rowvar=False).reshape(d, d)
        else:
            M = np.cov(G[:, sl], rowvar=False).reshape(d, d) + beta * np.diag(dv)
        M = M + (1e-6 * dv.mean() + 1e-10 * np.trace(M) / d + 1e-30) * np.eye(d)
        Z = np.linalg.solve(M, (y - m).T).T
        X[:, sl] = np.where(dv == 0, y, y - beta * dv * Z)  # noise-free values stay
    return X


def search(guide, ri, rj, p, radius, c_dist, n_sim, n_max, tau, pvalid=None):
    """(distances, flat positions) of the group: the reference, then the chosen others in raster order.

    The others: the ``n - 1`` nearest (ties: raster order), ``n = max(n_sim, min(n_max, 1 + #{others
    at distance <= tau}))``, at most the window's size.  ``pvalid``: only those patches are candidates.
    """
    _, Hi, Wi = guide.shape
    H, W = Hi - p + 1, Wi - p + 1
    ref = guide[:c_dist, ri : ri + p, rj : rj + p].astype(np.float64)
    others = []
    for qi in range(max(ri - radius, 0), min(ri + radius, H - 1) + 1):
        for qj in range(max(rj - radius, 0), min(rj + radius, W - 1) + 1):
            if (qi, qj) == (ri, rj) or (pvalid is not None and not pvalid[qi, qj]):
                continue
            d = np.mean((ref - guide[:c_dist, qi : qi + p, qj : qj + p]) ** 2)
            others.append((d, qi * W + qj))
    close = sum(d <= tau for d, _ in others)
    n = min(max(n_sim, min(n_max, 1 + close)), len(others) + 1)
    chosen = sorted(sorted(range(len(others)), key=lambda k: (others[k][0], k))[: n - 1])
    sel = [(0.0, ri * W + rj)] + [others[k] for k in chosen]
    return np.array([d for d, _ in sel]), np.array([q for _, q in sel], dtype=np.int64)


def bayes_step(noisy, guide, rows, cols, p, radius, n_sim, n_max, tau, step1, nlf, tmat, beta, flat, band,
               vmap=None, pvalid=None, oy=0, ox=0):
    """The kernel's step, sequentially in the kernel's order (cells by colour, raster order inside).

    Cells of ``band x band`` reference positions are anchored at the image position ``(-oy, -ox)`` of
    this block's ``(0, 0)``: cell ``(b, k)`` holds the rows ``b * band - oy ..`` and the columns
    ``k * band - ox ..``; colour ``(b % 2, k % 2)``.  ``vmap`` (H, W): noise variance map (the group's
    covariance: the map's mean over its patches per patch pixel); ``pvalid``: the patches without a
    masked pixel, the only references and members; after a cell's grid, every valid patch of the cell
    still holding an uncovered pixel (raster order).
    """
    C, H, W = noisy.shape
    Wp = W - p + 1
    num = np.zeros((C, H, W))
    wgt = np.zeros((H, W))
    mask = np.zeros((H - p + 1, Wp), dtype=bool)
    cells = [(b, k) for b in range(oy // band, (oy + H - p) // band + 1)
             for k in range(ox // band, (ox + W - p) // band + 1)]
    cap = n_sim if step1 else n_max
    # colours (even row, even column), (even, odd), (odd, even), (odd, odd); raster order inside a cell
    order = sorted(cells, key=lambda c: (c[0] % 2, c[1] % 2, c[0], c[1]))

    def group(ri, rj):
        _, pos = search(guide, ri, rj, p, radius, 1 if step1 else C, n_sim, cap, -1.0 if step1 else tau, pvalid)
        qs = [(q // Wp, q % Wp) for q in pos]
        Y = np.array([noisy[:, i : i + p, j : j + p].reshape(-1) for i, j in qs], dtype=np.float64)
        G = np.array([guide[:, i : i + p, j : j + p].reshape(-1) for i, j in qs], dtype=np.float64)
        pvar = None if vmap is None else np.mean([vmap[i : i + p, j : j + p].reshape(-1) for i, j in qs], axis=0)
        X = group_estimate(Y, G, C, p * p, step1, nlf, tmat, beta, flat, pvar)
        for g, (i, j) in enumerate(qs):
            mask[i, j] = True
            num[:, i : i + p, j : j + p] += X[g].reshape(C, p, p)
            wgt[i : i + p, j : j + p] += 1

    for b, k in order:
        for ri in rows:
            if not (b * band <= ri + oy < (b + 1) * band):
                continue
            for rj in cols:
                if not (k * band <= rj + ox < (k + 1) * band):
                    continue
                if mask[ri, rj] or (pvalid is not None and not pvalid[ri, rj]):
                    continue
                group(ri, rj)
        if pvalid is not None:
            for ri in range(max(b * band - oy, 0), min((b + 1) * band - oy, H - p + 1)):
                for rj in range(max(k * band - ox, 0), min((k + 1) * band - ox, Wp)):
                    if not mask[ri, rj] and pvalid[ri, rj] and (wgt[ri : ri + p, rj : rj + p] == 0).any():
                        group(ri, rj)
    out = np.where(wgt > 0, num / np.maximum(wgt, 1), noisy)
    return out.astype(noisy.dtype)


# ------------------------------------------------------------------ volumes (nlm.ops._bayes_volume)
def search3(guide, rz, ri, rj, psz, rad, c_dist, n_sim, n_max, tau, pvalid=None):
    """3-D :func:`search`: (distances, flat positions ``(qz * Hp + qi) * Wp + qj``) of the group.

    ``pvalid``: only those patches are candidates."""
    _, Zi, Hi, Wi = guide.shape
    pz, py, px = psz
    Zp, Hp, Wp = Zi - pz + 1, Hi - py + 1, Wi - px + 1
    ref = guide[:c_dist, rz : rz + pz, ri : ri + py, rj : rj + px].astype(np.float64)
    others = []
    for qz in range(max(rz - rad[0], 0), min(rz + rad[0], Zp - 1) + 1):
        for qi in range(max(ri - rad[1], 0), min(ri + rad[1], Hp - 1) + 1):
            for qj in range(max(rj - rad[2], 0), min(rj + rad[2], Wp - 1) + 1):
                if (qz, qi, qj) == (rz, ri, rj) or (pvalid is not None and not pvalid[qz, qi, qj]):
                    continue
                d = np.mean((ref - guide[:c_dist, qz : qz + pz, qi : qi + py, qj : qj + px]) ** 2)
                others.append((d, (qz * Hp + qi) * Wp + qj))
    close = sum(d <= tau for d, _ in others)
    n = min(max(n_sim, min(n_max, 1 + close)), len(others) + 1)
    chosen = sorted(sorted(range(len(others)), key=lambda k: (others[k][0], k))[: n - 1])
    sel = [(0.0, (rz * Hp + ri) * Wp + rj)] + [others[k] for k in chosen]
    return np.array([d for d, _ in sel]), np.array([q for _, q in sel], dtype=np.int64)


def bayes_step3(noisy, guide, zs, rows, cols, psz, rad, n_sim, n_max, tau, step1, nlf, tmat, beta, flat, cell,
                origin=(0, 0, 0), vmap=None, pvalid=None):
    """The volume kernel's step, sequentially in its order: cells of ``cell`` positions anchored at the
    volume's origin, by colour ``4 pz + 2 py + px`` (the parities of their global indices), each cell's
    references in raster order.

    ``vmap`` (Z, H, W): noise variance map (the group's covariance: the map's mean over its patches per
    patch voxel); ``pvalid``: the patches without a masked voxel, the only references and members; after
    a cell's grid, every valid patch of the cell still holding an uncovered voxel (raster order)."""
    C, Zn, H, W = noisy.shape
    pz, py, px = psz
    Hp, Wp = H - py + 1, W - px + 1
    npos = (Zn - pz + 1, Hp, Wp)
    num = np.zeros((C, Zn, H, W))
    wgt = np.zeros((Zn, H, W))
    mask = np.zeros(npos, dtype=bool)
    cap = n_sim if step1 else n_max
    ranges = [range(origin[a] // cell[a], (origin[a] + npos[a] - 1) // cell[a] + 1) for a in range(3)]
    cells = [(a, b, c) for a in ranges[0] for b in ranges[1] for c in ranges[2]]
    # by colour, then by cell (cells of one colour do not interact), then raster order inside
    cells.sort(key=lambda k: (4 * (k[0] % 2) + 2 * (k[1] % 2) + k[2] % 2, k))

    def group(rz, ri, rj):
        _, pos = search3(guide, rz, ri, rj, psz, rad, 1 if step1 else C, n_sim, cap, -1.0 if step1 else tau,
                         pvalid)
        qs = [(q // (Hp * Wp), q // Wp % Hp, q % Wp) for q in pos]
        box = [(slice(None), slice(z, z + pz), slice(i, i + py), slice(j, j + px)) for z, i, j in qs]
        Y = np.array([noisy[s].reshape(-1) for s in box], dtype=np.float64)
        G = np.array([guide[s].reshape(-1) for s in box], dtype=np.float64)
        pvar = None if vmap is None else np.mean([vmap[s[1:]].reshape(-1) for s in box], axis=0)
        X = group_estimate(Y, G, C, pz * py * px, step1, nlf, tmat, beta, flat, pvar)
        for g, (s, q) in enumerate(zip(box, qs)):
            mask[q] = True
            num[s] += X[g].reshape(C, pz, py, px)
            wgt[s[1:]] += 1

    for k in cells:
        lo = [k[a] * cell[a] - origin[a] for a in range(3)]
        hi = [lo[a] + cell[a] for a in range(3)]

        for r in [(rz, ri, rj) for rz in zs for ri in rows for rj in cols]:
            if all(lo[a] <= r[a] < hi[a] for a in range(3)) and not mask[r] and (pvalid is None or pvalid[r]):
                group(*r)
        if pvalid is not None:
            for r in np.ndindex(*[max(0, min(hi[a], npos[a]) - max(lo[a], 0)) for a in range(3)]):
                r = tuple(int(r[a] + max(lo[a], 0)) for a in range(3))
                box = tuple(slice(r[a], r[a] + psz[a]) for a in range(3))
                if not mask[r] and pvalid[r] and (wgt[box] == 0).any():
                    group(*r)
    out = np.where(wgt > 0, num / np.maximum(wgt, 1), noisy)
    return out.astype(noisy.dtype)


# ------------------------------------------------------------------ video (nlm.ops._bayes_video)
def _half_up(v):
    return int(np.floor(v + 0.5))


def chain(fwd, bwd, t, qt, ri, rj, half, reach):
    """The motion ``(dy, dx)`` from frame ``t`` to ``qt`` of the patch at ``(ri, rj)``: the flow at the
    patch's centre moved so far (rounded, clamped to the frame), summed frame by frame, rounded, clamped."""
    S, H, W = fwd.shape[:3]
    oy = ox = 0.0
    f = t
    step = 1 if qt > t else -1
    while f != qt:
        y = min(max(_half_up(ri + half + oy), 0), H - 1)
        x = min(max(_half_up(rj + half + ox), 0), W - 1)
        flow = fwd[f % S] if step > 0 else bwd[f % S]
        ox += float(flow[y, x, 0])
        oy += float(flow[y, x, 1])
        f += step
    return (min(max(_half_up(oy), -reach), reach), min(max(_half_up(ox), -reach), reach))


def vsearch(guide, fwd, bwd, t, f_lo, f_hi, ri, rj, p, pt, rad, reach, c_dist, n_sim, n_max, tau):
    """Video :func:`search`: candidates frame by frame in the window around the moved position, raster
    order; (distances, flat positions ``((qt - f_lo) * Hp + qi) * Wp + qj``) of the group."""
    _, S, Hi, Wi = guide.shape
    Hp, Wp = Hi - p + 1, Wi - p + 1
    g = guide[:c_dist].astype(np.float64)

    def box(f, i, j):
        return g[:, [(f + a) % S for a in range(pt)], i : i + p, j : j + p]

    ref = box(t, ri, rj)
    others = []
    for qt in range(f_lo, f_hi + 1):
        ci, cj = ri, rj
        if qt != t:
            dy, dx = chain(fwd, bwd, t, qt, ri, rj, p // 2, reach)
            ci, cj = min(max(ri + dy, 0), Hp - 1), min(max(rj + dx, 0), Wp - 1)
        for qi in range(max(ci - rad, 0), min(ci + rad, Hp - 1) + 1):
            for qj in range(max(cj - rad, 0), min(cj + rad, Wp - 1) + 1):
                if (qt, qi, qj) == (t, ri, rj):
                    continue
                others.append((np.mean((ref - box(qt, qi, qj)) ** 2), ((qt - f_lo) * Hp + qi) * Wp + qj))
    close = sum(d <= tau for d, _ in others)
    n = min(max(n_sim, min(n_max, 1 + close)), len(others) + 1)
    chosen = sorted(sorted(range(len(others)), key=lambda k: (others[k][0], k))[: n - 1])
    sel = [(0.0, ((t - f_lo) * Hp + ri) * Wp + rj)] + [others[k] for k in chosen]
    return np.array([d for d, _ in sel]), np.array([q for _, q in sel], dtype=np.int64)


def video_step(noisy, guide, num, wgt, mask, fwd, bwd, t, f_lo, f_hi, rows, cols, p, pt, rad, reach, n_sim, n_max,
               tau, step1, nlf, tmat, beta, flat):
    """The video kernel's step on frame ``t``, sequentially in its order (cells of ``max(2 (rad + reach) +
    p, 8)`` positions by colour, raster order inside), on the ring buffers (updated in place)."""
    C, S, H, W = noisy.shape
    Hp, Wp = H - p + 1, W - p + 1
    band = max(2 * (rad + reach) + p, 8)
    cap = n_sim if step1 else n_max

    def key(r):
        b, k = r[0] // band, r[1] // band
        return (b % 2, k % 2, b, k, r[0], r[1])

    for ri, rj in sorted([(ri, rj) for ri in rows for rj in cols], key=key):
        if mask[t % S, ri, rj]:
            continue
        _, pos = vsearch(guide, fwd, bwd, t, f_lo, f_hi, ri, rj, p, pt, rad, reach, 1 if step1 else C, n_sim, cap,
                         -1.0 if step1 else tau)
        qs = [(f_lo + q // (Hp * Wp), q // Wp % Hp, q % Wp) for q in pos]
        fr = [[(f + a) % S for a in range(pt)] for f, _, _ in qs]
        Y = np.array([noisy[:, s, i : i + p, j : j + p].reshape(-1) for s, (_, i, j) in zip(fr, qs)], np.float64)
        G = np.array([guide[:, s, i : i + p, j : j + p].reshape(-1) for s, (_, i, j) in zip(fr, qs)], np.float64)
        X = group_estimate(Y, G, C, pt * p * p, step1, nlf, tmat, beta, flat)
        for x, s, (f, i, j) in zip(X, fr, qs):
            mask[f % S, i, j] = True
            num[:, s, i : i + p, j : j + p] += x.reshape(C, pt, p, p)
            wgt[s, i : i + p, j : j + p] += 1
