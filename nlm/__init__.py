"""nlm: fast non-local means denoising and non-local neural operations.

The public names are imported lazily so that ``import nlm`` (and therefore
``nlm --help``) stays cheap and does not import Numba.
"""

__version__ = "0.1.0"

# public name -> submodule that defines it
_LAZY = {
    "denoise_nl_means": "nlm.denoise",
    "estimate_sigma": "nlm.noise",
    "estimate_noise": "nlm.noise",
    "denoise_nl_bayes": "nlm.bayes",
    "default_h": "nlm.denoise",
    "default_patch": "nlm.denoise",
    "UnsupportedDimensionError": "nlm.denoise",
    "nonlocal_op": "nlm.operation",
    "Pairwise": "nlm.kernels",
    "Representation": "nlm.kernels",
    "EuclideanGaussian": "nlm.kernels",
    "PatchEuclideanGaussian": "nlm.kernels",
    "Identity": "nlm.kernels",
    "Linear": "nlm.kernels",
    "Gaussian": "nlm.kernels",
    "EmbeddedGaussian": "nlm.kernels",
    "DotProduct": "nlm.kernels",
    "Concatenation": "nlm.kernels",
    "NonLocalBlock": "nlm.block",
    "convert_pytorch_port_state": "nlm.block",
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
