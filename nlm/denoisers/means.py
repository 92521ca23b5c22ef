"""Non-local means denoising: the public, validating front end.

:func:`denoise_nl_means` checks and converts its arguments, then evaluates the
generic non-local operation (:func:`nlm.ops.operation.nonlocal_op`) with the patch
similarity :class:`nlm.ops.kernels.PatchEuclideanGaussian` and ``g = Identity``;
the operation dispatches to the compiled kernel in :mod:`nlm.ops._nlm_kernels`.
"""

from __future__ import annotations

import warnings  # noqa: F401
from typing import TYPE_CHECKING

import numpy as np

from nlm._config import threads as _threads
from nlm._validate import (  # noqa: F401  (re-exported for the modes above)
    UnsupportedDimensionError,
    _as_numeric,
    _check_axis,
    _check_bool,
    _check_geometry,
    _check_int,
    _check_nonneg,
    _check_spatial,
    _per_axis,
    _refuse_dask,
    _to_float,
    check_mask,
    check_sigma_map,
    is_dask_array,
    is_map,
    masked_nonfinite,
)
from nlm.noise import NOISE_MODELS, NoiseModel, check_model, estimate_noise, estimate_sigma
from nlm.noise import transforms as _vst
from nlm.noise.noise_map import residual_sigma
from nlm.ops._cuda_device import is_gpu_array, resolve_device
from nlm.ops._cuda_device import logger as _device_log

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

__all__ = [
    "denoise_nl_means",
    "estimate_sigma",
    "default_h",
    "default_patch",
    "H_FACTOR",
    "H_FACTORS",
    "SPECKLE_TRANSFORMS",
    "UnsupportedDimensionError",
]

#: automatic ``h = H_FACTORS[transform] * sigma_t`` of the transformed modes
#: (``sigma_t``: noise std in the transformed domain).  ``sqrt``/``log`` were
#: tuned on the benchmark image set (see :func:`nlm.denoisers.speckle.denoise_speckle`);
#: ``anscombe`` uses the Gaussian ``H_FACTOR``.
H_FACTORS = {"sqrt": 0.95, "log": 0.8, "anscombe": 0.6}

#: the transforms of the speckle mode
SPECKLE_TRANSFORMS = ("sqrt", "log")

# patch side and search radius per noise model (None -> these)
_PATCH = {"gaussian": (7, 11), "poisson": (7, 11), "speckle": (5, 11), "gamma": (5, 11), "rician": (7, 11)}
# default transform per noise model
_TRANSFORM = {"poisson": "anscombe", "speckle": "sqrt", "gamma": "log"}

#: ``default_h(sigma) = H_FACTOR * sigma``.  Chosen by a grid search (PSNR
#: against the clean image, Gaussian noise sigma 10/20/30 on camera, astronaut
#: and coins, default patch 7 / distance 11, with the variance subtraction of
#: the estimated sigma): see docs/python-api.md ("Automatic parameters").
H_FACTOR = 0.6

def default_h(sigma: float) -> float:
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


def default_patch(noise: str | NoiseModel = "gaussian") -> tuple[int, int]:
    """The default ``(patch_size, patch_distance)`` of a noise model.

    ``"gaussian"`` and ``"poisson"``: (7, 11), scikit-image's defaults.
    ``"speckle"`` and ``"gamma"``: (5, 11), the values the speckle mode was
    tuned with.  ``"rician"``: (7, 11), as Gaussian.

    Raises
    ------
    ValueError
        For an unknown ``noise``.
    """
    if isinstance(noise, NoiseModel):
        noise = noise.name
    if not isinstance(noise, str) or noise not in _PATCH:
        raise ValueError(f"noise must be one of {tuple(_PATCH)}, got {noise!r}")
    return _PATCH[noise]


def _resolve_noise(noise):
    """``noise`` argument -> (name, model or None)."""
    if isinstance(noise, NoiseModel):
        if type(noise) is not NoiseModel and getattr(noise, "name", None) not in NOISE_MODELS:
            raise TypeError(
                f"noise: a model's name must be one of {NOISE_MODELS} (which filter serves it), got "
                f"{getattr(noise, 'name', None)!r}"
            )
        if type(noise) is NoiseModel:
            check_model(noise, 0.0, 0.0)  # raises: the abstract base; the others are checked on the data
        return noise.name, noise
    if not isinstance(noise, str) or noise not in ("auto",) + NOISE_MODELS:
        raise ValueError(
            f"noise must be one of {('auto',) + NOISE_MODELS} or a nlm.noise.NoiseModel, got {noise!r}"
        )
    return noise, None


