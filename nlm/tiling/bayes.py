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
    masked_nonfinite,
)
from nlm.denoisers import bayes as _bayes
from nlm.denoisers import bayes_passes as _passes
from nlm.denoisers import bayes_setup as _setup
from nlm.noise import NoiseModel
from nlm.tiling.blocks import (
    _as_dask,
    _dask_aware,
    _float_dtype,
    _lazy_map_and_mask,
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
                    return_model=False, mask=None, device="cpu", work_pixels=None):
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

    A noise map (``sigma`` an array) and a mask, NumPy or dask arrays of the
    spatial shape, travel with the blocks (:func:`map_tiles`' ``extra``,
    the same margins).  As in memory: the masked pixels of the sample are
    the median of its valid ones for the noise estimators (that median
    fills every block's masked pixels), the map's RMS over the valid pixels
    (the whole map) is the parameters' noise level, and the data's range
    and checks cover the valid pixels only.
    """
    _bayes._cpu_only(device)
    sigma_map = None
    if is_map(sigma):
        if isinstance(noise, NoiseModel) or noise not in ("auto", "gaussian"):
            raise ValueError(f"sigma: a noise map is the std of Gaussian noise; not used with noise={noise!r}")
        sigma_map, sigma, noise = sigma, None, "gaussian"
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
    shape = tuple(image.shape[a] for a in spatial_axes)
    small = math.prod(shape) <= _blocks.SAMPLE_PIXELS
    sigma_map, mask = _lazy_map_and_mask(sigma_map, mask, shape, small)
    regions = sample_regions(image, spatial_axes=spatial_axes)
    sample = regions[0] if len(regions) == 1 else np.concatenate(regions, axis=spatial_axes[-1])
    del regions
    fill = None
    if mask is not None:
        ms = _sample_mask(mask, nd)
        sample = _masked_nonfinite_sample(sample, ms, axis)
    x = _to_float(_as_numeric(sample), preserve_range)
    del sample
    xc = x[None] if axis is None else np.moveaxis(x, axis, 0)
    if mask is not None:
        if not ms.any():
            raise ValueError("mask: every pixel is masked" + ("" if small else " in the sample"))
        fill = _bayes.masked_median(xc, ms)
        if not ms.all():
            xc = _bayes.fill_masked(xc, ms, fill)
        del ms
    if sigma_map is not None:
        sigma = _map_rms(sigma_map, mask)
        if sigma == 0:
            sigma_map = None  # a map of zeros: sigma = 0
    parameters = _setup._parameters if nd == 2 else _setup._volume_parameters
    extra = (ridge,) if nd == 2 else ()  # volumes: no NL-Ridge pass
    prm = parameters(xc, image.dtype, noise, sigma, looks, preserve_range, patch_size, n_user, search_radius, beta,
                     flat, passes, *extra)
    del x, xc
    prm.pop("xc")
    if not small:
        # the sample's extremes need not be the image's: the bounds of the
        # clipped level table and the data checks take the image's own (valid) pixels
        import dask.array as da

        if mask is None:
            lo, hi = da.compute(image.min(), image.max())
        else:
            valid = _broadcast_mask(mask, image, axis)
            lo, hi = da.compute(da.where(valid, image, np.inf).min(), da.where(valid, image, -np.inf).max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("image contains NaN or Inf values" + ("" if mask is None else " at valid pixels"))
        lo, hi = (float(v) for v in _to_float(np.array([lo, hi], dtype=image.dtype), preserve_range))
        prm["lo"], prm["hi"] = min(prm["lo"], lo * 2.0 ** prm["exponent"]), max(prm["hi"], hi * 2.0 ** prm["exponent"])
        _setup.check_range(prm, prm["lo"], prm["hi"])
    if prm["identity"]:  # the input itself: no margin
        margins = (0,) * nd
    else:
        margins = _passes.tile_margin(prm) if nd == 2 else _passes.volume_margin(prm)
    depth = tuple((m, m) for m in margins)
    patch = int(max(np.max(prm["p1"]), np.max(prm["p2"]), prm["ridge_patch"] if nd == 2 and prm["ridge"] > 0 else 1))
    # a map and a mask cost about one more value per pixel (the map and its variances in float64, the
    # mask's valid patches)
    more = int(sigma_map is not None or mask is not None)
    image, minimum = _bayes_blocks(image, spatial_axes, depth, patch,
                                   _BAYES_WORK_PIXELS if work_pixels is None else work_pixels, more)
    if num_threads is None:
        blocks = math.prod(len(c) for c in tile_chunks(image.chunks, spatial_axes, depth, minimum))
        num_threads = _threads_per_block(blocks)
    extra = [_as_dask(a, image, spatial_axes) for a in (sigma_map, mask) if a is not None]
    func = functools.partial(_nl_bayes_block, prm=prm, channel_axis=axis, preserve_range=preserve_range,
                             stride=stride, num_threads=num_threads, shape=shape, use_map=sigma_map is not None,
                             use_mask=mask is not None, fill=fill)
    out = map_tiles(func, image, depth, spatial_axes=spatial_axes, dtype=_float_dtype(image.dtype),
                    minimum=minimum, origin=True, extra=extra)
    return (out, prm["user_model"]) if return_model else out


def _sample_mask(mask, nd):
    """The mask at :func:`sample_regions`' windows (the image's), side by side as the image's sample."""
    if not is_dask_array(mask):
        if mask.size <= _blocks.SAMPLE_PIXELS:
            return mask
        import dask.array as da

        mask = da.from_array(mask, chunks=-1)
    regions = sample_regions(mask, spatial_axes=tuple(range(nd)))
    return regions[0] if len(regions) == 1 else np.concatenate(regions, axis=nd - 1)


