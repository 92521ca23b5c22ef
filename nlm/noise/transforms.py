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

__all__ = ["TRANSFORMS", "LOG_FLOOR", "forward", "inverse", "log_bias"]

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
