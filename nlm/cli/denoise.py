"""``nlm denoise``: its options and their checks."""


from pathlib import Path

import click

from nlm.cli import options as opts
from nlm.cli.batch import denoise_command
from nlm.cli.cluster import Cluster
from nlm.cli.params import FilterParams, Outputs, ScaleParams, VideoParams
from nlm.cli.runtime import resume_gc, run_state


@click.command(cls=opts.SectionedCommand, short_help="Denoise images (non-local means or non-local Bayes).")
@click.argument("paths", nargs=-1, metavar="INPUT OUTPUT | INPUT... -o OUTDIR")
@opts.filter_options
@opts.map_options
@opts.output_dir_opt
@click.option(
    "--suffix",
    default="",
    metavar="TEXT",
    cls=opts.SectionedOption,
    section="Input/output",
    help="Batch mode: add TEXT to each output name (a.png -> a_dn.png with --suffix _dn).",
)
@click.option(
    "--ext",
    type=click.Choice(["png", "tif", "tiff"]),
    default=None,
    cls=opts.SectionedOption,
    section="Input/output",
    help="Batch mode: output format. [default: the input's when it is PNG/TIFF, else png]",
)
@opts.volume_opt
@opts.video_options
@opts.overwrite_opt
@opts.max_pixels_opt
@opts.scale_options
@opts.verbosity_options
def denoise(paths, method, patch_size, patch_distance, h, sigma, noise, looks, device, sigma_map, mask, noise_map_out,
            output_dir, suffix, ext,
            volume, temporal_radius, time_axis, allow_truncated, overwrite, max_pixels, memory_limit, tile_size,
            scheduler, workers, cluster_timeout, quiet, verbose):
    """Denoise INPUT into OUTPUT, or many inputs into OUTDIR.

    \b
      nlm denoise noisy.png clean.png
      nlm denoise a.png b.tif -o out/
      nlm denoise photos/ -o out/ --suffix _dn
      nlm denoise 'scans/*.tif' -o out/ --volume
      nlm denoise clip.mp4 clean.mkv --temporal-radius 2
      nlm denoise stack.tif clean.tif --time-axis 0
      nlm denoise noisy.png clean.png --method bayes
      nlm denoise sar.tif clean.tif --method bayes --noise gamma --looks 4

    Videos (and TIFF stacks with --time-axis) are streamed frame by frame
    with a temporal window and written losslessly: FFV1 in .mkv, a .tif
    stack, or PNG frames into a directory.

    --method means (default) is non-local means; --method bayes is
    non-local Bayes (slower, best quality; 2-D images, and volumes with
    --volume).  Both take every
    --noise model; what is estimated is printed.  The filter works on the
    values as stored (a uint8 image as 0..255), so --sigma and --h are in
    those units.  Without --sigma the noise level is estimated; without --h it
    is set from sigma.  The output has the input's
    data type: integers are rounded back (and clipped to the type's range),
    floats are kept.  Alpha is passed through unchanged.  Outputs are written
    to a temporary file and renamed into place; existing files (and the input)
    are only replaced with --overwrite.

    An image larger than --memory-limit (TIFF), a zarr / OME-Zarr input or
    output, and any run with --scheduler or --workers go tile by tile: read,
    filtered and written (tiled BigTIFF or OME-Zarr) one band of tiles at a
    time, with the same result.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    click.get_current_context().meta.update({"nlm.quiet": quiet, "nlm.verbose": verbose})
    run_state["verbose"] = verbose  # for LogLines, which may hear from threads without a click context
    if noise is None:
        noise = "gamma" if looks is not None else "auto" if method == "bayes" else "gaussian"
    if looks is not None and noise not in ("gamma", "auto"):
        raise click.BadParameter(f"is for SAR data (--noise gamma), not --noise {noise}", param_hint="'--looks'")
    if looks is not None:
        noise = "gamma"
    if sigma is not None and noise not in ("gaussian", "rician", "auto"):
        raise click.BadParameter(f"is not used with --noise {noise}", param_hint="'--sigma'")
    if method == "bayes" and h is not None:
        raise click.BadParameter("is not used with --method bayes", param_hint="'--h'")
    if sigma_map is not None:
        if sigma is not None:
            raise click.UsageError("--sigma-map and --sigma exclude each other")
        if noise not in ("gaussian", "auto"):
            raise click.BadParameter(f"is for Gaussian noise, not --noise {noise}", param_hint="'--sigma-map'")
        noise = "gaussian"
    if noise_map_out is not None and Path(noise_map_out).suffix.lower() not in (".tif", ".tiff"):
        raise click.BadParameter("must be a .tif or .tiff file (a float32 map)", param_hint="'--noise-map-out'")
    if (sigma_map or mask or noise_map_out) and (output_dir is not None or len(paths) != 2):
        raise click.UsageError("--sigma-map, --mask and --noise-map-out take one INPUT OUTPUT pair")
    if device == "cuda" and method == "bayes":
        raise click.BadParameter("NL-Bayes has no GPU kernel yet: use --method means, or --device cpu/auto",
                                 param_hint="'--device'")
    if device == "cuda" and (sigma_map or mask):
        raise click.UsageError("--device cuda takes no --sigma-map or --mask (they run on the CPU)")
    maps = dict(sigma_map=sigma_map, mask=mask, noise_map_out=noise_map_out, device=device)
    if method == "bayes":
        params = FilterParams(method=method, noise=noise, patch_size=patch_size, patch_distance=patch_distance,
                              sigma=sigma, looks=looks, **maps)
    else:
        from nlm.denoisers.means import default_patch

        # auto: the library picks the estimated model's defaults
        default_size, default_distance = (None, None) if noise == "auto" else default_patch(noise)
        params = FilterParams(
            method=method,
            noise=noise,
            patch_size=default_size if patch_size is None else patch_size,
            patch_distance=default_distance if patch_distance is None else patch_distance,
            h=h,
            sigma=sigma,
            looks=looks,
            **maps,
        )
    if scheduler is not None and workers is not None:
        raise click.UsageError("--scheduler and --workers exclude each other")
    given = click.get_current_context().get_parameter_source("cluster_timeout")
    if scheduler is None and workers is None and given is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--cluster-timeout is for runs on a cluster (--scheduler or --workers)")
    if memory_limit is None:
        from nlm.io.budget import default_memory_limit

        memory_limit = default_memory_limit()
    scale = ScaleParams(
        memory_limit=memory_limit,
        tile_size=tile_size,
        cluster=scheduler is not None or workers is not None,
        max_pixels=max_pixels,
    )
    video = VideoParams(temporal_radius=temporal_radius, time_axis=time_axis, patch_size=patch_size,
                        patch_distance=patch_distance, allow_truncated=allow_truncated)
    out = Outputs(output_dir=output_dir, suffix=suffix, ext=ext, volume=volume, overwrite=overwrite, quiet=quiet,
                  verbose=verbose)
    if not quiet and scheduler is None and workers is None:
        from nlm.cli.video_job import is_video_job

        clip = len(paths) == 2 and is_video_job(paths[0], paths[1], time_axis)
        kind = ("bayesvideo" if clip else "bayes3d" if volume else "bayes") if method == "bayes" else (
            "nlm3d" if volume else "nlm")
        _compile_note(kind)
    if scale.cluster:
        resume_gc()  # a cluster run: dask's objects come and go for as long as it runs
    with Cluster(scheduler, workers, memory_limit, cluster_timeout, verbose) as cluster:
        denoise_command(paths, params, out, scale, video, cluster)


def _compile_note(kind):
    """One stderr line when the filter's kernels are not in Numba's cache yet (they compile for seconds)."""
    from nlm.ops import compile_pending

    if compile_pending(kind):
        click.echo("compiling kernels (first run only)", err=True)
