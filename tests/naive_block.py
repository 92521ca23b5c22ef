"""Plain NumPy non-local block, written straight from Wang et al. (2018): the test oracle.

Everything is dense and literal: the full ``N x N'`` matrix of ``f``, the
concatenation ``[theta_i, phi_j]`` formed as an ``N x N' x 2d`` tensor, max
pooling by explicit loops over windows, no max subtraction in the softmax.
Only for small inputs.  Shares no code with :mod:`nlm`.
"""

import itertools

import numpy as np


def naive_pool(a, pool):
    """Max pool a channel-last map ``(*S, C)``, kernel = stride = ``pool``, floor mode."""
    spatial = a.shape[:-1]
    out_shape = tuple(n // p for n, p in zip(spatial, pool))
    out = np.empty(out_shape + (a.shape[-1],), dtype=a.dtype)
    for o in itertools.product(*[range(n) for n in out_shape]):
        window = a[tuple(slice(i * p, (i + 1) * p) for i, p in zip(o, pool))]
        out[o] = window.reshape(-1, a.shape[-1]).max(axis=0)
    return out


def _coords(shape):
    return np.array(list(itertools.product(*[range(n) for n in shape])), dtype=np.int64).reshape(-1, len(shape))


def naive_affinity(xb, params, *, mode, sub_sample=False, pool_size=None, pool_order="before", scale=1.0, window=None):
    """``(P, g)`` of one sample ``xb`` ``(*S, C)``: ``P = f / C`` (N x N') and the values ``g`` (N' x d)."""
    spatial = xb.shape[:-1]
    C = xb.shape[-1]
    X = xb.reshape(-1, C)

    def proj(name, a):
        return a @ params[name + ".weight"].T + params[name + ".bias"]

    if mode == "gaussian":
        theta = X
        phi_map = xb
    else:
        theta = proj("theta", X)
        phi_map = proj("phi", xb)
    g_map = proj("g", xb)
    if sub_sample:
        if pool_order == "before":
            xp = naive_pool(xb, pool_size)
            phi_map = xp if mode == "gaussian" else proj("phi", xp)
            g_map = proj("g", xp)
        else:
            phi_map = naive_pool(phi_map, pool_size)
            g_map = naive_pool(g_map, pool_size)
    phi = phi_map.reshape(-1, phi_map.shape[-1])
    g = g_map.reshape(-1, g_map.shape[-1])
    N, M = theta.shape[0], phi.shape[0]

    if window is not None:
        ci, cj = _coords(spatial), _coords(phi_map.shape[:-1])
        mask = np.all(np.abs(ci[:, None, :] - cj[None, :, :]) <= np.asarray(window), axis=-1)
    else:
        mask = np.ones((N, M), dtype=bool)

    if mode in ("gaussian", "embedded"):
        f = np.exp(scale * (theta @ phi.T)) * mask  # f(x_i, x_j) = e^{theta_i^T phi_j}
        norm = f.sum(axis=1)  # C(x) = sum_j f
    elif mode == "dot":
        f = scale * (theta @ phi.T) * mask
        norm = mask.sum(axis=1).astype(float)  # C(x) = N'
    elif mode == "concat":
        d = theta.shape[1]
        cat = np.concatenate(
            [np.broadcast_to(theta[:, None, :], (N, M, d)), np.broadcast_to(phi[None, :, :], (N, M, phi.shape[1]))],
            axis=-1,
        )
        f = np.maximum(cat @ params["w_f.weight"].reshape(-1), 0.0) * mask  # ReLU(w_f^T [theta_i, phi_j])
        norm = mask.sum(axis=1).astype(float)
    else:
        raise ValueError(mode)
    return f / norm[:, None], g


def naive_block(x, params, *, mode, sub_sample=False, pool_size=None, pool_order="before", bn=True, bn_eps=1e-5,
                scale=1.0, window=None):
    """``z = BN(W_z y) + x`` for a batch ``x`` ``(B, *S, C)``, channel-last."""
    out = np.empty(x.shape, dtype=np.float64)
    for b in range(x.shape[0]):
        P, g = naive_affinity(
            x[b], params, mode=mode, sub_sample=sub_sample, pool_size=pool_size, pool_order=pool_order,
            scale=scale, window=window,
        )
        y = P @ g  # y_i = 1/C sum_j f(x_i, x_j) g(x_j)
        wy = y @ params["W_z.weight"].T + params["W_z.bias"]
        if bn:
            wy = (wy - params["bn.running_mean"]) / np.sqrt(params["bn.running_var"] + bn_eps)
            wy = wy * params["bn.weight"] + params["bn.bias"]
        out[b] = (wy + x[b].reshape(-1, x.shape[-1])).reshape(x.shape[1:])
    return out
