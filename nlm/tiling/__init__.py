"""The top of the library: dask arrays in, dask arrays out, tiled exactly.

Non-local means is local in its support: the result at a pixel depends only
on the pixels within ``halo(patch_size, patch_distance) = patch_distance +
patch_size // 2`` of it along every axis (the search window plus the patch
radius of the farthest candidate).  Each chunk is therefore filtered together
with a margin of that width taken from its neighbours
(``dask.array.map_overlap`` with ``boundary="none"``: no margin is invented at
the image border, where the filter reads its own reflect padding exactly as
on the whole image), and the margin is cut off again.  The tiles then equal
the whole-image result up to floating-point summation order, and for NLM bit
for bit: each block is told its origin in the image and reads
``anchor_margin`` more rows before its chunk, so that the kernel adds every
sum in the order of the whole image (:mod:`nlm.ops._nlm_kernels`).  NL-Bayes
is exact the same way, with a wider margin: its blocks visit the image's
reference grid and cells (:func:`nlm.denoisers.bayes_passes.tile_margin`).

Two parts:

* the generic machinery (:func:`map_tiles`, :func:`halo`,
  :func:`sample_regions`): it knows nothing about a particular filter;
* the public, dask-aware entry points :func:`denoise_nl_means`,
  :func:`denoise_nl_bayes` and :func:`estimate_sigma` (exported as
  ``nlm.denoise_nl_means`` etc.).  Each takes a NumPy array to the in-memory
  function of the layer below (:mod:`nlm.denoisers`, :mod:`nlm.noise`),
  unchanged, and a dask array to a tiled graph: the automatic parameters are
  estimated once, from a bounded sample (:func:`sample_regions`), and bound
  into the per-block function, so every tile uses the same ones.

This module sits on top of the denoisers (it imports them; they never import
it), beside the command line.  dask is imported only when a function here is
called with a dask array (``import nlm`` and ``nlm --help`` never import it).

Known dask pitfalls handled here: a margin wider than a chunk (dask #6688;
the array is rechunked so every chunk is at least as wide as the margin),
the type inference call on an empty block (``meta`` and ``dtype`` are given)
and chunks of unknown size (NaN, after boolean indexing): every function
here refuses them with the same ``ValueError`` naming the chunks
(:func:`nlm._validate._check_chunks`), before anything is read, rather than
computing the array behind the caller's back.
"""


from __future__ import annotations

import warnings

import numpy as np

from nlm._validate import _as_numeric, is_dask_array
from nlm.noise import estimate as _estimate
from nlm.tiling.bayes import denoise_nl_bayes, denoise_nl_bayes_tiled
from nlm.tiling.blocks import (
    SAMPLE_PIXELS,
    SAMPLE_WINDOWS,
    WORK_PIXELS,
    _dask_aware,
    halo,
    map_tiles,
    min_chunks,
    sample_regions,
    tile_chunks,
)
from nlm.tiling.means import denoise_nl_means, denoise_nl_means_tiled

__all__ = [
    "SAMPLE_PIXELS",
    "denoise_nl_bayes",
    "denoise_nl_means",
    "estimate_sigma",
    "SAMPLE_WINDOWS",
    "WORK_PIXELS",
    "denoise_nl_means_tiled",
    "denoise_nl_bayes_tiled",
    "halo",
    "is_dask_array",
    "map_tiles",
    "min_chunks",
    "tile_chunks",
    "sample_regions",
]


def _estimate_sigma_tiled(image, average_sigmas, channel_axis):
    """:func:`estimate_sigma` of a dask array: pooled over a bounded sample."""
    if not isinstance(average_sigmas, (bool, np.bool_)):
        raise TypeError(f"average_sigmas must be a bool, got {average_sigmas!r}")
    axis, spatial = _estimate._dask_checks(image, channel_axis)
    if channel_axis is None and image.ndim > 0 and image.shape[-1] <= 4:
        warnings.warn(
            f"image is size {image.shape[-1]} on the last axis, but channel_axis is None. "
            "If this is a color image, please set channel_axis=-1 for proper noise estimation.",
            UserWarning,
            stacklevel=3,
        )
    regions = [_as_numeric(r) for r in sample_regions(image, spatial_axes=spatial)]
    sigmas = _estimate._pooled_sigma(regions, axis)
    if axis is None:
        return sigmas[0]
    return _estimate._mean(sigmas) if average_sigmas else sigmas


estimate_sigma = _dask_aware(_estimate.estimate_sigma, _estimate_sigma_tiled)
