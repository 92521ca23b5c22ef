"""The kernel interface of the generic non-local operation.

The operation (Wang et al. 2018, eq. 1) is

    y_i = 1 / C(x) * sum_j f(x_i, x_j) g(x_j)

and this module defines its two pluggable parts:

* a **pairwise function** (:class:`Pairwise`): turns the input map into query
  features ``q`` (for positions i) and key features ``k`` (for positions j),
  scores pairs of them, and names its normaliser ``C``;
* a **representation** (:class:`Representation`): the values ``g(x_j)`` that
  are averaged.

Adding a new ``f`` means subclassing :class:`Pairwise` and writing
``features``, ``scores`` and ``pair_scores`` (a few lines of NumPy); the
engines in :mod:`nlm.ops.operation` do the rest (chunking, windowing, the stable
softmax).  A pairwise function may also offer a compiled fast path
(:meth:`Pairwise.fast_windowed`) that the engine uses instead of the generic
NumPy loop when it applies; :class:`PatchEuclideanGaussian` does, and that fast
path *is* the non-local means filter.

Normalisation
-------------
``normalization = "softmax"``
    ``f = exp(score)`` and ``C = sum_j f``.  ``scores`` returns the *log* of
    ``f``; the engine subtracts the row maximum before exponentiating, so the
    result is exact and overflow-free.
``normalization = "count"``
    ``f = score`` and ``C = N'``, the number of positions ``j`` that were summed
    (all of them, or those inside the window).

Gradients
---------
The four pairwise functions of Wang et al. (:class:`PlainGaussian`,
:class:`EmbeddedGaussian`, :class:`DotProduct`, :class:`Concatenation`) also
implement :meth:`Pairwise.score_grads` and :meth:`Pairwise.pair_score_grads`,
the vector-Jacobian products of ``scores``/``pair_scores``; the backward
engines of :mod:`nlm.ops.operation` chain them with the softmax / count
normalisation.  The Euclidean Gaussians of non-local means do not (they are
not trained).

Array layout: every map is channel-last, ``(*spatial, channels)``; ``q``/``k``
rows handed to ``scores`` are flattened positions, ``(n, d)``.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    #: (dq, dk, dparams) of a vector-Jacobian product
    Grads = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]

__all__ = [
    "Pairwise",
    "Representation",
    "EuclideanGaussian",
    "PatchEuclideanGaussian",
    "Identity",
    "Linear",
    "PlainGaussian",
    "EmbeddedGaussian",
    "DotProduct",
    "Concatenation",
]


class Pairwise:
    """Base class of pairwise functions ``f`` with their normaliser ``C``.

    Subclasses set :attr:`normalization` and implement :meth:`features`,
    :meth:`scores` and :meth:`pair_scores`.
    """

    #: ``"softmax"`` (C = sum of f, f = exp(score)) or ``"count"`` (C = N')
    normalization = "softmax"

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(q, k)``: query and key feature maps of ``x``.

        Parameters
        ----------
        x : ndarray, shape (*spatial, C)

        Returns
        -------
        q, k : ndarray, shapes (*spatial, dq) and (*spatial, dk)
        """
        raise NotImplementedError

    def scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Scores of every pair: ``(n, dq), (m, dk) -> (n, m)``."""
        raise NotImplementedError

    def pair_scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        """Scores of aligned pairs of rows: ``(n, dq), (n, dk) -> (n,)``."""
        raise NotImplementedError

    def fast_windowed(self, x: np.ndarray, g: Representation, window: int | Sequence[int]) -> np.ndarray | None:
        """Optional compiled path for the windowed operation.

        Return the result ``y`` (same layout as :func:`nlm.ops.operation.nonlocal_op`)
        or ``None`` when no fast path applies to this ``g``/``window``.
        """
        return None

    def score_grads(self, q: np.ndarray, k: np.ndarray, ds: np.ndarray) -> Grads:
        """Vector-Jacobian product of :meth:`scores`.

        Parameters
        ----------
        q : ndarray, shape (n, dq)
        k : ndarray, shape (m, dk)
        ds : ndarray, shape (n, m)
            Gradient of a loss with respect to ``scores(q, k)``.

        Returns
        -------
        dq : ndarray, shape (n, dq)
        dk : ndarray, shape (m, dk)
        dparams : dict of str to ndarray
            Gradients of the function's own parameters (empty when it has none).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement gradients")

    def pair_score_grads(self, q: np.ndarray, k: np.ndarray, ds: np.ndarray) -> Grads:
        """Vector-Jacobian product of :meth:`pair_scores`: ``ds`` has shape (n,).

        Returns ``(dq, dk, dparams)`` with ``dq``/``dk`` of the shapes of ``q``/``k``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement gradients")


class Representation:
    """Base class of representations ``g``: ``(*spatial, C) -> (*spatial, C')``."""

    def __call__(self, x):
        raise NotImplementedError


class Identity(Representation):
    """``g(x_j) = x_j``."""

    def __call__(self, x):
        return x

    def __repr__(self):
        return "Identity()"


class Linear(Representation):
    """``g(x_j) = W x_j + b``: a 1x1 (1x1x1) convolution.

    Parameters
    ----------
    weight : array_like, shape (out_channels, in_channels)
        The layout PyTorch uses for the weight of a 1x1 convolution (with the
        trailing singleton kernel axes dropped).
    bias : array_like, shape (out_channels,), optional
    """

    def __init__(self, weight, bias=None):
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise ValueError(f"weight must be 2-D (out_channels, in_channels), got shape {weight.shape}")
        if bias is not None:
            bias = np.asarray(bias)
            if bias.shape != (weight.shape[0],):
                raise ValueError(f"bias must have shape ({weight.shape[0]},), got {bias.shape}")
        self.weight = weight
        self.bias = bias

    def __call__(self, x):
        if x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"input has {x.shape[-1]} channels, weight expects {self.weight.shape[1]}"
            )
        w = self.weight.astype(x.dtype, copy=False)
        y = x @ w.T
        if self.bias is not None:
            y = y + self.bias.astype(x.dtype, copy=False)
        return y


