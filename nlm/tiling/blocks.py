"""The generic tiling machinery: it knows nothing about a particular filter.

:func:`map_tiles` runs a function on the blocks of a dask array with a
margin (``dask.array.map_overlap``, ``boundary="none"``), small chunks merged
into working blocks (:func:`tile_chunks`, :data:`MARGIN_WORK`,
:data:`WORK_PIXELS`); :func:`halo` is the margin of non-local means;
:func:`sample_regions` reads the bounded sample that the automatic
parameters of a dask array are estimated from; ``_dask_aware`` makes a
public function that takes NumPy input to the in-memory function and a dask
array to its tiled twin.  See :mod:`nlm.tiling` for the exactness argument.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import TYPE_CHECKING

import numpy as np

from nlm._validate import (
    _check_chunks,
    _check_dask_chunks,
    check_mask,
    check_sigma_map,
    is_dask_array,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import dask.array as da
    from numpy.typing import DTypeLike

__all__ = [
    "SAMPLE_PIXELS", "SAMPLE_WINDOWS", "MARGIN_WORK", "WORK_PIXELS", "halo", "map_tiles", "min_chunks",
    "sample_regions", "tile_chunks",
]


#: pixels (per channel) read to estimate the automatic parameters of a dask
#: array; an image up to this size is read whole
SAMPLE_PIXELS = 1 << 22
#: number of windows (spread evenly over the image) of the sample of a larger one
SAMPLE_WINDOWS = 16




def halo(patch_size: int, patch_distance: int) -> int:
    """Margin (pixels per side, per spatial axis) that makes NLM tiles exact.

    ``patch_distance + patch_size // 2``: a pixel's search window reaches
    ``patch_distance`` away and the patch around the farthest candidate another
    ``patch_size // 2``.
    """
    return int(patch_distance) + int(patch_size) // 2


def min_chunks(chunks: Sequence[int], minimum: int) -> tuple[int, ...]:
    """Merge the chunks of one axis so that each is at least ``minimum`` long.

    Chunks that are all long enough stay as they are.  Otherwise the axis is
    cut into as many pieces as it can hold, at the chunk boundaries nearest
    to an even split (so that the pieces are of nearly equal length and
    balance the work); when no such cut leaves every piece long enough, runs
    of small chunks are merged left to right and a short remainder at the
    end joins the chunk before it.  An axis shorter than ``minimum`` becomes
    one chunk.
    """
    (chunks,) = _check_chunks((chunks,), "chunks", array=False)
    chunks = tuple(int(c) for c in chunks)
    if all(c >= minimum for c in chunks) or sum(chunks) == 0:  # an empty axis stays as it is
        return chunks
    total = sum(chunks)
    bounds = np.cumsum(chunks)[:-1]
    most = total // max(int(minimum), 1)
    for k in range(most, max(1, most - 4), -1):
        targets = np.arange(1, k) * (total / k)
        at = np.searchsorted(bounds, targets)
        lo = bounds[np.maximum(at - 1, 0)]
        hi = bounds[np.minimum(at, len(bounds) - 1)]
        cuts = np.where(np.abs(lo - targets) <= np.abs(hi - targets), lo, hi)
        pieces = np.diff(np.concatenate([[0], cuts, [total]]))
        if len(pieces) and pieces.min() >= minimum:
            return tuple(int(c) for c in pieces)
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


def map_tiles(
    func: Callable[..., np.ndarray],
    image: da.Array,
    depth: int | tuple[int, ...],
    *,
    spatial_axes: Sequence[int],
    dtype: DTypeLike,
    minimum: int | tuple[int, ...] | None = None,
    origin: bool = False,
    extra: Sequence[da.Array] = (),
) -> da.Array:
    """Apply a local filter to a dask array tile by tile, exactly.

    Parameters
    ----------
    func : callable
        ``func(block) -> ndarray`` of the block's shape, the filter bound to
        its parameters.  It must be local: its result at a pixel may depend
        only on pixels within ``depth`` of it (and, at the image border, on
        the border itself).
    image : dask.array.Array
    depth : int or tuple
        Margin per side along every spatial axis, or one per axis of
        ``spatial_axes``, each an int or a ``(before, after)`` pair.
    spatial_axes : sequence of int
        The axes the filter slides over; the other axes (channels) are made
        one chunk.
    dtype : numpy dtype
        dtype of ``func``'s result.
    minimum : int or tuple of int, optional
        Smallest chunk length along a spatial axis, or one per axis of
        ``spatial_axes`` (at least the margin, which is the default):
        smaller chunks are merged with their neighbours
        (:func:`tile_chunks`).
    origin : bool
        Call ``func(block, origin)`` with the position of the block's
        first pixel in ``image`` along the spatial axes (a tuple of int, in
        the order of the axes), for filters whose rounding is tied to
        positions in the image.
    extra : sequence of dask.array.Array, optional
        Arrays of the image's spatial shape only (a noise map, a mask):
        cut into the same blocks, with the same margins, and passed after
        the block (and its origin), ``func(block[, origin], *extra_blocks)``,
        in the image's axis order, of length 1 along its other axes.

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

    _check_dask_chunks(image)
    spatial_axes = tuple(int(a) % image.ndim for a in spatial_axes)
    per_axis = _margins(depth, len(spatial_axes))
    chunks = tile_chunks(image.chunks, spatial_axes, per_axis, minimum)
    if chunks != image.chunks:
        image = image.rechunk(chunks)
    extra = [_like_image(e, image, spatial_axes) for e in extra]
    # an axis held in one chunk needs no margin (and may be shorter than it)
    depths = {
        ax: (per_axis[spatial_axes.index(ax)] if ax in spatial_axes and len(image.chunks[ax]) > 1 else (0, 0))
        for ax in range(image.ndim)
    }
    dtype = np.dtype(dtype)
    if origin:
        func = _with_origin(func, image.chunks, depths, sorted(spatial_axes))
    if not any(any(d) for d in depths.values()):
        return da.map_blocks(func, image, *extra, dtype=dtype, meta=np.empty((0,) * image.ndim, dtype))
    return da.map_overlap(
        func,
        image,
        *extra,
        depth=[depths] * (1 + len(extra)),
        boundary="none",
        trim=True,
        dtype=dtype,
        meta=np.empty((0,) * image.ndim, dtype),
        align_arrays=False,
    )


