"""The generic non-local operation and the engines that evaluate it.

    y_i = 1 / C(x) * sum_j f(x_i, x_j) g(x_j)

:func:`nonlocal_op` is the single entry point; the non-local means filter
(:func:`nlm.denoise_nl_means`) and the neural non-local block both call it
with their own ``f`` and ``g`` (see :mod:`nlm.ops.kernels`).  Data flow::

    nonlocal_op(x, f, g, window)
      |-- window given and f.fast_windowed(x, g, window) is not None
      |        -> compiled path (e.g. the Numba NLM kernel)
      |-- window given        -> _windowed(q, k, v, f, window)   (per-offset, NumPy)
      `-- no window           -> attend(q, k, v, f, chunk_size)  (dense, chunked rows)

with ``q, k = f.features(x)`` and ``v = g(x)``.

Engines
-------
``attend`` (dense)
    every ``i`` sees every ``j``.  Rows of the affinity are computed in chunks
    of ``chunk_size`` positions ``i``; a softmax row is max-subtracted before
    ``exp``.  Memory ``O(chunk_size * N')``; the result does not depend on the
    chunk size.
``_windowed``
    ``j`` ranges over the window ``|j - i|_inf <= window`` clipped at the
    borders.  Loops over the ``(2 window + 1)^D`` offsets, scoring aligned
    shifted copies of the maps, with an online (running-max) softmax.
    Memory ``O(N)``.

Backward engines
----------------
:func:`attend_backward` and :func:`_windowed_backward` return the gradients
with respect to ``q``, ``k``, ``v`` and the parameters of ``f``, given the
gradient ``dy`` of the output.  They recompute the affinity chunk by chunk
(offset by offset) instead of storing it, so their memory is that of the
forward engines.  With ``P`` the normalised affinity and ``S`` the scores::

    dP = dY v^T,   dv = P^T dY
    softmax:  dS = P * (dP - rowsum(dP * P)),  rowsum(dP * P)_i = dy_i . y_i
    count:    dS = dP / N'_i

and ``f.score_grads`` (``f.pair_score_grads``) carries ``dS`` back to ``q`` and
``k`` (for the concatenation this applies the ReLU mask ``[a_i + b_j > 0]``).
"""

from __future__ import annotations

import copy
import itertools
import numbers
from typing import TYPE_CHECKING

import numpy as np

from nlm.ops.kernels import (
    EuclideanGaussian,
    Identity,
    Pairwise,
    PatchEuclideanGaussian,
    Representation,
    _float_dtype,
    _rescale,
    _unscale,
)

if TYPE_CHECKING:
    from typing import Any

    from numpy.typing import ArrayLike

__all__ = ["nonlocal_op", "attend", "attend_backward", "affinity"]


def attend(q: ArrayLike, k: ArrayLike, v: ArrayLike, f: Pairwise, *, chunk_size: int = 1024) -> np.ndarray:
    """Dense non-local operation on flattened features.

    Parameters
    ----------
    q : ndarray, shape (n, dq)
        Query features of the output positions ``i``.
    k : ndarray, shape (m, dk)
        Key features of the positions ``j``.
    v : ndarray, shape (m, c)
        Values ``g(x_j)``.
    f : Pairwise
    chunk_size : int
        Rows ``i`` per affinity chunk.

    Returns
    -------
    y : ndarray, shape (n, c)

    Notes
    -----
    Time ``O(n m (d + c))``, memory ``O(chunk_size m)``.
    """
    n, m = q.shape[0], k.shape[0]
    dtype = np.result_type(q, k, v)
    out = np.empty((n, v.shape[1]), dtype=dtype)
    for i0 in range(0, n, chunk_size):
        s = np.asarray(f.scores(q[i0 : i0 + chunk_size], k), dtype=dtype)
        if f.normalization == "softmax":
            s -= s.max(axis=1, keepdims=True)
            np.exp(s, out=s)
            out[i0 : i0 + chunk_size] = (s @ v) / s.sum(axis=1, keepdims=True)
        else:
            out[i0 : i0 + chunk_size] = (s @ v) / m
    return out


