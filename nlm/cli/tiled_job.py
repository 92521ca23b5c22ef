"""The tiled / out-of-core job: a lazily read image filtered tile by tile and written in bands."""

import sys
import time
from pathlib import Path

import click

from nlm.cli.image_job import check_patch_fits, denoise_file, given_noise_option, noise_model
from nlm.cli.report import make_record
from nlm.cli.runtime import resume_gc

#: NL-Bayes in memory peaks at about 7.5 working-float copies of the image
#: (docs/large-images.md), the budget's estimate (in_memory_bytes) counts 5
BAYES_MEMORY_FACTOR = 1.5


def needs_tiles(src, dst, scale, method="means"):
    """Whether one file goes tile by tile: zarr in or out, a cluster, or too big for the budget.

    ``method``: "bayes" counts NL-Bayes' larger working set against the budget.
    """
    from nlm.io import budget

    if budget.is_zarr_path(src) or budget.is_zarr_path(dst) or scale.cluster:
        return True
    if Path(src).suffix.lower() not in (".tif", ".tiff"):
        return False
    from nlm.io import ImageIOError
    from nlm.io import tiled as bigio

    try:
        shape, dtype = bigio.header_shape(src)
    except ImageIOError as exc:  # a header that the data do not back (a truncated file)
        raise click.ClickException(str(exc)) from None
    except Exception:  # noqa: BLE001 - unreadable: let the normal reader report it
        return False
    need = budget.in_memory_bytes(shape, dtype) * (BAYES_MEMORY_FACTOR if method == "bayes" else 1)
    return need > scale.memory_limit


