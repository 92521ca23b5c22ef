"""The non-local block of Wang et al. (2018) on the shared non-local operation.

    z_i = BN(W_z y_i) + x_i,     y_i = 1 / C(x) * sum_j f(x_i, x_j) g(x_j)

The operation ``y`` is evaluated by the same engines as the non-local means
filter (:func:`nlm.ops.operation.attend` for the dense form, the per-offset
``_windowed`` engine with ``window=``), with ``f`` one of the pairwise
functions of :mod:`nlm.ops.kernels` (:class:`~nlm.ops.kernels.PlainGaussian`,
:class:`~nlm.ops.kernels.EmbeddedGaussian`, :class:`~nlm.ops.kernels.DotProduct`,
:class:`~nlm.ops.kernels.Concatenation`) built from the block's weights, and
``g`` a :class:`~nlm.ops.kernels.Linear` 1x1 projection.  The backward pass uses
the matching backward engines (:func:`nlm.ops.operation.attend_backward`), which
recompute the affinity chunk by chunk, so neither direction ever holds the
``N x N'`` affinity of a whole map.

Layout
------
Inputs are batched and channel-last, ``(batch, *spatial, channels)``, with 1,
2 or 3 spatial axes (``(N, L, C)``, ``(N, H, W, C)``, ``(N, T, H, W, C)``);
``channels_first=True`` takes and returns PyTorch's ``(N, C, *spatial)``.

Weights are plain arrays named and shaped as in a PyTorch module made of
1x1 convolutions (``(out_channels, in_channels)``, the trailing ``1x1``
kernel axes dropped; arrays that still have them are accepted by
:meth:`NonLocalBlock.load_state_dict`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from nlm.ops.kernels import Concatenation, DotProduct, EmbeddedGaussian, Linear, PlainGaussian
from nlm.ops.operation import (
    _check_chunk,
    _windowed,
    _windowed_backward,
    affinity,
    attend,
    attend_backward,
    check_window,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from numpy.typing import ArrayLike

__all__ = ["NonLocalBlock", "convert_pytorch_port_state"]

_MODES = {
    "gaussian": "gaussian",
    "embedded": "embedded",
    "embedded_gaussian": "embedded",
    "dot": "dot",
    "dot_product": "dot",
    "concat": "concat",
    "concatenation": "concat",
    "concatenate": "concat",
}
_DEFAULT_POOL = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}
#: affinity entries per chunk when ``chunk_size=None`` (8 MiB in float64): small
#: enough to stay in cache, which measured faster than larger chunks ...
_CHUNK_ELEMENTS = 1 << 20
#: ... but at least this many rows: the backward pass accumulates ``dk``/``dv``
#: (``N' x d``) once per chunk, which must stay small next to the chunk's work
_CHUNK_MIN_ROWS = 64


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _compute_dtype(x):
    """float16/float32 (any byte order) compute in native float32; anything else in native float64."""
    return np.dtype(np.float32 if x.dtype.kind == "f" and x.dtype.itemsize <= 4 else np.float64)


def _max_pool(x, pool):
    """Max-pool ``(B, *S, C)`` with kernel = stride = ``pool``, dropping remainders.

    Returns the pooled map and the index of the maximum inside each window
    (row-major over the window; the first one on ties).
    """
    B, S, C = x.shape[0], x.shape[1:-1], x.shape[-1]
    nd = len(S)
    So = tuple(n // p for n, p in zip(S, pool))
    crop = x[(slice(None),) + tuple(slice(0, o * p) for o, p in zip(So, pool))]
    shape = (B,) + sum(((o, p) for o, p in zip(So, pool)), ()) + (C,)
    outer = [0] + [1 + 2 * a for a in range(nd)] + [1 + 2 * nd]
    inner = [2 + 2 * a for a in range(nd)]
    r = crop.reshape(shape).transpose(outer + inner).reshape((B,) + So + (C, math.prod(pool)))
    idx = r.argmax(axis=-1)
    return np.take_along_axis(r, idx[..., None], axis=-1)[..., 0], idx


def _max_unpool(d, idx, pool, spatial):
    """Backward of :func:`_max_pool`: route ``d`` to the argmax of each window."""
    B, So, C = d.shape[0], d.shape[1:-1], d.shape[-1]
    nd = len(So)
    buf = np.zeros((B,) + So + (C, math.prod(pool)), dtype=d.dtype)
    np.put_along_axis(buf, idx[..., None], d[..., None], axis=-1)
    perm = [0]
    for a in range(nd):
        perm += [1 + a, 2 + nd + a]
    perm.append(1 + nd)
    crop = buf.reshape((B,) + So + (C,) + tuple(pool)).transpose(perm)
    crop = crop.reshape((B,) + tuple(o * p for o, p in zip(So, pool)) + (C,))
    out = np.zeros((B,) + tuple(spatial) + (C,), dtype=d.dtype)
    out[(slice(None),) + tuple(slice(0, n) for n in crop.shape[1:-1])] = crop
    return out


def _flat(a):
    return a.reshape(-1, a.shape[-1])


_PORT_NAMES = {
    "g.0": "g",  # with sub_sample the port wraps g and phi in Sequential(conv, pool)
    "phi.0": "phi",
    "W.0": "W_z",  # with batch norm: W = Sequential(conv, bn)
    "W.1": "bn",
    "W": "W_z",  # without batch norm
    "concat_project.0": "w_f",
}


def convert_pytorch_port_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a state dict of the common PyTorch port to :class:`NonLocalBlock`'s names.

    The widely used PyTorch implementation (``_NonLocalBlockND``, github.com/
    AlexHex7/Non-local_pytorch) names its layers ``theta``, ``phi``, ``g``,
    ``W`` (``W.0`` and ``W.1`` with batch norm), and ``concat_project.0``;
    with ``sub_sample`` ``phi``/``g`` become ``phi.0``/``g.0``.  That port pools
    after the projections and does not scale, so build the block with
    ``pool_order="after"`` (and its default ``scale=False``).

    Parameters
    ----------
    state : mapping of str to array_like
        E.g. ``{k: v.detach().numpy() for k, v in module.state_dict().items()}``.

    Returns
    -------
    dict of str to array_like
        Renamed entries, ready for :meth:`NonLocalBlock.load_state_dict`
        (``num_batches_tracked`` is dropped; arrays are passed through).

    Raises
    ------
    TypeError
        If ``state`` is not a mapping with string keys.

    Examples
    --------
    >>> sorted(convert_pytorch_port_state({"W.1.weight": 0, "phi.0.bias": 0, "theta.weight": 0}))
    ['bn.weight', 'phi.bias', 'theta.weight']
    """
    if not hasattr(state, "items"):
        raise TypeError(f"state must be a mapping, got {type(state).__name__}")
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"state keys must be strings, got {key!r}")
        layer, _, kind = key.rpartition(".")
        if kind == "num_batches_tracked":
            continue
        out[f"{_PORT_NAMES.get(layer, layer)}.{kind}"] = value
    return out


