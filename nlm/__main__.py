"""``python -m nlm``: the same command line as the ``nlm`` script."""

from nlm.cli.app import run

run()
