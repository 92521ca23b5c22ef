"""``nlm psnr``: PSNR and SSIM of an image against a reference."""


import click

from nlm.cli import options as opts
from nlm.cli.image_job import read_input
from nlm.cli.paths import check_input_file


@click.command(cls=opts.SectionedCommand, short_help="PSNR and SSIM of an image against a reference.")
@click.argument("reference_path", metavar="REFERENCE")
@click.argument("image_path", metavar="IMAGE")
@click.option(
    "--data-range",
    type=opts.FiniteFloatRange(min=0, min_open=True),
    default=None,
    cls=opts.SectionedOption,
    section="Metrics",
    help="Peak-to-peak range of the values. [default: the type's maximum for "
    "integers (255, 65535); 1 for floats in [0, 1]]",
)
@opts.max_pixels_opt
def psnr(reference_path, image_path, data_range, max_pixels):
    """Print the PSNR (dB) and SSIM of IMAGE against REFERENCE.

    Both must have the same size, channels and data type.  Alpha channels are
    left out of the comparison.  SSIM needs every side to be at least 7.
    """
    ref_p = check_input_file(reference_path, "REFERENCE")
    img_p = check_input_file(image_path, "IMAGE")

    from nlm import metrics

    ref = read_input(ref_p, volume=None, max_pixels=max_pixels)
    img = read_input(img_p, volume=None, max_pixels=max_pixels)
    if ref.mode != img.mode or ref.data.shape != img.data.shape:
        raise click.ClickException(
            f"{img_p} ({img.describe()}) does not match {ref_p} ({ref.describe()})"
        )
    if ref.data.dtype != img.data.dtype:
        raise click.ClickException(
            f"{ref_p} is {ref.data.dtype} but {img_p} is {img.data.dtype}; "
            "compare images of the same data type"
        )
    a, _ = ref.split_alpha()
    b, _ = img.split_alpha()
    channel_axis = -1 if a.ndim > len(ref.spatial_shape) else None
    try:
        value = metrics.psnr(a, b, data_range=data_range)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        similarity = f"{metrics.ssim(a, b, data_range=data_range, channel_axis=channel_axis):.4f}"
    except ValueError as exc:
        similarity = f"n/a ({exc})"
    click.echo(f"PSNR  {value:.2f} dB")
    click.echo(f"SSIM  {similarity}")