def _like_image(a, image, spatial_axes):
    """An array of the image's spatial shape, with the image's axes (length 1 off the spatial ones) and blocks."""
    index = tuple(slice(None) if ax in spatial_axes else None for ax in range(image.ndim))
    a = a[index]
    chunks = tuple(c if ax in spatial_axes else (1,) for ax, c in enumerate(image.chunks))
    return a if a.chunks == chunks else a.rechunk(chunks)


def _margins(depth, n):
    """``depth`` of :func:`map_tiles` as ``n`` (before, after) pairs."""
    per_axis = tuple(depth) if isinstance(depth, (tuple, list)) else (depth,) * n
    return tuple((int(d[0]), int(d[1])) if isinstance(d, (tuple, list)) else (int(d), int(d)) for d in per_axis)


def tile_chunks(
    chunks: Sequence[Sequence[int]],
    spatial_axes: Sequence[int],
    depth: int | tuple[int, ...],
    minimum: int | tuple[int, ...] | None = None,
) -> tuple[tuple[int, ...], ...]:
    """The chunks :func:`map_tiles` filters: ``chunks`` merged (:func:`min_chunks`).

    Along every spatial axis, runs of chunks are merged until each is at
    least ``minimum`` long (an int or one per axis of ``spatial_axes``) and at
    least as long as its margin (dask's overlap needs it); the other axes
    become one chunk.  ``depth`` as in :func:`map_tiles`.
    """
    chunks = _check_chunks(chunks, "chunks", array=False)
    ndim = len(chunks)
    spatial_axes = tuple(int(a) % ndim for a in spatial_axes)
    per_axis = _margins(depth, len(spatial_axes))
    if minimum is None or np.ndim(minimum) == 0:
        minimum = (1 if minimum is None else int(minimum),) * len(spatial_axes)

    def least(ax):  # this axis' margin (dask's overlap needs chunks at least that long) and minimum
        k = spatial_axes.index(ax)
        return max(max(per_axis[k]), int(minimum[k]))

    return tuple(
        min_chunks(c, least(ax)) if ax in spatial_axes else (sum(c),) for ax, c in enumerate(chunks)
    )