def _check_chunk(chunk_size):
    ok = isinstance(chunk_size, (int, np.integer)) and not isinstance(chunk_size, (bool, np.bool_))
    if not ok or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def _normalise_rows(s, f, m):
    """Turn a block of scores into affinity rows, in place: softmax or ``/ m``."""
    if f.normalization == "softmax":
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
    elif f.normalization == "count":
        s /= s.dtype.type(m)
    else:
        raise ValueError(f"unknown normalization {f.normalization!r} of {type(f).__name__}")
    return s


def affinity(q: ArrayLike, k: ArrayLike, f: Pairwise, *, rows: slice | ArrayLike | None = None) -> np.ndarray:
    """Rows of the normalised dense affinity ``P_ij = f(x_i, x_j) / C_i(x)``.

    Parameters
    ----------
    q : ndarray, shape (n, dq)
    k : ndarray, shape (m, dk)
    f : Pairwise
    rows : slice or array of int, optional
        Positions ``i`` to return (default all: an ``n x m`` array, so ask
        for a few rows of a large map).

    Returns
    -------
    P : ndarray, shape (len(rows), m)
        Rows sum to one for ``normalization == "softmax"``.

    Raises
    ------
    TypeError
        If ``f`` is not a :class:`~nlm.ops.kernels.Pairwise`.
    ValueError
        If ``q``/``k`` are not 2-D.

    Notes
    -----
    Time ``O(len(rows) m d)``, memory ``O(len(rows) m)``.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.ops.kernels import PlainGaussian
    >>> x = np.random.default_rng(0).normal(size=(4, 2))
    >>> np.allclose(affinity(x, x, PlainGaussian()).sum(axis=1), 1)
    True
    """
    if not isinstance(f, Pairwise):
        raise TypeError(f"f must be a nlm.ops.kernels.Pairwise, got {type(f).__name__}")
    q, k = np.asarray(q), np.asarray(k)
    if q.ndim != 2 or k.ndim != 2:
        raise ValueError(f"q and k must be 2-D (positions, features), got {q.shape} and {k.shape}")
    if rows is not None:
        q = q[rows]
        if q.ndim == 1:
            q = q[None, :]
    dtype = np.result_type(q, k, np.float32)
    s = np.array(f.scores(q, k), dtype=dtype)
    return _normalise_rows(s, f, k.shape[0])


def _add_params(total, part):
    for key, val in part.items():
        if key in total:
            total[key] = total[key] + val
        else:
            total[key] = np.array(val)


