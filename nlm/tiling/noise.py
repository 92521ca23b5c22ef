"""The per-pixel noise std map of a dask array, tile by tile (``estimate_noise(..., return_map=True)``).

:func:`noise_map_tiled` computes the map of :mod:`nlm.noise.noise_map`
(the fitted level function at the image smoothed by a 5-pixel box, times a
local scale from block medians of the normalised residual) on working
blocks of whole map blocks (``B`` pixels per axis, fixed in the image), each
with a margin of three map blocks: a pixel's value reads the map blocks
around it (a 3-block median, then linear interpolation between block
centres), whose medians read one pixel beyond them (the residual's stencil).
So the kept pixels are those of the in-memory map with the same model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nlm._validate import _as_numeric, is_dask_array
from nlm.noise import NoiseModel
from nlm.noise.estimate import _dask_checks
from nlm.noise.noise_map import _MAP_BLOCK, _noise_map
from nlm.tiling.blocks import map_tiles

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["noise_map_tiled"]


def noise_map_tiled(image: da.Array, model: NoiseModel, *, channel_axis: int | None = None) -> da.Array:
    """Per-pixel noise std map of a dask array under ``model``, computed tile by tile.

    Parameters
    ----------
    image : dask.array.Array
        Real numeric, any number of spatial axes, plus ``channel_axis``.
    model : nlm.noise.NoiseModel
        The image's noise model, in its units (e.g.
        ``nlm.estimate_noise`` of :func:`nlm.tiling.sample_regions`: of the
        whole image when it is small).
    channel_axis : int or None, keyword-only

    Returns
    -------
    dask.array.Array
        float64, the image's spatial shape: lazily, what
        ``nlm.estimate_noise(image, return_map=True)`` returns as its map when
        its model is ``model``.

    Raises
    ------
    TypeError
        ``image`` is not a dask array of a real numeric dtype; ``model`` is
        not a :class:`~nlm.noise.NoiseModel`.
    ValueError
        An empty image, chunks of unknown size.

    Notes
    -----
    Equal to the in-memory map bit for bit, except where a whole map block
    (``B`` = 16 pixels per axis in 2-D, 8 in 3-D) has no defined residual
    (the model's variance 0 all over it): the in-memory map fills such
    blocks with the median over the image's blocks, a tile with the median
    over its own.  Working blocks are ``B``-aligned with a margin of ``3 B``
    per axis; time ``O(N)``.

    Examples
    --------
    >>> import dask.array as da
    >>> import numpy as np
    >>> from nlm.noise import Gaussian
    >>> from nlm.tiling.noise import noise_map_tiled
    >>> x = da.from_array(np.random.default_rng(0).normal(0.5, 0.1, (96, 96)), chunks=48)
    >>> m = noise_map_tiled(x, Gaussian(0.1)).compute()
    >>> bool(abs(np.median(m) - 0.1) < 0.02)
    True
    """
    if not is_dask_array(image):
        raise TypeError(f"image must be a dask array, got {type(image).__name__}")
    if not isinstance(model, NoiseModel):
        raise TypeError(f"model must be a nlm.noise.NoiseModel, got {type(model).__name__}")
    axis, spatial = _dask_checks(image, channel_axis)
    nd = len(spatial)
    B = _MAP_BLOCK.get(nd, 4)
    chunks = list(image.chunks)
    for ax in spatial:  # chunks of whole map blocks (each at least the margin, so dask's overlap works)
        chunks[ax] = _aligned(image.shape[ax], chunks[ax], B, 3 * B)
    if axis is not None:
        chunks[axis] = (image.shape[axis],)
    image = image.rechunk(tuple(chunks))

    def block_map(block):
        y = _as_numeric(block)
        y = y[..., None] if axis is None else np.moveaxis(y, axis, -1)
        m = _noise_map(y, model)
        return m if axis is None else np.broadcast_to(np.expand_dims(m, axis), block.shape)

    out = map_tiles(block_map, image, 3 * B, spatial_axes=spatial, dtype=np.float64, minimum=3 * B)
    return out if axis is None else out[tuple(slice(0, 1) if a == axis else slice(None) for a in range(out.ndim))
                                        ].squeeze(axis)


def _aligned(n, chunks, B, minimum):
    """An axis of ``n`` cut near ``chunks`` at multiples of ``B``, each piece at least ``minimum`` (or whole)."""
    size = max(B, int(round(max(chunks) / B)) * B, -(-minimum // B) * B)
    cuts = list(range(0, n, size))
    pieces = [min(n, c + size) - c for c in cuts]
    if len(pieces) > 1 and pieces[-1] < minimum:
        last = pieces.pop()
        pieces[-1] += last
    return tuple(pieces)
