"""Non-local means denoising: the public, validating front end.

:func:`denoise_nl_means` checks and converts its arguments, then evaluates the
generic non-local operation (:func:`nlm.operation.nonlocal_op`) with the patch
similarity :class:`nlm.kernels.PatchEuclideanGaussian` and ``g = Identity``;
the operation dispatches to the compiled kernel in :mod:`nlm._nlm_kernels`.
"""

import numbers
import warnings

import numpy as np

__all__ = [
    "denoise_nl_means",
    "estimate_sigma",
    "default_h",
    "default_patch",
    "H_FACTOR",
    "UnsupportedDimensionError",
]


class UnsupportedDimensionError(ValueError, NotImplementedError):
    """An image with a number of dimensions the function does not support.

    It derives from both :class:`ValueError` (nlm's rule: bad input raises
    ``ValueError``/``TypeError``) and :class:`NotImplementedError` (what
    scikit-image raises for it), so callers written for either catch it.
    """

#: ``default_h(sigma) = H_FACTOR * sigma``.  Chosen by a grid search (PSNR
#: against the clean image, Gaussian noise sigma 10/20/30 on camera, astronaut
#: and coins, default patch 7 / distance 11, with the variance subtraction of
#: the estimated sigma): see the README's "Automatic parameters" section.
H_FACTOR = 0.6

# Daubechies-2 high-pass decomposition filter (identical to PyWavelets'
# ``Wavelet('db2').dec_hi``)
_DB2_HI = np.array([-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145])


