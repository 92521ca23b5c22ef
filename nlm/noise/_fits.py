"""Robust fits of the noise level function, for :mod:`nlm.noise.estimate`.

Weighted non-negative least squares of the variance against ``[1, u, u^2]``
with Tukey's biweight on the bins above the fit, and the one-parameter fit of
the Rician level function (with the Rayleigh air estimate) used for MRI
magnitude data.  Private: :func:`nlm.noise.estimate_noise` is the public entry.
"""

from __future__ import annotations

import numpy as np

from nlm.noise._special import minimize_bounded, nnls
from nlm.noise.models import rician_moments


def _wls(x, v, w, cols):
    """Non-negative weighted least squares of ``v ~ [1, x, x^2][cols]``."""
    A = np.stack([np.ones_like(x), x, x * x], axis=1)[:, cols]
    sw = np.sqrt(w)
    scale = np.abs(A).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(A / scale * sw[:, None], v * sw)
    coef = coef / scale
    full = np.zeros(3)
    full[list(cols)] = coef
    return full


_TUKEY = 4.685  # biweight constant (95 % efficiency at the normal)


def _fit(x, v, n, cols, scale=None):
    """Robust IRLS fit of ``v ~ [1, x, x^2][cols]`` with relative errors.

    Weights ``count / predicted^2`` times Tukey's biweight of the bin's
    standardised residual when it is above the fit (scale: ``scale``, or
    the MAD of the residuals), so that bins inflated by texture the block
    selection missed do not bend the fit.  Returns the coefficients and the
    standardised residuals ``sqrt(count) (v - pred) / pred``.
    """
    w = n / np.maximum(v, 1e-300) ** 2
    coef = _wls(x, v, w, cols)
    robust = np.ones_like(v)
    floor = 0.05 * max(float(np.median(v)), 1e-300)
    for it in range(6 if scale is None else 12):
        pred = np.maximum(coef[0] + coef[1] * x + coef[2] * x * x, floor)
        z = np.sqrt(n) * (v - pred) / pred
        if it >= 2:  # a few plain iterations first, then the biweight
            s = 1.4826 * float(np.median(np.abs(z))) if scale is None else scale
            u = z / (_TUKEY * max(s, 1e-12))
            # one-sided: texture and edges only add energy, so only bins
            # above the fit are suspect; a bin below it is evidence
            robust = np.where(u <= 0, 1.0, np.where(u < 1, (1 - u * u) ** 2, 0.0))
            if np.count_nonzero(robust) < len(cols) + 2:
                robust = np.ones_like(v)
        coef = _wls(x, v, n * robust / pred**2, cols)
    pred = np.maximum(coef[0] + coef[1] * x + coef[2] * x * x, 1e-300)
    return coef, np.sqrt(n) * (v - pred) / pred


def _tukey_loss(z, scale):
    """One-sided robust loss of standardised residuals ``z / scale``: the
    square below the fit; above it twice Tukey's biweight rho (the square
    near 0, at most ``c^2 / 3``: a bin inflated by texture costs a bounded
    amount, a bin below the fit, which texture cannot explain, does not)."""
    z = np.asarray(z) / scale
    t = np.minimum(np.abs(z) / _TUKEY, 1.0)
    above = _TUKEY**2 / 3 * (1 - (1 - t * t) ** 3)
    return float(np.sum(np.where(z > 0, above, z * z)))


#: the Rician variance (per sigma^2) against the mean (per sigma), tabulated once
_RICIAN_TABLE = None


def _rician_level(x, sigma):
    """Variance of Rician noise of std ``sigma`` at the observed mean ``x`` (float64 array).

    Below the Rayleigh mean ``sigma sqrt(pi / 2)`` (reachable by a noisy
    bin, not by an expectation): the Rayleigh variance.
    """
    global _RICIAN_TABLE
    if _RICIAN_TABLE is None:
        snr = np.concatenate([np.linspace(0.0, 8.0, 801), np.geomspace(8.02, 64.0, 200)])
        _RICIAN_TABLE = rician_moments(snr, 1.0)
    m, w = _RICIAN_TABLE
    r = np.asarray(x, dtype=np.float64) / sigma
    out = np.interp(r, m, w)
    far = r > m[-1]
    if far.any():  # w = 1 - 1 / (2 s^2), s^2 = r^2 - 1 at high SNR
        out = np.where(far, 1.0 - 0.5 / np.maximum(r * r - 1.0, 1.0), out)
    return sigma * sigma * out


