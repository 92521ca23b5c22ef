"""Reusable click options for the ``nlm`` command line.

Each option is a decorator, so commands share one definition of a name, type,
default and help text (in the manner of rasterio's ``rio`` options module).
Options carry a help section (``Filter``, ``Input/output``, ``Output``, ...)
and :class:`SectionedCommand` prints ``--help`` grouped by section.

This module imports only click: ``nlm --help`` must not pay for NumPy or Numba.
"""

import click

__all__ = [
    "SectionedCommand",
    "SectionedOption",
    "filter_options",
    "h_opt",
    "noise_mode_opt",
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


def _option(*decls, section, **attrs):
    return click.option(*decls, cls=SectionedOption, section=section, **attrs)


# -- filter parameters ------------------------------------------------------ #
def _odd(ctx, param, value):
    if value is not None and value % 2 == 0:
        raise click.BadParameter(f"must be odd, got {value}", ctx=ctx, param=param)
    return value


patch_size_opt = _option(
    "--patch-size",
    type=click.IntRange(min=1),
    default=None,
    callback=_odd,
    section="Filter",
    help="Side of the square (cubic for --volume) patches compared, in pixels; odd. "
    "[default: 7, or 5 with --noise speckle]",
)

patch_distance_opt = _option(
    "--patch-distance",
    type=click.IntRange(min=0),
    default=None,
    section="Filter",
    help="Search radius: patches up to this many pixels away are compared. [default: 11]",
)

h_opt = _option(
    "--h",
    "h",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    section="Filter",
    help="Filter strength, in the image's own units (uint8: 0-255 scale). "
    "[default: automatic, from sigma]",
)

sigma_opt = _option(
    "--sigma",
    type=click.FloatRange(min=0),
    default=None,
    section="Filter",
    help="Noise standard deviation, in the image's own units; 0 turns off the "
    "variance subtraction. [default: estimated from the image]",
)

noise_mode_opt = _option(
    "--noise",
    "noise",
    type=click.Choice(["gaussian", "speckle"]),
    default="gaussian",
    show_default=True,
    section="Filter",
    help="Noise model the filter assumes (speckle: multiplicative noise).",
)


def filter_options(func):
    """All the filter parameters: patch size and distance, h, sigma, noise."""
    for decorator in reversed(
        (patch_size_opt, patch_distance_opt, h_opt, sigma_opt, noise_mode_opt)
    ):
        func = decorator(func)
    return func


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

seed_opt = _option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    section="Noise",
    help="Seed of the random number generator (same seed, same noise).",
)

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
