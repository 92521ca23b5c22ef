"""The denoisers, built on the operation (:mod:`nlm.ops`) and the noise layer
(:mod:`nlm.noise`): non-local means (:mod:`~nlm.denoisers.means`, its speckle
mode :mod:`~nlm.denoisers.speckle` and streamed video
:mod:`~nlm.denoisers.video`) and NL-Bayes (:mod:`~nlm.denoisers.bayes`).

They work on in-memory arrays.  Dask arrays are dispatched one layer up, by
:mod:`nlm.tiling` (whose wrappers are the public ``nlm.denoise_nl_means``,
``nlm.denoise_nl_bayes`` and ``nlm.estimate_sigma``).
"""
