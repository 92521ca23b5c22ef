"""The top of the library: dask arrays in, dask arrays out, tiled exactly.

Non-local means is local in its support: the result at a pixel depends only
on the pixels within ``halo(patch_size, patch_distance) = patch_distance +
patch_size // 2`` of it along every axis (the search window plus the patch
radius of the farthest candidate).  Each chunk is therefore filtered together
with a margin of that width taken from its neighbours
(``dask.array.map_overlap`` with ``boundary="none"``: no margin is invented at
the image border, where the filter reads its own reflect padding exactly as
on the whole image), and the margin is cut off again.  The tiles then equal
the whole-image result up to floating-point summation order, and for NLM bit
for bit: each block is told its origin in the image and reads
``anchor_margin`` more rows before its chunk, so that the kernel adds every
sum in the order of the whole image (:mod:`nlm.ops._nlm_kernels`).  NL-Bayes
is exact the same way, with a wider margin: its blocks visit the image's
reference grid and cells (:func:`nlm.denoisers.bayes.tile_margin`).

Two parts:

* the generic machinery (:func:`map_tiles`, :func:`halo`,
  :func:`sample_regions`): it knows nothing about a particular filter;
* the public, dask-aware entry points :func:`denoise_nl_means`,
  :func:`denoise_nl_bayes` and :func:`estimate_sigma` (exported as
  ``nlm.denoise_nl_means`` etc.).  Each takes a NumPy array to the in-memory
  function of the layer below (:mod:`nlm.denoisers`, :mod:`nlm.noise`),
  unchanged, and a dask array to a tiled graph: the automatic parameters are
  estimated once, from a bounded sample (:func:`sample_regions`), and bound
  into the per-block function, so every tile uses the same ones.

This module sits on top of the denoisers (it imports them; they never import
it), beside the command line.  dask is imported only when a function here is
called with a dask array (``import nlm`` and ``nlm --help`` never import it).

Known dask pitfalls handled here: a margin wider than a chunk (dask #6688;
the array is rechunked so every chunk is at least as wide as the margin),
the type inference call on an empty block (``meta`` and ``dtype`` are given)
and chunks of unknown size (NaN, after boolean indexing): every function
here refuses them with the same ``ValueError`` naming the chunks
(:func:`nlm._validate._check_chunks`), before anything is read, rather than
computing the array behind the caller's back.
"""

from __future__ import annotations

import functools
import inspect
import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

from nlm._validate import (
    UnsupportedDimensionError,
    _as_numeric,
    _check_axis,
    _check_bool,
    _check_chunks,
    _check_dask_chunks,
    _check_int,
    _per_axis,
    _to_float,
    check_mask,
    check_sigma_map,
    is_dask_array,
    is_map,
)
from nlm.denoisers import bayes as _bayes
from nlm.denoisers import means as _means
from nlm.noise import estimate as _estimate
from nlm.ops import _nlm_kernels

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    import dask.array as da
    from numpy.typing import DTypeLike

    from nlm.noise import NoiseModel

__all__ = [
    "SAMPLE_PIXELS",
    "denoise_nl_bayes",
    "denoise_nl_means",
    "estimate_sigma",
    "SAMPLE_WINDOWS",
    "WORK_PIXELS",
    "denoise_nl_means_tiled",
    "denoise_nl_bayes_tiled",
    "halo",
    "is_dask_array",
    "map_tiles",
    "min_chunks",
    "tile_chunks",
    "sample_regions",
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
        Call ``func(block, origin=...)`` with the position of the block's
        first pixel in ``image`` along the spatial axes (a tuple of int, in
        the order of the axes), for filters whose rounding is tied to
        positions in the image.

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
    # an axis held in one chunk needs no margin (and may be shorter than it)
    depths = {
        ax: (per_axis[spatial_axes.index(ax)] if ax in spatial_axes and len(image.chunks[ax]) > 1 else (0, 0))
        for ax in range(image.ndim)
    }
    dtype = np.dtype(dtype)
    if origin:
        func = _with_origin(func, image.chunks, depths, sorted(spatial_axes))
    if not any(any(d) for d in depths.values()):
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
    """``func(block, origin=...)`` as a function of ``(block, block_id)`` for dask.

    With ``boundary="none"`` a block starts ``before`` pixels ahead of its
    chunk, except the first along each axis, which has no margin before it.
    """
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int).tolist() for c in chunks]

    def block_func(block, block_id=None):
        if block_id is None:  # dask's type inference call
            return func(block, origin=(0,) * len(axes))
        origin = tuple(
            starts[ax][block_id[ax]] - (depths[ax][0] if block_id[ax] > 0 else 0) for ax in axes
        )
        return func(block, origin=origin)

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