def _with_origin(func, chunks, depths, axes):
    """``func(block, origin, *extra)`` as a function of ``(block, *extra, block_id)`` for dask.

    With ``boundary="none"`` a block starts ``before`` pixels ahead of its
    chunk, except the first along each axis, which has no margin before it.
    """
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int).tolist() for c in chunks]

    def block_func(block, *extra, block_id=None):
        if block_id is None:  # dask's type inference call
            return func(block, (0,) * len(axes), *extra)
        origin = tuple(
            starts[ax][block_id[ax]] - (depths[ax][0] if block_id[ax] > 0 else 0) for ax in axes
        )
        return func(block, origin, *extra)

    return block_func


def sample_regions(
    image: da.Array, *, spatial_axes: Sequence[int], max_pixels: int | None = None, windows: int | None = None
) -> list[np.ndarray]:
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

    _check_dask_chunks(image)
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


def _lazy_map_and_mask(sigma_map, mask, shape, small):
    """The noise map and the mask of a tiled run, checked: NumPy (checked whole) or dask (shape and dtype).

    A dask map or mask of a small image (the sample is the whole image) is
    read, so that the parameters are those of the in-memory call; a lazy
    map's values are checked by every block.  A NumPy mask with every pixel
    valid is None.
    """
    if sigma_map is not None:
        if is_dask_array(sigma_map) and small:
            sigma_map = np.asarray(sigma_map)
        if is_dask_array(sigma_map):
            _check_dask_chunks(sigma_map)
            if sigma_map.dtype == object or sigma_map.dtype.kind not in "iuf":
                raise TypeError(f"sigma: a noise map must be a real numeric array, got dtype {sigma_map.dtype}")
            if tuple(sigma_map.shape) != shape:
                raise ValueError(
                    f"sigma: a noise map must have the image's spatial shape {shape} (channels excluded), got "
                    f"shape {tuple(sigma_map.shape)}"
                )
            sigma_map = sigma_map.astype(np.float64)
        else:
            sigma_map = check_sigma_map(sigma_map, shape)
    if mask is not None:
        if is_dask_array(mask) and small:
            mask = np.asarray(mask)
        if is_dask_array(mask):
            _check_dask_chunks(mask)
            if tuple(mask.shape) != shape or mask.dtype != bool:
                raise ValueError(
                    f"mask must be a bool array of the image's spatial shape {shape}, got {mask.dtype} "
                    f"{tuple(mask.shape)}"
                )
        else:
            mask = check_mask(mask, shape)
            if mask.all():
                mask = None
    return sigma_map, mask


def _as_dask(a, image, spatial_axes):
    """A NumPy map or mask as a dask array cut like the image's spatial axes (dask arrays as they are)."""
    if is_dask_array(a):
        return a
    import dask.array as da

    return da.from_array(a, chunks=tuple(image.chunks[ax] for ax in spatial_axes))


def _dask_aware(func, tiled):
    """``func`` for NumPy input, ``tiled(**bound arguments)`` for a dask array.

    The wrapper keeps ``func``'s name, docstring and signature
    (``functools.wraps``); a dask array's arguments are bound to that
    signature first, so a wrong call raises the same ``TypeError``.
    """
    signature = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(image, *args, **kwargs):
        if not is_dask_array(image):
            return func(image, *args, **kwargs)
        bound = signature.bind(image, *args, **kwargs)
        bound.apply_defaults()
        _check_dask_chunks(image)
        return tiled(**bound.arguments)

    return wrapper


