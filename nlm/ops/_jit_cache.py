"""Whether a call is about to compile kernels (a first run, or an emptied cache).

Numba keeps compiled kernels in an on-disk cache (``cache=True``, see
:mod:`nlm._config`): an index file per kernel, next to the source in
``__pycache__`` or under ``NUMBA_CACHE_DIR``.  A kernel with no compiled
signature in this process and no usable index entry will be compiled on its
first call, which takes seconds; the command line says so beforehand.
"""

import importlib

#: the kernels each kind of filter call compiles first: (module, names) pairs
_KERNELS = {
    # 1-D, 2-D and N-D images, video: the row-streaming kernel
    "nlm": (("nlm.ops._nlm_kernels", ("_rows_band",)),),
    # volumes
    "nlm3d": (("nlm.ops._nlm_volume", ("_nlm_bands", "_nlm_reduce")),),
    # 2-D NL-Bayes and its NL-Ridge pass (on by default for grey and colour images with additive noise)
    "bayes": (("nlm.ops._bayes_kernels", ("_band", "_normalise")), ("nlm.ops._ridge_kernels", ("_cell",))),
    "bayes3d": (("nlm.ops._bayes_volume", ("bayes_step3",)),),
    "bayesvideo": (("nlm.ops._bayes_video", ("video_step",)),),
}


def _cached(dispatcher):
    """True when ``dispatcher`` is compiled in this process or has index entries in its cache."""
    if dispatcher.signatures:
        return True
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is None:  # caching off: every process compiles
        return False
    try:
        # {} when the file is missing or was written for another version of the source
        return bool(cache_file._load_index())
    except Exception:  # pragma: no cover - depends on Numba internals
        return True


def compile_pending(kind="nlm"):
    """True when a filter call of ``kind`` (a key of ``_KERNELS``: ``"nlm"``, ``"bayes3d"``, ...) will compile first."""
    for module, names in _KERNELS[kind]:
        mod = importlib.import_module(module)
        if not all(_cached(getattr(mod, name)) for name in names):
            return True
    return False