def _check_real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _check_h_sigma(h, sigma):
    h = _check_real(h, "h")
    sigma = _check_real(sigma, "sigma")
    if np.isnan(h) or h <= 0:
        raise ValueError(f"h must be a number > 0 (inf allowed: uniform weights), got {h}")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    return h, sigma


#: |x| range (powers of two, per float type) inside which the compiled NLM
#: kernel runs on the values as given; outside it the data, h and sigma are
#: scaled by a power of two (exact) so that squared differences, their box sums
#: and the weighted sums can neither overflow nor underflow
_SAFE_EXP = {4: 24, 8: 128}


def _unscale(y, shift, x):
    """Undo :func:`_rescale` on a result ``y`` of weighted means of ``x``.

    Exact (a power of two); the result is also clipped to ``x``'s value
    range, which it lies in mathematically: rounding must not push a mean of
    values at the float type's maximum past it (to inf).
    """
    if not shift:
        return y
    with np.errstate(over="ignore"):
        y = np.ldexp(y, -shift).astype(y.dtype, copy=False)
    return np.clip(y, x.min(), x.max(), out=y)


def _float_dtype(dtype):
    """Native float32 for float16/float32 of any byte order, else native float64."""
    return np.dtype(np.float32 if dtype.kind == "f" and dtype.itemsize <= 4 else np.float64)


def _rescale(x, h, sigma):
    """``(x s, h s, sigma' s, k)`` with ``s = 2^k``, for the NLM kernel.

    The weights ``exp(-max(d^2 - 2 sigma^2, 0) / h^2)`` are invariant under
    ``x, h, sigma -> s x, s h, s sigma``, and multiplying by a power of two is
    exact, so the result is the same as without scaling (bit for bit where no
    value is subnormal) but overflow-free near the float type's maximum.
    ``sigma`` is also clipped to the value range of ``x``: any ``sigma >=
    max - min`` already gives every pair the weight 1 (``d^2 <= (max - min)^2
    < 2 sigma^2``), and the clip keeps ``2 sigma^2`` finite.  ``x`` must be
    finite and float32 or float64.
    """
    lo, hi = float(x.min()), float(x.max())
    big = max(abs(lo), abs(hi))
    k = 0
    if big > 0:
        e = int(np.frexp(big)[1])  # big = m 2^e, 0.5 <= m < 1
        if abs(e) > _SAFE_EXP.get(x.dtype.itemsize, 24):
            k = -e
            x = np.ldexp(x, k).astype(x.dtype, copy=False)
    sigma = min(sigma, hi - lo)
    with np.errstate(over="ignore", under="ignore"):  # h s -> inf is the right limit (weights 1)
        return x, float(np.ldexp(h, k)), float(np.ldexp(sigma, k)), k


