"""``nlm noise``: add seeded synthetic noise to an image."""


import click

from nlm.cli import options as opts
from nlm.cli.image_job import check_format, read_input, reattach_alpha, write_output
from nlm.cli.paths import check_input_file, check_output_file
from nlm.cli.report import input_notes
from nlm.cli.runtime import run_state


@click.command(cls=opts.SectionedCommand, short_help="Add seeded synthetic noise to an image.")
@click.argument("input_path", metavar="INPUT")
@click.argument("output_path", metavar="OUTPUT")
@click.option(
    "--model",
    type=click.Choice(["speckle", "gaussian", "gamma"]),
    default="speckle",
    show_default=True,
    cls=opts.SectionedOption,
    section="Noise",
    help="speckle: y = x + x*n (scikit-image's); gaussian: y = x + n; n ~ N(0, var). "
    "gamma: y = x*s, s ~ Gamma(L, 1/L) (SAR intensity with L looks).",
)
@click.option(
    "--var",
    type=opts.FiniteFloatRange(min=0, min_open=True),
    default=None,
    cls=opts.SectionedOption,
    section="Noise",
    help="Variance of n, on the [0, 1] intensity scale. [default: 0.01; gamma: 1/looks]",
)
@click.option(
    "--looks",
    type=opts.FiniteFloatRange(min=0, min_open=True),
    default=None,
    cls=opts.SectionedOption,
    section="Noise",
    help="Number of looks L (gamma model only).",
)
@opts.seed_opt
@opts.overwrite_opt
@opts.max_pixels_opt
@opts.verbosity_options
def noise(input_path, output_path, model, var, looks, seed, overwrite, max_pixels, quiet, verbose):
    """Add noise to INPUT and write OUTPUT (to make test images).

    \b
      nlm noise samples/camera.png noisy.png --model speckle --var 0.04 --seed 0

    The noise is added on the [0, 1] scale: unsigned integer images are divided
    by their type's maximum (255, 65535) first and rounded back after; float
    images must already lie in [0, 1].  The result is clipped to [0, 1], as
    scikit-image does.  Alpha is passed through; stacks are noised page by page.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    click.get_current_context().meta.update({"nlm.quiet": quiet, "nlm.verbose": verbose})
    run_state["verbose"] = verbose  # for LogLines, which may hear from threads without a click context
    if looks is not None and model != "gamma":
        raise click.BadParameter("is only used by --model gamma", param_hint="'--looks'")
    if model == "gamma" and looks is not None and var is not None:
        raise click.BadParameter("give --looks or --var for --model gamma, not both", param_hint="'--looks'")
    if seed < 0:
        raise click.BadParameter("must be >= 0", param_hint="'--seed'")
    src = check_input_file(input_path, "INPUT")
    dst = check_output_file(output_path, [src], overwrite, "OUTPUT")

    import numpy as np

    from nlm.io import from_float
    from nlm.noise import add_noise

    image = read_input(src, volume=None, max_pixels=max_pixels)
    check_format(dst, image)
    colour, alpha = image.split_alpha()
    if colour.dtype.kind == "i":
        raise click.ClickException(f"{src}: signed integer images are not supported by nlm noise")
    if model == "gamma" and looks is None and var is None:
        raise click.BadParameter("--model gamma needs --looks (or --var)", param_hint="'--looks'")
    try:
        noisy = add_noise(colour, model, var=var, looks=looks, seed=seed)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    if colour.dtype.kind == "u":
        out = from_float(noisy * np.iinfo(colour.dtype).max, colour.dtype)
    else:
        out = from_float(noisy, colour.dtype)
    write_output(dst, reattach_alpha(out, alpha, image.mode), image, overwrite)
    if not quiet:
        for note in input_notes(image, src):
            click.echo(note, err=True)
        if model == "gamma":
            amount = f"looks {looks:g}" if looks is not None else f"var {var:g}"
        else:
            amount = f"var {var if var is not None else 0.01:g}"
        click.echo(f"{src} ({image.describe()}) -> {dst}: {model} noise, {amount}, seed {seed}")
