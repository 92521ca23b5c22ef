"""Slow, obviously-correct NumPy twin of the NL-Ridge kernel (nlm.ops._ridge_kernels)."""

import numpy as np
from naive_bayes import nlf_var, search


def patch_variances(Y, G, C, pp, oracle, nlf, tmat):
    """Summed noise variance of each patch (rows of ``Y``/``G``): the level function, per working channel
    ``sum_j tmat[c, j]^2 NLF(input_j)``, at the guide's pixels (``oracle``) or at the group's mean patch."""
    src = G if oracle else np.broadcast_to(Y.mean(axis=0), Y.shape)
    out = []
    for row in src:
        inp = tmat.T @ row.reshape(C, pp)  # input channels at every pixel
        out.append(((tmat**2) @ nlf_var(inp, nlf)).sum())
    return np.array(out)


def ridge_estimate(Y, G, oracle, eps, centre, dv):
    """``(X, w)``: the group's NL-Ridge estimate (rows) and each patch's aggregation weight."""
    n = Y.shape[0]
    my = Y.mean(axis=0) if centre else np.zeros(Y.shape[1])
    Yc = Y - my
    src = (G - G.mean(axis=0) if centre else G) if oracle else Yc
    reg, f = (1.0, 1.0) if oracle else (eps, 1.0 + eps)
    K = src @ src.T
    Q = K + reg * np.diag(dv)
    Q += (1e-10 * (np.trace(K) + reg * dv.sum()) / n + 1e-300) * np.eye(n)
    theta = np.eye(n) - f * np.diag(dv) @ np.linalg.inv(Q)
    X = theta @ Yc + my
    w = 1.0 / np.clip((theta**2).sum(axis=1), 1.0 / n, 1.0)
    return X, w


def ridge_step(noisy, guide, rows, cols, p, radius, n_sim, oracle, nlf, tmat, eps, centre, band, vmap=None,
               pvalid=None, oy=0, ox=0):
    """The kernel's step, sequentially in the kernel's order (cells by colour, raster order inside; see
    naive_bayes.bayes_step), each patch aggregated with its weight."""
    C, H, W = noisy.shape
    Wp = W - p + 1
    src = guide if oracle else noisy
    num = np.zeros((C, H, W))
    wgt = np.zeros((H, W))
    mark = np.zeros((H - p + 1, Wp), dtype=bool)
    cells = [(b, k) for b in range(oy // band, (oy + H - p) // band + 1)
             for k in range(ox // band, (ox + W - p) // band + 1)]
    order = sorted(cells, key=lambda c: (c[0] % 2, c[1] % 2, c[0], c[1]))

    def group(ri, rj):
        _, pos = search(src, ri, rj, p, radius, C if oracle else 1, n_sim, n_sim, -1.0, pvalid)
        qs = [(q // Wp, q % Wp) for q in pos]
        Y = np.array([noisy[:, i : i + p, j : j + p].reshape(-1) for i, j in qs], dtype=np.float64)
        G = np.array([src[:, i : i + p, j : j + p].reshape(-1) for i, j in qs], dtype=np.float64)
        if vmap is not None:
            dv = np.array([C * vmap[i : i + p, j : j + p].sum() for i, j in qs])
        else:
            dv = patch_variances(Y, G, C, p * p, oracle, nlf, tmat)
        X, w = ridge_estimate(Y, G, oracle, eps, centre, dv)
        for g, (i, j) in enumerate(qs):
            mark[i, j] = True
            num[:, i : i + p, j : j + p] += w[g] * X[g].reshape(C, p, p)
            wgt[i : i + p, j : j + p] += w[g]

    for b, k in order:
        for ri in rows:
            if not (b * band <= ri + oy < (b + 1) * band):
                continue
            for rj in cols:
                if not (k * band <= rj + ox < (k + 1) * band):
                    continue
                if mark[ri, rj] or (pvalid is not None and not pvalid[ri, rj]):
                    continue
                group(ri, rj)
        if pvalid is not None:
            for ri in range(max(b * band - oy, 0), min((b + 1) * band - oy, H - p + 1)):
                for rj in range(max(k * band - ox, 0), min((k + 1) * band - ox, Wp)):
                    if pvalid[ri, rj] and (wgt[ri : ri + p, rj : rj + p] == 0).any():
                        group(ri, rj)
    out = np.where(wgt > 0, num / np.where(wgt > 0, wgt, 1), noisy)
    return out.astype(noisy.dtype)