def denoise_tiled(src, dst, params, *, volume, overwrite, scale, quiet):
    """Denoise one image tile by tile (dask): bounded memory, or on a cluster."""
    if params.device == "cuda":
        raise click.ClickException(f"{src}: --device cuda is for in-memory images (this one goes tile by tile)")
    import numpy as np

    import nlm
    from nlm.io import ImageIOError, to_float
    from nlm.io import tiled as bigio
    from nlm.tiling import sample_regions

    timings = {}
    t0 = time.perf_counter()
    tile = scale.tile_size
    if Path(dst).suffix.lower() not in (".tif", ".tiff", ".zarr"):
        raise click.ClickException(
            f"{src}: is processed tile by tile (larger than --memory-limit, a zarr store, or on a "
            f"cluster), which writes .tif (tiled BigTIFF) or .zarr, not {Path(dst).suffix or 'no extension'}"
        )
    if params.noise_map_out is not None and not overwrite and Path(params.noise_map_out).exists():
        raise click.ClickException(f"{params.noise_map_out}: exists; pass --overwrite to replace it")
    if params.method not in ("means", "bayes"):
        raise click.ClickException(
            f"{src}: --method {params.method} does not run tile by tile; raise --memory-limit to denoise it "
            "in memory"
        )
    if params.method == "means" and params.noise != "gaussian":
        raise click.ClickException(
            f"{src}: --noise {params.noise} cannot run tile by tile (its debiasing needs the whole result); "
            "raise --memory-limit to denoise it in memory"
        )
    try:
        image = bigio.open_lazy(src, tile=tile, volume=volume)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    if image.stack and not volume:
        raise click.ClickException(
            f"{src}: holds a stack of {image.data.shape[0]} images ({image.describe()}); "
            "pass --volume to denoise it as one 3-D volume"
        )
    if volume and not image.stack:
        raise click.ClickException(f"{src}: --volume given, but it holds a single 2-D image ({image.describe()})")
    colour, alpha = image.split_alpha()
    nspatial = len(image.spatial_shape)
    channel_axis = -1 if colour.ndim > nspatial else None
    try:
        work_dtype = to_float(np.zeros(1, colour.dtype)).dtype
    except ImageIOError as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    work = colour.map_blocks(to_float, dtype=work_dtype, meta=np.empty((0,) * colour.ndim, work_dtype))
    patch = check_patch_fits(src, params, image)
    timings["open"] = time.perf_counter() - t0
    mask = nodata_mask(work, getattr(image, "nodata", None), channel_axis)
    if params.mask is not None:
        given = _lazy_mask(params.mask, image, tile)
        mask = given if mask is None else mask & given
    if params.method == "bayes":
        return _bayes_tiled(src, dst, params, image, work, channel_axis, timings, t0, overwrite=overwrite,
                            scale=scale, quiet=quiet, alpha=alpha, out_dtype=colour.dtype, mask=mask)

    sigma, h = params.sigma, params.h
    sigma_source, h_source = "given", "given"
    sigma_map = out_map = smap_source = None
    t1 = time.perf_counter()
    try:
        if params.sigma_map is not None or params.noise_map_out is not None:
            sample = est = None
            if params.sigma_map in (None, "auto"):  # the estimated map, as the in-memory path estimates it
                sample, est = _filled_sample(work, mask, nspatial, channel_axis)
            sigma_map, out_map, smap_source = _lazy_maps(params, image, sample, est, channel_axis, tile)
            del sample, est
        if sigma_map is not None:  # sigma: the map's RMS, h: automatic from it (the library sets both)
            sigma_source = f"{smap_source} (its RMS)"
            h_source = "automatic, from the map" if h is None else h_source
        elif mask is not None:
            sigma, sigma_source, h, h_source = _masked_parameters(work, mask, sigma, h, nspatial)
        if sigma_map is None and sigma is None:
            sigma = float(nlm.estimate_sigma(work, channel_axis=channel_axis, average_sigmas=True))
            sigma_source = "estimated from a sample of tiles"
        if sigma_map is None and h is None:
            h = float(nlm.default_h(sigma))
            h_source = "automatic, from sigma"
            regions = sample_regions(work, spatial_axes=range(nspatial))
            peak = max(max(abs(float(r.min())), abs(float(r.max()))) for r in regions)
            from nlm.denoisers.means import min_h

            h_min = min_h(work_dtype, peak)
            if h < h_min:
                h, h_source = h_min, "automatic; no noise detected"
    except ImageIOError as exc:  # a block of the input cannot be read
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: cannot estimate the noise: {exc}") from None

    # working blocks of whole rows only while the blocks in flight (one per
    # core) stay well inside the memory limit (in_memory_bytes: the filter's
    # copies of a pixel; twice that for the margins and the chunks around it)
    import numba

    from nlm import tiling

    per_pixel = bigio.in_memory_bytes((1,), work_dtype) * 2 * numba.config.NUMBA_NUM_THREADS
    try:
        result, used = tiling.denoise_nl_means_tiled(
            work,
            patch,
            params.patch_distance,
            h=h,
            sigma=sigma if sigma_map is None else sigma_map,
            channel_axis=channel_axis,
            preserve_range=True,
            num_threads=scale.threads_per_tile,
            work_pixels=min(tiling.blocks.WORK_PIXELS, max(1 << 16, scale.memory_limit // per_pixel)),
            return_parameters=True,
            **({} if mask is None else {"mask": mask}),
        )
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    if sigma_map is not None:
        sigma, h = used["sigma"], used["h"]
    # the map after the checks above (a given map is validated by the filter's call)
    _write_noise_map(params.noise_map_out, out_map, image, tile, overwrite, src)
    timings["estimate"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    n_tiles = _write(dst, result, image, alpha, colour.dtype, tile, overwrite, quiet, src)
    timings["filter"] = time.perf_counter() - t2
    return make_record(src, dst, image, (sigma, sigma_source), (h, h_source), timings, t0, tiles=n_tiles,
                   model=None, model_source=None)


def _write(dst, result, image, alpha, out_dtype, tile, overwrite, quiet, src):
    """Convert the lazy float result to the input's dtype, put the alpha back, write it in bands."""
    import numpy as np

    from nlm.io import ImageIOError, from_float
    from nlm.io import tiled as bigio

    out = result.map_blocks(from_float, out_dtype, dtype=out_dtype, meta=np.empty((0,) * result.ndim, out_dtype))
    if alpha is not None:
        import dask.array as da

        a = alpha.rechunk(out.chunks[: alpha.ndim])
        out = da.stack([out, a], axis=-1) if image.mode == "LA" else da.concatenate(
            [out, a[..., None].rechunk(out.chunks[:-1] + ((1,),))], axis=-1
        )
    spatial = image.spatial_shape
    n_tiles = int(np.prod([-(-n // tile) for n in spatial[-2:]])) * (spatial[0] if image.stack else 1)
    bar = click.progressbar(length=n_tiles, label=f"{Path(src).name}: {n_tiles} tiles", file=sys.stderr,
                            hidden=quiet)
    try:
        with bar:
            bigio.write_tiled(dst, out, image.mode, stack=image.stack, tile=tile, overwrite=overwrite,
                              progress=bar.update)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}; nothing was written") from None
    except MemoryError:
        raise click.ClickException(f"{src}: not enough memory (try a smaller --tile-size)") from None
    return n_tiles


def _bayes_tiled(src, dst, params, image, work, channel_axis, timings, t0, *, overwrite, scale, quiet, alpha,
                 out_dtype, mask=None):
    """NL-Bayes tile by tile: the model as the in-memory path finds it (from the sample), exact tiles.

    The noise model is chosen as the in-memory path chooses it
    (:func:`nlm.cli.image_job.noise_model`: from the options, or estimated),
    on :func:`nlm.tiling.sample_regions` (the whole image up to
    ``SAMPLE_PIXELS``); every tile then
    gets the whole image's parameters and its origin, so the result equals
    the in-memory command's (``nlm.tiling.denoise_nl_bayes_tiled``).
    ``mask``: the lazy valid pixels (``--mask``, the no-data value) or None;
    as in memory, the estimators see the masked pixels as the median of the
    valid ones (of the sample).  ``--sigma-map`` (a file read tile by tile,
    or ``auto``) and ``--noise-map-out`` use :func:`nlm.tiling.noise.noise_map_tiled`.
    """
    import numba

    from nlm import tiling
    from nlm.io import ImageIOError

    t1 = time.perf_counter()
    given = given_noise_option(params)
    nspatial = len(image.spatial_shape)
    try:
        sample, est = None, work
        if given is None or mask is not None or params.sigma_map == "auto" or params.noise_map_out is not None:
            sample, est = _filled_sample(work, mask, nspatial, channel_axis)
        if given is not None:  # the model of the options: nothing to read
            model, model_source = noise_model(None, params, channel_axis)
        else:
            model, model_source = noise_model(sample, params, channel_axis)
            if sample.size < work.size:
                model_source = "estimated from a sample of tiles"
        sigma_map, out_map, smap_source = _lazy_maps(params, image, sample, est, channel_axis, scale.tile_size)
        del sample, est
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        if given is not None:
            raise click.BadParameter(str(exc), param_hint=given) from None
        raise click.ClickException(f"{src}: cannot estimate the noise: {exc}") from None
    sigma, sigma_source = (model.sigma, model_source) if model.name == "gaussian" else (None, "not used")
    _write_noise_map(params.noise_map_out, out_map, image, scale.tile_size, overwrite, src)
    timings["estimate"] = time.perf_counter() - t1

    per_value = tiling.bayes.BAYES_BYTES_PER_VALUE * work.dtype.itemsize * numba.config.NUMBA_NUM_THREADS
    t2 = time.perf_counter()

    def build(threads):
        return tiling.denoise_nl_bayes_tiled(
            work,
            noise=model if sigma_map is None else "gaussian",
            **({} if sigma_map is None else {"sigma": sigma_map}),
            **({} if mask is None else {"mask": mask}),
            patch_size=params.patch_size,
            search_radius=params.patch_distance,
            channel_axis=channel_axis,
            preserve_range=True,
            num_threads=threads,
            work_pixels=max(1 << 16, scale.memory_limit // per_value),
            return_model=True,
        )

    try:
        result, used = build(scale.threads_per_tile)
        if (image.stack and scale.threads_per_tile is None and len(result.chunks[1]) == len(result.chunks[2]) == 1
                and len(result.chunks[0]) > 1):
            # blocks of whole pages: the writer computes them one at a time (nlm.io.tiled._compute_band),
            # so each gets every core (the result does not depend on the thread count)
            result, used = build(numba.config.NUMBA_NUM_THREADS)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    if sigma_map is not None:  # the map's RMS over the valid pixels (the library's Gaussian model)
        sigma, sigma_source = used.sigma, f"{smap_source} (its RMS)"
    n_tiles = _write(dst, result, image, alpha, out_dtype, scale.tile_size, overwrite, quiet, src)
    timings["filter"] = time.perf_counter() - t2
    return make_record(src, dst, image, (sigma, sigma_source), (None, "not used by NL-Bayes"), timings, t0,
                       tiles=n_tiles, model=model, model_source=model_source)


def _filled_sample(work, mask, nspatial, channel_axis):
    """``(sample, est)``: the sample of ``work`` (:func:`nlm.tiling.sample_regions`) and the lazy image the
    noise estimators see, both with the masked pixels set to the median of the sample's valid ones (the
    in-memory path's ``_fill_masked``, on the whole image when it is small)."""
    import dask.array as da
    import numpy as np

    from nlm.tiling import sample_regions

    regions = sample_regions(work, spatial_axes=range(nspatial))
    sample = regions[0] if len(regions) == 1 else np.concatenate(regions, axis=nspatial - 1)
    del regions
    if mask is None:
        return sample, work
    regions = sample_regions(mask, spatial_axes=range(nspatial))
    ms = regions[0] if len(regions) == 1 else np.concatenate(regions, axis=nspatial - 1)
    if not ms.any():
        raise ValueError("every pixel of the sample is masked (--mask or the file's no-data value)")
    fill = np.asarray(np.median(sample[ms]) if channel_axis is None else np.median(sample[ms], axis=0),
                      dtype=sample.dtype)
    valid = ms if channel_axis is None else ms[..., None]
    sample = np.where(valid, sample, fill)
    est = da.where(mask if channel_axis is None else mask[..., None], work, fill).astype(work.dtype)
    return sample, est


def _lazy_maps(params, image, sample, est, channel_axis, tile):
    """``(sigma_map, out_map, source)`` of ``--sigma-map`` / ``--noise-map-out``, lazily (or None).

    ``--sigma-map FILE`` is read tile by tile (:func:`_lazy_sigma_map`);
    ``--sigma-map auto`` and ``--noise-map-out`` without a map are the
    in-memory path's ``nlm.estimate_noise(est, return_map=True)``, tile by
    tile (:func:`nlm.tiling.noise.noise_map_tiled` of ``est``, the lazy image
    with its masked pixels filled, under the model of ``sample``: see
    :func:`_filled_sample`).  ``out_map`` is what ``--noise-map-out`` writes.
    """
    sigma_map = out_map = source = None
    if params.sigma_map == "auto" or (params.noise_map_out is not None and params.sigma_map is None):
        from nlm.noise import estimate_noise
        from nlm.tiling.noise import noise_map_tiled

        out_map = noise_map_tiled(est, estimate_noise(sample, channel_axis=channel_axis), channel_axis=channel_axis)
    if params.sigma_map == "auto":
        sigma_map, source = out_map, "the estimated map"
    elif params.sigma_map is not None:
        sigma_map, source = _lazy_sigma_map(params.sigma_map, image, tile), f"the map {params.sigma_map}"
        out_map = sigma_map
    return sigma_map, out_map, source


def _write_noise_map(path, out_map, image, tile, overwrite, src):
    """``--noise-map-out``: the lazy map as a float32 tiled TIFF, written tile by tile (nothing without a path)."""
    if path is None:
        return
    import numpy as np

    from nlm.io import ImageIOError
    from nlm.io import tiled as bigio

    try:
        bigio.write_tiled(path, out_map.astype(np.float32), "L", stack=image.stack, tile=tile, overwrite=overwrite)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: cannot estimate the noise map: {exc}") from None


def _lazy_plane(path, image, tile, option):
    """A one-channel image of the input's size, read tile by tile (a lazy array), for ``option``."""
    from nlm.io import ImageIOError
    from nlm.io import tiled as bigio

    try:
        m = bigio.open_lazy(path, tile=tile, volume=image.stack)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    if m.mode != "L" or tuple(m.spatial_shape) != tuple(image.spatial_shape):
        raise click.ClickException(
            f"{path}: {option} must be a one-channel image of the input's size "
            f"{'x'.join(map(str, image.spatial_shape))}, got {m.describe()}"
        )
    return m.data


def _lazy_sigma_map(path, image, tile):
    """``--sigma-map FILE`` read tile by tile (float64): a one-channel image of the input's size."""
    import numpy as np

    return _lazy_plane(path, image, tile, "--sigma-map").astype(np.float64)


def _lazy_mask(path, image, tile):
    """``--mask FILE`` read tile by tile: non-zero = valid (a one-channel image of the input's size)."""
    return _lazy_plane(path, image, tile, "--mask") != 0


def nodata_mask(work, nodata, channel_axis):
    """The lazy valid-pixel mask of a tiled input's no-data value (a zarr attribute), or None."""
    if nodata is None:
        return None
    import numpy as np

    hit = np.isnan(work) if np.isnan(nodata) else work == work.dtype.type(nodata)
    if channel_axis is not None:
        hit = hit.all(axis=-1)
    return ~hit


def _masked_parameters(work, mask, sigma, h, nspatial):
    """sigma and h of a masked tiled run from a sample of its valid pixels (as the in-memory path)."""
    import dask.array as da
    import numpy as np

    import nlm
    from nlm.denoisers.means import min_h
    from nlm.noise.noise_map import residual_sigma
    from nlm.tiling import sample_regions

    sigma_source, h_source = "given", "given"
    if sigma is not None and h is not None:
        return sigma, sigma_source, h, h_source
    stacked = work[..., None] if work.ndim == nspatial else work
    both = da.concatenate([stacked, mask[..., None].astype(work.dtype).rechunk(stacked.chunks[:-1] + ((1,),))],
                          axis=-1)
    regions = sample_regions(both, spatial_axes=range(nspatial))
    whole = regions[0] if len(regions) == 1 else np.concatenate(regions, axis=0)
    xs, ms = np.ascontiguousarray(whole[..., :-1]), whole[..., -1] != 0
    if not ms.any():
        raise ValueError("every sampled pixel is no-data")
    if sigma is None:
        sigma = residual_sigma(xs, mask=ms, channel_axis=-1)
        sigma_source = "estimated from the valid pixels of a sample of tiles"
    if h is None:
        h = float(nlm.default_h(sigma))
        h_source = "automatic, from sigma"
        valid = xs[ms]
        h_min = min_h(work.dtype, max(abs(float(valid.min())), abs(float(valid.max()))))
        if h < h_min:
            h, h_source = h_min, "automatic; no noise detected"
    return sigma, sigma_source, h, h_source


def denoise_any(src, dst, params, *, volume, overwrite, scale, quiet):
    if needs_tiles(src, dst, scale, params.method):
        resume_gc()  # tiles: a run that may be long
        return denoise_tiled(src, dst, params, volume=volume, overwrite=overwrite, scale=scale, quiet=quiet)
    return denoise_file(src, dst, params, volume=volume, overwrite=overwrite, max_pixels=scale.max_pixels)
