"""Argument checks and dtype conversion shared by every public function.

The bottom of the architecture: imports nothing from the package, so the noise
layer, the denoisers and the command line can all use it.
"""

from __future__ import annotations

import math
import numbers
import sys

import numpy as np


class UnsupportedDimensionError(ValueError, NotImplementedError):
    """An image with a number of dimensions the function does not support.

    It derives from both :class:`ValueError` (nlm's rule: bad input raises
    ``ValueError``/``TypeError``) and :class:`NotImplementedError` (what
    scikit-image raises for it), so callers written for either catch it.
    """


def is_dask_array(x: object) -> bool:
    """True when ``x`` is a ``dask.array.Array`` (without importing dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


def _describe_chunks(chunks, most=4):
    """``chunks`` in one short line: long axes shortened to their first and last entries."""
    axes = []
    for c in chunks:
        c = tuple(c)
        text = ", ".join(_chunk_text(v) for v in c) if len(c) <= most else (
            ", ".join(_chunk_text(v) for v in c[: most - 1]) + f", ... ({len(c)} chunks), {_chunk_text(c[-1])}"
        )
        axes.append(f"({text}{',' if len(c) == 1 else ''})")
    return f"({', '.join(axes)}{',' if len(axes) == 1 else ''})"


def _chunk_text(v):
    return "nan" if isinstance(v, float) and math.isnan(v) else str(v)


def _check_chunks(chunks, name="image", array=True):
    """Refuse dask chunks of unknown size (NaN), naming them; returns ``chunks``.

    A dask array indexed with a boolean mask (``x[x[:, 0] > 0]``) does not
    know how many rows each of its chunks holds until it is computed.  Every
    function that takes dask arrays (or their chunks) calls this first, so
    they all refuse such arrays the same way, instead of failing deep inside
    with ``cannot convert float NaN to integer``.  Nothing is computed here:
    the caller decides whether reading the array once more is acceptable.
    """
    try:
        chunks = tuple(tuple(c) for c in chunks)
    except TypeError:
        raise TypeError(f"{name} chunks must be a tuple of tuples of ints, got {chunks!r}") from None
    unknown = [ax for ax, c in enumerate(chunks) if any(_unknown(v) for v in c)]
    if unknown:
        where = f"along {'axis' if len(unknown) == 1 else 'axes'} {', '.join(map(str, unknown))}"
        if not array:
            raise ValueError(
                f"{name} {_describe_chunks(chunks)} hold unknown (NaN) sizes {where}, as a dask array's do "
                "after boolean indexing; call the array's compute_chunk_sizes() first"
            )
        raise ValueError(
            f"{name} is a dask array with unknown chunk sizes {where} (chunks {_describe_chunks(chunks)}), "
            f"as after boolean indexing; call {name}.compute_chunk_sizes() first (it computes the array "
            "once) or pass a computed array"
        )
    return chunks


def _unknown(v):
    try:
        return math.isnan(v)
    except TypeError:
        return True


def _check_dask_chunks(image, name="image"):
    """:func:`_check_chunks` of a dask array (anything else passes unchanged)."""
    if is_dask_array(image):
        _check_chunks(image.chunks, name)
    return image


def _refuse_dask(image, name):
    """The in-memory functions do not compute dask arrays behind the caller's back.

    Dask arrays are dispatched one layer up, by :mod:`nlm.tiling`, whose
    wrappers are the public ``nlm.<name>``.
    """
    if is_dask_array(image):
        raise TypeError(
            f"image is a dask array: call nlm.{name} (the dask-aware function in nlm.tiling), "
            f"or compute the array first"
        )


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
    if nd < 1:
        raise UnsupportedDimensionError(f"{what} must have at least 1 spatial dimension, got {nd}")


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


def _check_geometry(value, name, minimum):
    """An int, or a sequence of ints (one per spatial axis, checked later): ints >= minimum."""
    if isinstance(value, (str, bytes)) or np.ndim(value) not in (0, 1):
        raise TypeError(f"{name} must be an integer or a sequence of integers, got {value!r}")
    if np.ndim(value) == 0:
        return _check_int(value, name, minimum)
    values = tuple(value)
    if not values:
        raise ValueError(f"{name} must not be empty")
    return tuple(_check_int(v, name, minimum) for v in values)


def _per_axis(value, name, spatial, what=""):
    """``value`` expanded to one entry per spatial axis (a tuple must have one per axis)."""
    nd = len(spatial)
    if isinstance(value, tuple):
        if len(value) != nd:
            raise ValueError(
                f"{name}={value!r} has {len(value)} entries, but the image has {nd} spatial "
                f"dimensions (spatial shape {spatial}{what})"
            )
        return value
    return (value,) * nd


def _check_nonneg(value, name, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if np.isnan(value) or value < 0 or (value == np.inf and not allow_inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        hint = ""
        if name == "fast_mode":
            hint = " (the fifth positional argument is fast_mode, as in scikit-image; pass sigma by keyword)"
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}{hint}")
    return bool(value)


def _check_positive(value, name):
    value = _check_nonneg(value, name)
    if value == 0:
        raise ValueError(f"{name} must be > 0, got 0.0")
    return value


def _to_float(image, preserve_range):
    """scikit-image's conversion rules (see the dtype table in docs/python-api.md)."""
    if image.dtype.kind == "f":
        return image.astype(np.float32 if image.dtype.itemsize <= 4 else np.float64, copy=False)
    if preserve_range:
        return image.astype(np.float64)
    from skimage.util import img_as_float

    return img_as_float(image)


