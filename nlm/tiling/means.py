"""Non-local means of a dask array: parameters once from a sample, then exact tiles.

:func:`denoise_nl_means` (exported as ``nlm.denoise_nl_means``) takes a
NumPy array to :func:`nlm.denoisers.means.denoise_nl_means` unchanged and a
dask array to a tiled graph; :func:`denoise_nl_means_tiled` is the same with
the working-block budget as an argument.  Each block is told its origin and
reads ``anchor_margin`` more rows, so the tiles equal the whole image bit
for bit (:mod:`nlm.ops._nlm_kernels`).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

import nlm.tiling.blocks as _blocks
from nlm._validate import (
    UnsupportedDimensionError,
    _as_numeric,
    _check_bool,
    _check_dask_chunks,
    _check_int,
    _per_axis,
    _to_float,
    is_dask_array,
    is_map,
)
from nlm.denoisers import means as _means
from nlm.noise import estimate as _estimate
from nlm.ops import _nlm_kernels
from nlm.ops._cuda_device import resolve_device
from nlm.tiling.blocks import (
    _as_dask,
    _dask_aware,
    _float_dtype,
    _lazy_map_and_mask,
    _threads_per_block,
    _work_minimum,
    halo,
    map_tiles,
    sample_regions,
    tile_chunks,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import dask.array as da

    from nlm.noise import NoiseModel

__all__ = ["denoise_nl_means", "denoise_nl_means_tiled"]


def _nl_means_tiled(image, patch_size, patch_distance, h, fast_mode, sigma, preserve_range, channel_axis, noise,
                    num_threads, mask=None, device="cpu", work_pixels=None, return_parameters=False):
    """:func:`denoise_nl_means` of a dask array: validate, set parameters once, tile.

    ``work_pixels``: the largest working block of whole rows (None:
    :data:`nlm.tiling.blocks.WORK_PIXELS`); see :func:`denoise_nl_means_tiled`.
    ``return_parameters``: also return ``{"h": h, "sigma": sigma}``, the
    values every tile uses (with a noise map, ``sigma`` is its RMS over the
    valid pixels, the reference level).
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
        # NumPy or dask; a small image's dask map and mask are read (its sample is the whole image)
        sigma_map, mask = _lazy_map_and_mask(sigma_map, mask, spatial, math.prod(spatial) <= _blocks.SAMPLE_PIXELS)
    if work_pixels is not None:
        work_pixels = _check_int(work_pixels, "work_pixels", 1)
    given, device = device, resolve_device(device)  # tiles run on it (GPU: per-pixel sums, exact under any tiling)
    if sigma_map is not None or mask is not None:
        if device == "cuda" and given == "cuda":
            raise ValueError("device='cuda' does not take a noise map or a mask; use device='cpu' or 'auto'")
        if len(spatial_axes) > 3:
            what = "sigma (a noise map)" if sigma_map is not None else "mask"
            raise UnsupportedDimensionError(
                f"{what}: supported for 1-D to 3-D images, got {len(spatial_axes)} spatial axes"
            )
        out, h, sigma = _nl_means_mapped_tiled(image, axis, sizes, radii, h, sigma, sigma_map, mask, preserve_range,
                                               num_threads, work_pixels)
        return (out, {"h": h, "sigma": sigma}) if return_parameters else out
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
        device=device,
    )
    out = map_tiles(
        func, image, depth, spatial_axes=spatial_axes, dtype=_float_dtype(image.dtype), minimum=minimum,
        origin=True,
    )
    return (out, {"h": h, "sigma": sigma}) if return_parameters else out


