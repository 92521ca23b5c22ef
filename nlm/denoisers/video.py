"""Streamed non-local means of video: frames against their temporal neighbours.

:func:`denoise_frames` takes any iterable of frames and yields the denoised
frames in order, holding only a sliding window of ``2 R + 1`` frames (``R``
the temporal radius): memory does not grow with the clip's length.  Each
frame is compared with itself and with the ``R`` frames before it; every pair
of frames is computed once and its weights serve both frames
(``w(p, q) = w(q, p)``), so a frame costs ``2 R + 1`` half windows of the 2-D
row kernel, the work of one ``(2 R + 1)``-frame volume's centre frame, never
the whole volume.  The result equals :func:`nlm.denoise_nl_means` on the
stacked T x H x W (x C) clip with ``patch_size=(2 pt + 1, p, p)`` and
``patch_distance=(R, d, d)`` (tested).

The kernels are those of :class:`nlm.ops._nlm_kernels.FramePairs`.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from numpy.typing import ArrayLike, DTypeLike

__all__ = ["denoise_frames", "default_temporal_radius", "frame_sigma", "TEMPORAL_RADII", "MAX_TEMPORAL_RADIUS"]

#: the largest ``temporal_radius`` accepted: a window of 20 001 frames (13
#: minutes at 25 fps), all held in memory; larger values are refused as a
#: mistake.  A window longer than the clip is clipped to it.
MAX_TEMPORAL_RADIUS = 10_000

#: ``(sigma upper bound on a 0..255 scale, temporal radius)``: the default
#: temporal radius of :func:`default_temporal_radius` (3, 5 and 7 frames)
TEMPORAL_RADII = ((10.0, 1), (30.0, 2), (np.inf, 3))


def default_temporal_radius(sigma: float, data_range: float = 255.0) -> int:
    """Temporal radius ``R`` (window of ``2 R + 1`` frames) for a noise level.

    Parameters
    ----------
    sigma : float >= 0
        Noise standard deviation, in the units of the frames.
    data_range : float > 0
        Value range of the frames (255 for 8-bit, 65535 for 16-bit, 1 for
        floats in [0, 1]).

    Returns
    -------
    int
        1 for ``sigma <= 10`` on the 0..255 scale, 2 up to 30, else 3: more
        noise needs more frames to average, at a cost linear in ``2 R + 1``.
        OpenCV's ``fastNlMeansDenoisingMulti`` leaves ``temporalWindowSize``
        to the caller; its documentation uses 5 frames (R = 2).

    Raises
    ------
    ValueError
        For a negative or non-finite ``sigma`` or a non-positive ``data_range``.
    """
    sigma = float(sigma)
    data_range = float(data_range)
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a finite number > 0, got {data_range}")
    s = sigma * 255.0 / data_range
    return next(r for bound, r in TEMPORAL_RADII if s <= bound)


def frame_sigma(frame: ArrayLike) -> float:
    """Noise level of one frame, for the automatic ``h``: a standard deviation.

    Parameters
    ----------
    frame : ndarray, (H, W) or (H, W, C)

    Returns
    -------
    float
        :func:`nlm.estimate_sigma` (averaged over channels) when the noise
        looks signal-independent; when :func:`nlm.noise.estimate_noise` finds
        signal-dependent noise (speckle, Poisson), the root mean square of its
        fitted level function over the frame, ``sqrt(mean(var(x)))``: the
        wavelet estimate is dominated by the dark, quiet parts of such a frame
        and underestimates the noise (by 40 % on the benchmark's speckle clip,
        which it then leaves almost as noisy as it was).
    """
    from nlm.noise import estimate_noise, estimate_sigma

    f = np.asarray(frame, dtype=np.float64)
    axis = -1 if f.ndim == 3 else None
    sigma = float(estimate_sigma(f, channel_axis=axis, average_sigmas=True))
    try:
        model = estimate_noise(f, channel_axis=axis)
    except (ValueError, TypeError):
        return sigma
    if model.name == "gaussian":
        return sigma
    return float(np.sqrt(np.mean(model.variance(f))))


def _ints(value, name, n):
    values = (value,) * n if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}") from None
    if len(values) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be an int or {n} ints, got {value!r}")
    return tuple(int(v) for v in values)


def _geometry(patch_size, patch_distance, temporal_radius):
    """(pt, py, px) patch sides and (R or None, wy, wx) radii."""
    if not isinstance(patch_size, numbers.Integral) and np.ndim(patch_size) == 1 and len(patch_size) == 3:
        sides = _ints(patch_size, "patch_size", 3)
    else:
        sides = (1,) + _ints(patch_size, "patch_size", 2)
    if any(p < 1 or p % 2 == 0 for p in sides):
        raise ValueError(f"patch_size must hold odd integers >= 1, got {patch_size!r}")
    if not isinstance(patch_distance, numbers.Integral) and np.ndim(patch_distance) == 1 and len(patch_distance) == 3:
        radii = _ints(patch_distance, "patch_distance", 3)
        if temporal_radius is not None and int(temporal_radius) != radii[0]:
            raise ValueError(
                f"temporal_radius={temporal_radius} contradicts patch_distance={patch_distance!r} "
                "(its first entry is the temporal radius); give one of them"
            )
        temporal_radius = radii[0]
        radii = radii[1:]
    else:
        radii = _ints(patch_distance, "patch_distance", 2)
    if any(r < 0 for r in radii):
        raise ValueError(f"patch_distance must be >= 0, got {patch_distance!r}")
    if temporal_radius is not None:
        if isinstance(temporal_radius, bool) or not isinstance(temporal_radius, numbers.Integral):
            raise TypeError(f"temporal_radius must be an integer or None, got {temporal_radius!r}")
        if not 0 <= temporal_radius <= MAX_TEMPORAL_RADIUS:
            raise ValueError(
                f"temporal_radius must be between 0 and {MAX_TEMPORAL_RADIUS} (a window of "
                f"{2 * MAX_TEMPORAL_RADIUS + 1} frames), got {temporal_radius}"
            )
        temporal_radius = int(temporal_radius)
    return sides, (temporal_radius,) + radii


def denoise_frames(
    frames: Iterable[ArrayLike],
    patch_size: int | tuple[int, ...] = 7,
    patch_distance: int | tuple[int, ...] = 10,
    h: float | None = None,
    sigma: float | None = None,
    *,
    temporal_radius: int | None = None,
    data_range: float | None = None,
    dtype: DTypeLike = np.float32,
    method: str = "means",
    noise: str = "auto",
) -> Iterator[np.ndarray]:
    """Denoise a stream of video frames with a temporal search window.

    ``method="means"`` (default): non-local means over the frames and their
    temporal neighbours.  ``method="bayes"``: space-time NL-Bayes with the
    search along the motion, :func:`nlm.denoisers.video_bayes.denoise_frames_bayes`
    (better, slower; see there and docs/video.md).

    Parameters
    ----------
    frames : iterable of ndarray
        Frames of one shape, (H, W) grey or (H, W, C) colour (channels
        last), any real dtype; read lazily, one at a time.
    patch_size : int or tuple of int, odd
        Patch side within a frame (7: 7x7), or ``(py, px)``, or
        ``(pt, py, px)`` for patches that also span ``pt`` frames.
    patch_distance : int or tuple of int
        Search radius within a frame (10: 21x21 window), or ``(wy, wx)``, or
        ``(R, wy, wx)`` with the temporal radius first.
    h : float > 0 or None
        Filter strength in the frames' units; ``None``: ``default_h(sigma)``.
    sigma : float >= 0 or None
        Noise standard deviation in the frames' units (subtracted as
        ``2 sigma^2``); ``None``: :func:`frame_sigma` of the first frame.
    temporal_radius : int >= 0 or None, keyword-only
        ``R``: each frame is compared with up to ``R`` frames before and after
        it (``2 R + 1`` frames, OpenCV's ``temporalWindowSize``).  ``None``:
        :func:`default_temporal_radius` of ``sigma``.  At most
        :data:`MAX_TEMPORAL_RADIUS`; a window longer than the clip is clipped
        to it (the whole clip is then held in memory).
    data_range : float or None, keyword-only
        Value range for the default temporal radius; ``None``: 255 for uint8
        frames, 65535 for uint16, 1 for floats, else the dtype's maximum.
    dtype : float32 or float64, keyword-only
        Computation and output type (float32 by default, for speed).
    method : {"means", "bayes"}, keyword-only
        The filter.  With ``"bayes"``, ``patch_size`` is the spatial patch
        side (an int, or a pair for steps 1 and 2; the patches are 2 frames
        deep), ``patch_distance`` the spatial search radius around the
        motion (an int), ``temporal_radius`` the frames searched either
        side, ``sigma`` the Gaussian noise std (else the noise is estimated);
        ``h`` and ``data_range`` are not used.  Their defaults (7, 10) mean
        the NL-Bayes defaults there.
    noise : str, keyword-only
        ``method="bayes"`` only: the noise model (``"auto"``, ``"gaussian"``,
        ``"poisson"``, ``"speckle"``, ``"gamma"``; see
        :func:`nlm.denoisers.video_bayes.denoise_frames_bayes`).

    Yields
    ------
    ndarray
        The denoised frames in order, each of the input frame's shape, in
        ``dtype`` (values in the input's units, not rounded).

    Raises
    ------
    TypeError, ValueError
        For bad parameters (raised on the first ``next``), frames of
        differing shapes, non-finite values or more than 3 frame dimensions.

    Notes
    -----
    A sliding window: frame ``t`` is filtered once frames up to ``t + R +
    pt // 2`` have been read; at most ``2 R + pt`` frames (plus ``R + 1``
    accumulators) are held at any time, so memory is independent of the
    number of frames.  Frames at the clip's ends see a window clipped to the
    clip (and patches spanning frames read reflected frames), exactly as
    :func:`nlm.denoise_nl_means` on the whole T x H x W (x C) array with
    ``patch_size=(pt, py, px)`` and ``patch_distance=(R, wy, wx)``.  Time per
    frame ``O(H W C (2 R + 1) (2 wy + 1) (2 wx + 1) / 2 * pt)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clip = [rng.normal(100, 10, (32, 32)) for _ in range(4)]
    >>> out = list(denoise_frames(clip, 5, 4, temporal_radius=1))
    >>> len(out), out[0].shape, out[0].dtype
    (4, (32, 32), dtype('float32'))
    """
    if method == "bayes":
        yield from _bayes(frames, patch_size, patch_distance, h, sigma, temporal_radius, dtype, noise)
        return
    if method != "means":
        raise ValueError(f"method must be 'means' or 'bayes', got {method!r}")
    if noise != "auto":
        raise ValueError("noise is for method='bayes'; non-local means of video takes sigma (Gaussian noise)")
    from nlm.denoisers.means import default_h, min_h
    from nlm.ops._nlm_kernels import FramePairs, _reflect_index

    sides, radii = _geometry(patch_size, patch_distance, temporal_radius)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if h is not None:
        h = float(h)
        if not h > 0:
            raise ValueError(f"h must be > 0, got {h}")
    if sigma is not None:
        sigma = float(sigma)
        if not np.isfinite(sigma) or sigma < 0:
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")

    it = iter(frames)
    try:
        first = np.asarray(next(it))
    except StopIteration:
        return
    if first.dtype.kind not in "biuf" or first.ndim not in (2, 3):
        raise ValueError(f"frames must be real (H, W) or (H, W, C) arrays, got {first.dtype} {first.shape}")
    shape = first.shape
    Y, X = shape[:2]
    C = shape[2] if first.ndim == 3 else 1
    if sigma is None:
        sigma = frame_sigma(first)
    if h is None:
        h = max(float(default_h(sigma)), min_h(dtype, np.abs(first).max()))
    R = radii[0]
    if R is None:
        if data_range is None:
            k = first.dtype
            data_range = float(np.iinfo(k).max) if k.kind in "iu" else 1.0
        R = default_temporal_radius(sigma, data_range)
    pt = sides[0] // 2
    # patch radii clipped to what reflect padding supplies (as the library)
    ry, rx = min(sides[1] // 2, Y - 1), min(sides[2] // 2, X - 1)
    norm = (2 * pt + 1) * (2 * ry + 1) * (2 * rx + 1) * C
    fp = FramePairs((Y, X), ry, rx, radii[1], radii[2], C, h, sigma, norm, dtype)

    raw = {}  # index -> (C, Y, X) frame
    stacks = {}  # index -> padded stack of its patch's frames (centre first)
    acc = {}
    state = {"read": 0, "T": None}

    def load(frame):
        a = np.asarray(frame)
        if a.shape != shape:
            raise ValueError(f"frame {state['read']} has shape {a.shape}, the first frame {shape}")
        a = a.astype(dtype, copy=False)
        if not np.isfinite(a).all():
            raise ValueError(f"frame {state['read']} holds NaN or infinite values")
        raw[state["read"]] = np.ascontiguousarray(a.reshape(Y, X, C).transpose(2, 0, 1))
        state["read"] += 1

    def fill(upto):
        """Read frames until frame ``upto`` is in or the stream ends."""
        while state["T"] is None and state["read"] <= upto:
            try:
                load(next(it))
            except StopIteration:
                state["T"] = state["read"]

    def stack(i):
        if i not in stacks:
            T = state["T"]
            parts = []
            for k in [0] + [k for k in range(-pt, pt + 1) if k]:
                j = i + k
                j = _reflect_index(j, T) if T is not None else (-j if j < 0 else j)
                parts.append(raw[j])
            stacks[i] = fp.pad(parts[0] if len(parts) == 1 else np.concatenate(parts))
        return stacks[i]

    def emit(i):
        out = fp.finish(acc.pop(i), stacks.pop(i))
        out = out[0] if C == 1 and first.ndim == 2 else np.ascontiguousarray(out.transpose(1, 2, 0))
        return out

    load(first)
    i = 0
    while True:
        fill(i + pt)
        T = state["T"]
        if T is not None and i >= T:
            break
        s = stack(i)
        acc[i] = fp.zeros()
        fp.self_pair(s, acc[i])
        for dt in range(1, min(R, i) + 1):  # the frames before i within the window
            fp.cross_pair(stack(i - dt), s, acc[i - dt], acc[i])
        if i - R >= 0:
            yield emit(i - R)
        # raw frames no later stack needs (stacks from i + 1 on read i + 1 - pt ...)
        for j in [j for j in raw if j < i + 1 - pt and j > pt]:
            del raw[j]
        i += 1
    for j in sorted(acc):
        yield emit(j)


def _bayes(frames, patch_size, patch_distance, h, sigma, temporal_radius, dtype, noise):
    """:func:`denoise_frames` with ``method="bayes"``: the arguments mapped to ``denoise_frames_bayes``."""
    from nlm.denoisers.video_bayes import denoise_frames_bayes

    if h is not None:
        raise ValueError("h is not used by method='bayes' (NL-Bayes has no filter strength)")
    patch = None if isinstance(patch_size, numbers.Integral) and patch_size == 7 else patch_size
    radius = None if isinstance(patch_distance, numbers.Integral) and patch_distance == 10 else patch_distance
    if radius is not None and not isinstance(radius, numbers.Integral):
        raise TypeError(f"patch_distance must be an int (the spatial search radius) with method='bayes', "
                        f"got {radius!r}")
    yield from denoise_frames_bayes(frames, noise=noise, sigma=sigma, temporal_radius=temporal_radius,
                                    patch_size=patch, search_radius=radius, dtype=dtype)
