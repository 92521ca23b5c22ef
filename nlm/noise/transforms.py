"""Variance-stabilising transforms of the noise models and their inverses.

Used by the non-local means path, which needs additive noise of constant
variance (NL-Bayes needs no transform: it uses the level function directly).

| transform | for | forward | inverse |
|---|---|---|---|
| ``"sqrt"`` | speckle | ``sqrt(y)`` | ``z^2`` (mean restored afterwards) |
| ``"log"`` | speckle, gamma | ``log(max(y, floor))`` | ``exp(z)``; gamma: ``exp(z - (psi(L) - log L))`` |
| ``"anscombe"`` | Poisson-Gaussian | ``2/b sqrt(b y + 3/8 b^2 + a)`` | ``b (z/2)^2 - b/8 - a/b`` |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nlm.noise._special import digamma

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from nlm.noise.models import NoiseModel

__all__ = ["TRANSFORMS", "LOG_FLOOR", "forward", "inverse", "log_bias", "gamma_floor", "gamma_log"]

#: transforms known to :func:`forward`
TRANSFORMS = ("sqrt", "log", "anscombe")

#: log transform: values are floored at this fraction of the image's peak
#: (an 8-bit quantisation step), so that zeros (clipped speckle) stay finite
LOG_FLOOR = 2.0**-8


def log_bias(looks: float) -> float:
    """``E[log s] = psi(L) - log L`` for ``s ~ Gamma(L, 1/L)``."""
    return float(digamma(looks) - np.log(looks))


def forward(y: ArrayLike, transform: str, *, floor: float = 0.0, model: NoiseModel | None = None) -> np.ndarray:
    """Apply ``transform`` to float64 ``y``.

    ``floor``: the log transform's lower bound; ``model``: the
    :class:`~nlm.noise.PoissonGaussian` model for ``"anscombe"`` (unit noise
    variance after the transform).
    """
    if transform == "sqrt":
        return np.sqrt(np.maximum(y, 0.0))
    if transform == "log":
        return np.log(np.maximum(y, floor))
    a, b, _ = model.coefficients
    return (2.0 / b) * np.sqrt(np.maximum(b * y + 0.375 * b * b + a, 0.0))


def inverse(z: ArrayLike, transform: str, *, model: NoiseModel | None = None) -> np.ndarray:
    """Back-transform; for ``"log"`` with a :class:`~nlm.noise.Gamma` model the
    bias ``psi(L) - log L`` of the log of gamma speckle is removed, so
    homogeneous areas keep their mean; ``"anscombe"`` uses the asymptotically
    unbiased inverse."""
    if transform == "sqrt":
        z = np.maximum(z, 0.0)
        return z * z
    if transform == "log":
        if model is not None and model.name == "gamma":
            return np.exp(z - log_bias(model.looks))
        return np.exp(z)
    a, b, _ = model.coefficients
    return b * (0.25 * z * z) - 0.125 * b - a / b


def gamma_floor(x64: np.ndarray, default: float) -> float:
    """The log floor of SAR gamma data: its smallest positive value (``default`` when none is positive).

    Gamma speckle ``y = x s`` is positive wherever ``x`` is, and its log has
    a long lower tail (``L = 1``: ``P(s < 0.05) = 5 %``).  The speckle
    mode's floor at ``LOG_FLOOR`` times the peak suits 8-bit, clipped data;
    on SAR scenes, whose peak is the speckle of the brightest area (several
    times its mean at one look), it cut the dark tail of every darker area
    into one value, so their patches matched too easily and their means came
    out low (up to 2.9 % below the noisy area's mean at ``L = 1``, 4.2 %
    below the clean one; ``benchmarks/sar_weak_spots.py``).
    """
    pos = x64[x64 > 0]
    return float(pos.min()) if pos.size else default


#: the gamma path of :func:`nlm.denoise_nl_means`: its log is floored at this fraction of the local mean
#: (see :func:`gamma_log`)
GAMMA_LOCAL_FLOOR = 0.1
#: ... the local mean's window (pixels per axis)
GAMMA_FLOOR_WINDOW = 7


def gamma_log(x64: np.ndarray, floor: float) -> np.ndarray:
    """The log image the weights of NLM's gamma path are computed on (channel-last float64 ``x64``).

    ``log(max(y, GAMMA_LOCAL_FLOOR m, floor))``: ``m`` the mean of ``y``
    over a ``GAMMA_FLOOR_WINDOW`` box around the pixel (per channel),
    ``floor`` the smallest positive value (:func:`gamma_floor`).  The floor
    follows the local level, so the dark tail of the speckle (``L = 1``: 10 %
    of the values below 0.1 times the mean; ``L = 4``: 0.01 %) is cut the
    same way in a dark area as in a bright one, and single values far in that
    tail do not keep patches of their own (dark dots).  Exact zeros (a zero
    background) go to ``log(floor)``, also beside non-zero values.  Measured on the
    public set (gamma ``L = 1``, ``noise="auto"``): 21.90 dB with the
    former floor (``2^-8`` of the peak), 22.18 with the smallest positive value alone,
    22.27 / 22.54 / 22.72 / 22.86 / 22.97 with fractions 2^-8 / 0.03 / 0.06 /
    0.1 / 0.15 of the local mean; the homogeneous-area means of
    ``benchmarks/sar_weak_spots.py`` were the same from 0.06 to 0.1
    (largest error 2.3 %, against 2.9 % with the former floor).  ``O(N)``.
    """
    from scipy.ndimage import uniform_filter

    size = (GAMMA_FLOOR_WINDOW,) * (x64.ndim - 1) + (1,)
    loc = uniform_filter(x64, size=size, mode="reflect")
    np.multiply(loc, GAMMA_LOCAL_FLOOR, out=loc)
    np.maximum(loc, floor, out=loc)
    np.maximum(loc, x64, out=loc)
    loc[x64 == 0] = floor  # a known zero: one value, whatever its neighbours (and none in the noise estimate)
    return np.log(loc, out=loc)
