"""Seeded synthetic noise for benchmarks and tests (:func:`add_noise`).

Three models are provided by :func:`add_noise`:

``"speckle"``
    ``y = x + x * n`` with ``n ~ N(0, var)``, exactly as
    :func:`skimage.util.random_noise` with ``mode="speckle"`` defines it
    (same draws for the same integer seed, bit for bit).
``"gamma"``
    multiplicative speckle of synthetic-aperture radar (SAR) intensity
    images with ``L`` looks: ``y = x * s`` with ``s ~ Gamma(L, 1/L)``
    (mean 1, variance ``1/L``).
``"gaussian"``
    additive white Gaussian noise ``y = x + n`` with ``n ~ N(0, var)``,
    again drawn exactly as :func:`skimage.util.random_noise` does.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from nlm.noise.models import _generator

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["add_noise", "MODELS"]

#: the noise models :func:`add_noise` knows
MODELS = ("speckle", "gaussian", "gamma")

_DEFAULT_VAR = 0.01  # scikit-image's default for "speckle" and "gaussian"


def _as_unit_float(image):
    """Return ``(float image in [0, 1], output dtype)``; validate ``image``."""
    if isinstance(image, (str, bytes)) or image is None:
        raise TypeError(f"image must be an array of numbers, got {type(image).__name__}")
    arr = np.asarray(image)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"image must be a real numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError("image must be real, got a complex array")
    if arr.size == 0:
        raise ValueError("image must not be empty")
    if arr.dtype == np.bool_:
        return arr.astype(np.float64), np.float64
    if np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
            raise ValueError(
                "image: signed integer input with negative values is not "
                "supported; the noise models expect intensities in [0, 1]"
            )
        # exactly skimage.util.img_as_float's scaling (by 1 / dtype max)
        from skimage.util import img_as_float64

        return img_as_float64(arr), np.float64
    # float32 in any byte order (a big-endian TIFF) stays (native) float32
    out_dtype = np.float32 if arr.dtype.kind == "f" and arr.dtype.itemsize == 4 else np.float64
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError("image must not contain NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"image values must lie in [0, 1] for float input, got range "
            f"[{lo:g}, {hi:g}]; rescale it first"
        )
    return arr, out_dtype


def _positive(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def _rng(seed):
    return _generator(seed)


def add_noise(
    image: ArrayLike,
    model: str = "speckle",
    *,
    var: float | None = None,
    looks: float | None = None,
    seed: int | np.random.Generator | None = 0,
    clip: bool = True,
) -> np.ndarray:
    """Add seeded synthetic noise to an image with intensities in [0, 1].

    Parameters
    ----------
    image : array_like
        Clean image of any shape (2D, 3D, with or without a channel axis).
        Float input must lie in ``[0, 1]``. Integer input is converted like
        :func:`skimage.util.img_as_float`: unsigned (and non-negative signed)
        integers are scaled by ``1 / max`` of their dtype (``uint8``: 255),
        so ``uint8`` 128 becomes ``128 / 255`` (bit for bit the same as
        scikit-image). Boolean input becomes 0/1.
    model : {"speckle", "gaussian", "gamma"}, optional
        ``"speckle"``: ``y = x + x n``, ``n ~ N(0, var)`` (scikit-image's
        speckle); ``"gaussian"``: ``y = x + n``, ``n ~ N(0, var)``;
        ``"gamma"``: ``y = x s``, ``s ~ Gamma(L, 1/L)`` with ``L = looks``
        (fully developed SAR intensity speckle, mean 1, variance ``1/L``).
    var : float, optional
        Noise variance for ``"speckle"`` and ``"gaussian"`` (default 0.01,
        scikit-image's default). For ``"gamma"`` it may be given instead of
        ``looks``: then ``looks = 1 / var`` (same variance of the
        multiplicative factor). Must be > 0.
    looks : float, optional
        Number of looks ``L > 0`` for ``"gamma"`` (need not be an integer).
        Exactly one of ``looks`` and ``var`` must be given for ``"gamma"``;
        ``looks`` is rejected for the other models.
    seed : int, numpy.random.Generator or None, optional
        Seed of the PCG64 generator (``numpy.random.default_rng(seed)``),
        default 0, so calls are reproducible. An existing generator is used
        (and advanced) as is; ``None`` draws fresh OS entropy.
    clip : bool, optional
        Clip the result to ``[0, 1]`` (default True), as scikit-image does.

    Returns
    -------
    noisy : ndarray
        Noisy image, same shape as ``image``. ``float32`` input (any byte
        order) gives native ``float32`` output; every other input gives
        ``float64``. The
        arithmetic is done in float64 and cast at the end.

    Raises
    ------
    TypeError
        If ``image`` is not a real numeric array, ``model`` is not a string,
        ``var``/``looks`` are not real numbers, ``seed`` has the wrong type or
        ``clip`` is not a bool.
    ValueError
        If ``model`` is unknown, ``image`` is empty, non-finite or (float)
        outside ``[0, 1]``, ``var``/``looks`` are not > 0, ``looks`` is given
        for a model that does not use it, both/neither of ``var`` and
        ``looks`` are given for ``"gamma"``, or they are so extreme that the
        noisy values overflow.

    Notes
    -----
    For ``"speckle"`` and ``"gaussian"`` the generator draws
    ``rng.normal(0, sqrt(var), image.shape)``, exactly the call made by
    ``skimage.util.random_noise(image, mode=model, rng=seed, var=var)``, so
    for a float64 image in [0, 1] the two functions return identical arrays.
    (scikit-image also clips signed images to ``[-1, 1]``; this function only
    accepts intensities in ``[0, 1]``.)

    The speckle standard deviation ``sqrt(var) * x`` depends on the signal,
    so a single sigma does not describe it. For SAR intensity data the gamma
    model with ``L`` looks has the same first two moments as speckle with
    ``var = 1 / L`` (``var`` 0.01 / 0.04 / 0.1 ~ ``L`` 100 / 25 / 10), but is
    skewed and never negative.

    References
    ----------
    .. [1] scikit-image, ``skimage.util.random_noise``.
    .. [2] J. W. Goodman, "Some fundamental properties of speckle",
       J. Opt. Soc. Am. 66(11), 1976.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.noise import add_noise
    >>> x = np.full((64, 64), 0.5)
    >>> y = add_noise(x, "speckle", var=0.04, seed=1)
    >>> bool(abs(y.std() - 0.5 * 0.2) < 0.01)
    True
    >>> add_noise(x.astype(np.float32), "gamma", looks=4).dtype
    dtype('float32')
    """
    if not isinstance(model, str):
        raise TypeError(f"model must be a string, got {type(model).__name__}")
    key = model.lower()
    if key not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if not isinstance(clip, (bool, np.bool_)):
        raise TypeError(f"clip must be a bool, got {type(clip).__name__}")
    if var is not None:
        var = _positive(var, "var")
    if looks is not None:
        looks = _positive(looks, "looks")
    x, out_dtype = _as_unit_float(image)
    rng = _rng(seed)

    if key == "gamma":
        if looks is not None and var is not None:
            raise ValueError("give either looks or var for model='gamma', not both")
        if looks is None:
            if var is None:
                raise ValueError("model='gamma' needs looks (number of looks L > 0)")
            looks = 1.0 / var
        # shape L, scale 1/L: mean 1, variance 1/L
        with np.errstate(over="ignore", invalid="ignore"):
            out = x * rng.gamma(looks, 1.0 / looks, x.shape)
    else:
        if looks is not None:
            raise ValueError(f"looks is only used by model='gamma', not {key!r}")
        if var is None:
            var = _DEFAULT_VAR
        noise = rng.normal(0.0, var**0.5, x.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            out = x + x * noise if key == "speckle" else x + noise
    if not np.isfinite(out).all():  # e.g. looks ~ 1e-308: the gamma draws overflow
        raise ValueError(f"var={var!r} / looks={looks!r}: the noise overflowed; use a less extreme value")
    if clip:
        out = np.clip(out, 0.0, 1.0)
    return out.astype(out_dtype, copy=False)
