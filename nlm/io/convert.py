"""The working float type of pixels and the way back: :func:`to_float` (the
image's own value range, in a float type that holds every value exactly) and
:func:`from_float` (rounded half to even and clipped, exactly, for every
integer type).  The rules are in :mod:`nlm.io.image`'s documentation.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from nlm.io._imagedata import ImageIOError

__all__ = ["from_float", "to_float"]


def to_float(data: ArrayLike, out: np.ndarray | None = None) -> np.ndarray:
    """Convert pixels to a float array in their own value range.

    Parameters
    ----------
    data : numpy.ndarray
        Integer or float pixels (bool is accepted and becomes 0/1).
    out : numpy.ndarray, optional
        Where to write the result: ``data``'s shape and the float type below,
        in native byte order (a float32/float64 ``data`` is then copied into
        it).  The command
        line converts into a buffer it can lend to the filter afterwards
        (:func:`nlm.ops.scratch.scratch`).

    Returns
    -------
    numpy.ndarray
        ``float32`` for 8- and 16-bit integers, bool, ``float16`` and
        ``float32``; ``float64`` for 32- and 64-bit integers and ``float64``
        (so that every integer value stays exact).  Values are not rescaled:
        a ``uint8`` 200 becomes 200.0.  A ``float32``/``float64`` input is
        returned as is (no copy) without ``out``; with ``out``, ``out``.

    Raises
    ------
    ImageIOError
        For data types that are not integer, bool or real float.
    ValueError
        If ``out`` does not have ``data``'s shape and the float type.
    """
    data = np.asarray(data)
    kind = data.dtype.kind
    if kind == "b" or (kind in "iuf" and data.dtype.itemsize <= 2):
        ftype = np.float32
    elif kind in "iu" or (kind == "f" and data.dtype.itemsize > 8):
        ftype = np.float64
    elif kind == "f":
        ftype = None  # float32/float64: as it is
    else:
        raise ImageIOError(f"unsupported pixel data type {data.dtype}")
    if out is None:
        return data if ftype is None else data.astype(ftype)
    want = data.dtype.newbyteorder("=") if ftype is None else np.dtype(ftype)
    if out.shape != data.shape or out.dtype != want:
        raise ValueError(f"out must have shape {data.shape} and dtype {want}, got {out.shape} {out.dtype}")
    np.copyto(out, data, casting="unsafe")  # what astype does
    return out


def from_float(data: ArrayLike, dtype: DTypeLike) -> np.ndarray:
    """Convert float results back to the original pixel data type.

    Parameters
    ----------
    data : numpy.ndarray
        Float values in the original value range (as made by :func:`to_float`).
    dtype : numpy.dtype or type
        The data type to return.

    Returns
    -------
    numpy.ndarray
        For an integer ``dtype``: ``data`` rounded to the nearest integer
        (half to even) and clipped to the type's range, then cast.  For a float
        ``dtype``: ``data`` cast without clipping.

    Raises
    ------
    ImageIOError
        When ``data`` holds NaN and ``dtype`` is an integer type.
    """
    dtype = np.dtype(dtype)
    data = np.asarray(data)
    if dtype.kind in "iu":
        nan = f"result holds NaN, which {dtype} cannot store"
        if data.ndim == 0:
            if data.dtype.kind == "f" and np.isnan(data):
                raise ImageIOError(nan)
            return _round_clip(data, dtype)
        out = np.empty(data.shape, dtype)
        # in slabs of about 2^20 values along the first axis, so that the
        # temporaries (NaN mask, rounded floats) stay a few MiB
        rows = max(1, (1 << 20) // max(1, data[:1].size))
        for i in range(0, data.shape[0], rows):
            slab = data[i : i + rows]
            if slab.dtype.kind == "f" and np.isnan(slab).any():
                raise ImageIOError(nan)
            out[i : i + rows] = _round_clip(slab, dtype)
        return out
    if dtype.kind == "b":
        return data >= 0.5
    return data.astype(dtype, copy=False)


def _round_clip(data, dtype):
    """Round half to even and clip to ``dtype``'s range, exactly, without warnings.

    ``float(2**63 - 1)`` is ``2**63``, which does not fit ``int64``: clipping to
    ``float(info.max)`` and casting overflows.  The values are clipped to the
    largest float below the type's bound and those beyond it set afterwards.
    """
    info = np.iinfo(dtype)
    if data.dtype.kind not in "fiub":
        data = data.astype(np.float64)
    if data.dtype.kind in "iub":
        if data.dtype.kind == "b":
            data = data.astype(np.uint8)
        have = np.iinfo(data.dtype)  # bounds both types hold: no overflow in clip
        return np.clip(data, max(info.min, have.min), min(info.max, have.max)).astype(dtype)
    if dtype.itemsize >= 4 and data.dtype.itemsize < 8:
        data = data.astype(np.float64)
    rounded = np.rint(data)
    ftype = rounded.dtype.type
    hi, lo = ftype(info.max), ftype(info.min)
    if int(hi) > info.max:  # the bound rounds up: clip just below it
        hi = np.nextafter(hi, ftype(0))
    if int(lo) < info.min:
        lo = np.nextafter(lo, ftype(0))
    out = np.clip(rounded, lo, hi).astype(dtype)
    if int(hi) < info.max:
        out[rounded > hi] = info.max
    if int(lo) > info.min:
        out[rounded < lo] = info.min
    return out
