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
| :class:`Rician` | ``y = abs(x + n1 + i n2)``, ``n1, n2 ~ N(0, sigma^2)`` | ``sigma^2`` (see below) | 0 | 0 |

Rician noise (magnitude MRI) is not a quadratic: its variance rises from
``(2 - pi/2) sigma^2`` at ``x = 0`` to ``sigma^2`` at high SNR, and the
observation is biased upwards (``E[y^2] = x^2 + 2 sigma^2``).
:meth:`Rician.variance` and :meth:`Rician.observed_moments` give the exact
curves; ``a = sigma^2`` is their high-SNR limit and upper bound.

Clipped observations.  :class:`Gaussian`, :class:`PoissonGaussian` and
:class:`Speckle` take ``clip``: the observation is ``clip(y, lo, hi)``, as
cameras and scikit-image's ``random_noise`` produce.  ``clip=True`` means
the bounds ``(0, 1)`` of a converted image; ``clip=(0, 255)`` those of raw
8-bit values (``preserve_range=True``); ``clip=(0, None)`` a lower bound
only.  ``model.bounds`` is the pair (``-inf``/``inf`` for an open side) or
None, ``model.clip`` whether there is one.  Speckle's default is
``clip=True``, as scikit-image; the others' False.  The level function above
is then that of the *unclipped* ``y``; :meth:`NoiseModel.observed_moments`
gives the mean and the variance of the clipped observation (closed forms
with the normal pdf and cdf, taking ``y | x`` as normal with the model's
variance: exact for the Gaussian and speckle models, the usual approximation
for Poisson-Gaussian noise; Foi, "Clipped noisy images: heteroskedastic
modeling and practical denoising", Signal Processing 89(12), 2009).

Every coefficient is a finite float64 (a parameter whose square overflows
raises :class:`ValueError` naming it); :func:`check_model` validates a model
(including user subclasses) against the data it is applied to.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from nlm.noise._special import i0e, i1e, ndtr

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    #: a model's ``clip`` argument: True is [0, 1], or ``(lo, hi)`` with None for an open side
    Clip = bool | tuple[float | None, float | None]

__all__ = [
    "NoiseModel", "Gaussian", "PoissonGaussian", "Speckle", "Gamma", "Rician", "NOISE_MODELS", "make_model",
    "check_model", "rician_moments",
]

#: the names :func:`make_model` (and ``noise=`` of the denoisers) accept
NOISE_MODELS = ("gaussian", "poisson", "speckle", "gamma", "rician")


def _real(value, name, *, positive=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value}")
    return value


def _square(value, name):
    """``value ** 2`` as a finite float, or a ValueError naming the parameter."""
    with np.errstate(over="ignore"):
        sq = np.float64(value) * np.float64(value)
    if not np.isfinite(sq):
        raise ValueError(f"{name} is too large: its square ({name}^2, a variance) overflows float64, got {value:g}")
    return float(sq)


def _bounds(clip):
    """``clip`` argument -> None or ``(lo, hi)`` floats (``-inf``/``inf`` for an open side).

    ``False``/``None``: unclipped; ``True``: ``(0, 1)``; a pair of numbers,
    either of which may be None (open).
    """
    if clip is None or clip is False or (isinstance(clip, np.bool_) and not clip):
        return None
    if clip is True or isinstance(clip, np.bool_):
        return (0.0, 1.0)
    if isinstance(clip, (str, bytes)) or not isinstance(clip, (tuple, list, np.ndarray)) or len(clip) != 2:
        raise TypeError(f"clip must be a bool or a pair (lo, hi) of numbers or None, got {clip!r}")
    out = []
    for v, side, inf in zip(clip, ("lo", "hi"), (-np.inf, np.inf)):
        if v is None:
            out.append(inf)
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"clip's {side} bound must be a real number or None, got {v!r}")
        v = float(v)
        if np.isnan(v) or v == -inf:
            raise ValueError(f"clip's {side} bound must be a number or None (open), got {v}")
        out.append(v)
    lo, hi = out
    if np.isinf(lo) and np.isinf(hi):
        return None
    if not lo < hi:
        raise ValueError(f"clip bounds must satisfy lo < hi, got ({lo:g}, {hi:g})")
    return (lo, hi)


