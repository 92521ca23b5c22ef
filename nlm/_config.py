"""Numba compilation flags, in one place.

Every kernel module takes its decorator options from here instead of
scattering flags over the code.  Environment overrides:

``NLM_NUMBA_CACHE=0``
    disable the on-disk cache (``cache=True`` by default, so a second process
    does not recompile).
``NLM_NUMBA_PARALLEL=0``
    run the kernels single-threaded (``prange`` becomes ``range``, and the
    row kernels' threads of :mod:`nlm.ops._threads` are not used).
``NLM_VECTOR_WIDTH=256``
    the SIMD width (bits) LLVM should prefer in the hot kernels.  LLVM's
    default tuning for AVX-512 CPUs keeps to 256-bit vectors; the kernels ask
    for 512 (measured 20% faster on a Sapphire Rapids class Xeon).  On a CPU
    without AVX-512 the hint has no effect.  ``0`` leaves LLVM's default.

``fastmath`` is deliberately off: results must match the NumPy oracles in
``tests/`` to the documented tolerance.
"""

import os


def _flag(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off", "")


def _int(name, default):
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


CACHE = _flag("NLM_NUMBA_CACHE", True)
PARALLEL = _flag("NLM_NUMBA_PARALLEL", True)
VECTOR_WIDTH = _int("NLM_VECTOR_WIDTH", 512)

#: options for serial kernels
JIT = dict(cache=CACHE, nogil=True, error_model="numpy", fastmath=False)
#: options for kernels that use ``prange``
JIT_PARALLEL = dict(JIT, parallel=PARALLEL)


def defer_blas_probe() -> None:
    """Load Numba's NumPy support without importing SciPy's linear algebra.

    Numba's CPU target imports ``numba.np.arraymath`` before it runs or loads
    any compiled function, and that module asks at import whether BLAS is
    there by importing ``scipy.linalg.cython_blas`` (``_HAVE_BLAS``).  With
    SciPy's array API layer and ``numpy.f2py`` behind it, that import is
    0.12-0.2 s of a 0.8 s warm command line run, for a library none of nlm's
    kernels calls.  Every kernel module calls this function after importing
    Numba: the question is answered "yes" without the import when SciPy is
    installed (it is: scikit-image depends on it), and Numba's own check
    (``numba.np.linalg.ensure_blas``) is restored at once, so a compiled
    function that does use BLAS or LAPACK later imports SciPy and checks it
    as usual.  A Numba without these names (a future version) is left
    alone.  Idempotent; a no-op once ``numba.np.arraymath`` is imported.
    """
    import sys

    if "numba.np.arraymath" in sys.modules:
        return
    import importlib.util

    try:
        import numba.np.linalg as linalg
    except ImportError:  # pragma: no cover - a Numba without it
        return
    probe = getattr(linalg, "ensure_blas", None)
    if not callable(probe) or importlib.util.find_spec("scipy") is None:
        return
    linalg.ensure_blas = lambda: None
    try:
        import numba.np.arraymath  # noqa: F401 - its BLAS probe runs now, answered by the stub
    finally:
        linalg.ensure_blas = probe


class threads:
    """Context manager: Numba threads of the calling thread for one call.

    ``threads(None)`` changes nothing; ``threads(n)`` sets ``min(n,
    NUMBA_NUM_THREADS)`` and restores the previous setting on exit (Numba's
    setting is per thread, so other threads are not affected).
    """

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        if self.n is None:
            return self
        import numba

        self.old = numba.get_num_threads()
        numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc):
        if self.n is not None:
            import numba

            numba.set_num_threads(self.old)
        return False


#: options of the numba-cuda kernels (:mod:`nlm.ops._cuda_nlm`, :mod:`nlm.ops._cuda_bayes`): the on-disk
#: cache of numba-cuda (``cache=True``: numba-cuda's file cache of kernels, closures included, their captured
#: values being part of the key; checked on numba-cuda 0.30.4; the simulator accepts and ignores it); no fast
#: math (results must match the CPU path)
CUDA_JIT = dict(cache=CACHE)
