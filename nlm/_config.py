"""Numba compilation flags, in one place.

Every kernel module takes its decorator options from here instead of
scattering flags over the code.  Environment overrides:

``NLM_NUMBA_CACHE=0``
    disable the on-disk cache (``cache=True`` by default, so a second process
    does not recompile).
``NLM_NUMBA_PARALLEL=0``
    compile the kernels single-threaded (``prange`` becomes ``range``).
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
