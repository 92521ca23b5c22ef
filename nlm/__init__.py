"""nlm: fast non-local means denoising and non-local neural operations.

The public names are imported lazily so that ``import nlm`` (and therefore
``nlm --help``) stays cheap and does not import Numba.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "denoise_nl_means": "nlm.tiling",
    "estimate_sigma": "nlm.tiling",
    "estimate_noise": "nlm.noise",
    "denoise_nl_bayes": "nlm.tiling",
    "default_h": "nlm.denoisers.means",
    "default_patch": "nlm.denoisers.means",
    "UnsupportedDimensionError": "nlm.denoisers.means",
    "nonlocal_op": "nlm.ops.operation",
    "Pairwise": "nlm.ops.kernels",
    "Representation": "nlm.ops.kernels",
    "EuclideanGaussian": "nlm.ops.kernels",
    "PatchEuclideanGaussian": "nlm.ops.kernels",
    "Identity": "nlm.ops.kernels",
    "Linear": "nlm.ops.kernels",
    "PlainGaussian": "nlm.ops.kernels",
    "EmbeddedGaussian": "nlm.ops.kernels",
    "DotProduct": "nlm.ops.kernels",
    "Concatenation": "nlm.ops.kernels",
    "NonLocalBlock": "nlm.nn.block",
    "convert_pytorch_port_state": "nlm.nn.block",
}

# old public name -> new one: still importable, with a DeprecationWarning
_RENAMED = {
    # the pairwise function of the non-local block; nlm.noise.Gaussian is the noise model
    "Gaussian": "PlainGaussian",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    new = _RENAMED.get(name)
    if new is not None:
        import warnings

        warnings.warn(
            f"nlm.{name} is deprecated and will be removed: use nlm.{new} (the pairwise function of the non-local "
            f"block; nlm.noise.{name} is the noise model)",
            DeprecationWarning,
            stacklevel=2,
        )
        return __getattr__(new)  # not cached, so that every use warns
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nlm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
