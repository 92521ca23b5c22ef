"""Benchmarks of the ``nlm`` toolkit (``python -m benchmarks.psnr``)."""

import os

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data(*parts):
    """The benchmark images' folder ``shared/data/<parts>``, beside the checkout or beside a folder above it.

    The project's data live in ``../shared/data`` next to the main checkout; a git worktree one level
    deeper (``../wt/name``) finds the same folder by walking up.  When none exists, the path next to the
    checkout is returned, so that the benchmark's own "not found" message names where it looked.
    """
    d = os.path.dirname(_ROOT)
    while True:
        cand = os.path.join(d, "shared", "data", *parts)
        if os.path.isdir(cand):
            return cand
        up = os.path.dirname(d)
        if up == d:
            return os.path.join(os.path.dirname(_ROOT), "shared", "data", *parts)
        d = up