def attend_backward(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    f: Pairwise,
    dy: ArrayLike,
    *,
    chunk_size: int = 1024,
    y: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Gradients of :func:`attend`, computed chunk by chunk along ``i``.

    Parameters
    ----------
    q : ndarray, shape (n, dq)
    k : ndarray, shape (m, dk)
    v : ndarray, shape (m, c)
    f : Pairwise
        Must implement :meth:`~nlm.ops.kernels.Pairwise.score_grads`.
    dy : ndarray, shape (n, c)
        Gradient of the loss with respect to ``attend(q, k, v, f)``.
    chunk_size : int
        Rows ``i`` per affinity chunk; the result does not depend on it.
    y : ndarray, shape (n, c), optional
        The forward result ``attend(q, k, v, f)``, if kept: saves one
        ``chunk x m x c`` product per chunk (softmax only).

    Returns
    -------
    dq : ndarray, shape (n, dq)
    dk : ndarray, shape (m, dk)
    dv : ndarray, shape (m, c)
    dparams : dict of str to ndarray
        Gradients of ``f``'s own parameters (e.g. ``"weight"`` of
        :class:`~nlm.ops.kernels.Concatenation`).

    Raises
    ------
    ValueError
        For inconsistent shapes or a bad ``chunk_size``.
    NotImplementedError
        If ``f`` has no gradients.

    Notes
    -----
    The affinity is recomputed per chunk, never stored: time ``O(n m (d + c))``
    (about twice the forward), memory ``O(chunk_size m + (n + m)(d + c))``.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.ops.kernels import PlainGaussian
    >>> x = np.random.default_rng(0).normal(size=(6, 2))
    >>> dq, dk, dv, _ = attend_backward(x, x, x, PlainGaussian(), np.ones((6, 2)), chunk_size=4)
    >>> dq.shape, dk.shape, dv.shape
    ((6, 2), (6, 2), (6, 2))
    """
    chunk_size = _check_chunk(chunk_size)
    n, m = q.shape[0], k.shape[0]
    if v.shape[0] != m or dy.shape != (n, v.shape[1]) or (y is not None and y.shape != dy.shape):
        shapes = f"q {q.shape}, k {k.shape}, v {v.shape}, dy {dy.shape}" + ("" if y is None else f", y {y.shape}")
        raise ValueError(f"inconsistent shapes {shapes}")
    dtype = np.result_type(q, k, v, dy)
    dq = np.empty(q.shape, dtype=dtype)
    dk = np.zeros(k.shape, dtype=dtype)
    dv = np.zeros(v.shape, dtype=dtype)
    dparams = {}
    softmax = f.normalization == "softmax"
    for i0 in range(0, n, chunk_size):
        sl = slice(i0, i0 + chunk_size)
        p = _normalise_rows(np.array(f.scores(q[sl], k), dtype=dtype), f, m)
        dyc = dy[sl]
        dv += p.T @ dyc
        ds = dyc @ v.T  # dP
        if softmax:
            yc = p @ v if y is None else y[sl]
            delta = np.einsum("nc,nc->n", dyc, yc)  # rowsum(dP * P) = dy_i . y_i
            ds -= delta[:, None]
            ds *= p
        else:
            ds /= dtype.type(m)
        del p
        dqc, dkc, dpc = f.score_grads(q[sl], k, ds)
        dq[sl] = dqc
        dk += dkc
        _add_params(dparams, dpc)
    return dq, dk, dv, dparams


def _overlap(shape, offset):
    """Slices of the positions i, and of j = i + offset, that both lie inside."""
    si, sj = [], []
    for n, t in zip(shape, offset):
        lo, hi = max(0, -t), max(0, min(n, n - t))  # i range; empty when |t| >= n
        si.append(slice(lo, max(lo, hi)))
        sj.append(slice(lo + t, max(lo, hi) + t))
    return tuple(si), tuple(sj)


def _offsets(window, spatial):
    """The window's offsets; radii clipped to ``n - 1`` (larger offsets pair nothing)."""
    return itertools.product(*[range(-w, w + 1) for w in (min(w, max(n - 1, 0)) for w, n in zip(window, spatial))])


def _windowed(q, k, v, f, window):
    """Windowed non-local operation on channel-last grids (generic NumPy engine)."""
    num, den, _ = _windowed_sums(q, k, v, f, window)
    return num / den[..., None]


def _windowed_sums(q, k, v, f, window):
    """Numerator, denominator and running maximum of :func:`_windowed`.

    Softmax: ``y = num / den`` with ``den_i = sum_j exp(s_ij - run_max_i)``.
    Count: ``den_i`` is the number of ``j`` in the clipped window.
    """
    spatial = q.shape[:-1]
    dtype = np.result_type(q, k, v)
    num = np.zeros(spatial + (v.shape[-1],), dtype=dtype)
    den = np.zeros(spatial, dtype=dtype)
    softmax = f.normalization == "softmax"
    if softmax:
        run_max = np.full(spatial, -np.inf, dtype=dtype)
    for t in _offsets(window, spatial):
        si, sj = _overlap(spatial, t)
        qi, kj, vj = q[si], k[sj], v[sj]
        region = qi.shape[:-1]
        if 0 in region:
            continue
        s = f.pair_scores(qi.reshape(-1, qi.shape[-1]), kj.reshape(-1, kj.shape[-1]))
        s = np.asarray(s, dtype=dtype).reshape(region)
        if softmax:
            new_max = np.maximum(run_max[si], s)
            # where every score so far is -inf (weight 0), nothing to rescale:
            # subtract 0 instead of -inf (-inf - -inf would be NaN)
            safe = np.where(new_max > -np.inf, new_max, 0)
            scale = np.exp(run_max[si] - safe)
            e = np.exp(s - safe)
            den[si] = den[si] * scale + e
            num[si] = num[si] * scale[..., None] + e[..., None] * vj
            run_max[si] = new_max
        else:
            den[si] += 1
            num[si] += s[..., None] * vj
    return num, den, (run_max if softmax else None)