# --------------------------------------------------------------------------- #
# the dask-aware public functions
# --------------------------------------------------------------------------- #
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


def _nl_means_tiled(image, patch_size, patch_distance, h, fast_mode, sigma, preserve_range, channel_axis, noise,
                    num_threads, mask=None, work_pixels=None):
    """:func:`denoise_nl_means` of a dask array: validate, set parameters once, tile.

    ``work_pixels``: the largest working block of whole rows (None:
    :data:`WORK_PIXELS`); see :func:`denoise_nl_means_tiled`.
    """
    sigma_map = None
    if is_map(sigma):
        sigma_map, sigma = sigma, 0.0
    name, model = _means._resolve_noise(noise)
    if (sigma_map is not None or mask is not None) and name != "gaussian":
        what = "sigma: a noise map" if sigma_map is not None else "mask"
        raise ValueError(f"{what} needs noise='gaussian' (got noise={name!r})")
    _check_bool(fast_mode, "fast_mode")
    preserve_range = _check_bool(preserve_range, "preserve_range")
    if num_threads is not None:
        num_threads = _check_int(num_threads, "num_threads", 1)
    if name not in ("gaussian",):
        raise ValueError(
            f"noise={name!r} is not available for dask arrays with non-local means (the model is "
            "estimated from the whole image, and the speckle mode's debiasing needs the mean of the "
            "whole result); compute the array, or pass a Gaussian model"
        )
    if model is not None and sigma == 0:
        sigma = float(np.sqrt(model.a))
    default_size, default_distance = _means.default_patch("gaussian")
    patch_size = default_size if patch_size is None else patch_size
    patch_distance = default_distance if patch_distance is None else patch_distance
    axis, spatial_axes = _estimate._dask_checks(image, channel_axis)
    patch_size, patch_distance, h, sigma = _means._check_params(patch_size, patch_distance, h, sigma)
    sizes = _per_axis(patch_size, "patch_size", tuple(image.shape[a] for a in spatial_axes))
    radii = _per_axis(patch_distance, "patch_distance", tuple(image.shape[a] for a in spatial_axes))
    if sigma_map is not None or mask is not None:
        spatial = tuple(image.shape[a] for a in spatial_axes)
        if sigma_map is not None:
            sigma_map = check_sigma_map(sigma_map, spatial)
        if is_dask_array(mask):
            # a lazy mask (e.g. a file's no-data value): shape and dtype checked, values used as they come
            if tuple(mask.shape) != spatial or mask.dtype != bool:
                raise ValueError(
                    f"mask must be a bool array of the image's spatial shape {spatial}, got {mask.dtype} "
                    f"{tuple(mask.shape)}"
                )
            if sigma_map is not None:
                mask = np.asarray(mask)
        else:
            mask = check_mask(mask, spatial)
            if mask is not None and mask.all():
                mask = None
    if sigma_map is not None or mask is not None:
        if len(spatial_axes) > 3:
            what = "sigma (a noise map)" if sigma_map is not None else "mask"
            raise UnsupportedDimensionError(
                f"{what}: supported for 1-D to 3-D images, got {len(spatial_axes)} spatial axes"
            )
        if work_pixels is not None:
            work_pixels = _check_int(work_pixels, "work_pixels", 1)
        return _nl_means_mapped_tiled(image, axis, sizes, radii, h, sigma, sigma_map, mask, preserve_range,
                                      num_threads, work_pixels)
    if h is None:
        regions = [
            _to_float(_as_numeric(r), preserve_range) for r in sample_regions(image, spatial_axes=spatial_axes)
        ]
        if sigma == 0:
            sigma = _estimate._mean(_estimate._pooled_sigma(regions, axis))
        h = _means._auto_h(sigma, *regions)
        del regions
    # the row kernel's running sums restart at image rows fixed in the image:
    # a few more rows before each block make its sums those of the whole image
    extra = _nlm_kernels.anchor_margin(len(spatial_axes))
    depth = tuple((halo(p, d) + e, halo(p, d)) for p, d, e in zip(sizes, radii, extra))
    if work_pixels is not None:
        work_pixels = _check_int(work_pixels, "work_pixels", 1)
    minimum = _work_minimum(image.chunks, spatial_axes, depth, max(sizes), work_pixels)
    if num_threads is None:
        blocks = math.prod(len(c) for c in tile_chunks(image.chunks, spatial_axes, depth, minimum))
        num_threads = _threads_per_block(blocks)
    func = functools.partial(
        _nl_means_block,
        patch_size=patch_size,
        patch_distance=patch_distance,
        h=h,
        sigma=sigma,
        channel_axis=axis,
        preserve_range=preserve_range,
        num_threads=num_threads,
    )
    return map_tiles(
        func, image, depth, spatial_axes=spatial_axes, dtype=_float_dtype(image.dtype), minimum=minimum,
        origin=True,
    )


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