class EuclideanGaussian(Pairwise):
    """Gaussian of the mean squared Euclidean distance, with noise correction.

    ``f(a, b) = exp(-max(|a - b|^2 / d - 2 sigma^2, 0) / h^2)`` where ``d`` is
    the feature length.  This is the similarity of non-local means (Buades et
    al. 2005) when the features are patches; ``C = sum_j f``.

    Parameters
    ----------
    h : float > 0
        Filtering parameter, in the units of the features.  ``inf`` gives
        uniform weights (the plain mean over the window).
    sigma : float >= 0
        Noise standard deviation subtracted (as ``2 sigma^2``) from the
        distance; 0 disables the correction.
    """

    normalization = "softmax"

    def __init__(self, h, sigma=0.0):
        self.h, self.sigma = _check_h_sigma(h, sigma)

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x, x

    def _from_d2(self, d2):
        # products, not powers: a huge h or sigma gives inf (weights 1), never
        # an OverflowError
        e = np.maximum(d2 - 2.0 * self.sigma * self.sigma, 0.0)
        if self.h == np.inf:
            return np.zeros_like(e)  # uniform weights, even where d2 overflowed
        return -(e / self.h) / self.h

    def scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        # |a-b|^2 = |a|^2 + |b|^2 - 2 a.b, clipped at 0 against rounding
        d2 = (q * q).sum(1)[:, None] + (k * k).sum(1)[None, :] - 2.0 * (q @ k.T)
        np.maximum(d2, 0.0, out=d2)
        return self._from_d2(d2 / q.shape[1])

    def pair_scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        diff = q - k
        return self._from_d2((diff * diff).mean(axis=1))

    def __repr__(self):
        return f"{type(self).__name__}(h={self.h!r}, sigma={self.sigma!r})"


