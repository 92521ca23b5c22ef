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

from nlm._validate import (
    UnsupportedDimensionError,
    _as_numeric,
    _check_bool,
    _check_dask_chunks,
    _check_int,
    _per_axis,
    _to_float,
    check_mask,
    check_sigma_map,
    is_dask_array,
    is_map,
)
from nlm.denoisers import means as _means
from nlm.noise import estimate as _estimate
from nlm.ops import _nlm_kernels
from nlm.ops._cuda_device import resolve_device
from nlm.tiling.blocks import (
    _dask_aware,
    _float_dtype,
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
                    num_threads, mask=None, device="cpu", work_pixels=None):
    """:func:`denoise_nl_means` of a dask array: validate, set parameters once, tile.

    ``work_pixels``: the largest working block of whole rows (None:
    :data:`nlm.tiling.blocks.WORK_PIXELS`); see :func:`denoise_nl_means_tiled`.
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
    given, device = device, resolve_device(device)  # tiles run on it (GPU: per-pixel sums, exact under any tiling)
    if sigma_map is not None or mask is not None:
        if device == "cuda" and given == "cuda":
            raise ValueError("device='cuda' does not take a noise map or a mask; use device='cpu' or 'auto'")
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
        device=device,
    )
    return map_tiles(
        func, image, depth, spatial_axes=spatial_axes, dtype=_float_dtype(image.dtype), minimum=minimum,
        origin=True,
    )


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
    its own call instead of changing :data:`nlm.tiling.blocks.WORK_PIXELS` for everyone.

    Parameters
    ----------
    image : dask.array.Array
        The image (see :func:`denoise_nl_means`).
    patch_size, patch_distance, h, fast_mode, sigma, preserve_range, channel_axis, noise, num_threads, mask
        As :func:`denoise_nl_means` (a noise map and a mask as NumPy arrays).
    work_pixels : int >= 1 or None, keyword-only
        Largest working block of whole rows, in pixels; None:
        :data:`nlm.tiling.blocks.WORK_PIXELS` (2^24).

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