def _nl_means_mapped_tiled(image, axis, sizes, radii, h, sigma, sigma_map, mask, preserve_range, num_threads,
                           work_pixels):
    """:func:`denoise_nl_means` of a dask array with a noise map and/or a mask (NumPy, validated).

    The image (as float, channels last), the map and the mask (as 0/1) are
    stacked along the channel axis, so every tile reads them with the same
    margin; the parameters (the map's reference level, the automatic ``h``
    and ``sigma``) are set once, from the whole map and from
    :func:`sample_regions` (the whole image when it is small: then exactly the
    in-memory values), and every tile runs the map/mask kernel told its
    origin: bit-identical to the in-memory result.
    """
    import dask.array as da

    from nlm.ops import _nlm_masked

    fdtype = _float_dtype(image.dtype)
    x = image.map_blocks(lambda b: _to_float(np.asarray(b), preserve_range).astype(fdtype, copy=False),
                         dtype=fdtype, meta=np.empty((0,) * image.ndim, fdtype))
    x = x[..., None] if axis is None else da.moveaxis(x, axis, -1)
    nd = x.ndim - 1
    C = x.shape[-1]
    x = x.rechunk(x.chunks[:-1] + ((C,),))
    if sigma_map is not None:
        sigma_map = sigma_map.astype(fdtype).astype(np.float64)  # as the in-memory path
    parts = [x]
    if sigma_map is not None:
        parts.append(da.from_array(sigma_map.astype(fdtype)[..., None], chunks=x.chunks[:-1] + ((1,),)))
    if is_dask_array(mask):
        parts.append(mask.astype(fdtype)[..., None].rechunk(x.chunks[:-1] + ((1,),)))
    elif mask is not None:
        parts.append(da.from_array(mask.astype(fdtype)[..., None], chunks=x.chunks[:-1] + ((1,),)))
    stacked = da.concatenate(parts, axis=-1) if len(parts) > 1 else x
    xs = ms = None
    if h is None:
        regions = sample_regions(stacked, spatial_axes=tuple(range(nd)))
        whole = regions[0] if len(regions) == 1 else np.concatenate(regions, axis=0)
        xs = np.ascontiguousarray(whole[..., :C])
        ms = None if mask is None else whole[..., -1] != 0
        del regions, whole
    h, sigma, var_map = _means.mapped_parameters(
        h, sigma, sigma_map, mask, lambda: _estimate.residual_sigma(xs, mask=ms, channel_axis=-1),
        [] if xs is None else [xs if ms is None or not ms.any() else xs[ms]],
    )
    use_map = var_map is not None
    # the kernel's row bands slide their sums from image rows fixed in the image:
    # _BAND - 1 more rows before each block give it the whole image's sums
    extra = [0] * nd
    if nd >= 2:
        extra[-2] = _nlm_masked._BAND - 1
    depth = tuple((halo(p, d) + e, halo(p, d)) for p, d, e in zip(sizes, radii, extra))
    minimum = _work_minimum(stacked.chunks, tuple(range(nd)), depth, max(sizes), work_pixels)
    if num_threads is None:
        blocks = math.prod(len(c) for c in tile_chunks(stacked.chunks, tuple(range(nd)), depth, minimum))
        num_threads = _threads_per_block(blocks)
    func = functools.partial(_nl_means_mapped_block, C=C, sizes=sizes, radii=radii, h=h, sigma=sigma,
                             use_map=use_map, use_mask=mask is not None, num_threads=num_threads)
    out = map_tiles(func, stacked, depth, spatial_axes=tuple(range(nd)), dtype=fdtype, minimum=minimum,
                    origin=True)[..., :C]
    return out[..., 0] if axis is None else da.moveaxis(out, -1, axis)