def _masked_nonfinite_sample(sample, ms, axis):
    """NaN/Inf allowed at masked pixels of the sample only (zeroed, as in memory)."""
    if sample.dtype.kind != "f" or np.isfinite(sample).all():
        return sample
    bad = ~np.isfinite(sample)
    spatial_bad = bad if axis is None else bad.any(axis=axis)
    if (spatial_bad & ms).any():
        raise ValueError("image contains NaN or Inf values at valid pixels (where mask is True)")
    return np.where(bad, sample.dtype.type(0), sample)


def _map_rms(sigma_map, mask):
    """The map's RMS over the valid pixels: in memory's arithmetic for NumPy arrays, else one dask pass.

    The dask pass also checks the map's values (finite, >= 0).
    """
    if not is_dask_array(sigma_map) and not is_dask_array(mask):
        return _bayes.map_rms(sigma_map, mask)
    import dask.array as da

    m = da.asarray(sigma_map)
    sq = m * m
    if mask is None:
        total, count = sq.sum(), m.size
    else:
        valid = da.asarray(mask)
        total, count = da.where(valid, sq, 0.0).sum(), valid.sum()
    total, count, ok, low = da.compute(total, count, da.isfinite(m).all(), m.min())
    if not ok:
        raise ValueError("sigma: the noise map contains NaN or Inf values")
    if low < 0:
        raise ValueError(f"sigma: the noise map must be >= 0, got a minimum of {float(low):g}")
    return float(np.sqrt(total / count)) if count else 0.0


def _broadcast_mask(mask, image, axis):
    """The spatial mask as a dask array broadcast against the image (its channel axis of length 1)."""
    import dask.array as da

    valid = mask if is_dask_array(mask) else da.from_array(mask)
    return valid if axis is None else da.expand_dims(valid, axis)