def _dwt_detail(a, axis):
    """Finest detail coefficients of a one-level db2 DWT along ``axis``.

    Symmetric extension, as PyWavelets' default mode, so the result equals
    ``pywt.dwt(a, 'db2', axis=axis)[1]``.
    """
    L = _DB2_HI.size
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    p = np.pad(a, [(0, 0)] * (a.ndim - 1) + [(L - 1, L - 1)], mode="symmetric")
    full = np.zeros(a.shape[:-1] + (n + L - 1,), dtype=np.float64)
    for k in range(L):
        full += _DB2_HI[k] * p[..., L - 1 - k : L - 1 - k + n + L - 1]
    return np.moveaxis(full[..., 1::2][..., : (n + L - 1) // 2], -1, axis)


def _detail_abs(a, block_bytes=1 << 24, valid=False):
    """Non-zero ``|d|`` of the finest all-detail db2 coefficients of ``a``, float64, 1-D.

    ``valid=True`` keeps only the coefficients that do not read the symmetric
    extension (for windows cut out of a larger image, whose edges are not
    the image's).

    The same coefficients as applying :func:`_dwt_detail` along every axis of
    ``a`` converted to float64, computed in slabs along the first axis so that
    neither the float64 copy nor the padded temporaries of the whole image are
    ever made: memory is the result (at most ``N / 2^D`` float64 values) plus
    about ``block_bytes``.
    """
    a = np.asarray(a)
    L = _DB2_HI.size
    n = a.shape[0]
    m_total = (n + L - 1) // 2
    rest = a.shape[1:]
    # input rows of p = symmetric padding of axis 0 (np.pad handles tiny n)
    rows = np.pad(np.arange(n), L - 1, mode="symmetric")
    per_row = 8 * max(1, int(np.prod(rest, dtype=np.int64)))
    step = max(1, block_bytes // (2 * per_row))
    n_out = m_total * int(np.prod([(k + L - 1) // 2 for k in rest], dtype=np.int64))
    out = np.empty(n_out, dtype=np.float64)
    count = 0
    # coefficient m reads a[2m - 2 .. 2m + 1]: inside for 1 <= m <= (n - 2) // 2
    first, last = (1, (n - 2) // 2 + 1) if valid else (0, m_total)
    crop = (slice(None),) + tuple(slice(1, (k - 2) // 2 + 1) if valid else slice(None) for k in rest)
    for m0 in range(first, last, step):
        m1 = min(last, m0 + step)
        # output m uses p[2m + 1 .. 2m + L] (see _dwt_detail)
        slab = np.asarray(a[rows[2 * m0 + 1 : 2 * m1 + L]], dtype=np.float64)
        full = np.zeros((m1 - m0,) + rest, dtype=np.float64)
        for k in range(L):
            full += _DB2_HI[k] * slab[L - 1 - k : L - 1 - k + 2 * (m1 - m0) : 2]
        detail = full
        for axis in range(1, a.ndim):
            detail = _dwt_detail(detail, axis)
        detail = detail[crop]
        detail = np.abs(detail[detail != 0])
        out[count : count + detail.size] = detail
        count += detail.size
    return out[:count]


def _mad(details):
    """Donoho's ``median(|d|) / 0.6745`` of pooled ``|d|`` arrays (consumed)."""
    details = details[0] if len(details) == 1 else np.concatenate(details)
    if details.size == 0:
        return 0.0
    return float(np.median(details, overwrite_input=True) / 0.6744897501960817)


def _sigma_mad(a):
    return _mad([_detail_abs(a)])


def estimate_sigma(image, average_sigmas=False, *, channel_axis=None):
    """Robust (wavelet MAD) estimate of the standard deviation of Gaussian noise.

    Same signature and behaviour as ``skimage.restoration.estimate_sigma``.

    Parameters
    ----------
    image : array_like or dask.array.Array
        Image of any number (>= 1) of dimensions (a dask array: 1 to 3),
        plus a channel axis if ``channel_axis`` is set.  Real numeric dtype,
        finite values.
    average_sigmas : bool
        Return the mean of the per-channel estimates instead of a list
        (only used with ``channel_axis``).
    channel_axis : int or None, keyword-only
        Axis of the channels; each channel gets its own estimate.

    Returns
    -------
    sigma : float or list of float
        In the units of ``image`` as given (no rescaling of integer images).

    Raises
    ------
    TypeError
        If ``image`` is not real numeric, ``average_sigmas`` is not a bool or
        ``channel_axis`` is not an int.
    ValueError
        If ``image`` is empty or has NaN/Inf; :class:`UnsupportedDimensionError`
        (also a ``NotImplementedError``) if it has no axis besides the
        channel axis.

    Warns
    -----
    UserWarning
        Without ``channel_axis``, when the last axis has 4 or fewer entries
        (it may be colour channels), as scikit-image does.

    Notes
    -----
    Donoho's estimator: ``sigma = median(|d|) / 0.6745`` over the non-zero
    finest "all-detail" coefficients ``d`` of a one-level Daubechies-2
    wavelet transform (symmetric extension).  This is the estimator of
    scikit-image's ``estimate_sigma``; it is computed here with NumPy, so
    PyWavelets is not needed.  Time ``O(N)``; the coefficients are computed in
    slabs, so the extra memory is their float64 magnitudes (``N / 2^D``
    values, a quarter of a float64 copy in 2-D) plus a few MB, whatever the
    input dtype.  It assumes signal-independent noise and underestimates
    multiplicative (speckle) noise.

    A ``dask.array.Array`` is estimated from a bounded sample (see
    :func:`nlm.tiling.sample_regions`): an image of at most
    ``nlm.tiling.SAMPLE_PIXELS`` pixels per channel is read whole and gives
    exactly the in-memory estimate; a larger one is estimated from
    ``nlm.tiling.SAMPLE_WINDOWS`` windows spread evenly over it (about
    ``SAMPLE_PIXELS`` pixels in all), their coefficients pooled into one
    median.

    References
    ----------
    .. [1] D. L. Donoho, I. M. Johnstone, "Ideal spatial adaptation by wavelet
       shrinkage", Biometrika 81(3), 1994.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> round(estimate_sigma(rng.normal(0, 0.1, (256, 256))), 2)
    0.1
    """
    from nlm.tiling import is_dask_array

    if not isinstance(average_sigmas, (bool, np.bool_)):
        raise TypeError(f"average_sigmas must be a bool, got {average_sigmas!r}")
    if channel_axis is None and np.ndim(image) > 0 and np.shape(image)[-1] <= 4:
        warnings.warn(
            f"image is size {np.shape(image)[-1]} on the last axis, but channel_axis is None. "
            "If this is a color image, please set channel_axis=-1 for proper noise estimation.",
            UserWarning,
            stacklevel=2,
        )
    if is_dask_array(image):
        return _estimate_sigma_dask(image, channel_axis, average_sigmas)
    image = _as_numeric(image)
    if channel_axis is None:
        if image.ndim == 0:
            raise UnsupportedDimensionError("image must have at least 1 dimension, got a 0-D array")
        return _sigma_mad(image)
    channel_axis = _check_axis(channel_axis, image.ndim)
    image = np.moveaxis(image, channel_axis, -1)
    if image.ndim < 2:
        raise UnsupportedDimensionError("image must have at least 1 dimension besides its channel axis")
    sigmas = [_sigma_mad(image[..., c]) for c in range(image.shape[-1])]
    return float(np.mean(sigmas)) if average_sigmas else sigmas


def default_h(sigma):
    """The automatic filtering parameter for a noise standard deviation.

    Parameters
    ----------
    sigma : float >= 0
        Noise standard deviation, in image units.

    Returns
    -------
    h : float
        ``H_FACTOR * sigma`` (``H_FACTOR = 0.6``), used together with the
        variance subtraction ``2 sigma^2`` of the weights.

    Raises
    ------
    ValueError
        If ``sigma`` is negative or not finite.
    """
    sigma = _check_nonneg(sigma, "sigma")
    return H_FACTOR * sigma


def default_patch(noise="gaussian"):
    """The default ``(patch_size, patch_distance)`` of a noise model.

    ``"gaussian"``: (7, 11), scikit-image's defaults.  ``"speckle"``:
    ``nlm.speckle.DEFAULT_PATCH_SIZE``/``DEFAULT_PATCH_DISTANCE`` (5, 11), the
    values the speckle mode was tuned with.

    Raises
    ------
    ValueError
        For an unknown ``noise``.
    """
    if noise == "gaussian":
        return 7, 11
    if noise == "speckle":
        from nlm.speckle import DEFAULT_PATCH_DISTANCE, DEFAULT_PATCH_SIZE

        return DEFAULT_PATCH_SIZE, DEFAULT_PATCH_DISTANCE
    raise ValueError(f"noise must be 'gaussian' or 'speckle', got {noise!r}")


def _as_numeric(image):
    image = np.asarray(image)
    if image.dtype == object or image.dtype.kind not in "biuf":
        raise TypeError(f"image must have a real numeric dtype, got {image.dtype}")
    if image.size == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("image contains NaN or Inf values")
    return image


def _check_spatial(nd, what):
    if not 1 <= nd <= 3:
        raise UnsupportedDimensionError(f"{what} must have 1, 2 or 3 spatial dimensions, got {nd}")


def _check_axis(axis, ndim):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"channel_axis must be an int or None, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"channel_axis={axis} is out of range for an image with {ndim} dimensions")
    return int(axis) % ndim


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_nonneg(value, name, allow_inf=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if np.isnan(value) or value < 0 or (value == np.inf and not allow_inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        hint = " (the fifth positional argument is fast_mode, as in scikit-image; pass sigma by keyword)" if name == "fast_mode" else ""
        raise TypeError(f"{name} must be a bool (True or False), got {value!r}{hint}")
    return bool(value)


def _check_params(patch_size, patch_distance, h, sigma):
    """Validate the filter parameters; returns them as int, int, float or None, float."""
    patch_size = _check_int(patch_size, "patch_size", 1)
    if patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd, got {patch_size}")
    patch_distance = _check_int(patch_distance, "patch_distance", 0)
    sigma = _check_nonneg(sigma, "sigma")
    if h is not None:
        h = _check_nonneg(h, "h", allow_inf=True)
        if h == 0:
            raise ValueError("h must be > 0, got 0.0")
    return patch_size, patch_distance, h, sigma


def _to_float(image, preserve_range):
    """scikit-image's conversion rules (see the dtype table in the README)."""
    if image.dtype.kind == "f":
        return image.astype(np.float32 if image.dtype.itemsize <= 4 else np.float64, copy=False)
    if preserve_range:
        return image.astype(np.float64)
    from skimage.util import img_as_float

    return img_as_float(image)


def denoise_nl_means(
    image,
    patch_size=None,
    patch_distance=None,
    h=None,
    fast_mode=True,
    sigma=0.0,
    *,
    preserve_range=False,
    channel_axis=None,
    noise="gaussian",
    num_threads=None,
):
    """Non-local means denoising of 1-D, 2-D or 3-D images, grey or multichannel.

    Each pixel becomes the weighted mean of the pixels in its search window,
    weighted by the similarity of the patches around them:

        u(i) = sum_j w(i, j) v(j) / sum_j w(i, j),
        w(i, j) = exp(-max(d^2(P_i, P_j) - 2 sigma^2, 0) / h^2)

    with ``d^2`` the mean squared difference of the two ``patch_size^D``
    patches over all channels.  The signature is scikit-image's
    (``image, patch_size, patch_distance, h, fast_mode, sigma``, then
    keyword-only arguments), so positional calls port unchanged.

    Parameters
    ----------
    image : array_like
        1-D, 2-D or 3-D image, with one extra channel axis if ``channel_axis``
        is given.  Real numeric dtype; no NaN/Inf.
    patch_size : int, odd, >= 1, or None
        Side of the (square / cubic) patches.  ``None``: the noise model's
        default (:func:`default_patch`): 7 for Gaussian noise, 5 for speckle.
        Images smaller than the patch are accepted: along an axis of ``n``
        pixels the patch radius is clipped to ``n - 1`` (patches read reflect
        padding, which supplies at most ``n - 1`` pixels each side), so e.g.
        a 5x5 image is filtered with the full 7x7 patch, a 6x40 image too,
        and an axis of 1 pixel with radius 0 along it.
    patch_distance : int >= 0, or None
        Radius of the search window: ``j`` ranges over
        ``|j_a - i_a| <= patch_distance`` on every axis (window side
        ``2 patch_distance + 1``), clipped at the image borders (so a window
        larger than the image searches the whole image).  ``None``: the
        noise model's default, 11.
    h : float > 0, ``inf`` or None
        Filtering parameter, in the units of the (converted) image: larger is
        smoother.  ``inf`` gives every pixel of the (clipped) window the
        weight 1: the window mean.  ``None`` (default): automatic,
        ``h = default_h(sigma)`` with ``sigma`` estimated by
        :func:`estimate_sigma` when not given; the estimated ``sigma`` is
        then also used in the weights.
    fast_mode : bool
        Accepted for compatibility with scikit-image, where it chooses
        between two algorithms.  Here one algorithm serves both values: it
        is fast *and* exact (uniform patch weights, see Notes), so
        ``fast_mode`` does not change the result.  Must be a bool.
    sigma : float >= 0
        Standard deviation of the noise; ``2 sigma^2`` is subtracted from the
        patch distance.  0 (default) disables the subtraction, except in the
        automatic mode (``h=None``) where the estimate is used.
    preserve_range : bool, keyword-only
        Integer images only: keep the original value range (converted to
        float64) instead of scikit-image's scaling to [0, 1] / [-1, 1].
    channel_axis : int or None, keyword-only
        Axis of the channels; the patch distance is taken jointly over all
        channels.  ``None``: grey image.
    noise : {"gaussian", "speckle"}, keyword-only
        ``"speckle"`` denoises multiplicative noise with
        :func:`nlm.speckle.denoise_speckle`, which sets its own parameters
        from the image when they are left to their defaults.
    num_threads : int >= 1 or None, keyword-only
        Threads of the compiled kernel for this call only (clipped to
        ``numba.config.NUMBA_NUM_THREADS``); the calling thread's Numba
        setting is restored afterwards, and other threads are not affected.
        ``None``: the calling thread's current Numba setting (all cores by
        default) for a NumPy array; 1 per tile for a dask array, whose
        scheduler runs tiles in parallel (pass more when a dask worker has
        fewer threads than cores).

    Returns
    -------
    result : ndarray or dask.array.Array
        Same shape as ``image``, finite.  float32 (and float16) input gives
        float32 (whatever the byte order); float64 (and longer floats) give
        float64; integer and bool input give float64.  Every value lies
        between the minimum and maximum of the (converted) image.  A dask
        array gives a lazy dask array (see Notes).

    Raises
    ------
    TypeError
        Non-numeric (or complex) ``image``; non-integer
        ``patch_size``/``patch_distance``; non-real ``h``/``sigma``;
        non-bool ``fast_mode``/``preserve_range``; bad ``channel_axis`` type.
    ValueError
        Empty image, NaN/Inf, even or non-positive ``patch_size``, negative
        ``patch_distance``, ``h <= 0`` or NaN, ``sigma`` negative, NaN or
        infinite, unknown ``noise``, out-of-range ``channel_axis``.
    UnsupportedDimensionError
        Fewer than 1 or more than 3 spatial dimensions.  A subclass of both
        ``ValueError`` and ``NotImplementedError`` (what scikit-image raises
        there), so callers written for either catch it.

    Notes
    -----
    Differences from ``skimage.restoration.denoise_nl_means`` (otherwise a
    drop-in replacement, same argument order and meaning):

    * ``h=None`` is the default and means automatic (scikit-image: 0.1);
    * ``patch_size``/``patch_distance`` default to ``None``, the noise
      model's defaults; for Gaussian noise these are scikit-image's 7 and 11;
    * patches are exactly ``patch_size`` wide and uniformly weighted
      (scikit-image's fast mode uses ``patch_size - 1`` pixels divided by
      ``patch_size^D``; its slow mode weights patches with a Gaussian), so
      the same ``h`` smooths differently: see the README's porting note;
    * the search window is clipped at the borders and patches crossing a
      border read reflect padding (scikit-image's fast mode searches the
      padding too);
    * ``patch_size`` must be odd; 1-D signals are accepted; 4-D images are
      not (yet); ``fast_mode`` is accepted but there is one algorithm, fast
      and exact, for both values.

    Extreme values: the weights do not change when the image, ``h`` and
    ``sigma`` are multiplied by the same factor, so images whose magnitude is
    far from 1 (beyond ``2^±24`` in float32, ``2^±128`` in float64) are
    filtered after an exact scaling by a power of two; values up to the float
    type's maximum, and any finite ``h``/``sigma``, give finite results
    (a huge ``h`` or ``sigma`` tends to the window mean).

    Algorithm: for each offset ``t`` of half the window, the squared
    differences ``(v(p) - v(p + t))^2`` are box-filtered with running sums to
    give every patch distance, and the weight serves both ``p`` and ``p + t``
    (Darbon et al. 2008).  Time ``O(N W C)`` for ``N`` pixels, ``W`` window
    positions and ``C`` channels, independent of the patch size; memory about
    ``(C + 1) (1 + 2 patch_distance / band)`` image-sized buffers.  The kernel
    runs on all Numba threads (``numba.set_num_threads``).

    float32 results match float64 to about 1e-6 of the value range.

    **Dask arrays** are filtered lazily, tile by tile, by
    :func:`nlm.tiling.map_tiles` (``dask.array.map_overlap`` with a margin of
    ``patch_distance + patch_size // 2`` pixels per side and no invented
    border): each tile sees every pixel its result depends on, so the result
    equals the in-memory one up to summation order (tested to 1e-6 of the
    value range) under any chunking.  Chunks narrower than the margin are
    merged with a neighbour first, and the channel axis is made one chunk.
    Automatic parameters (``h=None``) are estimated once, before the graph is
    built, from :func:`nlm.tiling.sample_regions` (the whole image up to
    ``nlm.tiling.SAMPLE_PIXELS`` pixels per channel, which gives exactly the
    in-memory ``h`` and ``sigma``; else 16 windows spread over the image) and
    shared by every tile.  The kernels release the GIL, so dask's threaded
    scheduler runs tiles in parallel.

    References
    ----------
    .. [1] A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image
       denoising", CVPR 2005.
    .. [2] J. Darbon, A. Cunha, T. F. Chan, S. Osher, G. J. Jensen, "Fast
       nonlocal filtering applied to electron cryomicroscopy", ISBI 2008.
    .. [3] A. Buades, B. Coll, J.-M. Morel, "Non-Local Means Denoising",
       Image Processing On Line 1 (2011).

    Examples
    --------
    >>> import numpy as np
    >>> from nlm import denoise_nl_means
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (64, 1))
    >>> noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    >>> out = denoise_nl_means(noisy, patch_size=5, patch_distance=6)
    >>> out.dtype
    dtype('float32')
    >>> bool(np.abs(out - clean).mean() < np.abs(noisy - clean).mean())
    True
    """
    if not isinstance(noise, str) or noise not in ("gaussian", "speckle"):
        raise ValueError(f"noise must be 'gaussian' or 'speckle', got {noise!r}")
    _check_bool(fast_mode, "fast_mode")
    preserve_range = _check_bool(preserve_range, "preserve_range")
    if num_threads is not None:
        num_threads = _check_int(num_threads, "num_threads", 1)
    default_size, default_distance = default_patch(noise)
    patch_size = default_size if patch_size is None else patch_size
    patch_distance = default_distance if patch_distance is None else patch_distance
    from nlm.tiling import is_dask_array

    if is_dask_array(image):
        return _denoise_dask(
            image, patch_size, patch_distance, h, sigma, channel_axis, preserve_range, noise, num_threads
        )
    if noise == "speckle":
        from nlm.speckle import denoise_speckle

        with _threads(num_threads):
            return denoise_speckle(
                image,
                patch_size=patch_size,
                patch_distance=patch_distance,
                h=h,
                channel_axis=channel_axis,
                preserve_range=preserve_range,
            )
    image = _as_numeric(image)
    patch_size, patch_distance, h, sigma = _check_params(patch_size, patch_distance, h, sigma)

    x = _to_float(image, preserve_range)
    if channel_axis is None:
        x = x[..., None]
    else:
        x = np.moveaxis(x, _check_axis(channel_axis, image.ndim), -1)
    nd = x.ndim - 1
    _check_spatial(nd, "image (without its channel axis)" if channel_axis is not None else "image")

    if h is None:
        if sigma == 0:
            sigma = estimate_sigma(x, channel_axis=-1, average_sigmas=True)
        h = _auto_h(sigma, x)

    from nlm.kernels import PatchEuclideanGaussian
    from nlm.operation import nonlocal_op

    f = PatchEuclideanGaussian(h, sigma, patch_size, spatial_ndim=nd)
    with _threads(num_threads):
        y = nonlocal_op(np.ascontiguousarray(x), f, window=patch_distance)
    if channel_axis is None:
        return y[..., 0]
    return np.moveaxis(y, -1, _check_axis(channel_axis, image.ndim))


def _auto_h(sigma, *arrays):
    """``default_h(sigma)``, floored at the dtype's resolution of the data.

    A noise-free (e.g. constant) image estimates sigma ~ 0: the floor keeps
    such an image as it is.
    """
    peak = max(max(abs(float(a.min())), abs(float(a.max()))) for a in arrays)
    # relative to the data's magnitude (the result scales with the image);
    # at least the smallest normal number (an all-zero image)
    info = np.finfo(arrays[0].dtype)
    return max(default_h(sigma), float(info.eps) * peak, float(info.tiny))


class _threads:
    """Context manager: Numba threads of the calling thread for one call."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        if self.n is None:
            return self
        import numba

        self.old = numba.get_num_threads()
        numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc):
        if self.n is not None:
            import numba

            numba.set_num_threads(self.old)
        return False


def _float_dtype(dtype):
    """dtype of the result for an input dtype (the README's dtype rules)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _dask_checks(image, channel_axis):
    """Validation of a dask array's dtype and shape; returns (channel axis, spatial axes)."""
    if image.dtype == object or image.dtype.kind not in "biuf":
        raise TypeError(f"image must have a real numeric dtype, got {image.dtype}")
    if any(n == 0 for n in image.shape) or image.ndim == 0:
        raise ValueError(f"image is empty (shape {image.shape})")
    if channel_axis is None:
        _check_spatial(image.ndim, "image")
        return None, tuple(range(image.ndim))
    axis = _check_axis(channel_axis, image.ndim)
    _check_spatial(image.ndim - 1, "image (without its channel axis)")
    return axis, tuple(a for a in range(image.ndim) if a != axis)


def _sample_float(image, spatial_axes, preserve_range):
    """Regions of the sample (nlm.tiling.sample_regions), validated and converted."""
    from nlm.tiling import sample_regions

    regions = sample_regions(image, spatial_axes=spatial_axes)
    return [_to_float(_as_numeric(r), preserve_range) for r in regions]


def _pooled_sigma(regions, axis):
    """Per-channel pooled wavelet-MAD estimates over the regions of a sample.

    One region is the whole image (the in-memory estimate); several are
    windows, of which only the coefficients clear of their edges are used.
    """
    channels = [None] if axis is None else range(regions[0].shape[axis])
    sigmas = []
    for c in channels:
        planes = [r if c is None else np.take(r, c, axis=axis) for r in regions]
        details = [_detail_abs(p, valid=len(regions) > 1) for p in planes]
        if len(regions) > 1 and sum(x.size for x in details) == 0:  # windows too thin to crop
            details = [_detail_abs(p) for p in planes]
        sigmas.append(_mad(details))
    return sigmas


def _estimate_sigma_dask(image, channel_axis, average_sigmas):
    axis, spatial = _dask_checks(image, channel_axis)
    from nlm.tiling import sample_regions

    regions = [_as_numeric(r) for r in sample_regions(image, spatial_axes=spatial)]
    sigmas = _pooled_sigma(regions, axis)
    if axis is None:
        return sigmas[0]
    return float(np.mean(sigmas)) if average_sigmas else sigmas


def _denoise_dask(image, patch_size, patch_distance, h, sigma, channel_axis, preserve_range, noise, num_threads):
    """:func:`denoise_nl_means` of a dask array: validate, set parameters once, tile."""
    import functools

    from nlm.tiling import halo, map_tiles

    if noise == "speckle":
        raise ValueError(
            "noise='speckle' is not available for dask arrays (its debiasing needs the mean of the "
            "whole result); compute the array, or use the Gaussian filter on a transformed image"
        )
    axis, spatial_axes = _dask_checks(image, channel_axis)
    patch_size, patch_distance, h, sigma = _check_params(patch_size, patch_distance, h, sigma)
    if h is None:
        regions = _sample_float(image, spatial_axes, preserve_range)
        if sigma == 0:
            sigma = float(np.mean(_pooled_sigma(regions, axis)))
        h = _auto_h(sigma, *regions)
        del regions
    func = functools.partial(
        denoise_nl_means,
        patch_size=patch_size,
        patch_distance=patch_distance,
        h=h,
        sigma=sigma,
        channel_axis=axis,
        preserve_range=preserve_range,
        num_threads=1 if num_threads is None else num_threads,
    )
    return map_tiles(
        func,
        image,
        halo(patch_size, patch_distance),
        spatial_axes=spatial_axes,
        dtype=_float_dtype(image.dtype),
        minimum=patch_size,
    )
