"""Thread-level parallel loop for kernels compiled without ``parallel=True``.

Numba's ``prange`` costs seconds of compile time per kernel (the parfor
passes, and LLVM optimising the loop body again inside the generated gufunc).
The 2-D row kernels are instead compiled serially with ``nogil=True`` and run
by :func:`parallel_for` on Python threads, one work item (a band of rows) at
a time: the same work split, no parfor compile.

The thread count is Numba's setting for the calling thread
(``numba.get_num_threads()``, which :class:`nlm._config.threads` sets), or 1
with ``NLM_NUMBA_PARALLEL=0``.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from nlm._config import PARALLEL

_POOL = None
_POOL_LOCK = threading.Lock()


def num_threads():
    """Threads a kernel of the calling thread may use."""
    if not PARALLEL:
        return 1
    import numba

    return max(1, numba.get_num_threads())


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            import numba

            _POOL = ThreadPoolExecutor(max(1, numba.config.NUMBA_NUM_THREADS - 1), thread_name_prefix="nlm-kernel")
        return _POOL


def parallel_for(fn, n, threads=None):
    """``fn(i)`` for every ``i`` in ``range(n)``, on up to ``threads`` threads.

    The calling thread works too; the others come from a shared pool.  Items
    are taken in order, each once.  The first exception raised by ``fn`` is
    raised again here, after every started item has finished.
    """
    threads = num_threads() if threads is None else threads
    threads = min(threads, n)
    if threads <= 1:
        for i in range(n):
            fn(i)
        return
    lock = threading.Lock()
    nxt = [0]
    errors = []

    def work():
        while True:
            with lock:
                i = nxt[0]
                if i >= n or errors:
                    return
                nxt[0] = i + 1
            try:
                fn(i)
            except BaseException as e:  # noqa: BLE001 - raised again by the caller
                with lock:
                    errors.append(e)
                return

    futures = [_pool().submit(work) for _ in range(threads - 1)]
    work()
    for f in futures:
        if not f.cancel():
            f.result()
    if errors:
        raise errors[0]
