"""The ``nlm`` command: a thin entry into :mod:`nlm.cli` (the design card names ``cli.py``).

The command line itself lives in the package ``nlm/cli/``: one module per job
(``image_job``, ``tiled_job``, ``video_job``, ``batch``) and per command
(``denoise``, ``noise``, ``psnr``, ``bench``), the shared options
(``options``), path handling (``paths``), the cluster (``cluster``) and the
run's state (``runtime``); ``docs/cli.md`` is the user documentation.
``main`` is the click group (what tests drive); ``run`` is the installed
script (``main`` with Python's garbage collector paused, see
:func:`nlm.cli.app.run`).

Exit codes: 0 success; 1 a data or library error; 2 a usage error.  No output
file is left behind by a failed run.
"""

from nlm.cli.app import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
