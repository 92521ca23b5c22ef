"""A buffer lent to the next 1-D/2-D non-local means run as its accumulator (:func:`scratch`).

The command line's in-memory path uses it to save one image-sized buffer;
the row kernel (:mod:`nlm.ops._nlm_kernels`) takes the loan through
:func:`borrow`.  Nothing here is compiled.
"""

import contextlib
import contextvars

import numpy as np

#: the buffer that :func:`scratch` lends to the next 2-D filter of this context
_SCRATCH = contextvars.ContextVar("nlm_scratch", default=None)


@contextlib.contextmanager
def scratch(buffer):
    """Lend ``buffer`` to the next 1-D/2-D filter run in this context as its accumulator.

    The command line's in-memory path uses it to keep the peak at the
    padded image plus the accumulators: it converts the image to float into
    the first ``C Y X`` elements of a flat ``buffer`` of ``(C + 1) Y X``
    elements (the last plane is not touched, so it costs no memory yet) and
    filters that float image inside this context.  Once
    :func:`nl_means_windowed` has copied its input into the padded image, it
    needs nothing of the input any more, so when the input lies in
    ``buffer`` (it was not rescaled or converted on the way) and ``buffer``
    holds ``(C + 1) Y X`` elements of the kernel's float type, the
    accumulator planes are taken from ``buffer`` instead of being allocated:
    one image-sized buffer less.  The result is then a view of ``buffer``,
    and the input's values are overwritten (the caller must not need them).
    The loan is used at most once; otherwise nothing changes, and the result
    is the same either way, bit for bit.

    Parameters
    ----------
    buffer : numpy.ndarray
        C-contiguous, one axis.
    """
    token = _SCRATCH.set([buffer])
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def borrow(x, C, Y, X, dtype):
    """The (C + 1, Y, X) accumulator lent by :func:`scratch` for input ``x``, or None."""
    loan = _SCRATCH.get()
    if not loan:
        return None
    buffer = loan[0]
    n = (C + 1) * Y * X
    if (
        buffer.dtype != dtype
        or buffer.ndim != 1
        or not buffer.flags.c_contiguous
        or not buffer.flags.writeable
        or buffer.size < n
        or not np.may_share_memory(x, buffer)
    ):
        return None
    loan.clear()  # once
    return buffer[:n].reshape((C + 1, Y, X))
