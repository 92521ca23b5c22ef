"""``nlm bench``: run a benchmark harness from the command line."""

import sys
from pathlib import Path

import click

from nlm.cli.runtime import resume_gc


@click.command(
    context_settings=dict(ignore_unknown_options=True, allow_extra_args=True, help_option_names=[]),
    add_help_option=False,
    short_help="Run the benchmark harness (source checkout only).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args):
    """Run benchmarks/psnr.py with ARGS (all of them, --help included)."""
    root = Path(__file__).resolve().parents[2]  # the checkout: nlm/cli/bench.py -> .
    if not (root / "benchmarks" / "psnr.py").is_file():
        raise click.ClickException(
            "nlm bench needs a source checkout of nlm (benchmarks/psnr.py is not "
            f"in {root}, above the nlm package); clone the repository and pip install -e ."
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import psnr as harness

    resume_gc()  # a benchmark run: long

    status = harness.main(list(args))
    if status:
        sys.exit(status)
