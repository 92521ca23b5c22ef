"""The in-memory job: read one image, estimate its noise, filter it, write it."""

import time

import click

from nlm.cli.report import fmt_num, make_record


def read_input(path, *, volume, max_pixels=None):
    """Read an image for a command; data problems become ClickException (exit 1)."""
    from nlm.io import ImageIOError, read_image

    try:
        image = read_image(path, max_pixels=max_pixels)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    if volume is not None:
        if image.stack and not volume:
            raise click.ClickException(
                f"{path}: holds a stack of {image.data.shape[0]} images "
                f"({image.describe()}); pass --volume to denoise it as one 3-D volume"
            )
        if volume and not image.stack:
            raise click.ClickException(
                f"{path}: --volume given, but it holds a single 2-D image ({image.describe()})"
            )
    return image


def write_output(path, data, image, overwrite):
    from nlm.io import ImageIOError, write_image

    try:
        write_image(path, data, image.mode, stack=image.stack, overwrite=overwrite)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None


def check_format(path, image):
    """Fail before computing when the output format cannot hold the result."""
    from nlm.io import ImageIOError, check_writable

    try:
        check_writable(path, image.data, image.mode, stack=image.stack)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None


def reattach_alpha(result, alpha, mode):
    import numpy as np

    if alpha is None:
        return result
    if mode == "LA":
        return np.stack([result, alpha], axis=-1)
    return np.concatenate([result, alpha[..., None]], axis=-1)


def check_patch_fits(src, params, image):
    """The library filters images smaller than the patch (clipped patch radius);
    the command line keeps refusing them, as docs/cli.md ("Data types and formats") promises."""
    import nlm

    patch = params.patch_size or (3 if params.method == "bayes" else nlm.default_patch("gaussian")[0])
    spatial = tuple(image.spatial_shape)
    sides = patch if isinstance(patch, tuple) else (patch,) * len(spatial)
    if len(sides) == len(spatial) and any(p > n for p, n in zip(sides, spatial)):
        raise click.ClickException(f"{src}: patch_size={patch} is larger than the image (spatial shape {spatial})")
    return patch


def denoise_file(src, dst, params, *, volume, overwrite, max_pixels=None):
    """Denoise one file into another; return a dict describing what was done."""
    try:
        return _denoise_one(src, dst, params, volume=volume, overwrite=overwrite, max_pixels=max_pixels)
    except MemoryError:
        raise click.ClickException(f"{src}: not enough memory to denoise it; nothing was written") from None


