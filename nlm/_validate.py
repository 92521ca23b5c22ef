"""Argument checks and dtype conversion shared by every public function.

The bottom of the architecture: imports nothing from the package, so the noise
layer, the denoisers and the command line can all use it.
"""

import numbers

import numpy as np


class UnsupportedDimensionError(ValueError, NotImplementedError):
    """An image with a number of dimensions the function does not support.

    It derives from both :class:`ValueError` (nlm's rule: bad input raises
    ``ValueError``/``TypeError``) and :class:`NotImplementedError` (what
    scikit-image raises for it), so callers written for either catch it.
    """


def _as_numeric(image):
    image = np.asarray(image)
    if image.dtype == object or image.dtype.kind not in "biuf":
        raise TypeError(f"image must have a real numeric dtype, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("image contains NaN or Inf values")
    return image


def _check_spatial(nd, what):
    if not 1 <= nd <= 3:
        raise UnsupportedDimensionError(f"{what} must have 1, 2 or 3 spatial dimensions, got {nd}")


def _check_axis(axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an int or None, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"channel_axis={axis} is out of range for an image with {ndim} dimensions")
    return int(axis) % ndim


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_nonneg(value, name, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if np.isnan(value) or value < 0 or (value == np.inf and not allow_inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        hint = " (the fifth positional argument is fast_mode, as in scikit-image; pass sigma by keyword)" if name == "fast_mode" else ""
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}{hint}")
    return bool(value)


def _check_positive(value, name):
    value = _check_nonneg(value, name)
    if value == 0:
        raise ValueError(f"{name} must be > 0, got 0.0")
    return value


def _to_float(image, preserve_range):
    """scikit-image's conversion rules (see the dtype table in the README)."""
    if image.dtype.kind == "f":
        return image.astype(np.float32 if image.dtype.itemsize <= 4 else np.float64, copy=False)
    if preserve_range:
        return image.astype(np.float64)
    from skimage.util import img_as_float

    return img_as_float(image)
