"""NL-Bayes of a dask array: model and parameters once from a sample, then exact tiles.

:func:`denoise_nl_bayes` (exported as ``nlm.denoise_nl_bayes``) takes a
NumPy array to :func:`nlm.denoisers.bayes.denoise_nl_bayes` unchanged and a
dask array (2-D or 3-D) to a tiled graph whose blocks run the passes of
:mod:`nlm.denoisers.bayes_passes` on the image's reference grid and cells,
with the margins of :func:`nlm.denoisers.bayes_passes.tile_margin` /
:func:`~nlm.denoisers.bayes_passes.volume_margin`: the result equals the
in-memory one bit for bit.  :func:`denoise_nl_bayes_tiled` is the same with
the working-block budget as an argument.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import TYPE_CHECKING

import numpy as np

import nlm.tiling.blocks as _blocks
from nlm._validate import (
    UnsupportedDimensionError,
    _as_numeric,
    _check_axis,
    _check_bool,
    _check_dask_chunks,
    _check_int,
    _to_float,
    is_dask_array,
    is_map,
)
from nlm.denoisers import bayes as _bayes
from nlm.denoisers import bayes_passes as _passes
from nlm.denoisers import bayes_setup as _setup
from nlm.tiling.blocks import (
    _dask_aware,
    _float_dtype,
    _threads_per_block,
    map_tiles,
    sample_regions,
    tile_chunks,
)

if TYPE_CHECKING:
    from typing import Any

    import dask.array as da

__all__ = ["BAYES_BYTES_PER_VALUE", "denoise_nl_bayes", "denoise_nl_bayes_tiled"]


def _nl_bayes_tiled(image, *, noise, sigma, looks, channel_axis, preserve_range, patch_size, n_similar,
                    search_radius, beta, flat, passes=None, ridge=None, stride=2, num_threads=None,
                    return_model=False, mask=None, work_pixels=None):
    """:func:`denoise_nl_bayes` of a dask array: model and parameters once, then exact tiles.

    The noise model and every derived parameter (patch sizes, group sizes,
    search radius, beta, the similarity thresholds, the scaling exponent,
    the clipped level table) are set once by the in-memory function's own
    code (``nlm.denoisers.bayes_setup._parameters``) on :func:`sample_regions`
    (the whole image when it has at most :data:`nlm.tiling.blocks.SAMPLE_PIXELS` pixels per
    channel; else its windows placed side by side) and handed to every
    tile.  Each tile is told its origin in the image: the kernel's reference
    grid and cells are the image's (``nlm.ops._bayes_kernels``), so
    with a margin of :func:`nlm.denoisers.bayes_passes.tile_margin` the kept pixels
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
    if nd not in _passes.TILED_DIMS:
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
    n_user = _setup._pair(n_similar, "n_similar", minimum=2)
    if nd == 2:  # volumes: per-axis geometry, checked by _volume_parameters
        patch_size = _setup._pair(patch_size, "patch_size", odd=True)
        search_radius = None if search_radius is None else _check_int(search_radius, "search_radius", 1)
    beta = _setup._pair_float(beta, "beta", positive=True)
    flat = _setup._pair_float(flat, "flat", positive=False)
    passes = _setup._check_passes(passes)
    ridge = _setup._check_ridge(ridge)
    if nd == 3 and ridge:
        raise ValueError("ridge: the NL-Ridge pass is 2-D only for now; leave ridge unset (or 0) for a volume")
    regions = sample_regions(image, spatial_axes=spatial_axes)
    sample = regions[0] if len(regions) == 1 else np.concatenate(regions, axis=spatial_axes[-1])
    del regions
    x = _to_float(_as_numeric(sample), preserve_range)
    del sample
    xc = x[None] if axis is None else np.moveaxis(x, axis, 0)
    parameters = _setup._parameters if nd == 2 else _setup._volume_parameters
    extra = (ridge,) if nd == 2 else ()  # volumes: no NL-Ridge pass
    prm = parameters(xc, image.dtype, noise, sigma, looks, preserve_range, patch_size, n_user, search_radius, beta,
                     flat, passes, *extra)
    del x, xc
    prm.pop("xc")
    if math.prod(image.shape[a] for a in spatial_axes) > _blocks.SAMPLE_PIXELS:
        # the sample's extremes need not be the image's: the bounds of the
        # clipped level table and the data checks take the image's own
        import dask.array as da

        lo, hi = da.compute(image.min(), image.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("image contains NaN or Inf values")
        lo, hi = (float(v) for v in _to_float(np.array([lo, hi], dtype=image.dtype), preserve_range))
        prm["lo"], prm["hi"] = min(prm["lo"], lo * 2.0 ** prm["exponent"]), max(prm["hi"], hi * 2.0 ** prm["exponent"])
        _setup.check_range(prm, prm["lo"], prm["hi"])
    if prm["identity"]:  # the input itself: no margin
        margins = (0,) * nd
    else:
        margins = _passes.tile_margin(prm) if nd == 2 else _passes.volume_margin(prm)
    depth = tuple((m, m) for m in margins)
    shape = tuple(image.shape[a] for a in spatial_axes)
    patch = int(max(np.max(prm["p1"]), np.max(prm["p2"]), prm["ridge_patch"] if nd == 2 and prm["ridge"] > 0 else 1))
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

    NL-Bayes' margins are wide (:func:`nlm.denoisers.bayes_passes.tile_margin`,
    a few hundred pixels), so a block's side is set by the budget: the last
    spatial axis whole (no margin along it: whole rows in 2-D) or
    near-cubic blocks, each as large as ``work_pixels`` values (margins
    included) allow, whichever adds less work for its margins; chunks more
    than twice that side are split, smaller ones merged.  Fewer blocks than
    cores: the first axis is cut further (down to its margin).  ``MARGIN_WORK = None`` keeps the chunks as given (merged
    only to the margin).  Any number of spatial axes.
    """
    if _blocks.MARGIN_WORK is None:
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
    _setup.check_range(prm, float(xc.min()), float(xc.max()))
    run = _passes.run_passes if len(shape) == 2 else _passes.run_volume_passes
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


denoise_nl_bayes = _dask_aware(_bayes.denoise_nl_bayes, _nl_bayes_tiled)