def _nl_means_mapped_block(block, origin, *, C, sizes, radii, h, sigma, use_map, use_mask, num_threads):
    """One block of :func:`_nl_means_mapped_tiled`: (*spatial, C + map + mask) in, the same shape out."""
    from nlm._config import threads
    from nlm.ops._nlm_masked import nl_means_masked

    x = np.ascontiguousarray(block[..., :C])
    k = C
    var_map = None
    if use_map:
        var_map = block[..., k].astype(np.float64) ** 2
        k += 1
    mask = block[..., k] != 0 if use_mask else None
    bad = ~np.isfinite(x).all(axis=-1)
    if bad.any() and (mask is None or (bad & mask).any()):
        raise ValueError("image contains NaN or Inf values" + ("" if mask is None else " at valid pixels"))
    with threads(num_threads):
        y = nl_means_masked(x, sizes, radii, h, sigma, var_map, mask, x.ndim - 1, origin=origin)
    return np.concatenate([y, block[..., C:]], axis=-1)


def _nl_means_block(block, origin, **kwargs):
    """The in-memory filter of one block, told where the block is in the image.

    The compiled kernel then adds every pixel's sums in the same order as on
    the whole image (:func:`nlm.ops._nlm_kernels.tile_origin`): kept pixels
    are bit-identical to the in-memory result.
    """
    with _nlm_kernels.tile_origin(origin):
        return _means.denoise_nl_means(block, **kwargs)


