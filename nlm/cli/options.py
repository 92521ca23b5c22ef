"""Reusable click options for the ``nlm`` command line.

Each option is a decorator, so commands share one definition of a name, type,
default and help text (in the manner of rasterio's ``rio`` options module).
Options carry a help section (``Filter``, ``Input/output``, ``Output``, ...)
and :class:`SectionedCommand` prints ``--help`` grouped by section.

This module imports only click: ``nlm --help`` must not pay for NumPy or Numba.
"""

import click

__all__ = [
    "FiniteFloatRange",
    "PerAxisInt",
    "temporal_radius_opt",
    "time_axis_opt",
    "allow_truncated_opt",
    "video_options",
    "SectionedCommand",
    "SectionedOption",
    "filter_options",
    "h_opt",
    "max_pixels_opt",
    "noise_mode_opt",
    "method_opt",
    "looks_opt",
    "device_opt",
    "output_dir_opt",
    "overwrite_opt",
    "patch_distance_opt",
    "patch_size_opt",
    "quiet_opt",
    "seed_opt",
    "sigma_opt",
    "verbose_opt",
    "verbosity_options",
    "volume_opt",
    "scale_options",
]


class SectionedOption(click.Option):
    """A click option with a ``section`` under which ``--help`` lists it."""

    def __init__(self, *args, section="Options", **kwargs):
        super().__init__(*args, **kwargs)
        self.section = section


class SectionedCommand(click.Command):
    """A click command whose ``--help`` lists options grouped by section.

    Sections appear in the order their first option was declared; plain
    :class:`click.Option` options (``--help`` itself) go last, under "Other
    options".
    """

    def format_options(self, ctx, formatter):
        sections, other = {}, []
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, SectionedOption):
                sections.setdefault(param.section, []).append(record)
            else:
                other.append(record)
        if other:
            sections["Other options"] = other
        for name, records in sections.items():
            with formatter.section(name):
                formatter.write_dl(records)


