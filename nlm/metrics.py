"""Image quality metrics: thin, validating wrappers of scikit-image's.

:func:`psnr` and :func:`ssim` call :func:`skimage.metrics.peak_signal_noise_ratio`
and :func:`skimage.metrics.structural_similarity`; they add argument checks
(shapes, NaN, data range) and a consistent default ``data_range`` for both.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["psnr", "ssim"]


def _as_array(a, name):
    if isinstance(a, (str, bytes)) or a is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(a).__name__}")
    arr = np.asarray(a)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.float64)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got a complex array")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must not contain NaN or infinite values")
    return arr


def _check_pair(reference, image):
    ref = _as_array(reference, "reference")
    img = _as_array(image, "image")
    if ref.shape != img.shape:
        raise ValueError(
            f"reference and image must have the same shape, got {ref.shape} "
            f"and {img.shape}"
        )
    return ref, img


def _data_range(ref, data_range):
    """Validate ``data_range`` or infer it from the reference's dtype."""
    if data_range is not None:
        if isinstance(data_range, (bool, np.bool_)) or not isinstance(
            data_range, numbers.Real
        ):
            raise TypeError(
                f"data_range must be a real number, got {type(data_range).__name__}"
            )
        data_range = float(data_range)
        if not np.isfinite(data_range) or data_range <= 0:
            raise ValueError(f"data_range must be a finite number > 0, got {data_range!r}")
        return data_range
    lo, hi = float(ref.min()), float(ref.max())
    if np.issubdtype(ref.dtype, np.integer):
        info = np.iinfo(ref.dtype)
        return float(info.max) if lo >= 0 else float(info.max) - float(info.min)
    if 0.0 <= lo and hi <= 1.0:
        return 1.0
    if -1.0 <= lo and hi <= 1.0:
        return 2.0
    raise ValueError(
        f"data_range is required: the float reference spans [{lo:g}, {hi:g}], "
        f"outside the [0, 1] / [-1, 1] ranges it can be inferred for"
    )


def _unit_scale(*arrays):
    """``(k, arrays * 2^k)``: the float64 arrays scaled by one power of two so
    that their largest magnitude is about 1 (``k = 0`` when it already lies
    within ``2^±256``).  Squares and differences then neither overflow nor
    underflow; PSNR and SSIM are unchanged when the data range is scaled too."""
    peak = max(max(abs(float(a.min())), abs(float(a.max()))) for a in arrays)
    k = -int(np.frexp(peak)[1]) if peak > 0 else 0
    if abs(k) <= 256:
        return 0, arrays
    return k, tuple(np.ldexp(a, k) for a in arrays)