def _fit_rician(x, v, n, sigma0, scale):
    """Robust one-parameter fit of the Rician level function to the bins.

    Minimises the one-sided Tukey loss (:func:`_tukey_loss`, scale
    ``scale``) of the bins' standardised residuals ``sqrt(count) (v - pred)
    / pred`` over ``sigma`` in ``[sigma0 / 3, 3 sigma0]`` (a log grid, then
    a bounded refinement).  Returns ``(sigma, residuals)``.
    """
    def loss(log_s):
        pred = np.maximum(_rician_level(x, np.exp(log_s)), 1e-300)
        return _tukey_loss(np.sqrt(n) * (v - pred) / pred, scale)

    grid = np.log(sigma0) + np.linspace(-np.log(3.0), np.log(3.0), 81)
    k = int(np.argmin([loss(g) for g in grid]))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    best = minimize_bounded(loss, lo, hi, tol=1e-6)
    sigma = float(np.exp(best))
    pred = np.maximum(_rician_level(x, sigma), 1e-300)
    return sigma, np.sqrt(n) * (v - pred) / pred


#: the Rayleigh background: mean / sigma and variance / mean^2
_RAYLEIGH_MEAN = float(np.sqrt(np.pi / 2.0))


def _rician_sigma(x, v, n, sigma0, scale):
    """Rician ``sigma`` from the bins: the background when there is one, else the level function.

    Background: the bins within 5 % of the darkest bin's mean whose
    variance over squared mean is that of Rayleigh noise (0.273, accepted
    in ``[0.18, 0.40]``, the bins' sampling scatter): ``sigma = mean /
    sqrt(pi / 2)`` from their median mean (the mean, which a bin measures
    far more precisely than its variance; the level function alone is
    nearly flat there: ``sigma^2 w(x / sigma)`` barely changes when
    ``sigma`` and the SNR ``x / sigma`` trade off).  At least two bins must
    agree.  Otherwise :func:`_fit_rician`.  Returns ``(sigma, source)``.
    """
    x0 = float(x.min())
    if x0 > 0:
        near = x <= 1.05 * x0
        ratio = v / (x * x)
        bg = near & (ratio >= 0.18) & (ratio <= 0.40)
        if np.count_nonzero(bg) >= 2 and np.count_nonzero(bg) >= 0.5 * np.count_nonzero(near):
            return float(np.median(x[bg])) / _RAYLEIGH_MEAN, "background"
    return _fit_rician(x, v, n, sigma0, scale)[0], "level function"


#: a bin farther from its neighbour than this many times the span of all the others is apart
_APART = 4.0


def _one_bin_apart(x):
    """Whether the bin at either end of the intensity range stands apart from all the others (``noise="auto"``).

    ``x``: the bins' intensities.  True when the gap between the brightest
    bin and the next exceeds ``_APART`` times the span of the others (or
    the same for the darkest).  A slope fitted then is a line through a
    cluster of bins and one bin far from it: its evidence is that one bin,
    the level function between the two is never seen, and above the bins
    the slope is extrapolated to every brighter intensity.  Volumes whose
    smooth blocks are nearly all at one level (the air around a head in an
    MRI volume, whose Rician-like level rises near the background and then
    flattens) give exactly that; signal-dependent noise on an image with
    smooth areas at many levels spreads the bins over the range.
    """
    if x.size < 3:
        return False
    xs = np.sort(x)
    top = xs[-1] - xs[-2] > _APART * (xs[-2] - xs[0])
    bottom = xs[1] - xs[0] > _APART * (xs[-1] - xs[1])
    return bool(top or bottom)
