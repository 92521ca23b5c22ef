"""The few special functions and the small solver the noise code needs, without SciPy.

Importing ``scipy.special`` and ``scipy.optimize`` costs about 0.25 s, a third
of a warm ``nlm denoise`` run; the noise estimator needs only ``erfc`` of a
few thousand block statistics, ``digamma`` of one number and non-negative
least squares with at most three unknowns, and the Rician model the
exponentially scaled Bessel functions ``i0e`` and ``i1e``.  These are exact
to rounding:
``erfc`` is the C library's (through :mod:`math`), ``digamma`` sums the
recurrence and the asymptotic series to double precision, the Bessel
functions sum their power series (``z <= 20``) or Hankel's asymptotic
series (beyond), both to double precision, and :func:`nnls`
solves the problem exactly by trying every support.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

_erfc = np.frompyfunc(math.erfc, 1, 1)


def erfc(x):
    """Complementary error function, elementwise, float64 (the C library's ``erfc``)."""
    x = np.asarray(x, dtype=np.float64)
    return _erfc(x).astype(np.float64) if x.ndim else float(math.erfc(float(x)))


def ndtr(x):
    """Standard normal cumulative distribution function, elementwise, float64."""
    return 0.5 * erfc(-np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


#: Bernoulli numbers B_2k / (2k) of the asymptotic series of digamma
_PSI_SERIES = (1 / 12, -1 / 120, 1 / 252, -1 / 240, 1 / 132, -691 / 32760, 1 / 12)


def digamma(x: float) -> float:
    """``psi(x)`` for ``x > 0``: recurrence up to ``x >= 10``, then the asymptotic series (error < 1e-15)."""
    x = float(x)
    acc = 0.0
    while x < 10.0:
        acc -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    tail = 0.0
    for c in reversed(_PSI_SERIES):
        tail = tail * inv2 + c
    return acc + math.log(x) - 0.5 / x - tail * inv2


def nnls(A, b):
    """``argmin ||A c - b||`` over ``c >= 0`` for a few columns (at most 4), and the residual norm.

    The solution is the unconstrained least-squares solution on its support,
    so trying every subset of columns and keeping the best feasible one is
    exact; with ``n`` columns that is ``2^n - 1`` small solves.
    """
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = A.shape[1]
    if n > 4:
        raise ValueError(f"nnls solves at most 4 unknowns, got {n}")
    best = np.zeros(n)
    best_res = float(np.linalg.norm(b))
    for k in range(1, n + 1):
        for support in itertools.combinations(range(n), k):
            cols = list(support)
            c, *_ = np.linalg.lstsq(A[:, cols], b, rcond=None)
            if np.any(c < 0) or not np.all(np.isfinite(c)):
                continue
            res = float(np.linalg.norm(A[:, cols] @ c - b))
            if res < best_res:
                best_res = res
                best = np.zeros(n)
                best[cols] = c
    return best, best_res


def _bessel_ie(nu, z):
    """``exp(-z) I_nu(z)`` for ``nu`` in {0, 1} and ``z >= 0``, elementwise, float64.

    ``z <= 20``: the power series ``sum (z/2)^(2k + nu) / (k! (k + nu)!)``
    (positive terms, no cancellation); beyond: Hankel's asymptotic series
    ``(2 pi z)^(-1/2) sum (-1)^k a_k(nu) / z^k``, whose smallest term at
    ``z = 20`` is below 1e-17.
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.empty(z.shape, dtype=np.float64)
    small = z <= 20.0
    if small.any():
        zs = z[small]
        q = 0.25 * zs * zs
        term = 0.5 * zs if nu == 1 else np.ones_like(zs)
        total = term.copy()
        for k in range(1, 120):
            term = term * q / (k * (k + nu))
            total += term
            if np.all(term <= 1e-17 * total):
                break
        out[small] = total * np.exp(-zs)
    if not small.all():
        zl = z[~small]
        mu = 4.0 * nu * nu
        term = np.ones_like(zl)
        total = term.copy()
        for k in range(1, 40):
            term = term * (-(mu - (2 * k - 1) ** 2) / (8.0 * k * zl))
            total += term
        out[~small] = total / np.sqrt(2.0 * np.pi * zl)
    return out


def i0e(z):
    """Exponentially scaled modified Bessel function of order 0, ``exp(-z) I_0(z)``, for ``z >= 0``."""
    return _bessel_ie(0, z)


def i1e(z):
    """Exponentially scaled modified Bessel function of order 1, ``exp(-z) I_1(z)``, for ``z >= 0``."""
    return _bessel_ie(1, z)


def minimize_bounded(f, lo: float, hi: float, tol: float = 1e-7) -> float:
    """The minimiser of a scalar function on ``[lo, hi]`` by golden-section search (unimodal ``f``).

    Stops when the bracket is narrower than ``tol``; returns its best point.
    """
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = float(lo), float(hi)
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return c if fc <= fd else d