def is_map(value: object) -> bool:
    """True when ``sigma`` is given as an array (a per-pixel noise map), not a number."""
    if isinstance(value, (numbers.Number, np.generic)) or value is None:
        return False
    if is_dask_array(value):
        return True
    try:
        return np.ndim(value) > 0
    except Exception:  # noqa: BLE001 - anything np.ndim refuses is not a map
        return False


def check_sigma_map(value, spatial, what="the image's spatial shape"):
    """A per-pixel noise std map: real, finite, >= 0, of shape ``spatial``; float64 copy-free view."""
    if is_dask_array(value):
        raise TypeError("sigma is a dask array: pass a NumPy array as the noise map")
    a = np.asarray(value)
    if a.dtype == object or a.dtype.kind not in "iuf":
        raise TypeError(f"sigma: a noise map must be a real numeric array, got dtype {a.dtype}")
    if a.shape != tuple(spatial):
        raise ValueError(
            f"sigma: a noise map must have {what} {tuple(spatial)} (channels excluded), got shape {a.shape}"
        )
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise ValueError("sigma: the noise map contains NaN or Inf values")
    if (a < 0).any():
        raise ValueError(f"sigma: the noise map must be >= 0, got a minimum of {float(a.min()):g}")
    return a


def check_mask(value, spatial, what="the image's spatial shape"):
    """A validity mask (True = valid) of shape ``spatial``: bool, or numbers that are all 0 or 1."""
    if value is None:
        return None
    if is_dask_array(value):
        raise TypeError("mask is a dask array: pass a NumPy array")
    a = np.asarray(value)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"mask must be a boolean array (True = valid), got dtype {a.dtype}")
    if a.shape != tuple(spatial):
        raise ValueError(f"mask must have {what} {tuple(spatial)} (channels excluded), got shape {a.shape}")
    if a.dtype.kind != "b":
        if not np.isin(a, (0, 1)).all():
            raise ValueError("mask must be boolean (True = valid) or hold only 0 and 1 (NaN and other values refused)")
        a = a != 0
    return np.ascontiguousarray(a, dtype=bool)


def masked_nonfinite(image, mask, channel_axis):
    """NaN/Inf allowed at masked pixels only: ``(image with them zeroed, mask, where they were)``.

    ``where``: ``(boolean index of the image's shape, the values there)``, or None.
    """
    a = np.asarray(image)
    if a.dtype.kind != "f" or np.isfinite(a).all():
        return image, mask, None
    bad = ~np.isfinite(a)
    if channel_axis is None:
        spatial_bad = bad
    else:
        spatial_bad = bad.any(axis=_check_axis(channel_axis, a.ndim))
    m = check_mask(mask, spatial_bad.shape)
    if (spatial_bad & m).any():
        raise ValueError("image contains NaN or Inf values at valid pixels (where mask is True)")
    return np.where(bad, a.dtype.type(0), a), m, (bad, a[bad])
