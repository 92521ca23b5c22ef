"""``python -m nlm``: the same command line as the ``nlm`` script."""

from cli import main

main(prog_name="nlm")