def psnr(reference: ArrayLike, image: ArrayLike, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio of ``image`` against ``reference``, in dB.

    Parameters
    ----------
    reference : array_like
        Ground-truth image.
    image : array_like
        Test image, same shape as ``reference``.
    data_range : float, optional
        Distance between the minimum and maximum possible values. By default
        it follows scikit-image's convention from the *reference*'s dtype:
        the dtype maximum for non-negative integers (255 for ``uint8``), the
        full dtype span for signed integers with negative values, 1.0 for
        floats in ``[0, 1]`` and 2.0 for floats in ``[-1, 1]`` with negative
        values; other float ranges must pass it explicitly.

    Returns
    -------
    float
        ``10 log10(data_range^2 / MSE)``; ``inf`` when the images are equal.

    Raises
    ------
    TypeError
        If an input is not a real numeric array or ``data_range`` is not a
        number.
    ValueError
        If the shapes differ, an input is empty or contains NaN/inf,
        ``data_range`` is not > 0, or it cannot be inferred.

    Notes
    -----
    The computation is :func:`skimage.metrics.peak_signal_noise_ratio`
    (in float64) with the ``data_range`` resolved here.

    References
    ----------
    .. [1] scikit-image, ``skimage.metrics.peak_signal_noise_ratio``.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.metrics import psnr
    >>> ref = np.zeros((8, 8)); img = ref + 0.1
    >>> round(psnr(ref, img), 6)
    20.0
    """
    from skimage.metrics import peak_signal_noise_ratio

    ref, img = _check_pair(reference, image)
    dr = _data_range(ref, data_range)
    ref64 = ref.astype(np.float64)
    img64 = img.astype(np.float64)
    if np.array_equal(ref64, img64):
        return float("inf")
    k, (ref64, img64) = _unit_scale(ref64, img64)
    if k or not 2.0**-256 < dr < 2.0**256:
        # extreme magnitudes: 10 log10(dr^2 / mse) in terms that stay finite
        mse = float(np.mean((ref64 - img64) ** 2))  # of the data scaled by 2^k
        if mse == 0:
            return float("inf")
        return 20.0 * float(np.log10(dr)) - 10.0 * float(np.log10(mse)) + 20.0 * k * float(np.log10(2.0))
    return float(peak_signal_noise_ratio(ref64, img64, data_range=dr))


def ssim(
    reference: ArrayLike, image: ArrayLike, *, data_range: float | None = None, channel_axis: int | None = None
) -> float:
    """Structural similarity index (mean SSIM) of ``image`` against ``reference``.

    Parameters
    ----------
    reference : array_like
        Ground-truth image (2D, 3D, or with a channel axis).
    image : array_like
        Test image, same shape as ``reference``.
    data_range : float, optional
        Dynamic range of the data; inferred as in :func:`psnr` when omitted
        (1.0 for floats in ``[0, 1]``, 255 for ``uint8``...).
    channel_axis : int, optional
        Axis of colour channels; SSIM is computed per channel and averaged.
        ``None`` (default) means no channel axis.

    Returns
    -------
    float
        Mean SSIM in ``[-1, 1]`` (1 for identical images).

    Raises
    ------
    TypeError
        If an input is not a real numeric array, or ``data_range`` /
        ``channel_axis`` have the wrong type.
    ValueError
        If the shapes differ, an input is empty or contains NaN/inf,
        ``data_range`` is not > 0 or cannot be inferred, ``channel_axis`` is
        out of range, or a spatial side is shorter than the 7-pixel window.

    Notes
    -----
    The computation is :func:`skimage.metrics.structural_similarity` with its
    defaults (7x7 uniform window, K1 = 0.01, K2 = 0.03), in float64.

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image
       quality assessment: from error visibility to structural similarity",
       IEEE Trans. Image Process. 13(4), 2004.
    .. [2] scikit-image, ``skimage.metrics.structural_similarity``.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.metrics import ssim
    >>> ref = np.random.default_rng(0).random((32, 32))
    >>> ssim(ref, ref)
    1.0
    """
    from skimage.metrics import structural_similarity

    ref, img = _check_pair(reference, image)
    dr = _data_range(ref, data_range)
    spatial_shape = ref.shape
    if channel_axis is not None:
        if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(
            channel_axis, numbers.Integral
        ):
            raise TypeError(
                f"channel_axis must be an int or None, got {type(channel_axis).__name__}"
            )
        if not -ref.ndim <= channel_axis < ref.ndim:
            raise ValueError(
                f"channel_axis {channel_axis} is out of range for an image with "
                f"{ref.ndim} dimensions"
            )
        channel_axis = int(channel_axis) % ref.ndim
        spatial_shape = tuple(s for i, s in enumerate(ref.shape) if i != channel_axis)
    if len(spatial_shape) < 1 or min(spatial_shape) < 7:
        raise ValueError(
            f"image spatial sides must all be >= 7 for the 7x7 SSIM window, got "
            f"{spatial_shape}"
        )
    k, (ref64, img64) = _unit_scale(ref.astype(np.float64), img.astype(np.float64))
    with np.errstate(over="ignore", under="ignore"):
        dr = float(np.ldexp(dr, k))
    if not 2.0**-200 < dr < 2.0**200:
        raise ValueError(
            f"data_range={data_range!r} is too extreme for the values of the images (SSIM's constants "
            "(0.01 data_range)^2 would leave the float64 range)"
        )
    return float(structural_similarity(ref64, img64, data_range=dr, channel_axis=channel_axis))