def min_h(dtype: DTypeLike, peak: float) -> float:
    """The smallest ``h`` the filter uses on an image of magnitude ``peak``.

    With no measurable noise (an estimated ``sigma`` of 0 or round-off), the
    automatic ``h`` vanishes; raised to this floor, ``eps(dtype) * max(1,
    peak)``, the weight of any differing patch underflows and the filter
    returns the image as it is.  The one place of that rule: the command
    line and the video filter use it too.

    Parameters
    ----------
    dtype : numpy dtype
        The float type the filter computes in.
    peak : float
        ``max |x|`` of the image.

    Returns
    -------
    float
    """
    return float(np.finfo(dtype).eps) * max(1.0, float(peak))


def _floor_h(h, z, dtype):
    """A vanishing ``h`` (no measurable noise) keeps the image as it is."""
    if h == 0:
        return min_h(dtype, np.abs(z).max())
    return h


def _nl_means_transformed(
    image, *, noise, model, patch_size, patch_distance, h, sigma_t, transform, h_factor,
    channel_axis, preserve_range, device="cpu",
):
    """Non-local means of signal-dependent noise through a stabilising transform.

    The image is converted like :func:`denoise_nl_means`, mapped by
    ``transform`` (``None``: the model's default), denoised there by the
    Gaussian filter with ``sigma_t`` (``None``: known for ``anscombe``,
    otherwise estimated in the transformed domain) and ``h = h_factor *
    sigma_t`` (``None``: ``H_FACTORS[transform]``), mapped back and debiased.
    ``noise="auto"`` estimates the model first; a Gaussian estimate goes to the
    plain filter.  Returns ``(result, info)``; ``info`` says what was used.
    """
    image = _as_numeric(image)
    x = _to_float(image, _check_bool(preserve_range, "preserve_range"))
    if channel_axis is None:
        xc, axis = x[..., None], None
    else:
        axis = _check_axis(channel_axis, image.ndim)
        xc = np.moveaxis(x, axis, -1)
    _check_spatial(xc.ndim - 1, "image (without its channel axis)" if axis is not None else "image")
    info = {"noise": noise}
    if noise == "auto":
        model = estimate_noise(xc, channel_axis=-1)
        noise = model.name
        info.update(noise=noise, estimated=True)
        if noise == "rician":
            out, more = _nl_means_rician(
                image, model=model, patch_size=patch_size, patch_distance=patch_distance, h=h, sigma=None,
                channel_axis=channel_axis, preserve_range=preserve_range, device=device,
            )
            info.update(more, estimated=True)
            return out, info
    info["model"] = model
    if model is not None:
        check_model(model, float(xc.min()), float(xc.max()))  # before any kernel sees it
    if noise == "gaussian":
        size, dist = _PATCH["gaussian"]
        sigma = float(np.sqrt(model.a))
        out = denoise_nl_means(
            xc, size if patch_size is None else patch_size, dist if patch_distance is None else patch_distance,
            None if h is None else h, sigma=sigma, channel_axis=-1, device=device,
        )
        info.update(sigma=sigma, h=h if h is not None else max(default_h(sigma), 0.0))
        return (out[..., 0] if axis is None else np.moveaxis(out, -1, axis)), info
    size, dist = _PATCH[noise]
    patch_size = _check_geometry(size if patch_size is None else patch_size, "patch_size", 1)
    patch_distance = _check_geometry(dist if patch_distance is None else patch_distance, "patch_distance", 0)
    if noise != "poisson" and float(xc.min()) < 0:
        raise ValueError(
            f"image must be non-negative for the {noise!r} noise model, got a minimum of {float(xc.min()):g}"
        )
    if transform is None:
        transform = _TRANSFORM[noise]
    if transform == "anscombe" and (model is None or model.name != "poisson"):
        model = estimate_noise(xc, "poisson", channel_axis=-1)
        info["model"] = model
        if model.name != "poisson":  # no signal-dependent part found
            return _nl_means_transformed(
                image, noise="gaussian", model=model, patch_size=patch_size, patch_distance=patch_distance,
                h=h, sigma_t=None, transform=None, h_factor=None, channel_axis=channel_axis,
                preserve_range=preserve_range, device=device,
            )
    if h_factor is None:
        h_factor = H_FACTORS[transform]
    dtype = xc.dtype
    x64 = xc.astype(np.float64)
    floor = _vst.LOG_FLOOR * max(float(x64.max()), np.finfo(np.float64).tiny)
    if noise == "gamma":
        # SAR intensity spans decades and is never clipped: the log is floored
        # relative to the local mean, not at peak / 256, which (the peak being
        # a bright area's speckle) flattened the dark tail of every darker
        # area and biased its mean (see nlm.noise.transforms.gamma_log)
        floor = _vst.gamma_floor(x64, floor)
    z = _vst.forward(x64, transform, floor=floor, model=model) if noise != "gamma" or transform != "log" else None
    if noise == "gamma" and transform == "log":
        z = _vst.gamma_log(x64, floor)
    if sigma_t is None:
        if transform == "anscombe":
            sigma_t = 1.0
        else:
            # measured from log(y / floor) when flooring: the exact zeros of
            # SAR data (a masked or zero background) give exactly-zero
            # coefficients there, which the estimator leaves out; from log y,
            # their round-off made the estimate 0 and the filter the identity
            zs = z - np.log(floor) if noise == "gamma" and transform == "log" else z
            sigma_t = float(estimate_sigma(zs, channel_axis=-1, average_sigmas=True))
    if h is None:
        h = h_factor * sigma_t
    h = _floor_h(h, z, dtype)
    guided = noise in ("gamma", "poisson")
    if guided:
        # weights from the stabilised image, average of the intensities: the
        # weighted mean of observations with E[y | x] = x keeps local means
        # (no inverse transform, no bias).  The intensities ride along as extra
        # channels scaled by eps so that they do not change the distances
        # (the distance is a mean over channels, hence the sqrt(2)).
        c = z.shape[-1]
        peak = max(float(np.abs(x64).max()), np.finfo(np.float64).tiny)
        eps = 1e-3 * max(float(np.abs(z).max()), 1.0) / peak
        stacked = np.concatenate([z, eps * x64], axis=-1).astype(dtype)
        r2 = np.sqrt(2.0)
        zh = denoise_nl_means(stacked, patch_size, patch_distance, h / r2, sigma=sigma_t / r2, channel_axis=-1,
                              device=device)
        out = zh[..., c:].astype(np.float64) / eps
        if noise == "gamma":
            # y = x s with s > 0: an exact zero of the data is a zero of the
            # clean image, not noise; it stays 0 (patches straddling a zero
            # background would otherwise lift it)
            out[x64 == 0] = 0.0
    else:
        zh = denoise_nl_means(z.astype(dtype), patch_size, patch_distance, h, sigma=sigma_t, channel_axis=-1,
                              device=device)
        out = _vst.inverse(zh.astype(np.float64), transform, model=model)
    if transform == "sqrt" or (transform == "log" and not guided):
        # speckle preserves the mean of every channel: restore it
        spatial = tuple(range(out.ndim - 1))
        m_in = x64.mean(axis=spatial)
        m_out = out.mean(axis=spatial)
        safe = np.where(m_out > 0, m_out, 1.0)
        out = out * np.where(m_out > 0, m_in / safe, 1.0)
    info.update(transform=transform, sigma=sigma_t, h=h)
    out = out.astype(dtype, copy=False)
    return (out[..., 0] if axis is None else np.moveaxis(out, -1, axis)), info