def _nl_means_mapped_tiled(image, axis, sizes, radii, h, sigma, sigma_map, mask, preserve_range, num_threads,
                           work_pixels):
    """:func:`denoise_nl_means` of a dask array with a noise map and/or a mask: ``(result, h, sigma)``.

    ``sigma_map`` and ``mask``: NumPy (validated) or dask arrays of the
    spatial shape (shape and dtype checked; :func:`_lazy_map_and_mask`).
    They travel with the image's blocks (:func:`map_tiles`' ``extra``, the
    same margins).  The parameters are set once: the map's reference level
    is its RMS over the valid pixels summed row by row
    (:func:`nlm.denoisers.means.map_row_sums`, one pass over a lazy map that
    also checks its values), so it equals the in-memory value for any
    image; the automatic ``h`` and ``sigma`` come from
    :func:`sample_regions` (the whole image when it is small: then exactly
    the in-memory values).  Every tile runs the map/mask kernel told its
    origin: bit-identical to the in-memory result with the same parameters.
    """
    import dask.array as da

    fdtype = _float_dtype(image.dtype)
    x = image.map_blocks(lambda b: _to_float(np.asarray(b), preserve_range).astype(fdtype, copy=False),
                         dtype=fdtype, meta=np.empty((0,) * image.ndim, fdtype))
    x = x[..., None] if axis is None else da.moveaxis(x, axis, -1)
    nd = x.ndim - 1
    C = x.shape[-1]
    x = x.rechunk(x.chunks[:-1] + ((C,),))
    spatial_axes = tuple(range(nd))
    ref = None
    if sigma_map is not None:
        ref = _map_reference(sigma_map, mask, fdtype)
    xs = ms = None
    if h is None:
        xs = _sample(x, nd)
        if mask is not None:
            ms = _sample(_as_dask(mask, x, spatial_axes), nd)
            xs = np.where(ms[..., None], xs, fdtype.type(0))  # (NaN/Inf allowed at masked pixels, as in memory)
    h, sigma, use_map = _means.mapped_parameters(
        h, sigma, ref, lambda: _estimate.residual_sigma(xs, mask=ms, channel_axis=-1),
        [] if xs is None else [xs if ms is None or not ms.any() else xs[ms]],
    )
    # the kernel's row bands slide their sums from image rows fixed in the image:
    # _BAND - 1 more rows before each block give it the whole image's sums
    from nlm.ops import _nlm_masked

    extra = [0] * nd
    if nd >= 2:
        extra[-2] = _nlm_masked._BAND - 1
    depth = tuple((halo(p, d) + e, halo(p, d)) for p, d, e in zip(sizes, radii, extra))
    # the map and the mask are values per pixel beyond the channels: the budget counts them
    more = int(use_map) + int(mask is not None)
    work_pixels = _blocks.WORK_PIXELS if work_pixels is None else work_pixels
    work_pixels = max(1, work_pixels * C // (C + more))
    minimum = _work_minimum(x.chunks, spatial_axes, depth, max(sizes), work_pixels)
    if num_threads is None:
        blocks = math.prod(len(c) for c in tile_chunks(x.chunks, spatial_axes, depth, minimum))
        num_threads = _threads_per_block(blocks)
    extra = [_as_dask(a, x, spatial_axes) for a in ((sigma_map if use_map else None), mask) if a is not None]
    func = functools.partial(_nl_means_mapped_block, sizes=sizes, radii=radii, h=h, sigma=sigma, fdtype=fdtype,
                             use_map=use_map, use_mask=mask is not None, num_threads=num_threads)
    out = map_tiles(func, x, depth, spatial_axes=spatial_axes, dtype=fdtype, minimum=minimum, origin=True,
                    extra=extra)
    return (out[..., 0] if axis is None else da.moveaxis(out, -1, axis)), h, sigma


def _sample(a, nd):
    """:func:`sample_regions` of ``a`` (spatial axes first), its windows side by side along the first axis."""
    regions = sample_regions(a, spatial_axes=tuple(range(nd)))
    return regions[0] if len(regions) == 1 else np.concatenate(regions, axis=0)


def _map_reference(sigma_map, mask, fdtype):
    """The map's RMS over the valid pixels (map rounded to ``fdtype``), as the in-memory path sums it.

    NumPy: :func:`nlm.denoisers.means.map_rms` directly.  Dask (a map or a
    mask): row sums of blocks of whole rows, one pass, which also checks that
    the map is finite and >= 0.
    """
    def rounded(m):
        return np.asarray(m).astype(fdtype).astype(np.float64)

    if not is_dask_array(sigma_map) and not is_dask_array(mask):
        count = sigma_map.size if mask is None else int(np.count_nonzero(mask))
        return _means.map_rms(_means.map_row_sums(rounded(sigma_map), mask), count)
    import dask.array as da

    whole = (-1,) if sigma_map.ndim == 1 else ("auto",) * (sigma_map.ndim - 1) + (-1,)
    m = da.asarray(sigma_map).rechunk(whole)
    if mask is None:
        rows = m.map_blocks(lambda b: _means.map_row_sums(rounded(b)).reshape(b.shape[:-1]), drop_axis=m.ndim - 1,
                            dtype=np.float64)
        count = m.size
    else:
        valid = da.asarray(mask).rechunk(m.chunks)
        rows = da.map_blocks(lambda b, v: _means.map_row_sums(rounded(b), v).reshape(b.shape[:-1]), m, valid,
                             drop_axis=m.ndim - 1, dtype=np.float64)
        count = valid.sum()
    rows, count, ok, low = da.compute(rows, count, da.isfinite(m).all(), m.min())
    if not ok:
        raise ValueError("sigma: the noise map contains NaN or Inf values")
    if low < 0:
        raise ValueError(f"sigma: the noise map must be >= 0, got a minimum of {float(low):g}")
    return _means.map_rms(rows, int(count))


def _nl_means_mapped_block(block, origin, *extra, sizes, radii, h, sigma, fdtype, use_map, use_mask, num_threads):
    """One block of :func:`_nl_means_mapped_tiled`: ``(*spatial, C)`` float in and out.

    ``extra``: the block's noise map (``use_map``) and mask (``use_mask``),
    shaped ``(*spatial, 1)``; the map is rounded to the image's float type
    and squared in float64, as in memory.
    """
    from nlm._config import threads
    from nlm.ops._nlm_masked import nl_means_masked

    x = np.ascontiguousarray(block)
    var_map = mask = None
    if use_map:
        var_map = np.asarray(extra[0])[..., 0].astype(fdtype).astype(np.float64) ** 2
    if use_mask:
        mask = np.ascontiguousarray(np.asarray(extra[-1])[..., 0], dtype=bool)
    bad = ~np.isfinite(x).all(axis=-1)
    if bad.any() and (mask is None or (bad & mask).any()):
        raise ValueError("image contains NaN or Inf values" + ("" if mask is None else " at valid pixels"))
    with threads(num_threads):
        return nl_means_masked(x, sizes, radii, h, sigma, var_map, mask, x.ndim - 1, origin=origin)


def _nl_means_block(block, origin, **kwargs):
    """The in-memory filter of one block, told where the block is in the image.

    The compiled kernel then adds every pixel's sums in the same order as on
    the whole image (:func:`nlm.ops._nlm_kernels.tile_origin`): kept pixels
    are bit-identical to the in-memory result.
    """
    with _nlm_kernels.tile_origin(origin):
        return _means.denoise_nl_means(block, **kwargs)


denoise_nl_means = _dask_aware(_means.denoise_nl_means, _nl_means_tiled)


def denoise_nl_means_tiled(
    image: da.Array,
    patch_size: int | Sequence[int] | None = None,
    patch_distance: int | Sequence[int] | None = None,
    h: float | None = None,
    fast_mode: bool = True,
    sigma: float | np.ndarray | da.Array = 0.0,
    *,
    preserve_range: bool = False,
    channel_axis: int | None = None,
    noise: str | NoiseModel = "gaussian",
    num_threads: int | None = None,
    mask: np.ndarray | da.Array | None = None,
    work_pixels: int | None = None,
    return_parameters: bool = False,
) -> da.Array | tuple[da.Array, dict[str, float]]:
    """:func:`denoise_nl_means` of a dask array, with the working-block budget as an argument.

    The same filter, parameters and result as ``nlm.denoise_nl_means`` on a
    dask array (bit-identical to the in-memory result); ``work_pixels``
    bounds the working blocks of whole rows (all channels), so that a caller
    with a memory budget (the command line's ``--memory-limit``) sets it for
    its own call instead of changing :data:`nlm.tiling.blocks.WORK_PIXELS` for everyone.

    Parameters
    ----------
    image : dask.array.Array
        The image (see :func:`denoise_nl_means`).
    patch_size, patch_distance, h, fast_mode, sigma, preserve_range, channel_axis, noise, num_threads, mask
        As :func:`denoise_nl_means`.  A noise map (``sigma`` an array) and a
        mask may be NumPy or dask arrays of the spatial shape (a dask mask:
        bool); they are cut into the image's blocks, with its margins.
    work_pixels : int >= 1 or None, keyword-only
        Largest working block of whole rows, in pixels; None:
        :data:`nlm.tiling.blocks.WORK_PIXELS` (2^24).  A map and a mask
        count as one more channel each.
    return_parameters : bool, keyword-only
        Also return ``{"h": ..., "sigma": ...}``, the values every tile
        uses (with a noise map, ``sigma`` is its RMS over the valid pixels).

    Returns
    -------
    dask.array.Array or (dask.array.Array, dict)
        Lazy result (and the parameters, with ``return_parameters``).

    Raises
    ------
    TypeError
        ``image`` is not a dask array; the errors of :func:`denoise_nl_means`.
    ValueError
        ``work_pixels`` < 1; the errors of :func:`denoise_nl_means`; a lazy
        noise map holding NaN, Inf or negative values (found by the one
        pass that sums it, before the graph is returned).

    Notes
    -----
    With a noise map the reference level (the map's RMS over the valid
    pixels) is summed row by row and then exactly
    (:func:`nlm.denoisers.means.map_row_sums`), by the in-memory function
    too, so it is the same number for a lazy map of any size; the automatic
    ``h`` and ``sigma`` come from :func:`nlm.tiling.sample_regions` (the
    whole image up to :data:`nlm.tiling.SAMPLE_PIXELS` pixels).  A lazy map
    is read twice (its sum, then the tiles); time as the in-memory filter
    plus the margins.
    """
    if not is_dask_array(image):
        raise TypeError(f"image must be a dask array (use nlm.denoise_nl_means otherwise), got {type(image).__name__}")
    _check_dask_chunks(image)
    return_parameters = _check_bool(return_parameters, "return_parameters")
    return _nl_means_tiled(image, patch_size, patch_distance, h, fast_mode, sigma, preserve_range, channel_axis,
                           noise, num_threads, mask=mask, work_pixels=work_pixels, return_parameters=return_parameters)