class FiniteFloatRange(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan`` and ``inf`` (exit 2).

    ``float("nan")`` passes every range comparison, and ``inf`` passes an
    open-ended one, so click alone lets both through.
    """

    name = "float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def _option(*decls, section, **attrs):
    return click.option(*decls, cls=SectionedOption, section=section, **attrs)


# -- filter parameters ------------------------------------------------------ #
class PerAxisInt(click.ParamType):
    """An integer, or comma-separated integers, one per spatial axis (``7`` or ``1,7,7``).

    Converts to an int or a tuple of ints; ``minimum`` and ``odd`` apply to
    every entry.  The number of entries is checked against the image later
    (it is only known once the image is read).
    """

    name = "INT[,INT...]"

    def __init__(self, minimum, odd=False):
        self.minimum = minimum
        self.odd = odd

    def convert(self, value, param, ctx):
        if isinstance(value, (int, tuple)):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not a valid integer or comma-separated list of integers", param, ctx)
        for v in values:
            if v < self.minimum:
                self.fail(f"{v} is smaller than the minimum {self.minimum}", param, ctx)
            if self.odd and v % 2 == 0:
                self.fail(f"must be odd, got {v}", param, ctx)
        return values[0] if len(values) == 1 else values


patch_size_opt = _option(
    "--patch-size",
    type=PerAxisInt(1, odd=True),
    default=None,
    section="Filter",
    help="Side of the patches compared, in pixels; odd. One value for every axis, or one "
    "per spatial axis (1,7,7: 7x7 patches within each frame of a stack). "
    "[default: 7, or 5 with --noise speckle]",
)

patch_distance_opt = _option(
    "--patch-distance",
    type=PerAxisInt(0),
    default=None,
    section="Filter",
    help="Search radius: patches up to this many pixels away are compared. One value, or one "
    "per spatial axis (2,7,7: 2 frames either side, 7 pixels in y and x). [default: 11; 10 for video]",
)

h_opt = _option(
    "--h",
    "h",
    type=FiniteFloatRange(min=0, min_open=True),
    default=None,
    section="Filter",
    help="Filter strength, in the image's own units (uint8: 0-255 scale). "
    "[default: automatic, from sigma]",
)

sigma_opt = _option(
    "--sigma",
    type=FiniteFloatRange(min=0),
    default=None,
    section="Filter",
    help="Noise standard deviation, in the image's own units; 0 turns off the "
    "variance subtraction. [default: estimated from the image]",
)

noise_mode_opt = _option(
    "--noise",
    "noise",
    type=click.Choice(["gaussian", "poisson", "speckle", "gamma", "rician", "auto"]),
    default=None,
    section="Filter",
    help="Noise model: gaussian (additive), poisson (Poisson-Gaussian, photon-limited), "
    "speckle (multiplicative, scikit-image's), gamma (SAR intensity with L looks), rician (magnitude "
    "MRI; --sigma: the std of the real and imaginary parts; the Rician bias is corrected), auto "
    "(estimated from the image). [default: gaussian with --method means, auto with --method bayes]",
)

method_opt = _option(
    "--method",
    type=click.Choice(["means", "bayes"]),
    default="means",
    show_default=True,
    section="Filter",
    help="means: non-local means (fastest); bayes: non-local Bayes with an NL-Ridge pass (best quality, "
    "above BM3D and about 5x faster; 2-D images, and volumes with --volume in memory).",
)

looks_opt = _option(
    "--looks",
    type=FiniteFloatRange(min=0, min_open=True),
    default=None,
    metavar="L",
    section="Filter",
    help="Number of looks of SAR intensity data (implies --noise gamma). [default: estimated]",
)


sigma_map_opt = _option(
    "--sigma-map",
    "sigma_map",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE|auto",
    section="Noise map and mask",
    help="Per-pixel noise standard deviation: a one-channel image file (TIFF, float) of the input's size, "
    "in the image's own units, or 'auto' to estimate it (nlm.estimate_noise(return_map=True)). "
    "Gaussian noise; excludes --sigma.",
)

mask_opt = _option(
    "--mask",
    "mask",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    section="Noise map and mask",
    help="Valid pixels: a one-channel image of the input's size, non-zero = valid. Masked pixels are "
    "not used and come back unchanged. A TIFF's GDAL no-data value (tag 42113) and a zarr 'nodata' "
    "attribute are masked too.",
)

noise_map_out_opt = _option(
    "--noise-map-out",
    "noise_map_out",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    section="Noise map and mask",
    help="Write the per-pixel noise std map (the one used, else the estimated one) as a float32 TIFF.",
)


def map_options(func):
    """--sigma-map, --mask and --noise-map-out."""
    for decorator in reversed((sigma_map_opt, mask_opt, noise_map_out_opt)):
        func = decorator(func)
    return func


device_opt = _option(
    "--device",
    type=click.Choice(["cpu", "cuda", "auto"]),
    default="cpu",
    show_default=True,
    section="Filter",
    help="Where the filter runs: cpu, cuda (an NVIDIA GPU through numba-cuda, pip install "
    "'nlm[gpu]'; in-memory images; means: 1-3 spatial axes, bayes: 2-D and 3-D) or auto (the GPU when "
    "usable, else the CPU; --verbose says which).",
)


def filter_options(func):
    """All the filter parameters: method, patch size and distance, h, sigma, noise, looks, device."""
    for decorator in reversed(
        (method_opt, patch_size_opt, patch_distance_opt, h_opt, sigma_opt, noise_mode_opt, looks_opt, device_opt)
    ):
        func = decorator(func)
    return func


# -- video -------------------------------------------------------------------- #
temporal_radius_opt = _option(
    "--temporal-radius",
    type=click.IntRange(min=0),
    default=None,
    section="Video",
    help="Video: compare each frame with R frames before and after it (2R+1 frames, OpenCV's "
    "temporalWindowSize; at most the clip's frame count - 1). [default: from the noise level: "
    "1 up to sigma 10 (0-255 scale), 2 up to 30, else 3]",
)

time_axis_opt = _option(
    "--time-axis",
    type=int,
    default=None,
    section="Video",
    help="Denoise a TIFF stack as a clip (streamed frame by frame, temporal window) with time "
    "along this axis (0: T x H x W (x C)).",
)


allow_truncated_opt = _option(
    "--allow-truncated",
    is_flag=True,
    default=False,
    section="Video",
    help="Video: denoise a truncated or corrupt clip as far as it decodes, with a warning (without it "
    "such a clip is an error that says how many frames were decoded).",
)


def video_options(func):
    """``--temporal-radius``, ``--time-axis`` and ``--allow-truncated``."""
    return temporal_radius_opt(time_axis_opt(allow_truncated_opt(func)))


# -- input / output ---------------------------------------------------------- #
volume_opt = _option(
    "--volume",
    is_flag=True,
    default=False,
    section="Input/output",
    help="Treat a multi-page TIFF (or other image stack) as one 3-D volume.",
)

overwrite_opt = _option(
    "--overwrite",
    is_flag=True,
    default=False,
    section="Input/output",
    help="Replace existing output files (also allows writing onto the input).",
)

output_dir_opt = _option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, dir_okay=True, writable=True),
    default=None,
    section="Input/output",
    help="Batch mode: every PATH is an input (file, directory or glob) and the "
    "results go into this directory (created if missing).",
)

max_pixels_opt = _option(
    "--max-pixels",
    type=click.IntRange(min=0),
    default=None,
    envvar="NLM_MAX_PIXELS",
    show_envvar=True,
    metavar="N",
    section="Input/output",
    help="Refuse input files of more than N pixels (all pages, channels not "
    "counted), checked before decoding: a guard against decompression bombs; "
    "0: no limit. [default: 134217728 (2**27)]",
)

seed_opt = _option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    section="Noise",
    help="Seed of the random number generator (same seed, same noise).",
)

# -- large images and clusters ------------------------------------------------ #
def _size(ctx, param, value):
    if value is None:
        return None
    from nlm.io.budget import parse_size

    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def _tile(ctx, param, value):
    if value is not None and value % 16:
        raise click.BadParameter(f"must be a multiple of 16 (TIFF tiles), got {value}", ctx=ctx, param=param)
    return value


memory_limit_opt = _option(
    "--memory-limit",
    metavar="SIZE",
    default=None,
    callback=_size,
    section="Large images",
    help="Images whose in-memory run would need more than SIZE (e.g. 8G, 512M) "
    "are read, filtered and written tile by tile. [default: a quarter of the machine's RAM]",
)

tile_size_opt = _option(
    "--tile-size",
    type=click.IntRange(min=64),
    default=2048,
    show_default=True,
    callback=_tile,
    section="Large images",
    help="Side of the tiles of a tile-by-tile run (and of the output's TIFF tiles / zarr chunks).",
)

scheduler_opt = _option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    section="Large images",
    help="Run the tiles (and, in batch mode, the files) on this dask.distributed "
    "scheduler, e.g. tcp://10.0.0.5:8786. The workers must see the input and output paths.",
)

workers_opt = _option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    section="Large images",
    help="Start a local dask cluster of N worker processes (one thread each) for the run.",
)


#: default of --cluster-timeout, in seconds
CLUSTER_TIMEOUT = 60.0

cluster_timeout_opt = _option(
    "--cluster-timeout",
    metavar="SECONDS",
    type=FiniteFloatRange(min=1, max=7 * 86400),
    default=CLUSTER_TIMEOUT,
    show_default=f"{CLUSTER_TIMEOUT:g}",
    section="Large images",
    help="With --scheduler or --workers: how long to wait for a scheduler that does not answer "
    "(when connecting too), and for a worker when the cluster has none or none of its workers "
    "answers, before the run fails (exit 1; nothing is written). A scheduler that closes the "
    "connection, or workers that keep dying on a task, end the run at once.",
)


def scale_options(func):
    """``--memory-limit``, ``--tile-size``, ``--scheduler``, ``--workers``, ``--cluster-timeout``."""
    for decorator in reversed((memory_limit_opt, tile_size_opt, scheduler_opt, workers_opt, cluster_timeout_opt)):
        func = decorator(func)
    return func


# -- messages ---------------------------------------------------------------- #
quiet_opt = _option(
    "-q",
    "--quiet",
    is_flag=True,
    default=False,
    section="Messages",
    help="Print nothing but errors.",
)

verbose_opt = _option(
    "-v",
    "--verbose",
    is_flag=True,
    default=False,
    section="Messages",
    help="Also print conversions made on reading and the time of each step.",
)


def verbosity_options(func):
    """``--quiet`` and ``--verbose``; the command receives ``quiet`` and ``verbose``."""
    return quiet_opt(verbose_opt(func))