def _fmt_bound(v):
    return "None" if np.isinf(v) else f"{v:g}"


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
    #: ``(lo, hi)`` of clipped observations (``-inf``/``inf``: open) or None
    bounds = None

    @property
    def clip(self) -> bool:
        """Whether the observations are clipped (:attr:`bounds` is not None)."""
        return self.bounds is not None

    @property
    def biased_mean(self) -> bool:
        """Whether the observation's mean differs from the clean value.

        True for clipped models and for :class:`Rician` noise: NL-Bayes then
        works with :meth:`observed_moments` tables (the variance at the
        observed mean, and the inverse of the observed mean).
        """
        return self.clip

    @property
    def coefficients(self) -> tuple[float, float, float]:
        """``(a, b, c)`` of the variance function."""
        return (float(self.a), float(self.b), float(self.c))

    def variance(self, x: ArrayLike) -> np.ndarray | float:
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

    def observed_moments(self, x: ArrayLike) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Mean and variance of the observation, clipped to :attr:`bounds` if any.

        For ``y | x ~ N(x, s^2)``, ``s^2 = variance(x)``, and ``z = clip(y,
        lo, hi)``, with ``alpha = (lo - x) / s``, ``beta = (hi - x) / s``,
        ``Phi``/``phi`` the normal cdf/pdf and ``P = Phi(beta) - Phi(alpha)``:

            E[z]   = lo Phi(alpha) + x P + s (phi(alpha) - phi(beta))
                     + hi (1 - Phi(beta))
            E[z^2] = lo^2 Phi(alpha) + (x^2 + s^2) P
                     + 2 x s (phi(alpha) - phi(beta))
                     + s^2 (alpha phi(alpha) - beta phi(beta))
                     + hi^2 (1 - Phi(beta))

        (an open bound's terms vanish).  Far from the bounds (``x`` many
        ``s`` inside) these are ``x`` and ``s^2``; at a bound the variance is
        lower and the mean is pulled inside.  Without bounds: ``x`` and
        :meth:`variance`.

        Parameters
        ----------
        x : array_like or float
            Clean (unclipped-mean) values, within the bounds for a clipped
            model.

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
            lo, hi = self.bounds
            s = np.sqrt(var)
            # standardised bounds; s = 0 (a noise-free value) is a bound at
            # -inf or +inf, whose pdf terms vanish
            big = 1e150
            safe = np.where(s > 0, s, 1.0)
            with np.errstate(over="ignore", invalid="ignore"):
                al = np.where(s > 0, np.clip((lo - x) / safe, -big, big), np.where(x >= lo, -big, big))
                be = np.where(s > 0, np.clip((hi - x) / safe, -big, big), np.where(x > hi, -big, big))
            Pa, Pb = ndtr(al), ndtr(be)
            pa = np.exp(-0.5 * np.minimum(al * al, 1e4)) / np.sqrt(2 * np.pi)
            pb = np.exp(-0.5 * np.minimum(be * be, 1e4)) / np.sqrt(2 * np.pi)
            apa, bpb = al * pa, be * pb
            inside = Pb - Pa
            # an open bound contributes nothing (its probability is 0)
            low = lo * Pa if np.isfinite(lo) else 0.0
            low2 = lo * lo * Pa if np.isfinite(lo) else 0.0
            high = hi * (1.0 - Pb) if np.isfinite(hi) else 0.0
            high2 = hi * hi * (1.0 - Pb) if np.isfinite(hi) else 0.0
            mean = low + x * inside + s * (pa - pb) + high
            m2 = low2 + (x * x + var) * inside + 2.0 * x * s * (pa - pb) + var * (apa - bpb) + high2
            var = np.maximum(m2 - mean * mean, 0.0)
            mean = np.clip(mean, lo, hi)
        if mean.ndim == 0:
            return float(mean), float(var)
        return mean, var

    def sample(self, x: ArrayLike, seed: int | np.random.Generator | None = 0) -> np.ndarray:
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

    def scaled(self, k: float) -> NoiseModel:
        """The same model for the image multiplied by ``k > 0``."""
        raise NotImplementedError

    def _draw(self, x, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def _clip_draw(self, y):
        return np.clip(y, *self.bounds) if self.clip else y

    def _scaled_bounds(self, k):
        return None if self.bounds is None else (self.bounds[0] * k, self.bounds[1] * k)

    def __eq__(self, other):
        return type(self) is type(other) and self.coefficients == other.coefficients and self.bounds == other.bounds

    def __hash__(self):
        return hash((type(self).__name__, self.coefficients, self.bounds))

    def _clip_repr(self):
        if self.bounds is None:
            return ""
        if self.bounds == (0.0, 1.0):
            return ", clip=True"
        return f", clip=({_fmt_bound(self.bounds[0])}, {_fmt_bound(self.bounds[1])})"


class Gaussian(NoiseModel):
    """Additive white Gaussian noise, ``y = x + n``, ``n ~ N(0, sigma^2)``.

    Parameters
    ----------
    sigma : float >= 0
        Standard deviation, in image units.
    clip : bool or (float or None, float or None), optional
        Observations are clipped: True to ``[0, 1]`` (``clip(x + n, 0, 1)``,
        an 8-bit camera converted to float, ``skimage.util.random_noise``),
        or to the bounds ``(lo, hi)`` given (None: open), such as ``(0,
        255)`` for raw 8-bit values; default False.

    Raises
    ------
    TypeError, ValueError
        ``sigma`` not a finite number >= 0 or so large that its square
        overflows; bad ``clip``.

    Examples
    --------
    >>> Gaussian(0.1).variance(0.5)
    0.010000000000000002
    """

    name = "gaussian"

    def __init__(self, sigma: float, clip: Clip = False) -> None:
        self.sigma = _real(sigma, "sigma")
        self.a = _square(self.sigma, "sigma")
        self.bounds = _bounds(clip)

    def scaled(self, k: float) -> NoiseModel:
        """The same model for the image multiplied by ``k > 0`` (bounds scale too)."""
        k = _real(k, "k", positive=True)
        return Gaussian(self.sigma * k, clip=self._scaled_bounds(k))

    def _draw(self, x, rng):
        return self._clip_draw(x + rng.normal(0.0, self.sigma, x.shape))

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
    clip : bool or (float or None, float or None), optional
        Observations are clipped (a saturating sensor): True to ``[0, 1]``,
        or to the bounds ``(lo, hi)`` given (None: open); default False.
    """

    name = "poisson"
    nonnegative = True

    def __init__(self, gain: float, sigma: float = 0.0, clip: Clip = False) -> None:
        self.gain = _real(gain, "gain", positive=True)
        self.sigma = _real(sigma, "sigma")
        self.a, self.b = _square(self.sigma, "sigma"), self.gain
        self.bounds = _bounds(clip)

    def scaled(self, k: float) -> NoiseModel:
        """The same model for the image multiplied by ``k > 0`` (bounds scale too)."""
        k = _real(k, "k", positive=True)
        return PoissonGaussian(self.gain * k, self.sigma * k, clip=self._scaled_bounds(k))

    def _draw(self, x, rng):
        lam = x / self.gain
        if lam.size and float(lam.max()) > 1e15:
            raise ValueError(
                f"gain {self.gain:g} is too small for values up to {float(x.max()):g}: more than 1e15 photons"
            )
        y = self.gain * rng.poisson(lam).astype(np.float64)
        if self.sigma > 0:
            y += rng.normal(0.0, self.sigma, x.shape)
        return self._clip_draw(y)

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
    clip : bool or (float or None, float or None), optional
        Clip samples to ``[0, 1]`` (default True, as scikit-image), to the
        bounds ``(lo, hi)`` given (None: open), or not (False).
    """

    name = "speckle"
    nonnegative = True

    def __init__(self, var: float, clip: Clip = True) -> None:
        self.var = _real(var, "var", positive=True)
        self.bounds = _bounds(clip)
        self.c = self.var

    def scaled(self, k: float) -> NoiseModel:
        """The same model for the image multiplied by ``k > 0`` (bounds scale too)."""
        k = _real(k, "k", positive=True)
        return Speckle(self.var, clip=self._scaled_bounds(k) or False)

    def _draw(self, x, rng):
        return self._clip_draw(x + x * rng.normal(0.0, self.var**0.5, x.shape))

    def __repr__(self):
        if self.bounds == (0.0, 1.0):
            return f"Speckle(var={self.var:.6g})"
        return f"Speckle(var={self.var:.6g}{self._clip_repr() or ', clip=False'})"


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

    def __init__(self, looks: float) -> None:
        self.looks = _real(looks, "looks", positive=True)
        with np.errstate(over="ignore", divide="ignore"):
            c = 1.0 / np.float64(self.looks)
        if not np.isfinite(c):
            raise ValueError(f"looks is too small: 1 / looks (the speckle variance) overflows float64, got {looks!r}")
        self.c = float(c)

    def scaled(self, k: float) -> NoiseModel:
        _real(k, "k", positive=True)
        return Gamma(self.looks)

    def _draw(self, x, rng):
        return x * rng.gamma(self.looks, 1.0 / self.looks, x.shape)

    def __repr__(self):
        return f"Gamma(looks={self.looks:.6g})"


#: ``A / sigma`` above which :func:`rician_moments` uses the asymptotic series
_RICIAN_SERIES = 50.0


def rician_moments(amplitude: ArrayLike, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the magnitude ``abs(A + n1 + i n2)``, ``n1, n2 ~ N(0, sigma^2)``.

    Parameters
    ----------
    amplitude : array_like
        Clean amplitudes ``A`` (negative values count as their absolute value).
    sigma : float >= 0
        Noise std of each of the real and imaginary parts.

    Returns
    -------
    mean, var : ndarray
        float64, same shape as ``amplitude``.

    Notes
    -----
    With ``s = A / sigma`` and ``t = s^2 / 2``:
    ``E[M] = sigma sqrt(pi / 2) L_{1/2}(-t)``, ``L_{1/2}(-t) = (1 + t)
    i0e(t / 2) + t i1e(t / 2)`` (exponentially scaled Bessel functions, so
    nothing overflows), and ``var = A^2 + 2 sigma^2 - E[M]^2``.  Beyond ``s =
    50`` the asymptotic series ``E[M] = sigma (s + 1/(2s) + 1/(8 s^3) + 1/(16
    s^5))``, ``var = sigma^2 (1 - 1/(2 s^2) - 1/(2 s^4))`` (relative error
    below 1e-10) avoids the cancellation.  ``sigma = 0``: ``A`` and 0.
    ``O(N)``.

    References
    ----------
    .. [1] H. Gudbjartsson, S. Patz, "The Rician distribution of noisy MRI
       data", Magn. Reson. Med. 34(6), 1995.
    """
    A = np.abs(np.asarray(amplitude, dtype=np.float64))
    if sigma == 0:
        return A.copy(), np.zeros_like(A)
    s = A / sigma
    series = s > _RICIAN_SERIES
    sl = np.where(series, 0.0, s)
    t = 0.5 * sl * sl
    m = np.sqrt(np.pi / 2.0) * ((1.0 + t) * i0e(0.5 * t) + t * i1e(0.5 * t))
    w = np.maximum(2.0 + 2.0 * t - m * m, 0.0)
    if series.any():
        sh = np.where(series, s, 1.0)
        inv2 = 1.0 / (sh * sh)
        m = np.where(series, sh * (1.0 + inv2 * (0.5 + inv2 * (0.125 + 0.0625 * inv2))), m)
        w = np.where(series, 1.0 - inv2 * (0.5 + 0.5 * inv2), w)
    return sigma * m, (sigma * sigma) * w


class Rician(NoiseModel):
    """Rician noise of magnitude images (MRI): ``y = abs(x + n1 + i n2)``.

    ``n1, n2 ~ N(0, sigma^2)`` are the noise of the real and imaginary parts
    of a complex signal of amplitude ``x >= 0``; ``y`` is its magnitude.
    Where ``x = 0`` (the air around a body in MRI) ``y`` is Rayleigh
    distributed, with mean ``sigma sqrt(pi / 2)`` and variance ``(2 - pi/2)
    sigma^2``; at high SNR ``y ~ N(sqrt(x^2 + sigma^2), sigma^2)``.  The
    second moment is exact at every SNR: ``E[y^2] = x^2 + 2 sigma^2``, which
    the denoisers use to remove the upward bias of low-SNR magnitudes.

    Parameters
    ----------
    sigma : float >= 0
        Noise std of each of the real and imaginary parts, in image units.

    Attributes
    ----------
    a, b, c : float
        ``sigma^2``, 0, 0: the high-SNR limit (and upper bound) of the
        variance; :meth:`variance` is the exact Rician variance.
    bounds : (0.0, inf)
        The observations' support (magnitudes are never negative); not a
        clipping: :attr:`clip` is False.

    Raises
    ------
    TypeError, ValueError
        ``sigma`` not a finite number >= 0 or so large that its square
        overflows.

    Examples
    --------
    >>> m = Rician(1.0)
    >>> round(m.observed_moments(0.0)[0], 4)  # Rayleigh mean sigma sqrt(pi / 2)
    1.2533
    >>> round(m.variance(0.0), 4)  # 2 - pi / 2
    0.4292
    """

    name = "rician"
    nonnegative = True
    bounds = (0.0, np.inf)

    def __init__(self, sigma: float) -> None:
        self.sigma = _real(sigma, "sigma")
        self.a = _square(self.sigma, "sigma")
        _square(2.0 * self.sigma, "sigma")  # E[y^2] = x^2 + 2 sigma^2 must be finite too

    @property
    def clip(self) -> bool:
        """False: magnitudes are non-negative by construction, not clipped."""
        return False

    @property
    def biased_mean(self) -> bool:
        """True: ``E[y | x] > x``, most at low SNR (see :meth:`observed_moments`)."""
        return True

    def variance(self, x: ArrayLike) -> np.ndarray | float:
        """The exact Rician variance ``var(y | x)`` (:func:`rician_moments`).

        Parameters
        ----------
        x : array_like or float
            Clean amplitudes (negative values count as their absolute value).

        Returns
        -------
        ndarray or float
            float64, same shape as ``x``; between ``(2 - pi/2) sigma^2`` and
            ``sigma^2``.
        """
        out = rician_moments(x, self.sigma)[1]
        return float(out) if out.ndim == 0 else out

    def observed_moments(self, x: ArrayLike) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Mean and variance of the magnitude given the amplitude ``x`` (:func:`rician_moments`).

        The mean is above ``x`` (``sigma sqrt(pi/2)`` at ``x = 0``,
        ``sqrt(x^2 + sigma^2)`` at high SNR) and increasing in ``x``.
        """
        mean, var = rician_moments(x, self.sigma)
        if mean.ndim == 0:
            return float(mean), float(var)
        return mean, var

    def scaled(self, k: float) -> NoiseModel:
        """The same model for the image multiplied by ``k > 0``."""
        k = _real(k, "k", positive=True)
        return Rician(self.sigma * k)

    def _draw(self, x, rng):
        n = rng.normal(0.0, self.sigma, (2,) + x.shape)
        return np.hypot(x + n[0], n[1])

    def __repr__(self):
        return f"Rician(sigma={self.sigma:.6g})"


def make_model(
    name: str,
    *,
    sigma: float | None = None,
    var: float | None = None,
    looks: float | None = None,
    gain: float | None = None,
) -> NoiseModel:
    """Build a model from its name and parameters.

    Parameters
    ----------
    name : {"gaussian", "poisson", "speckle", "gamma", "rician"}
    sigma : float, optional
        Gaussian std (``"gaussian"``), read-noise std (``"poisson"``), the
        std of the real and imaginary parts (``"rician"``).
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
        "rician": {"sigma"},
    }[name]
    extra = sorted(given - allowed)
    if extra:
        raise ValueError(f"{', '.join(extra)} not used by the {name!r} noise model")
    if name == "gaussian":
        if sigma is None:
            raise ValueError("the 'gaussian' model needs sigma")
        return Gaussian(sigma)
    if name == "rician":
        if sigma is None:
            raise ValueError("the 'rician' model needs sigma")
        return Rician(sigma)
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


def _bounds_text(bounds):
    return f"[{_fmt_bound(bounds[0])}, {_fmt_bound(bounds[1])}]"


def check_model(model: NoiseModel, lo: float, hi: float, *, name: str = "noise") -> NoiseModel:
    """Validate a noise model against the range ``[lo, hi]`` of the data it describes.

    Run before any compiled kernel sees the model, so that a hostile or
    mistaken model (a user subclass with NaN coefficients, a negative
    variance, clip bounds of another scale) raises here instead of
    producing NaN or worse.

    Parameters
    ----------
    model : NoiseModel
        The model.
    lo, hi : float
        The data's minimum and maximum (finite, ``lo <= hi``).
    name : str, keyword-only
        The argument the model came from, for the messages.

    Returns
    -------
    NoiseModel
        ``model`` itself.

    Raises
    ------
    TypeError
        Not a :class:`NoiseModel`, or the abstract base class itself.
    ValueError
        A coefficient that is not a finite number; a variance that is
        negative or overflows somewhere in ``[lo, hi]``; clip bounds that
        are not a pair ``lo < hi`` or that the data do not fit (values
        outside them by more than 1e-6 of their span), such as
        ``clip=True`` (``[0, 1]``) on raw 0..255 values.

    Notes
    -----
    The variance ``a + b x + c x^2`` (``x`` clamped at 0) is checked at both
    ends of the range and at its vertex: ``O(1)``.

    Examples
    --------
    >>> from nlm.noise import Gaussian, check_model
    >>> check_model(Gaussian(5.0, clip=(0, 255)), 0.0, 255.0)
    Gaussian(sigma=5, clip=(0, 255))
    """
    if not isinstance(model, NoiseModel):
        raise TypeError(f"{name} must be a noise model (nlm.noise.NoiseModel), got {type(model).__name__}")
    if type(model) is NoiseModel:
        raise TypeError(
            f"{name}=NoiseModel() is the abstract base class: use Gaussian, PoissonGaussian, Speckle, Gamma or "
            "Rician from nlm.noise (or a subclass that sets the coefficients a, b, c)"
        )
    coef = []
    for k in ("a", "b", "c"):
        v = getattr(model, k, None)
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or not np.isfinite(float(v)):
            raise ValueError(f"{name}: the model's coefficient {k} must be a finite number, got {v!r} ({model!r})")
        coef.append(float(v))
    a, b, c = coef
    xs = [max(lo, 0.0), max(hi, 0.0)]
    if c != 0 and 0 < -b / (2 * c) and xs[0] < -b / (2 * c) < xs[1]:
        xs.append(-b / (2 * c))
    with np.errstate(over="ignore", invalid="ignore"):
        v = a + (b + c * np.array(xs)) * np.array(xs)
    if not np.isfinite(v).all():
        raise ValueError(
            f"{name}: the noise variance of {model!r} overflows float64 within the data range "
            f"[{lo:g}, {hi:g}]"
        )
    if float(v.min()) < 0:
        at = xs[int(np.argmin(v))]
        raise ValueError(
            f"{name}: the noise variance of {model!r} is negative ({float(v.min()):g}) at {at:g}, within the "
            f"data range [{lo:g}, {hi:g}]"
        )
    bounds = model.bounds
    if bounds is not None:
        try:
            ok = len(bounds) == 2 and not np.isnan(bounds).any() and float(bounds[0]) < float(bounds[1])
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"{name}: the model's clip bounds must be a pair lo < hi, got {bounds!r}")
        blo, bhi = float(bounds[0]), float(bounds[1])
        # rounding of a conversion may put the data a hair outside
        finite = [abs(t) for t in (blo, bhi) if np.isfinite(t)]
        tol = 1e-6 * (bhi - blo if len(finite) == 2 else max(finite + [abs(lo), abs(hi), 1.0]))
        if lo < blo - tol or hi > bhi + tol:
            if not model.clip:  # a support, not a clipping (Rician magnitudes)
                raise ValueError(
                    f"{name}: {model!r} describes data in {_bounds_text(bounds)} (magnitudes), but the data run "
                    f"from {lo:g} to {hi:g}"
                )
            hint = ""
            if (blo, bhi) == (0.0, 1.0) and hi > 1.0:
                hint = (
                    " (clip=True means [0, 1], the range of an image converted to float; for raw values, as "
                    "with preserve_range=True, give the bounds, e.g. clip=(0, 255), or let nlm estimate the model)"
                )
            raise ValueError(
                f"{name}: {model!r} clips at {_bounds_text(bounds)}, but the data run from {lo:g} to {hi:g}{hint}"
            )
    return model
