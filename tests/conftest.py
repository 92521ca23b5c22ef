"""Test-session setup.

The GPU backend's tests (tests/test_gpu.py) run on Numba's CUDA simulator on
every machine: the simulator must be switched on before Numba is first
imported, so it is switched on here, before any test module imports nlm.
To run them on a real device instead: ``NUMBA_ENABLE_CUDASIM=0 python -m
pytest tests/test_gpu.py``.  Nothing else in nlm imports ``numba.cuda``, so
the CPU tests are not affected.
"""

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