class NonLocalBlock:
    """Non-local block (Wang et al. 2018) in NumPy, with its backward pass.

    ``z = BN(W_z y) + x`` with ``y_i = 1/C(x) sum_j f(x_i, x_j) g(x_j)``;
    ``theta``, ``phi``, ``g`` are 1x1 projections to ``inter_channels``
    (the bottleneck), ``W_z`` projects back to ``in_channels``.

    Parameters
    ----------
    in_channels : int >= 1
        Channels ``C`` of the input.
    spatial_ndim : {1, 2, 3}, default 2
        Number of spatial axes (sequence, image, space-time volume).
    mode : {"embedded", "gaussian", "dot", "concat"}, default "embedded"
        The pairwise function (aliases "embedded_gaussian", "dot_product",
        "concatenation", "concatenate").  "gaussian" uses ``x`` itself for
        ``theta``/``phi`` (no projection weights).
    inter_channels : int >= 1, optional
        Bottleneck width ``d``; default ``max(in_channels // 2, 1)``.
    sub_sample : bool, default False
        Max-pool ``phi`` and ``g`` (never ``theta``: every output position is
        kept), so ``j`` runs over ``N' ~ N / 4`` positions in 2D/3D.
    pool_size : int or tuple of int, optional
        Max-pool kernel (= stride); default ``2`` in 1D, ``(2, 2)`` in 2D and
        ``(1, 2, 2)`` (time, height, width) in 3D.  Remainders of odd sizes
        are dropped (floor mode, as PyTorch's ``MaxPool`` does).
    pool_order : {"before", "after"}, default "before"
        "before": pool ``x`` and project the pooled map (the official Caffe2
        code); "after": project, then pool ``phi(x)`` and ``g(x)`` (the common
        PyTorch ports).
    bn : bool, default True
        Batch normalisation after ``W_z``, inference form
        ``(u - running_mean) / sqrt(running_var + eps) * weight + bias``.
    bn_eps : float > 0, default 1e-5
    scale : bool or float, default False
        Multiply the scores ``theta^T phi`` by ``1/sqrt(d)`` (``True``; ``d``
        is ``inter_channels``, or ``in_channels`` for "gaussian") or by the
        given number.  Not available for "concat".
    window : int or tuple of int, optional
        Restrict ``j`` to ``|j_a - i_a| <= window_a`` on every spatial axis
        (clipped at the borders); ``None``: every ``j``.  Not combinable with
        ``sub_sample``.  For "dot"/"concat", ``C`` is then the number of
        ``j`` in the clipped window.
    chunk_size : int, optional
        Rows ``i`` of the affinity computed at once; default: as many as fit
        in ``2**20`` affinity entries (8 MiB in float64), and at least 64.  The result does not depend on it.
    channels_first : bool, default False
        Take and return ``(N, C, *spatial)`` instead of ``(N, *spatial, C)``.
    zero_init : bool, default True
        Initialise so that the new block is the identity: the batch-norm
        ``weight`` (gamma) is 0, or, without batch norm, ``W_z`` is 0.
        ``False``: gamma = 1 and a random ``W_z``.
    seed : int or numpy.random.Generator, default 0
        Seed of the initialisation (PyTorch's default for convolutions:
        weights and biases uniform in ``+-1/sqrt(fan_in)``).

    Attributes
    ----------
    mode, in_channels, inter_channels, spatial_ndim, sub_sample, pool_size,
    pool_order, bn, bn_eps, scale, window, chunk_size, channels_first

    Raises
    ------
    TypeError, ValueError
        For any invalid argument (the message names it).

    Notes
    -----
    Weights (see :meth:`state_dict`; ``C = in_channels``, ``d =
    inter_channels``), in PyTorch's ``(out_channels, in_channels)`` layout:

    ========================================  =================
    name                                      shape
    ========================================  =================
    ``theta.weight``, ``phi.weight``          ``(d, C)``  (not for "gaussian")
    ``theta.bias``, ``phi.bias``              ``(d,)``
    ``g.weight``, ``g.bias``                  ``(d, C)``, ``(d,)``
    ``W_z.weight``, ``W_z.bias``              ``(C, d)``, ``(C,)``
    ``w_f.weight``                            ``(1, 2d)`` ("concat"; no bias)
    ``bn.weight``, ``bn.bias``                ``(C,)``  (with ``bn``)
    ``bn.running_mean``, ``bn.running_var``   ``(C,)``
    ========================================  =================

    Dtypes: float32 and float64 inputs are computed in their own precision
    (the float64 weights are cast), other inputs in float64; outputs and
    gradients have the computation dtype.

    Cost per sample with ``N`` positions, ``N'`` after pooling: time
    ``O(N N' d + N C d)`` forward and about twice that backward; memory
    ``O(chunk_size N' + N C)`` in both directions (``O(N (C + d))`` with a
    window, time ``O(N W d)`` for a window of ``W`` positions).

    References
    ----------
    .. [1] X. Wang, R. Girshick, A. Gupta, K. He, "Non-local Neural Networks",
       CVPR 2018.  https://arxiv.org/abs/1711.07971

    Examples
    --------
    >>> import numpy as np
    >>> block = NonLocalBlock(8, spatial_ndim=2, sub_sample=True, seed=0)
    >>> x = np.random.default_rng(1).normal(size=(2, 6, 7, 8))
    >>> np.array_equal(block(x), x)          # a new block is the identity
    True
    >>> dx, grads = block.backward(np.ones_like(x))
    >>> sorted(grads)[:3]
    ['W_z.bias', 'W_z.weight', 'bn.bias']
    """

    def __init__(
        self,
        in_channels: int,
        spatial_ndim: int = 2,
        *,
        mode: str = "embedded",
        inter_channels: int | None = None,
        sub_sample: bool = False,
        pool_size: int | tuple[int, ...] | None = None,
        pool_order: str = "before",
        bn: bool = True,
        bn_eps: float = 1e-5,
        scale: bool | float = False,
        window: int | tuple[int, ...] | None = None,
        chunk_size: int | None = None,
        channels_first: bool = False,
        zero_init: bool = True,
        seed: int | np.random.Generator = 0,
    ) -> None:
        if not _is_int(in_channels) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        if not _is_int(spatial_ndim) or spatial_ndim not in (1, 2, 3):
            raise ValueError(f"spatial_ndim must be 1, 2 or 3, got {spatial_ndim!r}")
        if not isinstance(mode, str) or mode.lower() not in _MODES:
            raise ValueError(f"mode must be one of {sorted(set(_MODES))}, got {mode!r}")
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        if not _is_int(inter_channels) or inter_channels < 1:
            raise ValueError(f"inter_channels must be a positive integer, got {inter_channels!r}")
        if pool_order not in ("before", "after"):
            raise ValueError(f"pool_order must be 'before' or 'after', got {pool_order!r}")
        if pool_size is None:
            pool_size = _DEFAULT_POOL[spatial_ndim]
        elif _is_int(pool_size):
            pool_size = (pool_size,) * spatial_ndim
        pool_size = tuple(pool_size) if isinstance(pool_size, (tuple, list)) else pool_size
        if (
            not isinstance(pool_size, tuple)
            or len(pool_size) != spatial_ndim
            or not all(_is_int(p) and p >= 1 for p in pool_size)
        ):
            raise ValueError(f"pool_size must be a positive int or {spatial_ndim} of them, got {pool_size!r}")
        try:
            bn_eps = float(bn_eps)
        except (TypeError, ValueError):
            raise TypeError(f"bn_eps must be a number, got {type(bn_eps).__name__}") from None
        if not np.isfinite(bn_eps) or bn_eps <= 0:
            raise ValueError(f"bn_eps must be a finite number > 0, got {bn_eps}")
        self.mode = _MODES[mode.lower()]
        self.in_channels = int(in_channels)
        self.inter_channels = int(inter_channels)
        self.spatial_ndim = int(spatial_ndim)
        self.sub_sample = bool(sub_sample)
        self.pool_size = tuple(int(p) for p in pool_size)
        self.pool_order = pool_order
        self.bn = bool(bn)
        self.bn_eps = bn_eps
        self.channels_first = bool(channels_first)
        self.scale = self._check_scale(scale)
        if window is not None:
            window = check_window(window, spatial_ndim)
            if self.sub_sample:
                raise ValueError("window cannot be combined with sub_sample (j would live on another grid)")
        self.window = window
        self.chunk_size = None if chunk_size is None else _check_chunk(chunk_size)
        self._params = self._init_params(seed, bool(zero_init))
        self._cache = None

    # ------------------------------------------------------------------ setup
    def _check_scale(self, scale):
        if isinstance(scale, (bool, np.bool_)):
            if not scale:
                return 1.0
            if self.mode == "concat":
                raise ValueError("scale is not available for mode 'concat'")
            d = self.in_channels if self.mode == "gaussian" else self.inter_channels
            return 1.0 / math.sqrt(d)
        try:
            value = float(scale)
        except (TypeError, ValueError):
            raise TypeError(f"scale must be a bool or a number, got {type(scale).__name__}") from None
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"scale must be a finite number > 0, got {value}")
        if self.mode == "concat" and value != 1.0:
            raise ValueError("scale is not available for mode 'concat'")
        return value

    def _shapes(self):
        C, d = self.in_channels, self.inter_channels
        shapes = {}
        if self.mode != "gaussian":
            shapes.update({"theta.weight": (d, C), "theta.bias": (d,), "phi.weight": (d, C), "phi.bias": (d,)})
        shapes.update({"g.weight": (d, C), "g.bias": (d,), "W_z.weight": (C, d), "W_z.bias": (C,)})
        if self.mode == "concat":
            shapes["w_f.weight"] = (1, 2 * d)
        if self.bn:
            shapes.update({f"bn.{n}": (C,) for n in ("weight", "bias", "running_mean", "running_var")})
        return shapes

    def _init_params(self, seed, zero_init):
        if isinstance(seed, np.random.Generator):
            rng = seed
        elif _is_int(seed):
            rng = np.random.default_rng(int(seed))
        else:
            raise TypeError(f"seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")
        params = {}
        for name, shape in self._shapes().items():
            layer, kind = name.split(".")
            if layer == "bn":
                fill = {"weight": 0.0 if zero_init else 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
                params[name] = np.full(shape, fill[kind])
                continue
            fan_in = {"W_z": self.inter_channels, "w_f": 2 * self.inter_channels}.get(layer, self.in_channels)
            bound = 1.0 / math.sqrt(fan_in)
            params[name] = rng.uniform(-bound, bound, size=shape)
        if zero_init and not self.bn:
            params["W_z.weight"][...] = 0.0
            params["W_z.bias"][...] = 0.0
        return params

    # ---------------------------------------------------------------- weights
    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights, as a dict of float64 arrays (copies).

        Returns
        -------
        dict of str to ndarray
            Names and shapes as in the class Notes.

        Examples
        --------
        >>> NonLocalBlock(4, mode="concat", bn=False).state_dict()["w_f.weight"].shape
        (1, 4)
        """
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state: Mapping[str, ArrayLike], *, strict: bool = True) -> None:
        """Set weights from a dict of arrays (e.g. trained PyTorch weights).

        Parameters
        ----------
        state : mapping of str to array_like
            Names as in :meth:`state_dict`.  Weights of shape
            ``(out, in, 1, ...)`` (a PyTorch 1x1 convolution's) are accepted
            and their trailing singleton axes dropped; pass tensors as
            ``t.detach().numpy()``.  For the common PyTorch port, rename
            first with :func:`convert_pytorch_port_state`.
        strict : bool, default True
            Require exactly the block's names; ``False`` sets the names given
            and leaves the others.

        Raises
        ------
        KeyError
            For unknown names, or (strict) missing ones.
        ValueError
            For a wrong shape or non-finite values (nothing is changed then).

        Examples
        --------
        >>> import numpy as np
        >>> b = NonLocalBlock(4, bn=False)
        >>> b.load_state_dict({"W_z.weight": np.ones((4, 2, 1, 1))}, strict=False)
        >>> float(b.state_dict()["W_z.weight"].sum())
        8.0
        """
        shapes = self._shapes()
        unknown = sorted(set(state) - set(shapes))
        if unknown:
            raise KeyError(f"unknown weight names {unknown}; this block has {sorted(shapes)}")
        missing = sorted(set(shapes) - set(state))
        if strict and missing:
            raise KeyError(f"missing weight names {missing} (use strict=False to set a subset)")
        new = {}
        for name, value in state.items():
            arr = np.asarray(value)
            if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
                raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
            want = shapes[name]
            while arr.ndim > len(want) and arr.shape[-1] == 1:
                arr = arr[..., 0]
            if arr.shape != want:
                raise ValueError(f"{name} must have shape {want}, got {np.shape(value)}")
            arr = np.array(arr, dtype=np.float64)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} has non-finite values")
            if name == "bn.running_var" and np.any(arr < 0):
                raise ValueError("bn.running_var must be >= 0")
            new[name] = arr
        self._params.update(new)
        self._cache = None

    # ---------------------------------------------------------------- forward
    def _pairwise(self, P):
        if self.mode == "gaussian":
            return PlainGaussian(self.scale)
        theta = Linear(P["theta.weight"], P["theta.bias"])
        phi = Linear(P["phi.weight"], P["phi.bias"])
        if self.mode == "embedded":
            return EmbeddedGaussian(theta, phi, self.scale)
        if self.mode == "dot":
            return DotProduct(theta, phi, self.scale)
        return Concatenation(theta, phi, P["w_f.weight"])

    def _to_last(self, a, name):
        a = np.asarray(a)
        nd = self.spatial_ndim
        if a.ndim != nd + 2:
            layout = "(N, C, *spatial)" if self.channels_first else "(N, *spatial, C)"
            raise ValueError(f"{name} must have {nd + 2} axes {layout}, got shape {a.shape}")
        if self.channels_first:
            a = np.moveaxis(a, 1, -1)
        if a.shape[-1] != self.in_channels:
            raise ValueError(f"{name} has {a.shape[-1]} channels, the block expects {self.in_channels}")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.iscomplexobj(a):
            raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
        if a.size == 0:
            raise ValueError(f"{name} is empty (shape {a.shape})")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or Inf values")
        return a

    def _from_last(self, a):
        return np.moveaxis(a, -1, 1) if self.channels_first else a

    def _prepare(self, x):
        x = self._to_last(x, "x")
        dtype = _compute_dtype(x)
        x = x.astype(dtype, copy=False)
        if self.sub_sample:
            small = [n for n, p in zip(x.shape[1:-1], self.pool_size) if n < p]
            if small:
                raise ValueError(
                    f"x's spatial shape {x.shape[1:-1]} is smaller than pool_size {self.pool_size}"
                )
        P = {k: v.astype(dtype) for k, v in self._params.items()}
        return x, P, self._pairwise(P), Linear(P["g.weight"], P["g.bias"])

    def _qkv(self, x, f, g):
        """Queries, pooled keys and values, and what the backward needs of the pooling."""
        q = f.theta(x)
        pool = {}
        if not self.sub_sample:
            return q, f.phi(x), g(x), pool
        if self.pool_order == "before":
            xp, pool["x"] = _max_pool(x, self.pool_size)
            pool["xp"] = xp
            return q, f.phi(xp), g(xp), pool
        k, pool["k"] = _max_pool(f.phi(x), self.pool_size)
        v, pool["v"] = _max_pool(g(x), self.pool_size)
        return q, k, v, pool

    def _chunk(self, m):
        if self.chunk_size is not None:
            return self.chunk_size
        return max(_CHUNK_MIN_ROWS, _CHUNK_ELEMENTS // max(m, 1))

    def forward(self, x: ArrayLike, *, cache: bool = True) -> np.ndarray:
        """Apply the block: ``z = BN(W_z y) + x``.

        Parameters
        ----------
        x : array_like, shape (N, *spatial, C) (or (N, C, *spatial) with ``channels_first``)
        cache : bool, default True
            Keep what :meth:`backward` needs (``O(N_positions (C + d))``).

        Returns
        -------
        z : ndarray, same shape as ``x``; float32 for float16/float32 input
            (any byte order), else float64.

        Raises
        ------
        ValueError, TypeError
            For a wrong number of axes or channels, a non-numeric, empty or
            non-finite (NaN/Inf) ``x``, a map smaller than the pooling
            kernel, or values so large that the result overflows.

        Examples
        --------
        >>> import numpy as np
        >>> b = NonLocalBlock(4, spatial_ndim=1, zero_init=False)
        >>> b(np.ones((1, 5, 4), np.float32)).dtype
        dtype('float32')
        """
        x, P, f, g = self._prepare(x)
        B = x.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            q, k, v, pool = self._qkv(x, f, g)
            y = np.empty(q.shape[:-1] + (v.shape[-1],), dtype=x.dtype)
            chunk = self._chunk(math.prod(k.shape[1:-1]))
            for b in range(B):
                if self.window is not None:
                    y[b] = _windowed(q[b], k[b], v[b], f, self.window)
                else:
                    y[b] = attend(_flat(q[b]), _flat(k[b]), _flat(v[b]), f, chunk_size=chunk).reshape(y.shape[1:])
            wy = Linear(P["W_z.weight"], P["W_z.bias"])(y)
            out = wy
            if self.bn:
                inv = P["bn.weight"] / np.sqrt(P["bn.running_var"] + x.dtype.type(self.bn_eps))
                out = (wy - P["bn.running_mean"]) * inv + P["bn.bias"]
            z = out + x
        if not np.isfinite(z).all():
            raise ValueError(
                f"x: the block's computation overflowed {z.dtype} (|x| up to {float(np.abs(x).max()):.3g}); "
                "scale x down (or compute in float64)"
            )
        self._cache = dict(x=x, q=q, k=k, v=v, pool=pool, y=y, wy=wy, P=P, f=f, chunk=chunk) if cache else None
        return self._from_last(z)

    __call__ = forward

    def affinity(self, x: ArrayLike, *, sample: int = 0, rows: slice | ArrayLike | None = None) -> np.ndarray:
        """Rows of the normalised affinity ``P_ij = f(x_i, x_j) / C(x)`` of one sample.

        Parameters
        ----------
        x : array_like
            Input as for :meth:`forward`.
        sample : int, default 0
            Batch index.
        rows : slice or array of int, optional
            Flattened (row-major) positions ``i``; default all, an
            ``N x N'`` array, so ask for a few rows of a large map.

        Returns
        -------
        P : ndarray, shape (len(rows), N')
            ``j`` runs over the (pooled) positions, row-major.  Softmax modes:
            rows sum to one; "dot"/"concat": ``f / N'``.

        Raises
        ------
        ValueError
            With ``window`` set (the affinity is then sparse), or a bad ``sample``.

        Examples
        --------
        >>> import numpy as np
        >>> b = NonLocalBlock(4, spatial_ndim=1)
        >>> p = b.affinity(np.ones((1, 6, 4)), rows=[0])
        >>> p.shape, bool(np.isclose(p.sum(), 1.0))
        ((1, 6), True)
        """
        if self.window is not None:
            raise ValueError("affinity is only available without window")
        x, P, f, g = self._prepare(x)
        if not _is_int(sample) or not -x.shape[0] <= sample < x.shape[0]:
            raise ValueError(f"sample must be an index into the batch of {x.shape[0]}, got {sample!r}")
        q, k, _, _ = self._qkv(x[sample : sample + 1] if sample != -1 else x[-1:], f, g)
        return affinity(_flat(q[0]), _flat(k[0]), f, rows=rows)

    # --------------------------------------------------------------- backward
    def backward(self, dz: ArrayLike) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Gradients of a loss ``L`` given ``dL/dz``, for the last :meth:`forward`.

        Parameters
        ----------
        dz : array_like
            ``dL/dz``, shaped like the output of the last ``forward(x)``.

        Returns
        -------
        dx : ndarray
            ``dL/dx``, shaped like ``x``.
        grads : dict of str to ndarray
            ``dL/dw`` for every trainable weight (the names of
            :meth:`state_dict` less the batch-norm running statistics),
            summed over the batch.

        Raises
        ------
        RuntimeError
            If there was no ``forward(x, cache=True)`` since the weights last changed.
        ValueError
            If ``dz`` does not match ``z`` or holds NaN/Inf.

        Notes
        -----
        The attention part runs through :func:`nlm.ops.operation.attend_backward`
        (or the windowed backward engine), which recomputes the affinity chunk
        by chunk.  Max pooling passes gradients to the argmax of each window.
        Batch norm is differentiated in its inference form (fixed running
        statistics).

        Examples
        --------
        >>> import numpy as np
        >>> b = NonLocalBlock(2, spatial_ndim=1, bn=False)
        >>> x = np.ones((1, 3, 2))
        >>> _ = b(x)
        >>> dx, grads = b.backward(np.ones_like(x))
        >>> dx.shape, grads["g.weight"].shape
        ((1, 3, 2), (1, 2))
        """
        c = self._cache
        if c is None:
            raise RuntimeError("backward needs a preceding forward(x, cache=True)")
        x, q, k, v, y, wy, P, f = (c[n] for n in ("x", "q", "k", "v", "y", "wy", "P", "f"))
        dz = self._to_last(dz, "dz")
        if dz.shape != x.shape:
            raise ValueError(f"dz must have the shape of z {self._from_last(x).shape}, got {np.shape(dz)}")
        dz = dz.astype(x.dtype, copy=False)
        grads = {}
        if self.bn:
            rstd = 1.0 / np.sqrt(P["bn.running_var"] + x.dtype.type(self.bn_eps))
            xhat = (wy - P["bn.running_mean"]) * rstd
            grads["bn.weight"] = (_flat(dz) * _flat(xhat)).sum(axis=0)
            grads["bn.bias"] = _flat(dz).sum(axis=0)
            dwy = dz * (P["bn.weight"] * rstd)
        else:
            dwy = dz
        grads["W_z.weight"] = _flat(dwy).T @ _flat(y)
        grads["W_z.bias"] = _flat(dwy).sum(axis=0)
        dy = dwy @ P["W_z.weight"]

        dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
        dw_f = None
        for b in range(x.shape[0]):
            if self.window is not None:
                r = _windowed_backward(q[b], k[b], v[b], f, dy[b], self.window)
            else:
                r = attend_backward(
                    _flat(q[b]), _flat(k[b]), _flat(v[b]), f, _flat(dy[b]), chunk_size=c["chunk"], y=_flat(y[b])
                )
            dq[b], dk[b], dv[b] = (a.reshape(s.shape[1:]) for a, s in zip(r[:3], (q, k, v)))
            if "weight" in r[3]:
                dw_f = r[3]["weight"] if dw_f is None else dw_f + r[3]["weight"]
        if self.mode == "concat":
            grads["w_f.weight"] = dw_f

        dx = dz.copy()
        projected = self.mode != "gaussian"
        if projected:
            grads["theta.weight"] = _flat(dq).T @ _flat(x)
            grads["theta.bias"] = _flat(dq).sum(axis=0)
            dx += dq @ P["theta.weight"]
        else:
            dx += dq
        pool = c["pool"]
        if self.sub_sample and self.pool_order == "after":
            dk = _max_unpool(dk, pool["k"], self.pool_size, x.shape[1:-1])
            dv = _max_unpool(dv, pool["v"], self.pool_size, x.shape[1:-1])
        src = pool["xp"] if self.sub_sample and self.pool_order == "before" else x
        grads["g.weight"] = _flat(dv).T @ _flat(src)
        grads["g.bias"] = _flat(dv).sum(axis=0)
        dsrc = dv @ P["g.weight"]
        if projected:
            grads["phi.weight"] = _flat(dk).T @ _flat(src)
            grads["phi.bias"] = _flat(dk).sum(axis=0)
            dsrc += dk @ P["phi.weight"]
        else:
            dsrc += dk
        if self.sub_sample and self.pool_order == "before":
            dsrc = _max_unpool(dsrc, pool["x"], self.pool_size, x.shape[1:-1])
        dx += dsrc
        return self._from_last(dx), {name: grads[name] for name in self._shapes() if name in grads}

    def __repr__(self):
        opts = [f"{self.in_channels}", f"spatial_ndim={self.spatial_ndim}", f"mode={self.mode!r}",
                f"inter_channels={self.inter_channels}"]
        if self.sub_sample:
            opts.append(f"sub_sample=True, pool_size={self.pool_size}, pool_order={self.pool_order!r}")
        opts.append(f"bn={self.bn}")
        if self.scale != 1.0:
            opts.append(f"scale={self.scale!r}")
        if self.window is not None:
            opts.append(f"window={self.window}")
        if self.channels_first:
            opts.append("channels_first=True")
        return f"NonLocalBlock({', '.join(opts)})"