class PatchEuclideanGaussian(EuclideanGaussian):
    """:class:`EuclideanGaussian` over box patches: non-local means.

    The features of position ``i`` are the values of the patch centred on
    it (``patch_size`` pixels along each spatial axis), over all channels,
    with reflect padding at the borders.  With ``g = Identity`` and a window,
    the operation is exactly the non-local means filter, and
    :meth:`fast_windowed` evaluates it with the compiled per-offset algorithm
    (:mod:`nlm.ops._nlm_kernels`) instead of materialising patch vectors.

    Parameters
    ----------
    h, sigma : float
        See :class:`EuclideanGaussian`.
    patch_size : int or tuple of int, odd, >= 1
        Side of the patch in pixels: one for every axis, or one per spatial
        axis (e.g. ``(1, 7, 7)``: 7x7 patches within each frame of a video).
    spatial_ndim : int
        Number of spatial axes of the maps this function is applied to (the
        last axis is always channels).
    """

    def __init__(self, h, sigma=0.0, patch_size=7, spatial_ndim=2):
        super().__init__(h, sigma)
        ok = isinstance(spatial_ndim, (numbers.Integral, np.integer)) and not isinstance(spatial_ndim, (bool, np.bool_))
        if not ok or not 1 <= spatial_ndim <= 63:  # NumPy arrays have at most 64 axes, one is channels
            raise ValueError(f"spatial_ndim must be an integer from 1 to 63, got {spatial_ndim!r}")
        self.spatial_ndim = int(spatial_ndim)
        sizes = (patch_size,) * self.spatial_ndim if np.ndim(patch_size) == 0 else tuple(patch_size)
        if len(sizes) != self.spatial_ndim or any(
            not isinstance(p, (numbers.Integral, np.integer)) or isinstance(p, (bool, np.bool_)) or p < 1 or p % 2 == 0
            for p in sizes
        ):
            raise ValueError(
                f"patch_size must be an odd integer >= 1 or {self.spatial_ndim} of them, got {patch_size!r}"
            )
        sizes = tuple(int(p) for p in sizes)
        #: the int given, or the tuple when the sides differ
        self.patch_size = sizes[0] if np.ndim(patch_size) == 0 else sizes
        self.patch_sizes = sizes

    def patch_radii(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Patch radius used along each spatial axis of a map of shape ``spatial``.

        ``patch_size // 2`` (per axis), clipped to ``n - 1`` on an axis of
        ``n`` pixels: the most that reflect padding can supply without
        repeating a pixel twice in a row.  An image at least
        ``patch_size // 2 + 1`` pixels long on every axis uses the full patch.
        """
        return tuple(min(p // 2, max(int(n) - 1, 0)) for p, n in zip(self.patch_sizes, spatial))

    def _check_nd(self, x):
        if x.ndim != self.spatial_ndim + 1:
            raise ValueError(
                f"x has {x.ndim - 1} spatial axes (plus channels), this PatchEuclideanGaussian "
                f"was built with spatial_ndim={self.spatial_ndim}"
            )

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check_nd(x)
        nd = self.spatial_ndim
        spatial = x.shape[:nd]
        radii = self.patch_radii(spatial)
        padded = np.pad(x, [(r, r) for r in radii] + [(0, 0)], mode="reflect")
        parts = []
        for off in np.ndindex(*[2 * r + 1 for r in radii]):
            sl = tuple(slice(o, o + n) for o, n in zip(off, spatial))
            parts.append(padded[sl])
        p = np.concatenate(parts, axis=-1)
        return p, p

    def fast_windowed(self, x: np.ndarray, g: Representation, window: int | Sequence[int]) -> np.ndarray | None:
        if not isinstance(g, Identity):
            return None
        from nlm.ops._nlm_kernels import nl_means_windowed

        self._check_nd(x)
        nd = self.spatial_ndim
        sizes = tuple(2 * r + 1 for r in self.patch_radii(x.shape[:nd]))
        x = np.asarray(x, dtype=_float_dtype(x.dtype))
        xs, h, sigma, shift = _rescale(x, self.h, self.sigma)
        y = nl_means_windowed(xs, sizes, window, h, sigma, nd)
        return _unscale(y, shift, x)

    def __repr__(self):
        return (
            f"PatchEuclideanGaussian(h={self.h!r}, sigma={self.sigma!r}, "
            f"patch_size={self.patch_size!r}, spatial_ndim={self.spatial_ndim!r})"
        )


# --------------------------------------------------------------------------
# The pairwise functions of the non-local neural block (Wang et al. 2018)
# --------------------------------------------------------------------------


def _check_scale(scale):
    if isinstance(scale, (bool, np.bool_)):
        raise TypeError("scale must be a number (use 1/sqrt(d) for the scaled form), got a bool")
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise TypeError(f"scale must be a real number, got {type(scale).__name__}") from None
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0, got {scale}")
    return scale


def _check_repr(name, r):
    if r is None:
        return Identity()
    if not isinstance(r, Representation):
        raise TypeError(f"{name} must be a nlm.ops.kernels.Representation (e.g. Linear), got {type(r).__name__}")
    return r


class _Bilinear(Pairwise):
    """Shared code of the pairwise functions whose score is ``scale * q.k``."""

    def __init__(self, theta=None, phi=None, scale=1.0):
        self.theta = _check_repr("theta", theta)
        self.phi = _check_repr("phi", phi)
        self.scale = _check_scale(scale)

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.theta(x), self.phi(x)

    def scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        s = q @ k.T
        if self.scale != 1.0:
            s *= s.dtype.type(self.scale)
        return s

    def pair_scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        s = np.einsum("nd,nd->n", q, k)
        if self.scale != 1.0:
            s *= s.dtype.type(self.scale)
        return s

    def score_grads(self, q: np.ndarray, k: np.ndarray, ds: np.ndarray) -> Grads:
        dq = ds @ k
        dk = ds.T @ q
        if self.scale != 1.0:
            dq *= dq.dtype.type(self.scale)
            dk *= dk.dtype.type(self.scale)
        return dq, dk, {}

    def pair_score_grads(self, q: np.ndarray, k: np.ndarray, ds: np.ndarray) -> Grads:
        ds = ds[:, None] * ds.dtype.type(self.scale)
        return ds * k, ds * q, {}

    def __repr__(self):
        return f"{type(self).__name__}(theta={self.theta!r}, phi={self.phi!r}, scale={self.scale!r})"


class PlainGaussian(_Bilinear):
    """The paper's (plain, not embedded) Gaussian: ``f(x_i, x_j) = exp(scale * x_i^T x_j)``, ``C = sum_j f``.

    The features are the input channels themselves (no embedding), so the
    operation is a softmax over ``j`` of the raw dot products.

    Parameters
    ----------
    scale : float > 0, default 1
        Multiplies the dot product before the exponential; ``1/sqrt(C)`` is
        the scaled form.

    Raises
    ------
    TypeError, ValueError
        For a ``scale`` that is not a finite positive number.

    Notes
    -----
    Scores of an ``n x m`` block cost ``O(n m C)``; gradients the same.

    References
    ----------
    .. [1] X. Wang et al., "Non-local Neural Networks", CVPR 2018, sec. 3.2.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.ops.operation import nonlocal_op
    >>> x = np.random.default_rng(0).normal(size=(5, 3))
    >>> y = nonlocal_op(x, PlainGaussian())
    >>> y.shape
    (5, 3)
    """

    normalization = "softmax"

    def __init__(self, scale=1.0):
        super().__init__(None, None, scale)

    def __repr__(self):
        return f"PlainGaussian(scale={self.scale!r})"


class EmbeddedGaussian(_Bilinear):
    """Embedded Gaussian: ``f = exp(scale * theta(x_i)^T phi(x_j))``, ``C = sum_j f``.

    With ``C = sum_j f`` the operation is a softmax over ``j``: the
    self-attention of Vaswani et al.

    Parameters
    ----------
    theta, phi : Representation
        The embeddings, usually :class:`Linear` (a 1x1 convolution); their
        outputs must have the same length ``d``.
    scale : float > 0, default 1
        ``1/sqrt(d)`` gives the scaled form of the official code.

    Raises
    ------
    TypeError, ValueError
        For embeddings that are not representations or a bad ``scale``.

    Notes
    -----
    Scores of an ``n x m`` block cost ``O(n m d)``.

    References
    ----------
    .. [1] X. Wang et al., "Non-local Neural Networks", CVPR 2018, sec. 3.2.

    Examples
    --------
    >>> import numpy as np
    >>> w = np.eye(2, 3)
    >>> f = EmbeddedGaussian(Linear(w), Linear(w), scale=2 ** -0.5)
    >>> f.normalization
    'softmax'
    """

    normalization = "softmax"


class DotProduct(_Bilinear):
    """Dot product: ``f = scale * theta(x_i)^T phi(x_j)``, ``C = N'``.

    ``N'`` is the number of positions ``j`` summed (all of them, or the ones
    inside the window).

    Parameters
    ----------
    theta, phi : Representation
        The embeddings (usually :class:`Linear`).
    scale : float > 0, default 1

    Raises
    ------
    TypeError, ValueError
        For embeddings that are not representations or a bad ``scale``.

    Notes
    -----
    Scores of an ``n x m`` block cost ``O(n m d)``.

    References
    ----------
    .. [1] X. Wang et al., "Non-local Neural Networks", CVPR 2018, sec. 3.2.

    Examples
    --------
    >>> import numpy as np
    >>> f = DotProduct(Linear(np.eye(2)), Linear(np.eye(2)))
    >>> f.scores(np.ones((1, 2)), np.ones((3, 2)))
    array([[2., 2., 2.]])
    """

    normalization = "count"


class Concatenation(Pairwise):
    """Concatenation: ``f = ReLU(w_f^T [theta(x_i), phi(x_j)])``, ``C = N'``.

    The score is separable, ``w_f^T [theta_i, phi_j] = a_i + b_j`` with
    ``a = theta w_f[:d]`` and ``b = phi w_f[d:]``, so a block of scores is
    ``relu(a[:, None] + b[None, :])`` and the ``2d x N x N'`` tensor of the
    literal definition is never formed.

    Parameters
    ----------
    theta, phi : Representation
        The embeddings (usually :class:`Linear`), of output lengths ``dq`` and
        ``dk``.
    weight : array_like, shape (1, dq + dk) or (dq + dk,)
        ``w_f``: the weight of the 1x1 convolution (one output channel, no
        bias) that projects the concatenated vector to a scalar; the first
        ``dq`` entries act on ``theta``.

    Raises
    ------
    TypeError, ValueError
        For embeddings that are not representations or a ``weight`` that is
        not a vector.

    Notes
    -----
    Scores of an ``n x m`` block cost ``O((n + m) d + n m)``.  Gradients are
    taken through the ReLU with the convention ``relu'(0) = 0``.

    References
    ----------
    .. [1] X. Wang et al., "Non-local Neural Networks", CVPR 2018, sec. 3.2.

    Examples
    --------
    >>> import numpy as np
    >>> f = Concatenation(Linear(np.eye(1)), Linear(np.eye(1)), weight=[1.0, -1.0])
    >>> f.scores(np.array([[1.0], [3.0]]), np.array([[2.0]]))
    array([[0.],
           [1.]])
    """

    normalization = "count"

    def __init__(self, theta=None, phi=None, weight=None):
        self.theta = _check_repr("theta", theta)
        self.phi = _check_repr("phi", phi)
        if weight is None:
            raise TypeError("weight (w_f) is required")
        weight = np.asarray(weight)
        if weight.ndim == 2 and weight.shape[0] == 1:
            weight = weight[0]
        if weight.ndim != 1 or weight.size < 2 or not np.issubdtype(weight.dtype, np.number):
            raise ValueError(f"weight must be numeric of shape (1, dq + dk) or (dq + dk,), got shape {weight.shape}")
        self.weight = weight

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.theta(x), self.phi(x)

    def _split(self, q, k):
        dq = q.shape[1]
        if dq + k.shape[1] != self.weight.size:
            raise ValueError(
                f"weight has {self.weight.size} entries, features have {dq} + {k.shape[1]}"
            )
        w = self.weight.astype(np.result_type(q, k), copy=False)
        return w[:dq], w[dq:]

    def _ab(self, q, k):
        wq, wk = self._split(q, k)
        return q @ wq, k @ wk

    def scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        a, b = self._ab(q, k)
        s = a[:, None] + b[None, :]
        np.maximum(s, 0, out=s)
        return s

    def pair_scores(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        a, b = self._ab(q, k)
        return np.maximum(a + b, 0)

    def _grads(self, q, k, da, db):
        wq, wk = self._split(q, k)
        dq = da[:, None] * wq[None, :]
        dk = db[:, None] * wk[None, :]
        dw = np.concatenate([q.T @ da, k.T @ db])[None, :]
        return dq, dk, {"weight": dw}

    def score_grads(self, q: np.ndarray, k: np.ndarray, ds: np.ndarray) -> Grads:
        a, b = self._ab(q, k)
        pre = a[:, None] + b[None, :]
        g = np.where(pre > 0, ds, 0)
        return self._grads(q, k, g.sum(axis=1), g.sum(axis=0))

    def pair_score_grads(self, q: np.ndarray, k: np.ndarray, ds: np.ndarray) -> Grads:
        a, b = self._ab(q, k)
        g = np.where(a + b > 0, ds, 0)
        return self._grads(q, k, g, g)

    def __repr__(self):
        return f"Concatenation(theta={self.theta!r}, phi={self.phi!r}, weight={self.weight!r})"


# old name -> new one: still importable from this module, with a DeprecationWarning
_RENAMED = {"Gaussian": "PlainGaussian"}


def __getattr__(name):
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"{__name__}.{name} is deprecated and will be removed: use {__name__}.{new} "
        f"(nlm.noise.{name} is the noise model)",
        DeprecationWarning,
        stacklevel=2,
    )
    return globals()[new]
