"""The noise-model layer, at the bottom of the architecture.

Models (:class:`Gaussian`, :class:`PoissonGaussian`, :class:`Speckle`,
:class:`Gamma`, :class:`Rician`) know their noise level function ``a + b x + c x^2`` and draw
seeded samples; :func:`estimate_noise` fits the level function blindly and
picks the model; :func:`estimate_sigma` is its Gaussian special case;
:func:`add_noise` makes test images.  Both denoisers (non-local means and
NL-Bayes) use this layer; it imports nothing above it.
"""

from nlm.noise import transforms
from nlm.noise._synthetic import MODELS, add_noise
from nlm.noise.estimate import estimate_noise, estimate_sigma
from nlm.noise.models import (
    NOISE_MODELS,
    Gamma,
    Gaussian,
    NoiseModel,
    PoissonGaussian,
    Rician,
    Speckle,
    check_model,
    make_model,
)

__all__ = [
    "add_noise",
    "MODELS",
    "NOISE_MODELS",
    "NoiseModel",
    "Gaussian",
    "PoissonGaussian",
    "Speckle",
    "Gamma",
    "Rician",
    "make_model",
    "check_model",
    "estimate_noise",
    "estimate_sigma",
    "transforms",
]
