"""The ``nlm`` command line (click).

Heavy modules (NumPy, Numba, the filter) are imported inside the commands, so
``nlm --help`` answers quickly.
"""

import click

from nlm import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nlm")
def main():
    """Non-local means denoising from the command line."""


if __name__ == "__main__":  # pragma: no cover
    main()