def _denoise_one(src, dst, params, *, volume, overwrite, max_pixels):
    import numpy as np

    import nlm
    from nlm.io import ImageIOError, from_float, to_float

    timings = {}
    t0 = time.perf_counter()
    if params.noise_map_out is not None and not overwrite:
        from pathlib import Path

        if Path(params.noise_map_out).exists():
            raise click.ClickException(f"{params.noise_map_out}: exists; pass --overwrite to replace it")
    image = read_input(src, volume=volume, max_pixels=max_pixels)
    check_format(dst, image)
    colour, alpha = image.split_alpha()
    channel_axis = -1 if colour.ndim > len(image.spatial_shape) else None
    dtype = colour.dtype
    # Memory (docs/large-images.md): the float image goes into the first
    # C/(C+1) of a buffer whose last plane stays untouched (no memory) until
    # the filter, which is lent the whole buffer as its accumulators once it
    # has copied the image into its padded input; the decoded pixels are
    # freed as soon as they are converted.
    planes = colour.shape[-1] if channel_axis is not None else 1
    buffer = np.empty(colour.size + colour.size // planes, to_float(colour[:0]).dtype.newbyteorder("="))
    work = to_float(colour, out=buffer[: colour.size].reshape(colour.shape))
    alpha = None if alpha is None else alpha.copy()
    del colour
    image = image.without_pixels()
    mask = load_mask(src, params, image, work, channel_axis)
    if dtype.kind == "f" and not _all_finite(work):
        if mask is None:
            raise click.ClickException(f"{src}: image holds NaN or infinite values")
        bad = ~np.isfinite(work)
        if (mask & (bad if channel_axis is None else bad.any(axis=-1))).any():
            raise click.ClickException(f"{src}: image holds NaN or infinite values at valid (unmasked) pixels")
        del bad
    check_patch_fits(src, params, image)
    # what the noise estimators see: masked pixels replaced by the median of the valid ones
    est = work if mask is None else _fill_masked(work, mask, channel_axis)
    sigma_map = load_sigma_map(params, image, est, channel_axis)
    timings["read"] = time.perf_counter() - t0

    sigma, h = params.sigma, params.h
    sigma_source, h_source = "given", "given"
    kwargs = dict(
        patch_size=params.patch_size,
        patch_distance=params.patch_distance,
        channel_axis=channel_axis,
        preserve_range=True,
    )
    t1 = time.perf_counter()
    model, model_source = None, None
    try:
        model, model_source = _noise_model(est, params, channel_axis)
    except (ValueError, TypeError) as exc:
        given = _given_noise_option(params)
        if given is not None:  # a model from the options that cannot exist (a variance that overflows)
            raise click.BadParameter(str(exc), param_hint=given) from None
        raise click.ClickException(f"{src}: cannot estimate the noise: {exc}") from None
    if sigma_map is not None:
        sigma = float(np.sqrt(np.mean(sigma_map**2 if mask is None else sigma_map[mask] ** 2)))
        sigma_source = f"the map {params.sigma_map} (its RMS)"
        h_source = "automatic, from the map" if h is None else h_source
    if params.method == "bayes":
        sigma_source, h_source = "not used", "not used by NL-Bayes"
        if sigma_map is not None:
            sigma_source = f"the map {params.sigma_map} (its RMS)"
        elif model.name in ("gaussian", "rician"):
            sigma, sigma_source = model.sigma, model_source
        kwargs = dict(
            noise=model if sigma_map is None else "gaussian",
            patch_size=params.patch_size,
            search_radius=params.patch_distance,
            channel_axis=channel_axis,
            preserve_range=True,
        )
    elif model is not None and model.name != "gaussian":
        sigma_source = f"not used by the {model.name} model"
        if model.name == "rician":
            sigma, sigma_source = model.sigma, model_source
        if h is None:
            h_source = f"automatic, set by the {model.name} filter"
        # the speckle mode keeps its own blind parameters (transform domain)
        kwargs.update(h=h, noise="speckle" if model.name == "speckle" else model)
    elif sigma_map is not None:
        kwargs.update(h=h)
    else:
        try:
            if model is not None:
                sigma, sigma_source = model.sigma, model_source
            if sigma is None and mask is not None:
                from nlm.noise.noise_map import residual_sigma

                sigma = residual_sigma(work, mask=mask, channel_axis=channel_axis)
                sigma_source = "estimated from the valid pixels"
            if sigma is None:
                from nlm.noise import estimate_sigma

                sigma = float(estimate_sigma(work, channel_axis=channel_axis, average_sigmas=True))
                sigma_source = "estimated"
            if h is None:
                h = float(nlm.default_h(sigma))
                h_source = "automatic, from sigma"
                # no noise detected (sigma 0 or round-off): the smallest h whose
                # 1/h^2 the float type can hold leaves the image as it is
                from nlm.denoisers.means import min_h

                h_min = min_h(work.dtype, max(abs(float(work.min())), abs(float(work.max()))))
                if h < h_min:
                    h = h_min
                    h_source = "automatic; no noise detected"
        except (ValueError, TypeError) as exc:
            raise click.ClickException(f"{src}: cannot estimate the noise: {exc}") from None
        kwargs.update(h=h, sigma=sigma)
    if sigma_map is not None:
        kwargs["sigma"] = sigma_map
    if mask is not None:
        kwargs["mask"] = mask
    if params.noise_map_out is not None:
        smap = sigma_map
        if smap is None:
            try:
                smap = nlm.estimate_noise(est, channel_axis=channel_axis, return_map=True)[1]
            except (ValueError, TypeError) as exc:
                raise click.ClickException(f"{src}: cannot estimate the noise map: {exc}") from None
        _write_map(params.noise_map_out, smap, image, overwrite)
    del est
    timings["estimate"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    try:
        # the in-memory filters themselves (a NumPy array; the dask-aware nlm.* wrappers would import dask's side)
        if params.method == "bayes":
            from nlm.denoisers.bayes import denoise_nl_bayes

            result = denoise_nl_bayes(work, **kwargs)
        else:
            from nlm.denoisers.means import denoise_nl_means

            if params.device != "cpu":
                kwargs["device"] = _device(src, params.device)
            if "noise" in kwargs:  # a transformed model: the filter's input is not `work`
                result = denoise_nl_means(work, **kwargs)
            else:
                from nlm.ops.scratch import scratch

                with scratch(buffer):  # `work` may be overwritten: the result can be a view of `buffer`
                    result = denoise_nl_means(work, **kwargs)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    except ImportError as exc:
        raise click.ClickException(f"{src}: this filter mode is not available: {exc}") from None
    except (RuntimeError, NotImplementedError) as exc:  # the GPU backend (driver, launch) and what it lacks
        raise click.ClickException(f"{src}: {exc}") from None
    except MemoryError:
        raise click.ClickException(f"{src}: not enough memory to denoise it") from None
    timings["filter"] = time.perf_counter() - t2
    if not _all_finite(result if mask is None else result[mask]):
        raise click.ClickException(
            f"{src}: the filter produced NaN or infinite values with h {fmt_num(h)} and sigma "
            f"{fmt_num(sigma)} in {work.dtype}; nothing was written"
        )

    t3 = time.perf_counter()
    try:
        out = from_float(result, dtype)  # in bands: no second float image
    except ImageIOError as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    del result, work, buffer
    out = reattach_alpha(out, alpha, image.mode)
    write_output(dst, out, image, overwrite)
    timings["write"] = time.perf_counter() - t3
    return make_record(src, dst, image, (sigma, sigma_source), (h, h_source), timings, t0, model=model,
                   model_source=model_source)


def _read_plane(path, image, what):
    """A one-channel image of ``image``'s spatial shape, read from ``path`` (ClickException otherwise)."""
    other = read_input(path, volume=None)
    if other.mode != "L" or tuple(other.spatial_shape) != tuple(image.spatial_shape):
        raise click.ClickException(
            f"{path}: {what} must be a one-channel image of the input's size "
            f"{'x'.join(map(str, image.spatial_shape))}, got {other.describe()}"
        )
    return other.data


def load_mask(src, params, image, work, channel_axis):
    """The valid pixels (bool, spatial shape) from ``--mask`` and the input's no-data value, or None."""
    import numpy as np

    valid = None
    if params.mask is not None:
        valid = _read_plane(params.mask, image, "--mask") != 0
    nodata = getattr(image, "nodata", None)
    if nodata is not None:
        hit = np.isnan(work) if np.isnan(nodata) else work == work.dtype.type(nodata)
        if channel_axis is not None:
            hit = hit.all(axis=-1)
        if hit.any():
            valid = ~hit if valid is None else valid & ~hit
    if valid is not None and not valid.any():
        raise click.ClickException(f"{src}: every pixel is masked (--mask or the file's no-data value)")
    return valid


def load_sigma_map(params, image, est, channel_axis):
    """The per-pixel noise std map of ``--sigma-map`` (a file or ``auto``), float64, or None."""
    import numpy as np

    if params.sigma_map is None:
        return None
    if params.sigma_map == "auto":
        import nlm

        try:
            return nlm.estimate_noise(est, channel_axis=channel_axis, return_map=True)[1]
        except (ValueError, TypeError) as exc:
            raise click.ClickException(f"{image.path}: cannot estimate the noise map: {exc}") from None
    smap = _read_plane(params.sigma_map, image, "--sigma-map").astype(np.float64)
    if not np.isfinite(smap).all() or (smap < 0).any():
        raise click.ClickException(f"{params.sigma_map}: --sigma-map must hold finite values >= 0")
    return smap


def _fill_masked(work, mask, channel_axis):
    """``work`` with its masked pixels set to the median of the valid ones (for the noise estimators)."""
    import numpy as np

    out = work.copy()
    if channel_axis is None:
        out[~mask] = np.median(work[mask])
    else:
        out[~mask] = np.median(work[mask], axis=0)
    return out


def _write_map(path, smap, image, overwrite):
    import numpy as np

    from nlm.io import ImageIOError, write_image

    try:
        write_image(path, np.asarray(smap, np.float32), "L", stack=image.stack, overwrite=overwrite)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None


def _all_finite(a, block=1 << 22):
    """``np.isfinite(a).all()`` in slabs of the first axis (no image-sized mask)."""
    import numpy as np

    step = max(1, block // max(1, a[:1].size))
    return all(np.isfinite(a[i : i + step]).all() for i in range(0, max(1, a.shape[0]), step))


def _noise_model(work, params, channel_axis):
    """The noise model of one image, in its stored units, and where it came from.

    ``(None, None)`` for the plain Gaussian NLM path (it estimates sigma
    itself, as it always has).
    """
    from nlm.noise import Gamma, Gaussian, Rician, estimate_noise

    noise, method = params.noise, params.method
    if params.looks is not None:
        return Gamma(params.looks), "given"
    if noise == "gaussian" and method == "means":
        return None, None
    if params.sigma is not None and noise == "rician":
        return Rician(params.sigma), "given"
    if params.sigma is not None and noise in ("gaussian", "auto"):
        return Gaussian(params.sigma), "given"
    return estimate_noise(work, noise, channel_axis=channel_axis), "estimated"


def _given_noise_option(params):
    """The option a given noise model comes from (``'--looks'``, ``'--sigma'``), or None when it is estimated."""
    if params.looks is not None:
        return "'--looks'"
    if params.sigma is not None and params.noise in ("gaussian", "rician", "auto") and not (
        params.noise == "gaussian" and params.method == "means"
    ):
        return "'--sigma'"
    return None


#: the in-memory path's choice of the noise model, for the tile-by-tile path
#: (nlm.cli.tiled_job), which applies it to a sample of the image
noise_model = _noise_model
given_noise_option = _given_noise_option


def _device(src, device):
    """``--device`` resolved to "cpu" or "cuda"; which one (and why) on stderr with --verbose."""
    from nlm.cli.runtime import run_state
    from nlm.ops._cuda_device import DeviceUnavailableError, cuda_status, resolve_device

    try:
        chosen = resolve_device(device)
    except DeviceUnavailableError as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    if run_state.get("verbose"):
        why = cuda_status()[1]
        click.echo(f"{src}: device {chosen} ({why})" if chosen == "cuda" or device == "auto" else
                   f"{src}: device {chosen}", err=True)
    return chosen