def _windowed_backward(q, k, v, f, dy, window):
    """Gradients of :func:`_windowed` with respect to ``q``, ``k``, ``v`` and ``f``.

    Two passes over the offsets: the first recomputes the row maxima and
    denominators, the second forms ``P_ij`` for each offset and accumulates
    ``dv_j += P_ij dy_i`` and ``dS_ij`` (see the module notes), which
    ``f.pair_score_grads`` carries to ``dq_i`` and ``dk_j``.  Memory ``O(N)``,
    time twice the forward.
    """
    spatial = q.shape[:-1]
    dtype = np.result_type(q, k, v, dy)
    num, den, run_max = _windowed_sums(q, k, v, f, window)
    softmax = f.normalization == "softmax"
    if softmax:
        y = num / den[..., None]
        delta = np.einsum("...c,...c->...", dy, y)
    del num
    dq = np.zeros(q.shape, dtype=dtype)
    dk = np.zeros(k.shape, dtype=dtype)
    dv = np.zeros(v.shape, dtype=dtype)
    dparams = {}
    for t in _offsets(window, spatial):
        si, sj = _overlap(spatial, t)
        qi, kj, vj, dyi = q[si], k[sj], v[sj], dy[si]
        region = qi.shape[:-1]
        if 0 in region:
            continue
        qf, kf = qi.reshape(-1, qi.shape[-1]), kj.reshape(-1, kj.shape[-1])
        s = np.asarray(f.pair_scores(qf, kf), dtype=dtype).reshape(region)
        if softmax:
            p = np.exp(s - run_max[si]) / den[si]
        else:
            p = s / den[si]
        dp = np.einsum("...c,...c->...", dyi, vj)
        dv[sj] += p[..., None] * dyi
        ds = p * (dp - delta[si]) if softmax else dp / den[si]
        dqi, dkj, dpc = f.pair_score_grads(qf, kf, ds.reshape(-1))
        dq[si] += dqi.reshape(qi.shape)
        dk[sj] += dkj.reshape(kj.shape)
        _add_params(dparams, dpc)
    return dq, dk, dv, dparams


def check_window(window: int | tuple[int, ...], nd: int) -> tuple[int, ...]:
    """Validate a window radius: one non-negative integer, or ``nd`` of them.

    Returns
    -------
    tuple of int, length ``nd``

    Raises
    ------
    ValueError
        For anything else.
    """
    radii = (window,) * nd if np.ndim(window) == 0 else tuple(window)

    def ok(w):
        return isinstance(w, numbers.Real) and not isinstance(w, bool) and float(w).is_integer() and w >= 0

    if len(radii) != nd or not all(ok(w) for w in radii):
        raise ValueError(f"window must be a non-negative int or {nd} of them, got {window!r}")
    return tuple(int(w) for w in radii)


def _check_x(x):
    """``x`` as a native-order float array (float16/32 -> float32, else float64), validated."""
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind not in "biuf":
        raise TypeError(f"x must be a real numeric array, got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"x must be channel-last with >= 1 spatial axis, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"x is empty (shape {x.shape})")
    x = np.asarray(x, dtype=_float_dtype(x.dtype))
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or Inf values")
    return x


