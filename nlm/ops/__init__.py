"""The generic non-local operation and the compiled kernels.

``y_i = 1 / C(x) * sum_j f(x_i, x_j) g(x_j)``: :mod:`nlm.ops.kernels` holds
the interface of ``f`` (:class:`~nlm.ops.kernels.Pairwise`, with its
normaliser ``C``) and ``g`` (:class:`~nlm.ops.kernels.Representation`) and
their implementations; :mod:`nlm.ops.operation` evaluates the operation
(dense and windowed engines); the private modules ``_nlm_kernels`` (the
non-local means fast path) and ``_bayes_kernels`` (NL-Bayes) are the Numba
kernels.  Beside the noise layer at the bottom of the import graph: nothing
here imports a denoiser.
"""

from nlm.ops._jit_cache import compile_pending  # cheap: imports nothing compiled until called

__all__ = ["compile_pending"]
