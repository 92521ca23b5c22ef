"""Preloaded into the worker processes that ``nlm denoise --workers N`` starts.

Ctrl-C in a terminal sends SIGINT to the whole process group, the local
cluster's worker processes included.  They ignore it: ``nlm`` itself handles
it, removes its partial output and stops the cluster, so the user sees one
``Error: interrupted by SIGINT`` line instead of a KeyboardInterrupt
traceback from every worker.
"""

import signal
import threading


def dask_setup(worker):  # noqa: ARG001 - the preload hook's signature
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
