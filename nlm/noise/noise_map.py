"""Per-pixel noise: the residual sigma over valid pixels and the local noise std map.

:func:`residual_sigma` is the robust (median absolute Laplacian residual)
std of white Gaussian noise, over the pixels a mask marks valid;
``_noise_map`` is the map that ``estimate_noise(..., return_map=True)``
returns (the fitted level function at the smoothed image, times a local
robust scale).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from nlm._validate import _as_numeric, _check_axis, _check_spatial, check_mask

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["residual_sigma"]


#: block side of the local noise map (``estimate_noise(return_map=True)``) per spatial dimension
_MAP_BLOCK = {1: 64, 2: 16, 3: 8}


#: robust Gaussian scale of a median absolute value
_MAD_SCALE = 0.6744897501960817


def _laplace_residual(a):
    """Unit-gain Laplacian residual of ``a`` (spatial axes only) and the axes it uses.

    ``e = (sum of the 2 n neighbours - 2 n a) / sqrt(2 n + 4 n^2)`` over the
    ``n`` axes at least 3 long: zero on constants and linear ramps, variance
    ``sigma^2`` on white noise of std ``sigma``.  Defined on the interior
    (the first and last pixel of each used axis are NaN).  float64.
    """
    axes = [ax for ax, n in enumerate(a.shape) if n >= 3]
    out = np.full(a.shape, np.nan)
    if not axes:
        return out, axes
    inner = tuple(slice(1, -1) if ax in axes else slice(None) for ax in range(a.ndim))
    acc = np.zeros(a[inner].shape)
    for ax in axes:
        for s in (0, 2):
            sl = tuple(slice(s, s + a.shape[k] - 2) if k == ax else inner[k] for k in range(a.ndim))
            acc += a[sl]
    n = len(axes)
    acc -= 2 * n * a[inner]
    out[inner] = acc / np.sqrt(2 * n + 4 * n * n)
    return out, axes


def _stencil_valid(mask, axes):
    """True where the Laplacian stencil (the pixel and its neighbours on ``axes``) is all valid."""
    ok = mask.copy()
    for ax in axes:
        for s in (1, -1):
            ok &= np.roll(mask, s, axis=ax)
    return ok


def residual_sigma(image: ArrayLike, *, mask: ArrayLike | None = None, channel_axis: int | None = None) -> float:
    """Robust Gaussian noise std from the Laplacian residual, over valid pixels only.

    ``1.4826 median |e|`` of the unit-gain Laplacian residual ``e`` (see
    Notes), over the pixels whose whole stencil (the pixel and its two
    neighbours along every axis at least 3 long) is valid, pooled over
    channels.  The denoisers use it for the automatic ``sigma`` of a masked
    image: masked pixels (whatever they hold) never enter it.

    Parameters
    ----------
    image : array_like
        Any number of spatial axes, plus ``channel_axis``; real, finite.
    mask : array_like of bool, optional
        The image's spatial shape, True = valid.
    channel_axis : int or None

    Returns
    -------
    float
        0 when no stencil is valid.

    Raises
    ------
    TypeError, ValueError
        Bad image, ``mask`` of the wrong shape or values.

    Notes
    -----
    ``e = (sum of the 2 n neighbours - 2 n v) / sqrt(2 n + 4 n^2)`` over the
    ``n`` axes at least 3 pixels long.  Constant and linear areas give 0,
    edges and texture lift it (less than its median); time ``O(N)``.
    """

    image = _as_numeric(image)
    if channel_axis is None:
        y = image[..., None]
    else:
        y = np.moveaxis(image, _check_axis(channel_axis, image.ndim), -1)
    _check_spatial(y.ndim - 1, "image")
    m = check_mask(mask, y.shape[:-1])
    vals = []
    for ch in range(y.shape[-1]):
        e, axes = _laplace_residual(np.asarray(y[..., ch], dtype=np.float64))
        ok = np.isfinite(e)
        if m is not None:
            ok &= _stencil_valid(m, axes)
        vals.append(np.abs(e[ok]))
    v = np.concatenate(vals)
    return float(np.median(v) / _MAD_SCALE) if v.size else 0.0


def _box_smooth(a, radius):
    """Mean over a ``(2 radius + 1)`` box on every axis (edges: nearest), float64.

    Axis by axis, the sum of the ``2 radius + 1`` shifted copies in a fixed
    order (not a running sum): a pixel's rounding does not depend on its
    place in the array, so a tile of an image gets the image's values
    (:mod:`nlm.tiling.noise`).
    """
    out = np.asarray(a, dtype=np.float64)
    k = 2 * radius + 1
    for ax in range(out.ndim):
        n = out.shape[ax]
        pad = [(0, 0)] * out.ndim
        pad[ax] = (radius, radius)
        p = np.pad(out, pad, mode="edge")
        acc = np.zeros(out.shape)
        for s in range(k):
            acc += p[tuple(slice(s, s + n) if d == ax else slice(None) for d in range(out.ndim))]
        out = acc / k
    return out


def _noise_map(y, model):
    """Per-pixel noise std map of ``y`` (channel-last float) given its fitted model.

    ``sqrt(NLF(smoothed y) * k^2)``: the level function of the model at the
    image smoothed by a 5-pixel box, times the local scale ``k^2`` of the
    residual normalised by it (block medians, a 3-block median, then linear
    interpolation).  See :func:`estimate_noise`.
    """
    from scipy import ndimage

    spatial = y.shape[:-1]
    nd = len(spatial)
    B = _MAP_BLOCK.get(nd, 4)
    y = np.asarray(y, dtype=np.float64)
    base = np.zeros(spatial)
    norm = []
    for ch in range(y.shape[-1]):
        s = _box_smooth(y[..., ch], 2)
        v = np.asarray(model.variance(s), dtype=np.float64)
        base += v / y.shape[-1]
        e, _ = _laplace_residual(y[..., ch])
        with np.errstate(divide="ignore", invalid="ignore"):
            norm.append(np.where(v > 0, np.abs(e) / np.sqrt(v), np.nan))
    if not (base > 0).any():
        base = np.ones(spatial)
        norm = [np.abs(_laplace_residual(y[..., ch])[0]) for ch in range(y.shape[-1])]
    # block medians of the normalised residual (channels pooled)
    nb = tuple(max(1, -(-n // B)) for n in spatial)
    pads = [(0, b * B - n) if b * B >= n else (0, 0) for b, n in zip(nb, spatial)]
    stacked = np.stack([np.pad(a, pads, constant_values=np.nan) for a in norm], axis=-1)
    shape = []
    for b in nb:
        shape += [b, B]
    blocks = stacked.reshape(tuple(shape) + (len(norm),))
    order = [2 * k for k in range(nd)] + [2 * k + 1 for k in range(nd)] + [2 * nd]
    blocks = blocks.transpose(order).reshape(nb + (-1,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        med = np.nanmedian(blocks, axis=-1)
    if not np.isfinite(med).any():
        return np.sqrt(base * 0)  # no residual at all (tiny image): nothing measurable
    med = np.where(np.isfinite(med), med, np.nanmedian(med))
    k2 = (ndimage.median_filter(med, size=3, mode="nearest") / _MAD_SCALE) ** 2
    coords = np.meshgrid(*[(np.arange(n) + 0.5) / B - 0.5 for n in spatial], indexing="ij")
    k2full = ndimage.map_coordinates(k2, coords, order=1, mode="nearest")
    return np.sqrt(np.maximum(base * k2full, 0.0))
