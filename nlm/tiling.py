"""Exact tiling of local filters over dask arrays.

Non-local means is local in its support: the result at a pixel depends only
on the pixels within ``halo(patch_size, patch_distance) = patch_distance +
patch_size // 2`` of it along every axis (the search window plus the patch
radius of the farthest candidate).  Each chunk is therefore filtered together
with a margin of that width taken from its neighbours
(``dask.array.map_overlap`` with ``boundary="none"``: no margin is invented at
the image border, where the filter reads its own reflect padding exactly as
on the whole image), and the margin is cut off again.  The tiles then equal
the whole-image result up to floating-point summation order.

This module is generic: it knows nothing about a particular filter.  The
denoisers hand it the function to apply to each block (already bound to its
parameters) and use :func:`sample_regions` to estimate their automatic
parameters once for the whole array, so that every tile uses the same ones.
dask is imported only when a function here is called with a dask array
(``import nlm`` and ``nlm --help`` never import it).

Known dask pitfalls handled here: a margin wider than a chunk (dask #6688;
the array is rechunked so every chunk is at least as wide as the margin) and
the type inference call on an empty block (``meta`` and ``dtype`` are given).
"""

import math
import sys

import numpy as np

__all__ = [
    "SAMPLE_PIXELS",
    "SAMPLE_WINDOWS",
    "halo",
    "is_dask_array",
    "map_tiles",
    "min_chunks",
    "sample_regions",
]

#: pixels (per channel) read to estimate the automatic parameters of a dask
#: array; an image up to this size is read whole
SAMPLE_PIXELS = 1 << 22
#: number of windows (spread evenly over the image) of the sample of a larger one
SAMPLE_WINDOWS = 16


def is_dask_array(x):
    """True when ``x`` is a ``dask.array.Array`` (without importing dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


def halo(patch_size, patch_distance):
    """Margin (pixels per side, per spatial axis) that makes NLM tiles exact.

    ``patch_distance + patch_size // 2``: a pixel's search window reaches
    ``patch_distance`` away and the patch around the farthest candidate another
    ``patch_size // 2``.
    """
    return int(patch_distance) + int(patch_size) // 2


def min_chunks(chunks, minimum):
    """Merge the chunks of one axis so that each is at least ``minimum`` long.

    Chunk boundaries are kept where possible: runs of small chunks are merged
    left to right, and a short remainder at the end joins the chunk before it.
    An axis shorter than ``minimum`` becomes one chunk.

    Parameters
    ----------
    chunks : tuple of int
        Chunk lengths of one axis.
    minimum : int

    Returns
    -------
    tuple of int
        Same total length.
    """
    out, acc = [], 0
    for c in chunks:
        acc += c
        if acc >= minimum:
            out.append(acc)
            acc = 0
    if acc:
        if out:
            out[-1] += acc
        else:
            out.append(acc)
    return tuple(out)


def map_tiles(func, image, depth, *, spatial_axes, dtype, minimum=None):
    """Apply a local filter to a dask array tile by tile, exactly.

    Parameters
    ----------
    func : callable
        ``func(block) -> ndarray`` of the block's shape, the filter bound to
        its parameters.  It must be local: its result at a pixel may depend
        only on pixels within ``depth`` of it (and, at the image border, on
        the border itself).
    image : dask.array.Array
    depth : int or tuple of int
        Margin per side along every spatial axis, or one per axis of
        ``spatial_axes``.
    spatial_axes : sequence of int
        The axes the filter slides over; the other axes (channels) are made
        one chunk.
    dtype : numpy dtype
        dtype of ``func``'s result.
    minimum : int, optional
        Smallest chunk length along a spatial axis (at least ``depth``, which
        is the default): smaller chunks are merged with their neighbours.

    Returns
    -------
    dask.array.Array
        Lazy; same shape as ``image``, chunks as after merging.

    Notes
    -----
    Every block read is its chunk plus up to ``2 depth`` pixels per spatial
    axis, so the work overhead of the margins is about
    ``prod((c + 2 depth) / c)`` for chunk sides ``c``: chunks of 1024 with a
    margin of 14 cost 5.5 % more than the whole image in 2-D.
    """
    import dask.array as da

    spatial_axes = tuple(int(a) % image.ndim for a in spatial_axes)
    per_axis = (int(depth),) * len(spatial_axes) if np.ndim(depth) == 0 else tuple(int(d) for d in depth)
    depth = max(per_axis, default=0)
    minimum = max(depth, 1 if minimum is None else int(minimum))
    chunks = tuple(
        min_chunks(c, minimum) if ax in spatial_axes else (n,)
        for ax, (c, n) in enumerate(zip(image.chunks, image.shape))
    )
    if chunks != image.chunks:
        image = image.rechunk(chunks)
    # an axis held in one chunk needs no margin (and may be shorter than it)
    depths = {
        ax: (per_axis[spatial_axes.index(ax)] if ax in spatial_axes and len(image.chunks[ax]) > 1 else 0)
        for ax in range(image.ndim)
    }
    dtype = np.dtype(dtype)
    if not any(depths.values()):
        return image.map_blocks(func, dtype=dtype, meta=np.empty((0,) * image.ndim, dtype))
    return da.map_overlap(
        func,
        image,
        depth=depths,
        boundary="none",
        trim=True,
        dtype=dtype,
        meta=np.empty((0,) * image.ndim, dtype),
    )


def sample_regions(image, *, spatial_axes, max_pixels=None, windows=None):
    """Read a bounded sample of a dask array, for automatic parameters.

    Parameters
    ----------
    image : dask.array.Array
    spatial_axes : sequence of int
        Axes along which windows are cut (the others are read whole).
    max_pixels : int, optional
        Budget of pixels per channel; default :data:`SAMPLE_PIXELS`.
    windows : int, optional
        Number of windows of a larger image; default :data:`SAMPLE_WINDOWS`.

    Returns
    -------
    list of numpy.ndarray
        ``[the whole image]`` when it has at most ``max_pixels`` pixels per
        channel; otherwise ``windows`` (rounded up to a power of the number of
        spatial axes that are cut) equal windows on a regular grid, each
        centred in its cell, about ``max_pixels`` pixels in all.  Windows are
        at least 16 pixels wide where the image allows.  Deterministic: the
        same image gives the same sample.
    """
    import dask

    max_pixels = SAMPLE_PIXELS if max_pixels is None else int(max_pixels)
    windows = SAMPLE_WINDOWS if windows is None else int(windows)
    spatial_axes = tuple(int(a) % image.ndim for a in spatial_axes)
    shape = [image.shape[a] for a in spatial_axes]
    if math.prod(shape) <= max_pixels:
        return [np.asarray(image.compute())]
    nd = len(shape)
    per_axis = max(1, math.ceil(windows ** (1.0 / nd) - 1e-9))
    side = max(16, int((max_pixels / per_axis**nd) ** (1.0 / nd)))
    starts = []
    for n in shape:
        w = min(side, n)
        cells = min(per_axis, max(1, n // w))
        starts.append([(int((n * (2 * i + 1)) // (2 * cells) - w // 2), w) for i in range(cells)])
        starts[-1] = [(min(max(s, 0), n - w), w) for s, w in starts[-1]]
    regions = []
    for combo in np.ndindex(*[len(s) for s in starts]):
        index = [slice(None)] * image.ndim
        for k, ax in enumerate(spatial_axes):
            s, w = starts[k][combo[k]]
            index[ax] = slice(s, s + w)
        regions.append(image[tuple(index)])
    return [np.asarray(r) for r in dask.compute(*regions)]
