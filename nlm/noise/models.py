"""Noise models: a variance function and a seeded sampler each.

Every model describes the noise by its *noise level function* (NLF), the
variance of an observation given the clean value,

    var(y | x) = a + b x + c x^2,

which is all the NL-Bayes denoiser needs, and can draw noisy samples
(``model.sample(clean, seed=...)``).  Values are in the units of the image
they are applied to (``[0, 1]`` for converted images).

| model | observation | a | b | c |
|---|---|---|---|---|
| :class:`Gaussian` | ``y = x + n``, ``n ~ N(0, sigma^2)`` | ``sigma^2`` | 0 | 0 |
| :class:`PoissonGaussian` | ``y = gain P(x / gain) + N(0, sigma^2)`` | ``sigma^2`` | ``gain`` | 0 |
| :class:`Speckle` | ``y = clip(x + x n, 0, 1)``, ``n ~ N(0, var)`` | 0 | 0 | ``var`` |
| :class:`Gamma` | ``y = x s``, ``s ~ Gamma(L, 1/L)`` | 0 | 0 | ``1 / L`` |

Clipped observations.  :class:`Gaussian`, :class:`PoissonGaussian` and
:class:`Speckle` take ``clip``: the observation is ``clip(y, 0, 1)``, as
8-bit cameras and scikit-image's ``random_noise`` produce (Speckle's default
is True, as scikit-image; the others' False).  The level function above is
then that of the *unclipped* ``y``; :meth:`NoiseModel.observed_moments` gives
the mean and the variance of the clipped observation (closed forms with the
normal pdf and cdf, taking ``y | x`` as normal with the model's variance:
exact for the Gaussian and speckle models, the usual approximation for
Poisson-Gaussian noise; Foi, "Clipped noisy images: heteroskedastic modeling
and practical denoising", Signal Processing 89(12), 2009).
"""

import numbers

import numpy as np

__all__ = ["NoiseModel", "Gaussian", "PoissonGaussian", "Speckle", "Gamma", "NOISE_MODELS", "make_model"]

#: the names :func:`make_model` (and ``noise=`` of the denoisers) accept
NOISE_MODELS = ("gaussian", "poisson", "speckle", "gamma")