def nonlocal_op(
    x: ArrayLike,
    f: Pairwise,
    g: Representation | None = None,
    *,
    window: int | tuple[int, ...] | None = None,
    chunk_size: int = 1024,
    engine: str = "auto",
) -> np.ndarray:
    """Generic non-local operation ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)``.

    Parameters
    ----------
    x : ndarray, shape (*spatial, channels)
        Channel-last input map (one sample; 1, 2 or 3 spatial axes), real
        numeric and finite.  Computed in float32 for float16/float32 input
        (any byte order, any strides) and in float64 otherwise.
    f : Pairwise
        Pairwise function with its normaliser (see :mod:`nlm.ops.kernels`).
    g : Representation, optional
        Representation of ``x_j``; default :class:`~nlm.ops.kernels.Identity`.
    window : int or sequence of int, optional
        Restrict ``j`` to ``|j_a - i_a| <= window_a`` on every spatial axis
        (clipped at the borders).  ``None``: every ``j``.
    chunk_size : int
        Positions ``i`` per affinity chunk of the dense engine.
    engine : {"auto", "numpy"}
        ``"auto"`` uses ``f``'s compiled fast path when it has one for this
        ``g`` and window; ``"numpy"`` always uses the generic NumPy engines
        (the reference the fast paths are tested against).

    Returns
    -------
    y : ndarray, shape (*spatial, channels_of_g)
        float32 for float16/float32 ``x``, float64 otherwise.

    Raises
    ------
    TypeError
        If ``f`` or ``g`` do not implement the kernel interface, or ``x`` is
        not a real numeric array.
    ValueError
        For an empty ``x``, NaN/Inf in ``x``, fewer than 2 axes, a bad
        ``window``, ``chunk_size`` or ``engine``, or when the result would
        not be finite (``x`` so large that ``f``'s scores overflow; the
        Euclidean Gaussians never do: they are evaluated on ``x`` scaled by
        a power of two).

    Notes
    -----
    Dense: time ``O(N^2 (d + c))``, memory ``O(chunk_size N)``.  Windowed: time
    ``O(N W (d + c))`` with ``W`` the window volume, memory ``O(N (d + c))``.

    References
    ----------
    .. [1] X. Wang, R. Girshick, A. Gupta, K. He, "Non-local Neural Networks",
       CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.ops.kernels import EuclideanGaussian
    >>> x = np.zeros((4, 5, 1))
    >>> nonlocal_op(x, EuclideanGaussian(h=0.1), window=1).shape
    (4, 5, 1)
    """
    if g is None:
        g = Identity()
    if not isinstance(f, Pairwise):
        raise TypeError(f"f must be a nlm.ops.kernels.Pairwise, got {type(f).__name__}")
    if not isinstance(g, Representation):
        raise TypeError(f"g must be a nlm.ops.kernels.Representation, got {type(g).__name__}")
    x = _check_x(x)
    if not isinstance(engine, str) or engine not in ("auto", "numpy"):
        raise ValueError(f"engine must be 'auto' or 'numpy', got {engine!r}")
    chunk_size = _check_chunk(chunk_size)
    nd = x.ndim - 1
    if window is not None:
        window = check_window(window, nd)
    shift, x0 = 0, x
    if type(f) in (EuclideanGaussian, PatchEuclideanGaussian) and isinstance(g, Identity):
        # scale-covariant: evaluate on data scaled by a power of two (exact)
        # so that squared distances cannot overflow at any magnitude
        x, h, sigma, shift = _rescale(x, f.h, f.sigma)
        f = copy.copy(f)
        f.h, f.sigma = h, sigma
    with np.errstate(over="ignore", invalid="ignore"):
        y = _evaluate(x, f, g, window, engine, chunk_size)
    y = _unscale(y, shift, x0)
    if not np.isfinite(y).all():
        raise ValueError(
            f"x: the operation overflowed {y.dtype} (|x| up to {float(np.abs(x).max()):.3g} with "
            f"{type(f).__name__}); scale x down"
        )
    return y


def _evaluate(x, f, g, window, engine, chunk_size):
    if window is not None and engine == "auto":
        y = f.fast_windowed(x, g, window)
        if y is not None:
            return y
    q, k = f.features(x)
    v = g(x)
    if window is not None:
        return _windowed(q, k, v, f, window)
    spatial = x.shape[:-1]
    flat = [a.reshape(-1, a.shape[-1]) for a in (q, k, v)]
    y = attend(*flat, f, chunk_size=chunk_size)
    return y.reshape(spatial + (y.shape[-1],))