def _nl_means_rician(image, *, model, patch_size, patch_distance, h, sigma, channel_axis, preserve_range,
                     device="cpu"):
    """Non-local means of Rician (magnitude) data with the second-moment bias correction.

    Weights from the magnitude ``M`` (noise std about ``sigma``, less at
    low SNR), average of ``M^2`` (``E[M^2] = A^2 + 2 sigma^2`` at every SNR),
    then ``A = sqrt(max(NLM(M^2) - 2 sigma^2, 0))`` (Manjon et al. 2008;
    Wiest-Daessle et al. 2008).  ``M^2`` rides along as extra channels
    scaled so that they do not change the distances, as in the guided
    Poisson and gamma modes.  ``sigma``: the model's, a given one, or
    estimated (:func:`nlm.noise.estimate_noise` with ``"rician"``).
    Returns ``(result, info)``.
    """
    image = _as_numeric(image)
    x = _to_float(image, preserve_range)
    if channel_axis is None:
        xc, axis = x[..., None], None
    else:
        axis = _check_axis(channel_axis, image.ndim)
        xc = np.moveaxis(x, axis, -1)
    _check_spatial(xc.ndim - 1, "image (without its channel axis)" if axis is not None else "image")
    if float(xc.min()) < 0:
        raise ValueError(
            f"image must be non-negative for the 'rician' noise model (magnitudes), got a minimum of "
            f"{float(xc.min()):g}"
        )
    size, dist = _PATCH["rician"]
    patch_size, patch_distance, h, sigma = _check_params(
        size if patch_size is None else patch_size, dist if patch_distance is None else patch_distance, h,
        0.0 if sigma is None else sigma,
    )
    if model is None:
        from nlm.noise import Rician

        model = Rician(sigma) if sigma > 0 else estimate_noise(xc, "rician", channel_axis=-1)
    check_model(model, float(xc.min()), float(xc.max()))  # before any kernel sees it
    sigma = float(model.sigma)
    info = {"noise": "rician", "model": model, "sigma": sigma}
    dtype = xc.dtype
    if sigma == 0:
        # no noise: nothing to remove, nothing to correct
        info["h"] = None
        return np.array(x, copy=True), info
    if h is None:
        h = _auto_h(sigma, xc)
    x64 = xc.astype(np.float64)
    # squares of extreme magnitudes: work on the image scaled by a power of
    # two (exact; the weights do not change when x, h and sigma scale together)
    amax = float(x64.max())
    e = 0 if amax == 0 or 2.0**-100 <= amax <= 2.0**100 else -int(np.frexp(amax)[1])
    if e:
        x64, sigma_w, h_w = np.ldexp(x64, e), float(np.ldexp(sigma, e)), float(np.ldexp(h, e))
    else:
        sigma_w, h_w = sigma, h
    sq = x64 * x64
    c = x64.shape[-1]
    peak = max(float(sq.max()), np.finfo(np.float64).tiny)
    eps = 1e-3 * max(float(x64.max()), 1.0) / peak
    stacked = np.concatenate([x64, eps * sq], axis=-1).astype(dtype)
    r2 = np.sqrt(2.0)  # the distance is a mean over channels
    zh = denoise_nl_means(stacked, patch_size, patch_distance, h_w / r2, sigma=sigma_w / r2, channel_axis=-1,
                          device=device)
    m2 = zh[..., c:].astype(np.float64) / eps
    out = np.sqrt(np.maximum(m2 - 2.0 * sigma_w * sigma_w, 0.0))
    if e:
        out = np.ldexp(out, -e)
    out = out.astype(dtype, copy=False)
    info["h"] = h
    return (out[..., 0] if axis is None else np.moveaxis(out, -1, axis)), info