#: working blocks of NL-Bayes (margins included) hold about this many values
#: (pixels times channels): a block in flight costs about 6 working-float
#: copies of it (dask's block, the guide, a float64 numerator, the result
#: holding the weights, the mask; a grey block is its own working image;
#: measured 6.0 on the 256^3 run of benchmarks/volumes.py), so 2^22 float32
#: values about 100 MB (BAYES_BYTES_PER_VALUE: 8, with room for dask's pieces)
_BAYES_WORK_PIXELS = 1 << 22

#: bytes per value (pixel and channel) of a block of tiled NL-Bayes, per
#: byte of the working float (the command line's --memory-limit divides by it)
BAYES_BYTES_PER_VALUE = 8


def _bayes_blocks(image, spatial_axes, depth, patch, work_pixels, more=0):
    """Working blocks of tiled NL-Bayes: ``(image rechunked, minimum)`` for :func:`map_tiles`.

    NL-Bayes' margins are wide (:func:`nlm.denoisers.bayes_passes.tile_margin`,
    a few hundred pixels), so a block's side is set by the budget: the last
    spatial axis whole (no margin along it: whole rows in 2-D) or
    near-cubic blocks, each as large as ``work_pixels`` values (margins
    included) allow, whichever adds less work for its margins; chunks more
    than twice that side are split, smaller ones merged.  Fewer blocks than
    cores: the first axis is cut further (down to its margin).  ``MARGIN_WORK = None`` keeps the chunks as given (merged
    only to the margin).  Any number of spatial axes.  ``more``: values per
    pixel beyond the channels (a noise map, a mask).
    """
    if _blocks.MARGIN_WORK is None:
        return image, patch
    import numba

    margins = [int(d[0]) for d in depth]
    nd = len(spatial_axes)
    shape = [image.shape[a] for a in spatial_axes]
    channels = math.prod(n for a, n in enumerate(image.shape) if a not in spatial_axes) + int(more)
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


def _nl_bayes_block(block, origin, *extra, prm, channel_axis, preserve_range, stride, num_threads, shape,
                    use_map=False, use_mask=False, fill=None):
    """The in-memory NL-Bayes passes on one block, with the image's parameters and the block's origin.

    The data checks of the whole image (finite values; non-negative for a
    multiplicative model; inside a clipped model's bounds) are repeated on
    the block, so a bad pixel anywhere fails the computation as it fails
    the in-memory call.  ``extra``: the block's noise map (``use_map``) and
    mask (``use_mask``), in the image's axes (length 1 along the channel
    axis); masked pixels are set to ``fill`` (the sample's valid median, per
    channel) for the passes and come back as given.
    """
    extra = [e if channel_axis is None else np.squeeze(e, channel_axis) for e in extra]
    smap = np.asarray(extra[0], dtype=np.float64) if use_map else None
    mask = np.asarray(extra[-1], dtype=bool) if use_mask else None
    if smap is not None and not (np.isfinite(smap).all() and (smap >= 0).all()):
        raise ValueError("sigma: the noise map holds NaN, Inf or negative values")
    block = np.asarray(block)
    nodata = None
    if mask is not None and block.dtype.kind == "f" and not np.isfinite(block).all():
        block, mask, nodata = masked_nonfinite(block, mask, channel_axis)
    x = _to_float(_as_numeric(block), preserve_range)
    xc = x[None] if channel_axis is None else np.moveaxis(x, channel_axis, 0)
    given = xc
    if mask is not None:
        # (kept even where the block's pixels are all valid: the masked runs cover every valid pixel)
        xc = _bayes.fill_masked(xc, mask, fill)
    e = prm["exponent"]
    if e:
        xc = np.ldexp(xc, e).astype(xc.dtype, copy=False)
    _setup.check_range(prm, float(xc.min()), float(xc.max()))
    run = _passes.run_passes if len(shape) == 2 else _passes.run_volume_passes
    out = run(xc, prm, stride, num_threads, origin=origin, shape=shape, sigma_map=smap, mask=mask)
    return _passes._restore(out, given, mask, nodata, channel_axis)


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