def _float_dtype(dtype):
    """dtype of the result for an input dtype (the dtype rules of docs/python-api.md)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


#: chunks are merged into working blocks until, along every spatial axis, the
#: margins add at most this fraction to the work (None: only the merging
#: that dask's overlap needs); see _work_minimum.  Measured on a 2-core
#: machine (4096^2 float32, patch 7, distance 11): the per-block cost beyond
#: the margins (dask's overlap and concatenation, fresh buffers) is a few
#: percent, so blocks of a few million pixels keep tiles within a few percent
#: of the untiled time, where 5 % (blocks of 1024^2) cost 1.2x
MARGIN_WORK = 0.025


#: working blocks may span whole rows (the last spatial axis in one piece)
#: while they hold at most this many pixels (all channels): 2^24 float32
#: values are 64 MiB
WORK_PIXELS = 1 << 24


def _work_minimum(chunks, spatial_axes, depth, patch, work_pixels=None):
    """Smallest working block side per spatial axis for margins ``depth`` ((before, after) pairs).

    A block of side ``c`` filters ``c + before + after`` pixels along the
    axis: sides of at least ``(before + after) / MARGIN_WORK`` keep that
    overhead under ``MARGIN_WORK`` per axis.  Small chunks are merged with
    their neighbours accordingly, into blocks of nearly equal length
    (:func:`min_chunks`); chunks that are large enough stay as they are.

    Whole rows are cheapest: the row kernel streams each row in column
    strips fixed in the image, and a block cut across a row adds partial
    strips and column margins (measured on 2 cores, 4096^2 float32, patch 7,
    distance 11: four 2048^2 blocks cost 1.08-1.14x the untiled CPU time,
    four 1024 x 4096 bands 1.02x).  So when a block spanning the whole last
    spatial axis, at the minimum side along the others, holds at most
    ``work_pixels`` pixels (None: :data:`WORK_PIXELS`), that axis is made
    one piece.

    The minimum along the other axes is halved (down to what the overlap
    needs) while it would leave fewer blocks than cores, so that the blocks
    still keep every core busy; only then is the last axis cut again.  (The
    blocks being of nearly equal size, one per core balances: two 2048 x
    4096 bands on 2 cores measured 0.95-1.02x the untiled time.)
    """
    if MARGIN_WORK is None:
        return patch
    import numba

    work = [max(patch, math.ceil((b + a) / MARGIN_WORK)) for b, a in depth]
    want = numba.config.NUMBA_NUM_THREADS
    last = max(range(len(spatial_axes)), key=lambda k: spatial_axes[k])
    width = sum(chunks[spatial_axes[last]])
    channels = math.prod(sum(c) for ax, c in enumerate(chunks) if ax not in spatial_axes)
    others = math.prod(w for k, w in enumerate(work) if k != last)
    if width * others * channels <= (WORK_PIXELS if work_pixels is None else work_pixels):
        work[last] = max(work[last], width)

    def count(w):
        return math.prod(len(c) for c in tile_chunks(chunks, spatial_axes, depth, w))

    while count(work) < want:
        if all(w <= patch for k, w in enumerate(work) if k != last):
            break
        work = [w if k == last else max(patch, w // 2) for k, w in enumerate(work)]
    while count(work) < want:
        if all(w <= patch for w in work):
            break
        work = [max(patch, w // 2) for w in work]
    return tuple(work)


def _threads_per_block(blocks):
    """Kernel threads per block when the caller gave none: the cores shared by the blocks.

    One per block when there are at least as many blocks as cores (dask's
    threads then keep every core busy); otherwise ``cores // blocks``, so
    that an image of few blocks still uses the machine.
    """
    import numba

    return max(1, numba.config.NUMBA_NUM_THREADS // max(1, blocks))


def _largest_block(chunks, spatial_axes, depth, channels=1):
    """Values (pixels times ``channels``) of the largest working block of a tiling: chunk and margins.

    ``chunks``: the chunks :func:`map_tiles` filters (:func:`tile_chunks`);
    ``depth`` as there.  A margin stops at the image's border.
    """
    per_axis = _margins(depth, len(spatial_axes))
    total = 1
    for (before, after), a in zip(per_axis, spatial_axes):
        starts = np.concatenate([[0], np.cumsum(chunks[a])]).astype(int)
        n = int(starts[-1])
        total *= max(min(n, int(e) + after) - max(0, int(b) - before) for b, e in zip(starts[:-1], starts[1:]))
    return total * int(channels)