def _check_params(patch_size, patch_distance, h, sigma):
    """Validate the filter parameters; returns them as int or tuple, int or tuple, float or None, float."""
    patch_size = _check_geometry(patch_size, "patch_size", 1)
    if any(p % 2 == 0 for p in np.atleast_1d(patch_size)):
        raise ValueError(f"patch_size must be odd, got {patch_size}")
    patch_distance = _check_geometry(patch_distance, "patch_distance", 0)
    sigma = _check_nonneg(sigma, "sigma")
    if h is not None:
        h = _check_nonneg(h, "h", allow_inf=True)
        if h == 0:
            raise ValueError("h must be > 0, got 0.0")
    return patch_size, patch_distance, h, sigma


def denoise_nl_means(
    image: ArrayLike,
    patch_size: int | tuple[int, ...] | None = None,
    patch_distance: int | tuple[int, ...] | None = None,
    h: float | None = None,
    fast_mode: bool = True,
    sigma: float | ArrayLike = 0.0,
    *,
    preserve_range: bool = False,
    channel_axis: int | None = None,
    noise: str | NoiseModel = "gaussian",
    num_threads: int | None = None,
    mask: ArrayLike | None = None,
    device: str = "cpu",
) -> np.ndarray:
    """Non-local means denoising of N-D images (1-D to 4-D and beyond), grey or multichannel.

    Each pixel becomes the weighted mean of the pixels in its search window,
    weighted by the similarity of the patches around them:

        u(i) = sum_j w(i, j) v(j) / sum_j w(i, j),
        w(i, j) = exp(-max(d^2(P_i, P_j) - 2 sigma^2, 0) / h^2)

    with ``d^2`` the mean squared difference of the two patches over all
    channels.  The signature is scikit-image's
    (``image, patch_size, patch_distance, h, fast_mode, sigma``, then
    keyword-only arguments), so positional calls port unchanged.

    Parameters
    ----------
    image : array_like
        1-D, 2-D, 3-D or 4-D (or higher) image, with one extra channel axis
        if ``channel_axis`` is given.  Real numeric dtype; no NaN/Inf.
    patch_size : int or tuple of int, odd, >= 1, or None
        Side of the patches: one for every spatial axis (square / cubic
        patches), or a tuple with one per spatial axis (e.g. ``(1, 7, 7)``
        for 7x7 patches within each frame of a T x H x W clip, or
        anisotropic voxels).  ``None``: the noise model's default
        (:func:`default_patch`): 7 for Gaussian noise, 5 for speckle.
        Images smaller than the patch are accepted: along an axis of ``n``
        pixels the patch radius is clipped to ``n - 1`` (patches read reflect
        padding, which supplies at most ``n - 1`` pixels each side), so e.g.
        a 5x5 image is filtered with the full 7x7 patch, a 6x40 image too,
        and an axis of 1 pixel with radius 0 along it.
    patch_distance : int or tuple of int, >= 0, or None
        Radius of the search window: ``j`` ranges over
        ``|j_a - i_a| <= patch_distance_a`` on every axis ``a`` (window side
        ``2 patch_distance_a + 1``), clipped at the image borders (so a
        window larger than the image searches the whole image); an int
        applies to every axis, a tuple gives one radius per spatial axis
        (e.g. ``(2, 10, 10)``: a temporal window of 5 frames).  ``None``:
        the noise model's default, 11.
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
    sigma : float >= 0, or array of the image's spatial shape
        Standard deviation of the noise; ``2 sigma^2`` is subtracted from the
        patch distance.  0 (default) disables the subtraction, except in the
        automatic mode (``h=None``) where the estimate is used.  An array
        (channels excluded; e.g. from ``nlm.estimate_noise(image,
        return_map=True)``) is a per-pixel noise std map: every pair is
        weighed with both pixels' noise (see Notes).  1-D to 3-D images,
        Gaussian noise model only; same units as ``image`` (after the
        conversion of integer images).
    preserve_range : bool, keyword-only
        Integer images only: keep the original value range (converted to
        float64) instead of scikit-image's scaling to [0, 1] / [-1, 1].
    channel_axis : int or None, keyword-only
        Axis of the channels; the patch distance is taken jointly over all
        channels.  ``None``: grey image.
    noise : str or nlm.noise.NoiseModel, keyword-only
        Noise model: ``"gaussian"`` (default; additive, the filter above),
        ``"poisson"`` (Poisson-Gaussian, through the generalised Anscombe
        transform), ``"speckle"`` (scikit-image's multiplicative speckle,
        through a square root: :func:`nlm.denoisers.speckle.denoise_speckle`),
        ``"gamma"`` (SAR intensity speckle: weights from the logarithm,
        floored at the smallest positive value, average of the intensities,
        so that homogeneous areas keep their mean; exact zeros, which gamma
        speckle never makes from a positive value, stay zero;
        Poisson-Gaussian likewise with the Anscombe transform),
        ``"rician"`` (magnitude MRI: weights from the magnitude ``M``, average
        of ``M^2``, then ``sqrt(max(. - 2 sigma^2, 0))``, so that low-SNR
        areas are not lifted by the Rician bias; ``sigma`` is the noise std
        of the real and imaginary parts, estimated when 0; 2-D and 3-D
        alike), ``"auto"`` (the model is estimated with :func:`nlm.estimate_noise`),
        or a model instance (:class:`nlm.noise.Gamma` ``(looks)`` etc.) whose
        parameters are then used instead of estimated ones.  For models other
        than Gaussian and Rician, ``h`` is in the transformed domain and
        ``sigma`` is not used.

    num_threads : int >= 1 or None, keyword-only
        Threads of the compiled kernel for this call only (clipped to
        ``numba.config.NUMBA_NUM_THREADS``); the calling thread's Numba
        setting is restored afterwards, and other threads are not affected.
        ``None``: the calling thread's current Numba setting (all cores by
        default) for a NumPy array; 1 per tile for a dask array, whose
        scheduler runs tiles in parallel (pass more when a dask worker has
        fewer threads than cores).
    mask : array_like of bool or None, keyword-only
        The image's spatial shape (channels excluded), True = valid.  Masked
        pixels are never compared nor averaged, and are returned unchanged
        (converted to the result's dtype); patch distances are taken over
        the valid pixels only (see Notes); the automatic ``sigma`` is
        estimated from valid pixels only (:func:`nlm.noise.estimate.residual_sigma`).
        An all-True mask is the same as none.  1-D to 3-D images, Gaussian
        noise model only.  NaN/Inf are allowed at masked pixels (no-data)
        and come back as they were.

    device : {"cpu", "cuda", "auto"}, keyword-only
        Where the filter runs.  ``"cpu"`` (default): the Numba CPU kernels.
        ``"cuda"``: the GPU kernels (``numba-cuda``, the ``gpu`` extra) on
        the current CUDA device, for 1-D to 3-D images with every noise
        model (the models' transforms run on the host; the weighted average
        on the GPU); the result equals the CPU path's to float rounding
        (tested within 1e-5 of the range).  ``"auto"``: the GPU when one is
        usable, else the CPU (a ``logging`` record of the ``"nlm"`` logger
        says which; also the CPU for what the GPU path does not take: noise
        maps, masks, 4-D and higher).  An image that lives on the GPU
        (CuPy, a PyTorch CUDA tensor, anything with
        ``__cuda_array_interface__`` or CUDA DLPack) is filtered there and
        returned there, as the same kind of array, without a copy to the
        host (Gaussian noise with ``h`` given; the automatic ``h``/``sigma``
        and the other noise models copy it to the host and back).  See
        docs/gpu.md; Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)
        counts as a device.

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
    DeviceUnavailableError
        ``device="cuda"`` (or a GPU array) without ``numba-cuda`` or a usable
        GPU/driver (:class:`nlm.ops._cuda_device.DeviceUnavailableError`, a
        ``RuntimeError``).
    TypeError
        Non-numeric (or complex) ``image``; non-integer
        ``patch_size``/``patch_distance`` (or entries of them); non-real
        ``h``/``sigma``; non-bool ``fast_mode``/``preserve_range``; bad
        ``channel_axis`` type.
    ValueError
        Empty image, NaN/Inf, even or non-positive ``patch_size``, negative
        ``patch_distance``, a ``patch_size``/``patch_distance`` tuple whose
        length is not the number of spatial axes, ``h <= 0`` or NaN,
        ``sigma`` negative, NaN or infinite, unknown ``noise``,
        out-of-range ``channel_axis``, negative values with a multiplicative
        noise model.
    UnsupportedDimensionError
        No spatial dimension (a 0-D image, or only a channel axis).  A
        subclass of both ``ValueError`` and ``NotImplementedError`` (what
        scikit-image raises for dimensions it does not support).

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
      the same ``h`` smooths differently: see the porting note in docs/python-api.md;
    * the search window is clipped at the borders and patches crossing a
      border read reflect padding (scikit-image's fast mode searches the
      padding too);
    * ``patch_size`` must be odd; 1-D signals and 4-D (and higher) images
      are accepted (scikit-image takes 2-D to 4-D); ``fast_mode`` is accepted
      but there is one algorithm, fast and exact, for both values.

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
    runs on all Numba threads (``numba.set_num_threads``).  1-D and 2-D
    images stream rows; 3-D volumes run per row band; 4-D and higher run as
    2-D frames (the last two axes) against every frame within the window on
    the leading axes, each pair once, which costs ``O(N W C P)`` with ``P``
    the patch's extent over the leading axes (1 for ``patch_size=(1, 1, 7,
    7)``) and holds ``C + 1`` accumulator volumes.

    float32 results match float64 to about 1e-6 of the value range.

    **Noise maps and masks.**  With a noise map ``s`` (``sigma`` an array)
    and/or a mask ``m`` (``m = 1`` everywhere without one), the pair ``(i,
    j)`` is weighed over the ``M`` patch offsets ``k`` where both ``i + k``
    and ``j + k`` are valid:

        d^2(i, j) = sum_k m m |v(i + k) - v(j + k)|^2 / (C M)
        n(i, j) = sum_k m m (s^2(i + k) + s^2(j + k)) / M
        w(i, j) = exp(-max(d^2 - n, 0) / (h^2 n / (2 s_ref^2)))

    ``n`` is the expectation of the noise's part of ``d^2`` when the noise
    is independent between pixels (``2 sigma^2`` for a scalar, which the
    weights then subtract as above), so each pair uses the noise of both of
    its pixels, and ``h`` is scaled with ``sqrt(n)``: ``h`` is the value at
    the reference level ``s_ref = sqrt(mean s^2)`` (over valid pixels), and
    the automatic ``h`` is ``H_FACTOR s_ref``, i.e. ``h_ij = H_FACTOR
    sqrt(n / 2)``.  A constant map gives the scalar result (to float
    rounding).  Pairs with no valid offset (``M = 0``) weigh nothing; a
    masked ``j`` is never used; a masked ``i`` keeps its value.  Without a
    map, ``n = 2 sigma^2`` and ``h`` as given.  A map of zeros is
    ``sigma=0``.  These run on a separate kernel (:mod:`nlm.ops._nlm_masked`,
    the scalar path is not touched): direct box sums per pixel, time
    ``O(N W (C + sum of the patch sides))``, about 3 to 5 times the scalar
    kernel; deterministic for any thread count.  On a dask array the map and
    the mask (NumPy arrays) are tiled with the image (stacked as extra
    channels, so with the same margin, plus 15 rows that align the kernel's
    row bands): bit-identical to the in-memory result.

    **Dask arrays** are filtered lazily, tile by tile, by
    :func:`nlm.tiling.map_tiles` (``dask.array.map_overlap`` with a margin of
    ``patch_distance + patch_size // 2`` pixels per side and no invented
    border): each tile sees every pixel its result depends on and is told
    its origin in the image, so that the kernel adds every sum in the order
    of the whole image: the result is bit-identical to the in-memory one
    under any chunking (the tests compare them exactly).  Chunks narrower than the margin are
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
    given_device = device
    device = resolve_device(device, image)
    if device == "cuda" and is_gpu_array(image):
        from nlm.denoisers._means_gpu import nl_means_gpu_array

        return nl_means_gpu_array(
            denoise_nl_means, _gpu_checks, image, patch_size=patch_size, patch_distance=patch_distance, h=h,
            sigma=sigma, channel_axis=channel_axis, noise=noise, mask=mask, fast_mode=fast_mode,
        )
    name, model = _resolve_noise(noise)
    sigma_map = None
    if is_map(sigma):
        sigma_map, sigma = sigma, 0.0
        if name != "gaussian":
            raise ValueError(f"sigma: a noise map needs noise='gaussian' (got noise={name!r})")
    if mask is not None and name != "gaussian":
        raise ValueError(f"mask needs noise='gaussian' (got noise={name!r})")
    nodata = None
    if mask is not None and not is_dask_array(image):
        image, mask, nodata = masked_nonfinite(image, mask, channel_axis)
    _check_bool(fast_mode, "fast_mode")
    preserve_range = _check_bool(preserve_range, "preserve_range")
    if num_threads is not None:
        num_threads = _check_int(num_threads, "num_threads", 1)
    _refuse_dask(image, "denoise_nl_means")
    if name == "rician":
        with _threads(num_threads):
            return _nl_means_rician(
                image, model=model, patch_size=patch_size, patch_distance=patch_distance, h=h, sigma=sigma,
                channel_axis=channel_axis, preserve_range=preserve_range, device=device,
            )[0]
    if name != "gaussian":
        if h is not None:
            h = _check_nonneg(h, "h")
            if h == 0:
                raise ValueError("h must be > 0, got 0.0")
        with _threads(num_threads):
            return _nl_means_transformed(
                image, noise=name, model=model, patch_size=patch_size, patch_distance=patch_distance, h=h,
                sigma_t=None, transform=None, h_factor=None, channel_axis=channel_axis,
                preserve_range=preserve_range, device=device,
            )[0]
    if model is not None:
        x = _to_float(_as_numeric(image), preserve_range)
        check_model(model, float(x.min()), float(x.max()))  # before any kernel sees it
        del x
        if sigma == 0:
            sigma = float(np.sqrt(model.a))
    default_size, default_distance = default_patch("gaussian")
    patch_size = default_size if patch_size is None else patch_size
    patch_distance = default_distance if patch_distance is None else patch_distance
    image = _as_numeric(image)
    patch_size, patch_distance, h, sigma = _check_params(patch_size, patch_distance, h, sigma)

    if channel_axis is None:
        _check_spatial(image.ndim, "image")
    else:
        _check_axis(channel_axis, image.ndim)
        _check_spatial(image.ndim - 1, "image (without its channel axis)")
    x = _to_float(image, preserve_range)
    if channel_axis is None:
        x = x[..., None]
    else:
        x = np.moveaxis(x, _check_axis(channel_axis, image.ndim), -1)
    nd = x.ndim - 1
    what = ", channels excluded" if channel_axis is not None else ""
    sizes = _per_axis(patch_size, "patch_size", x.shape[:-1], what)
    radii = _per_axis(patch_distance, "patch_distance", x.shape[:-1], what)

    if sigma_map is not None or mask is not None:
        spatial = x.shape[:-1]
        if sigma_map is not None:
            sigma_map = check_sigma_map(sigma_map, spatial)
        mask = check_mask(mask, spatial)
        if mask is not None and mask.all():
            mask = None  # the same as no mask: the scalar kernel
    if device == "cuda" and (sigma_map is not None or mask is not None or nd > 3):
        device = _gpu_refusal(sigma_map, mask, nd, given_device)
    if sigma_map is not None or mask is not None:
        if nd > 3:
            what = "sigma (a noise map)" if sigma_map is not None else "mask"
            raise UnsupportedDimensionError(f"{what}: supported for 1-D to 3-D images, got {nd} spatial axes")
        out = _nl_means_mapped(x, sizes, radii, h, sigma, sigma_map, mask, channel_axis, image.ndim, num_threads)
        if nodata is not None:  # the NaN/Inf of masked pixels come back as they were
            out[nodata[0]] = nodata[1].astype(out.dtype)
        return out

    if h is None:
        if sigma == 0:
            sigma = estimate_sigma(x, channel_axis=-1, average_sigmas=True)
        h = _auto_h(sigma, x)

    from nlm.ops.kernels import PatchEuclideanGaussian
    from nlm.ops.operation import nonlocal_op

    if device == "cuda":
        from nlm.ops._cuda_nlm import nl_means_cuda

        y = nl_means_cuda(x, sizes, radii, h, sigma, nd)
        if channel_axis is None:
            return y[..., 0]
        return np.moveaxis(y, -1, _check_axis(channel_axis, image.ndim))
    f = PatchEuclideanGaussian(h, sigma, sizes, spatial_ndim=nd)
    with _threads(num_threads):
        y = nonlocal_op(np.ascontiguousarray(x), f, window=radii)
    if channel_axis is None:
        return y[..., 0]
    return np.moveaxis(y, -1, _check_axis(channel_axis, image.ndim))


def _gpu_checks(*args):
    """The checks the GPU-array path shares: ``(noise) -> name``, or the four filter parameters (defaults filled)."""
    if len(args) == 1:
        return _resolve_noise(args[0])[0]
    patch_size, patch_distance, h, sigma = args
    size, dist = default_patch("gaussian")
    return _check_params(size if patch_size is None else patch_size,
                         dist if patch_distance is None else patch_distance, h, sigma)


def _gpu_refusal(sigma_map, mask, nd, given):
    """What the GPU path does not take: an error for ``device="cuda"``, the CPU (logged) for ``"auto"``."""
    what = "a noise map (sigma array)" if sigma_map is not None else "a mask" if mask is not None else (
        f"{nd} spatial axes (the GPU path takes 1 to 3)")
    if given == "cuda":
        raise UnsupportedDimensionError(f"device='cuda': not supported with {what}; use device='cpu' or 'auto'")
    _device_log.info("device='auto': %s runs on the CPU", what)
    return "cpu"


def map_row_sums(sigma_map, mask=None):
    """Per row (the last axis), the sum of the squared map over the valid pixels: float64, C order.

    ``sigma_map``: float64; ``mask``: bool of its shape or None.  A row's sum
    is the same number whether the row is summed inside the whole map or
    inside a block of whole rows (NumPy sums each contiguous row pairwise on
    its own), so :func:`map_rms` of a dask map, summed block by block,
    equals the in-memory value.
    """
    v2 = np.square(np.ascontiguousarray(sigma_map, dtype=np.float64))
    if mask is not None:
        v2 = np.where(mask, v2, 0.0)
    return v2.reshape(-1, v2.shape[-1]).sum(axis=-1) if v2.size else np.zeros(0)


def map_rms(row_sums, count):
    """``sqrt(sum / count)`` of :func:`map_row_sums` (exactly rounded sum: independent of the rows' order); 0
    without valid pixels."""
    import math

    return math.sqrt(math.fsum(np.asarray(row_sums, np.float64).ravel()) / count) if count else 0.0


def mapped_parameters(h, sigma, ref, estimate, peak_of):
    """``(h, sigma, use_map)`` of the map/mask path: the reference level, the automatic ``h``.

    ``ref``: the map's RMS over the valid pixels (:func:`map_rms`), or None
    without a map; ``estimate()``: the automatic sigma (called only when
    needed); ``peak_of``: the arrays whose magnitude floors the automatic
    ``h``.  Shared by the in-memory and the tiled paths, so both set the same
    values.  ``use_map`` is False for a map of zeros (then ``sigma = 0``).
    """
    use_map = False
    if ref is not None:
        if ref == 0:
            sigma = 0.0  # a map of zeros: sigma = 0
        else:
            sigma, use_map = ref, True
    if h is None:
        if sigma == 0 and not use_map:
            sigma = estimate()
        h = _auto_h(sigma, *peak_of)
    return h, sigma, use_map


def _nl_means_mapped(x, sizes, radii, h, sigma, sigma_map, mask, channel_axis, ndim, num_threads):
    """:func:`denoise_nl_means` with a noise map and/or a mask (validated, channel-last ``x``)."""
    from nlm.ops._nlm_masked import nl_means_masked

    ref = None
    if sigma_map is not None:
        # the map in the image's float type (float32 stays float32), squared in float64
        sigma_map = sigma_map.astype(x.dtype).astype(np.float64)
        ref = map_rms(map_row_sums(sigma_map, mask), sigma_map.size if mask is None else int(mask.sum()))
    h, sigma, use_map = mapped_parameters(
        h, sigma, ref, lambda: residual_sigma(x, mask=mask, channel_axis=-1),
        [x if mask is None or not mask.any() else x[mask]],
    )
    var_map = sigma_map**2 if use_map else None
    nd = x.ndim - 1
    with _threads(num_threads):
        y = nl_means_masked(np.ascontiguousarray(x), sizes, radii, h, sigma, var_map, mask, nd)
    if channel_axis is None:
        return y[..., 0]
    return np.moveaxis(y, -1, _check_axis(channel_axis, ndim))


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