def _nl_bayes_tiled(image, *, noise, sigma, looks, channel_axis, preserve_range, patch_size, n_similar,
                    search_radius, beta, flat, passes=None, stride=2, num_threads=None, return_model=False,
                    mask=None, work_pixels=None):
    """:func:`denoise_nl_bayes` of a dask array: model and parameters once, then exact tiles.

    The noise model and every derived parameter (patch sizes, group sizes,
    search radius, beta, the similarity thresholds, the scaling exponent,
    the clipped level table) are set once by the in-memory function's own
    code (``nlm.denoisers.bayes._parameters``) on :func:`sample_regions`
    (the whole image when it has at most :data:`SAMPLE_PIXELS` pixels per
    channel; else its windows placed side by side) and handed to every
    tile.  Each tile is told its origin in the image: the kernel's reference
    grid and cells are the image's (``nlm.ops._bayes_kernels``), so
    with a margin of :func:`nlm.denoisers.bayes.tile_margin` the kept pixels
    are bit-identical to the in-memory result with the same parameters.
    ``work_pixels``: as :func:`denoise_nl_means_tiled`.
    """
    if is_map(sigma) or mask is not None:
        what = "sigma (a noise map)" if is_map(sigma) else "mask"
        raise NotImplementedError(
            f"{what}: NL-Bayes takes noise maps and masks on NumPy arrays only (not tiled yet); compute the "
            "array first (non-local means takes them on dask arrays)"
        )
    if image.dtype == object or image.dtype.kind not in "biuf":
        raise TypeError(f"image must have a real numeric dtype, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    axis = None if channel_axis is None else _check_axis(channel_axis, image.ndim)
    spatial_axes = tuple(a for a in range(image.ndim) if a != axis)
    nd = len(spatial_axes)
    if nd not in _bayes.TILED_DIMS:
        raise UnsupportedDimensionError(
            f"denoise_nl_bayes needs a 2-D or 3-D image (plus an optional channel axis), got {nd} "
            "spatial dimension(s)"
        )
    preserve_range = _check_bool(preserve_range, "preserve_range")
    return_model = _check_bool(return_model, "return_model")
    stride = _check_int(stride, "stride", 1)
    if num_threads is not None:
        num_threads = _check_int(num_threads, "num_threads", 1)
    if work_pixels is not None:
        work_pixels = _check_int(work_pixels, "work_pixels", 1)
    n_user = _bayes._pair(n_similar, "n_similar", minimum=2)
    if nd == 2:  # volumes: per-axis geometry, checked by _volume_parameters
        patch_size = _bayes._pair(patch_size, "patch_size", odd=True)
        search_radius = None if search_radius is None else _check_int(search_radius, "search_radius", 1)
    beta = _bayes._pair_float(beta, "beta", positive=True)
    flat = _bayes._pair_float(flat, "flat", positive=False)
    passes = _bayes._check_passes(passes)
    regions = sample_regions(image, spatial_axes=spatial_axes)
    sample = regions[0] if len(regions) == 1 else np.concatenate(regions, axis=spatial_axes[-1])
    del regions
    x = _to_float(_as_numeric(sample), preserve_range)
    del sample
    xc = x[None] if axis is None else np.moveaxis(x, axis, 0)
    parameters = _bayes._parameters if nd == 2 else _bayes._volume_parameters
    prm = parameters(xc, image.dtype, noise, sigma, looks, preserve_range, patch_size, n_user, search_radius, beta,
                     flat, passes)
    del x, xc
    prm.pop("xc")
    if math.prod(image.shape[a] for a in spatial_axes) > SAMPLE_PIXELS:
        # the sample's extremes need not be the image's: the bounds of the
        # clipped level table and the data checks take the image's own
        import dask.array as da

        lo, hi = da.compute(image.min(), image.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("image contains NaN or Inf values")
        lo, hi = (float(v) for v in _to_float(np.array([lo, hi], dtype=image.dtype), preserve_range))
        prm["lo"], prm["hi"] = min(prm["lo"], lo * 2.0 ** prm["exponent"]), max(prm["hi"], hi * 2.0 ** prm["exponent"])
        _bayes.check_range(prm, prm["lo"], prm["hi"])
    if prm["identity"]:  # the input itself: no margin
        margins = (0,) * nd
    else:
        margins = _bayes.tile_margin(prm) if nd == 2 else _bayes.volume_margin(prm)
    depth = tuple((m, m) for m in margins)
    shape = tuple(image.shape[a] for a in spatial_axes)
    patch = int(max(np.max(prm["p1"]), np.max(prm["p2"])))
    image, minimum = _bayes_blocks(image, spatial_axes, depth, patch,
                                   _BAYES_WORK_PIXELS if work_pixels is None else work_pixels)
    if num_threads is None:
        blocks = math.prod(len(c) for c in tile_chunks(image.chunks, spatial_axes, depth, minimum))
        num_threads = _threads_per_block(blocks)
    func = functools.partial(_nl_bayes_block, prm=prm, channel_axis=axis, preserve_range=preserve_range,
                             stride=stride, num_threads=num_threads, shape=shape)
    out = map_tiles(func, image, depth, spatial_axes=spatial_axes, dtype=_float_dtype(image.dtype),
                    minimum=minimum, origin=True)
    return (out, prm["user_model"]) if return_model else out


#: working blocks of NL-Bayes (margins included) hold about this many values
#: (pixels times channels): the filter keeps about 12 working-float copies
#: of a block (the working image, two estimates, a float64 numerator, the
#: weights, the mask, float64 colour transforms, dask's copies), so 2^22
#: float32 values about 200 MB (BAYES_BYTES_PER_VALUE)
_BAYES_WORK_PIXELS = 1 << 22

#: bytes per value (pixel and channel) of a block of tiled NL-Bayes, per
#: byte of the working float (the command line's --memory-limit divides by it)
BAYES_BYTES_PER_VALUE = 12


def _bayes_blocks(image, spatial_axes, depth, patch, work_pixels):
    """Working blocks of tiled NL-Bayes: ``(image rechunked, minimum)`` for :func:`map_tiles`.

    NL-Bayes' margins are wide (:func:`nlm.denoisers.bayes.tile_margin`,
    a few hundred pixels), so a block's side is set by the budget: the last
    spatial axis whole (no margin along it: whole rows in 2-D) or
    near-cubic blocks, each as large as ``work_pixels`` values (margins
    included) allow, whichever adds less work for its margins; chunks more
    than twice that side are split, smaller ones merged.  Fewer blocks than
    cores: the first axis is cut further (down to its margin).  ``MARGIN_WORK = None`` keeps the chunks as given (merged
    only to the margin).  Any number of spatial axes.
    """
    if MARGIN_WORK is None:
        return image, patch
    import numba

    margins = [int(d[0]) for d in depth]
    nd = len(spatial_axes)
    shape = [image.shape[a] for a in spatial_axes]
    channels = math.prod(n for a, n in enumerate(image.shape) if a not in spatial_axes)
    values = max(1, work_pixels // max(1, channels))

    def whole_last(s):  # values of a block of side s along the other axes, the last axis whole
        return math.prod(s + 2 * m for m in margins[:-1]) * shape[-1]

    lo, hi = 0, max(shape)
    while lo < hi:  # the largest side that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if whole_last(mid) <= values else (lo, mid - 1)
    edge = int(values ** (1.0 / nd) + 1e-9)
    side = [max(edge - 2 * m, m, patch) for m in margins]

    def overhead(sides, cut):  # work with margins / work without, along the axes cut
        return math.prod((s + 2 * m) / s for s, m, c in zip(sides, margins, cut) if c)

    if nd > 1 and lo >= max(max(margins[:-1]), patch, 1):
        whole = [lo] * (nd - 1) + [shape[-1]]
        if overhead(whole, [True] * (nd - 1) + [False]) <= overhead(side, [True] * nd):
            side = whole
    side = [min(s, n) for s, n in zip(side, shape)]
    mr = margins[0]

    def split(side):
        chunks = list(image.chunks)
        for k, a in enumerate(spatial_axes):
            pieces = []
            for c in chunks[a]:
                n = -(-c // (2 * side[k])) if c > 2 * side[k] else 1
                pieces += [c // n + (i < c % n) for i in range(n)]
            chunks[a] = tuple(pieces)
        return tuple(chunks)

    def count(side):
        return math.prod(len(c) for c in tile_chunks(split(side), spatial_axes, depth, tuple(side)))

    want = numba.config.NUMBA_NUM_THREADS
    while count(side) < want and side[0] > max(mr, patch):
        side[0] = max(mr, patch, side[0] // 2)
    if nd == 3:  # volumes: even pieces of at most `side` (blocks within the budget wherever the margins allow it)
        return _even_blocks(image, spatial_axes, margins, patch, side)
    chunks = split(side)
    if chunks != image.chunks:
        image = image.rechunk(chunks)
    return image, tuple(side)


def _even_blocks(image, spatial_axes, margins, patch, side):
    """Volumes: each spatial axis cut into even pieces of at most ``side`` (none shorter than its margin).

    Unlike merging the given chunks (:func:`min_chunks`, which may make a
    chunk up to twice ``side``), the pieces never exceed ``side`` unless the
    margin forbids it (dask's overlap needs chunks at least as long as the
    margin): a working block (:func:`_largest_block`) then holds at most
    ``prod(side + 2 margin)`` values, the budget :func:`_bayes_blocks` sized
    ``side`` for.  Returns ``(image rechunked, minimum)``.
    """
    chunks = list(image.chunks)
    minimum = []
    for a, m, s in zip(spatial_axes, margins, side):
        n_axis = image.shape[a]
        n = max(1, -(-n_axis // max(1, s)))
        while n > 1 and n_axis // n < max(m, patch, 1):
            n -= 1
        chunks[a] = tuple(n_axis // n + (i < n_axis % n) for i in range(n))
        minimum.append(min(chunks[a]))
    chunks = tuple(chunks)
    if chunks != image.chunks:
        image = image.rechunk(chunks)
    return image, tuple(minimum)


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


def _nl_bayes_block(block, origin, *, prm, channel_axis, preserve_range, stride, num_threads, shape):
    """The in-memory NL-Bayes passes on one block, with the image's parameters and the block's origin.

    The data checks of the whole image (finite values; non-negative for a
    multiplicative model; inside a clipped model's bounds) are repeated on
    the block, so a bad pixel anywhere fails the computation as it fails
    the in-memory call.
    """
    x = _to_float(_as_numeric(block), preserve_range)
    xc = x[None] if channel_axis is None else np.moveaxis(x, channel_axis, 0)
    e = prm["exponent"]
    if e:
        xc = np.ldexp(xc, e).astype(xc.dtype, copy=False)
    _bayes.check_range(prm, float(xc.min()), float(xc.max()))
    run = _bayes.run_passes if len(shape) == 2 else _bayes.run_volume_passes
    out = run(xc, prm, stride, num_threads, origin=origin, shape=shape)
    return out[0] if channel_axis is None else np.moveaxis(out, 0, channel_axis)


def denoise_nl_bayes_tiled(image: da.Array, *, work_pixels: int | None = None, **kwargs: Any) -> da.Array:
    """:func:`denoise_nl_bayes` of a dask array, with the working-block budget as an argument.

    The same filter, parameters and result as ``nlm.denoise_nl_bayes`` on a
    dask array (bit-identical to the in-memory result with the same
    parameters); ``work_pixels`` bounds the working blocks of whole rows (all
    channels), so that a caller with a memory budget (the command line's
    ``--memory-limit``) sets it for its own call.

    Parameters
    ----------
    image : dask.array.Array
        The image (see :func:`denoise_nl_bayes`).
    work_pixels : int >= 1 or None, keyword-only
        Largest working block of whole rows, in pixels; None: 2^22.
    **kwargs
        The keyword arguments of :func:`denoise_nl_bayes`.

    Returns
    -------
    dask.array.Array
        Lazy result (with the model, as a pair, when ``return_model=True``).

    Raises
    ------
    TypeError
        ``image`` is not a dask array; an unknown keyword; the errors of
        :func:`denoise_nl_bayes`.
    ValueError
        ``work_pixels`` < 1; the errors of :func:`denoise_nl_bayes`.
    """
    if not is_dask_array(image):
        raise TypeError(f"image must be a dask array (use nlm.denoise_nl_bayes otherwise), got {type(image).__name__}")
    _check_dask_chunks(image)
    bound = inspect.signature(_bayes.denoise_nl_bayes).bind(image, **kwargs)
    bound.apply_defaults()
    return _nl_bayes_tiled(**bound.arguments, work_pixels=work_pixels)


def _estimate_sigma_tiled(image, average_sigmas, channel_axis):
    """:func:`estimate_sigma` of a dask array: pooled over a bounded sample."""
    if not isinstance(average_sigmas, (bool, np.bool_)):
        raise TypeError(f"average_sigmas must be a bool, got {average_sigmas!r}")
    axis, spatial = _estimate._dask_checks(image, channel_axis)
    if channel_axis is None and image.ndim > 0 and image.shape[-1] <= 4:
        warnings.warn(
            f"image is size {image.shape[-1]} on the last axis, but channel_axis is None. "
            "If this is a color image, please set channel_axis=-1 for proper noise estimation.",
            UserWarning,
            stacklevel=3,
        )
    regions = [_as_numeric(r) for r in sample_regions(image, spatial_axes=spatial)]
    sigmas = _estimate._pooled_sigma(regions, axis)
    if axis is None:
        return sigmas[0]
    return _estimate._mean(sigmas) if average_sigmas else sigmas


denoise_nl_means = _dask_aware(_means.denoise_nl_means, _nl_means_tiled)


def denoise_nl_means_tiled(
    image: da.Array,
    patch_size: int | Sequence[int] | None = None,
    patch_distance: int | Sequence[int] | None = None,
    h: float | None = None,
    fast_mode: bool = True,
    sigma: float = 0.0,
    *,
    preserve_range: bool = False,
    channel_axis: int | None = None,
    noise: str | NoiseModel = "gaussian",
    num_threads: int | None = None,
    mask: np.ndarray | None = None,
    work_pixels: int | None = None,
) -> da.Array:
    """:func:`denoise_nl_means` of a dask array, with the working-block budget as an argument.

    The same filter, parameters and result as ``nlm.denoise_nl_means`` on a
    dask array (bit-identical to the in-memory result); ``work_pixels``
    bounds the working blocks of whole rows (all channels), so that a caller
    with a memory budget (the command line's ``--memory-limit``) sets it for
    its own call instead of changing :data:`WORK_PIXELS` for everyone.

    Parameters
    ----------
    image : dask.array.Array
        The image (see :func:`denoise_nl_means`).
    patch_size, patch_distance, h, fast_mode, sigma, preserve_range, channel_axis, noise, num_threads, mask
        As :func:`denoise_nl_means` (a noise map and a mask as NumPy arrays).
    work_pixels : int >= 1 or None, keyword-only
        Largest working block of whole rows, in pixels; None:
        :data:`WORK_PIXELS` (2^24).

    Returns
    -------
    dask.array.Array
        Lazy result.

    Raises
    ------
    TypeError
        ``image`` is not a dask array; the errors of :func:`denoise_nl_means`.
    ValueError
        ``work_pixels`` < 1; the errors of :func:`denoise_nl_means`.
    """
    if not is_dask_array(image):
        raise TypeError(f"image must be a dask array (use nlm.denoise_nl_means otherwise), got {type(image).__name__}")
    _check_dask_chunks(image)
    return _nl_means_tiled(image, patch_size, patch_distance, h, fast_mode, sigma, preserve_range, channel_axis,
                           noise, num_threads, mask=mask, work_pixels=work_pixels)
denoise_nl_bayes = _dask_aware(_bayes.denoise_nl_bayes, _nl_bayes_tiled)
estimate_sigma = _dask_aware(_estimate.estimate_sigma, _estimate_sigma_tiled)