def _real(value, name, *, positive=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value}")
    return value


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _generator(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def _clean(x, name="x", nonneg=False):
    arr = np.asarray(x)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    out_dtype = np.float32 if arr.dtype == np.float32 else np.float64
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must not contain NaN or Inf values")
    if nonneg and arr.size and float(arr.min()) < 0:
        raise ValueError(f"{name} must be non-negative for this noise model, got a minimum of {float(arr.min()):g}")
    return arr, out_dtype


class NoiseModel:
    """Base class: a noise level function ``a + b x + c x^2`` and a sampler.

    Subclasses set ``name`` and the coefficients and implement ``_draw``.

    Attributes
    ----------
    name : str
        One of :data:`NOISE_MODELS`.
    a, b, c : float
        Coefficients of the variance function.
    """

    name = "base"
    a = b = c = 0.0
    #: whether observations are non-negative (multiplicative or counting noise)
    nonnegative = False
    #: whether observations are clipped to [0, 1] (see :meth:`observed_moments`)
    clip = False

    @property
    def coefficients(self):
        """``(a, b, c)`` of the variance function."""
        return (float(self.a), float(self.b), float(self.c))

    def variance(self, x):
        """Noise variance ``var(y | x) = a + b x + c x^2``.

        Parameters
        ----------
        x : array_like or float
            Clean values (negative values count as 0 in the ``b`` and ``c``
            terms, so the variance never falls below ``a``).

        Returns
        -------
        ndarray or float
            float64 variance, same shape as ``x``.
        """
        xp = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
        out = self.a + (self.b + self.c * xp) * xp
        return float(out) if out.ndim == 0 else out

    def observed_moments(self, x):
        """Mean and variance of the observation, clipped to ``[0, 1]`` if ``clip``.

        For ``y | x ~ N(x, s^2)``, ``s^2 = variance(x)``, and ``z = clip(y, 0,
        1)``, with ``alpha = -x / s``, ``beta = (1 - x) / s``, ``Phi``/``phi``
        the normal cdf/pdf and ``P = Phi(beta) - Phi(alpha)``:

            E[z]   = x P + s (phi(alpha) - phi(beta)) + 1 - Phi(beta)
            E[z^2] = (x^2 + s^2) P + 2 x s (phi(alpha) - phi(beta))
                     + s^2 (alpha phi(alpha) - beta phi(beta)) + 1 - Phi(beta)

        Far from the bounds (``x`` many ``s`` inside ``(0, 1)``) these are
        ``x`` and ``s^2``; at a bound the variance is lower and the mean is
        pulled inside.  Without ``clip``: ``x`` and :meth:`variance`.

        Parameters
        ----------
        x : array_like or float
            Clean (unclipped-mean) values, in ``[0, 1]`` for a clipped model.

        Returns
        -------
        mean, var : ndarray or float
            float64, same shape as ``x``.
        """
        x = np.asarray(x, dtype=np.float64)
        var = np.asarray(self.variance(x), dtype=np.float64)
        if not self.clip:
            mean = x
        else:
            from scipy.special import ndtr

            s = np.sqrt(var)
            # standardised bounds; s = 0 (a noise-free value) is a bound at
            # -inf or +inf, whose pdf terms vanish
            big = 1e150
            safe = np.where(s > 0, s, 1.0)
            al = np.where(s > 0, np.clip(-x / safe, -big, big), np.where(x >= 0, -big, big))
            be = np.where(s > 0, np.clip((1.0 - x) / safe, -big, big), np.where(x > 1, -big, big))
            Pa, Pb = ndtr(al), ndtr(be)
            pa = np.exp(-0.5 * np.minimum(al * al, 1e4)) / np.sqrt(2 * np.pi)
            pb = np.exp(-0.5 * np.minimum(be * be, 1e4)) / np.sqrt(2 * np.pi)
            apa, bpb = al * pa, be * pb
            inside = Pb - Pa
            mean = x * inside + s * (pa - pb) + (1.0 - Pb)
            m2 = (x * x + var) * inside + 2.0 * x * s * (pa - pb) + var * (apa - bpb) + (1.0 - Pb)
            var = np.maximum(m2 - mean * mean, 0.0)
            mean = np.clip(mean, 0.0, 1.0)
        if mean.ndim == 0:
            return float(mean), float(var)
        return mean, var

    def sample(self, x, seed=0):
        """Draw a noisy observation of the clean image ``x``.

        Parameters
        ----------
        x : array_like
            Clean image (any shape), in the model's units.
        seed : int, numpy.random.Generator or None, optional
            PCG64 seed (``numpy.random.default_rng(seed)``), default 0.

        Returns
        -------
        ndarray
            Same shape; float32 for float32 ``x``, else float64.

        Raises
        ------
        TypeError, ValueError
            Non-numeric or non-finite ``x``, negative ``x`` for a non-negative
            model, a bad ``seed``.
        """
        arr, out_dtype = _clean(x, nonneg=self.nonnegative)
        return self._draw(arr, _generator(seed)).astype(out_dtype, copy=False)

    def scaled(self, k):
        """The same model for the image multiplied by ``k > 0``."""
        raise NotImplementedError

    def _draw(self, x, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self.coefficients == other.coefficients and self.clip == other.clip

    def __hash__(self):
        return hash((type(self).__name__, self.coefficients, self.clip))

    def _clip_repr(self):
        return ", clip=True" if self.clip else ""


class Gaussian(NoiseModel):
    """Additive white Gaussian noise, ``y = x + n``, ``n ~ N(0, sigma^2)``.

    Parameters
    ----------
    sigma : float >= 0
        Standard deviation, in image units.
    clip : bool, optional
        Observations are clipped to ``[0, 1]`` (``clip(x + n, 0, 1)``, an
        8-bit camera, ``skimage.util.random_noise``); default False.

    Examples
    --------
    >>> Gaussian(0.1).variance(0.5)
    0.010000000000000002
    """

    name = "gaussian"

    def __init__(self, sigma, clip=False):
        self.sigma = _real(sigma, "sigma")
        self.a = self.sigma**2
        self.clip = _flag(clip, "clip")

    def scaled(self, k):
        """The same model for the image multiplied by ``k > 0`` (a clipped model stays clipped to [0, 1] only for ``k = 1``)."""
        k = _real(k, "k", positive=True)
        return Gaussian(self.sigma * k, clip=self.clip and k == 1.0)

    def _draw(self, x, rng):
        y = x + rng.normal(0.0, self.sigma, x.shape)
        return np.clip(y, 0.0, 1.0) if self.clip else y

    def __repr__(self):
        return f"Gaussian(sigma={self.sigma:.6g}{self._clip_repr()})"


class PoissonGaussian(NoiseModel):
    """Poisson-Gaussian noise of photon-limited sensors.

    ``y = gain * P(x / gain) + N(0, sigma^2)``: photon counting with ``gain``
    image units per photon plus Gaussian read noise, so
    ``var(y | x) = sigma^2 + gain x`` (fluorescence microscopy, raw camera
    data).  ``sigma = 0`` is pure (scaled) Poisson noise.

    Parameters
    ----------
    gain : float > 0
        Image units per photon (``b``).
    sigma : float >= 0, optional
        Read-noise standard deviation (``sqrt(a)``), default 0.
    clip : bool, optional
        Observations are clipped to ``[0, 1]`` (a saturating sensor);
        default False.
    """

    name = "poisson"
    nonnegative = True

    def __init__(self, gain, sigma=0.0, clip=False):
        self.gain = _real(gain, "gain", positive=True)
        self.sigma = _real(sigma, "sigma")
        self.a, self.b = self.sigma**2, self.gain
        self.clip = _flag(clip, "clip")

    def scaled(self, k):
        k = _real(k, "k", positive=True)
        return PoissonGaussian(self.gain * k, self.sigma * k, clip=self.clip and k == 1.0)

    def _draw(self, x, rng):
        y = self.gain * rng.poisson(x / self.gain).astype(np.float64)
        if self.sigma > 0:
            y += rng.normal(0.0, self.sigma, x.shape)
        return np.clip(y, 0.0, 1.0) if self.clip else y

    def __repr__(self):
        return f"PoissonGaussian(gain={self.gain:.6g}, sigma={self.sigma:.6g}{self._clip_repr()})"


class Speckle(NoiseModel):
    """Speckle as scikit-image defines it: ``y = clip(x + x n, 0, 1)``.

    ``n ~ N(0, var)``, so ``var(y | x) = var x^2`` (before clipping).  The
    sampler draws exactly what ``skimage.util.random_noise(x, "speckle",
    var=var, rng=seed)`` draws for an image in ``[0, 1]``.

    Parameters
    ----------
    var : float > 0
        Variance of ``n`` (``c``).
    clip : bool, optional
        Clip samples to ``[0, 1]`` (default True, as scikit-image).
    """

    name = "speckle"
    nonnegative = True

    def __init__(self, var, clip=True):
        self.var = _real(var, "var", positive=True)
        self.clip = _flag(clip, "clip")
        self.c = self.var

    def scaled(self, k):
        _real(k, "k", positive=True)
        return Speckle(self.var, clip=self.clip)

    def _draw(self, x, rng):
        y = x + x * rng.normal(0.0, self.var**0.5, x.shape)
        return np.clip(y, 0.0, 1.0) if self.clip else y

    def __repr__(self):
        return f"Speckle(var={self.var:.6g}{'' if self.clip else ', clip=False'})"


class Gamma(NoiseModel):
    """Fully developed SAR intensity speckle with ``L`` looks.

    ``y = x s``, ``s ~ Gamma(L, 1/L)`` (mean 1, variance ``1/L``), never
    clipped, so ``var(y | x) = x^2 / L`` and ``E[y | x] = x``.

    Parameters
    ----------
    looks : float > 0
        Number of looks ``L`` (need not be an integer).
    """

    name = "gamma"
    nonnegative = True

    def __init__(self, looks):
        self.looks = _real(looks, "looks", positive=True)
        self.c = 1.0 / self.looks

    def scaled(self, k):
        _real(k, "k", positive=True)
        return Gamma(self.looks)

    def _draw(self, x, rng):
        return x * rng.gamma(self.looks, 1.0 / self.looks, x.shape)

    def __repr__(self):
        return f"Gamma(looks={self.looks:.6g})"


def make_model(name, *, sigma=None, var=None, looks=None, gain=None):
    """Build a model from its name and parameters.

    Parameters
    ----------
    name : {"gaussian", "poisson", "speckle", "gamma"}
    sigma : float, optional
        Gaussian std (``"gaussian"``), read-noise std (``"poisson"``).
    var : float, optional
        Speckle variance (``"speckle"``; ``"gamma"``: ``looks = 1 / var``).
    looks : float, optional
        Number of looks (``"gamma"``; ``"speckle"``: ``var = 1 / looks``).
    gain : float, optional
        Poisson gain (``"poisson"``).

    Returns
    -------
    NoiseModel

    Raises
    ------
    TypeError, ValueError
        Unknown name, a missing or extra parameter, a bad value.
    """
    if not isinstance(name, str):
        raise TypeError(f"noise must be a string, got {name!r}")
    if name not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {name!r}")
    given = {k for k, v in dict(sigma=sigma, var=var, looks=looks, gain=gain).items() if v is not None}
    allowed = {
        "gaussian": {"sigma"},
        "poisson": {"gain", "sigma"},
        "speckle": {"var", "looks"},
        "gamma": {"looks", "var"},
    }[name]
    extra = sorted(given - allowed)
    if extra:
        raise ValueError(f"{', '.join(extra)} not used by the {name!r} noise model")
    if name == "gaussian":
        if sigma is None:
            raise ValueError("the 'gaussian' model needs sigma")
        return Gaussian(sigma)
    if name == "poisson":
        if gain is None:
            raise ValueError("the 'poisson' model needs gain")
        return PoissonGaussian(gain, 0.0 if sigma is None else sigma)
    if var is not None and looks is not None:
        raise ValueError(f"give either var or looks for the {name!r} model, not both")
    if var is None and looks is None:
        raise ValueError(f"the {name!r} model needs {'looks' if name == 'gamma' else 'var'}")
    if name == "speckle":
        return Speckle(var if var is not None else 1.0 / _real(looks, "looks", positive=True))
    return Gamma(looks if looks is not None else 1.0 / _real(var, "var", positive=True))
