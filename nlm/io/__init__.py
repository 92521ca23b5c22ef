"""Input and output: images (:mod:`nlm.io.image`), images larger than memory
(:mod:`nlm.io.tiled`, dask and zarr, imported only when used) and video clips
(:mod:`nlm.io.video`, PyAV, imported only when used).

This package sits beside the noise layer and the operation at the bottom of
the import graph: it imports nothing from the denoisers.  Importing it is
cheap (NumPy and the standard library; no Numba, dask or PyAV), so the
command line's ``--help`` stays fast.
"""

from nlm.io import image as _image
from nlm.io.image import *  # noqa: F401,F403  (its public names: image.__all__)

__all__ = list(_image.__all__)
