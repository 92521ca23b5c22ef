"""nlm: fast non-local means denoising and non-local neural operations.

The public names are imported lazily so that ``import nlm`` (and therefore
``nlm --help``) stays cheap and does not import Numba.
"""

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
    "Gaussian": "nlm.ops.kernels",
    "EmbeddedGaussian": "nlm.ops.kernels",
    "DotProduct": "nlm.ops.kernels",
    "Concatenation": "nlm.ops.kernels",
    "NonLocalBlock": "nlm.nn.block",
    "convert_pytorch_port_state": "nlm.nn.block",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nlm' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
