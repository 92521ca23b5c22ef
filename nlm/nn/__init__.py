"""The neural non-local block (Wang et al., CVPR 2018) on the same ``f``/``g``
interface as the denoisers (:mod:`nlm.ops`)."""
