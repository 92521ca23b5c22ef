"""Non-local Bayes denoising on the noise models of :mod:`nlm.noise`.

:func:`denoise_nl_bayes` is the toolkit's second denoiser: the two-step
NL-Bayes algorithm of Lebrun, Buades and Morel, with the per-group noise
covariance taken from the noise level function of a model (Gaussian,
Poisson-Gaussian, speckle, SAR gamma), given or estimated from the image.
The compiled work is in :mod:`nlm.ops._bayes_kernels`.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from nlm._config import threads as _threads
from nlm._validate import (
    UnsupportedDimensionError,
    _as_numeric,
    _check_axis,
    _check_bool,
    _check_int,
    _check_nonneg,
    _refuse_dask,
    _to_float,
    check_mask,
    check_sigma_map,
    is_map,
    masked_nonfinite,
)
from nlm.noise import NOISE_MODELS, Gamma, Gaussian, NoiseModel, Rician, check_model, estimate_noise

if TYPE_CHECKING:
    from typing import Any

    from numpy.typing import ArrayLike

__all__ = ["denoise_nl_bayes", "bayes_parameters", "volume_parameters"]

# pass 3's similarity threshold, in units of the mean noise variance
TAU3 = 0.07

#: numbers of spatial axes that nlm.tiling tiles exactly: run_passes and
#: tile_margin (2-D), run_volume_passes and volume_margin (3-D)
TILED_DIMS = (2, 3)


def _colour_transform(C):
    """Orthonormal DCT-II basis of ``C`` channels (rows: luminance first).

    For RGB: ``(R + G + B) / sqrt 3``, ``(R - B) / sqrt 2``,
    ``(R - 2 G + B) / sqrt 6``, the decorrelating transform of the IPOL
    colour NL-Bayes.  White noise of equal variance stays white.
    """
    k = np.arange(C)[:, None]
    j = np.arange(C)[None, :]
    T = np.cos(np.pi * (j + 0.5) * k / C)
    T[0] *= np.sqrt(1.0 / C)
    T[1:] *= np.sqrt(2.0 / C)
    return T


def bayes_parameters(
    sigma255: float, channels: int = 1, multiplicative: bool = False, ndim: int = 2
) -> dict[str, Any]:
    """The parameters NL-Bayes uses at a noise level.

    Parameters
    ----------
    sigma255 : float >= 0
        Noise standard deviation on the 0..255 scale (for signal-dependent
        noise: the root of the mean noise variance over the image).
    channels : int, optional
        1 (grey) or more (colour).
    multiplicative : bool, optional
        The noise model has a quadratic term (speckle, SAR gamma): the IPOL
        grey table (see Notes).
    ndim : {2, 3}, optional
        Spatial dimensions: 3 gives the volume table (patch sides and
        search radii as per-axis triples; see :func:`volume_parameters`).

    Returns
    -------
    dict
        ``patch1``, ``patch2`` (sides), ``n1``, ``n2`` (group sizes),
        ``radius`` (search-window radius, both steps), ``beta`` (noise
        correction factors of steps 1 and 2, a pair), ``flat`` (flat-area
        thresholds of steps 1 and 2, a pair), ``passes`` (2, or 3: step 2
        repeated on its own result, see :func:`denoise_nl_bayes`).

    Notes
    -----
    The IPOL 2013 table: grey: patch 5 (7 from sigma 30) in step 1, 5 in
    step 2; colour: 3 / 5 / 7 below 20 / 50 / above in step 1, 3 below 50,
    then 5 (7 from 70) in step 2.  ``n1`` = 35 / 45 / 90 / 100 below sigma
    10 / 30 / 80 / above, ``n2`` = 15 / 25 / 30 / 45 below 20 / 40 / 80 /
    above; the search window is ``n1 / 2`` patches wide (odd), at most 33.
    ``beta`` is 1 (:func:`denoise_nl_bayes` uses 1.1 for multiplicative
    models, see there).

    Grey images with additive or Poisson noise (``multiplicative=False``)
    use a table tuned on the public set (camera, astronaut, coins, moon,
    brick, text at full size, Gaussian sigma 10 / 25 / 50, sigma estimated):
    larger step-1 groups, ``n1`` = 35 / 60 / 90 / 120 below sigma 5 / 15 /
    35 / above (measured +0.03 / +0.10 / +0.15 dB at 10 / 25 / 50 against
    the IPOL ``n1``); below sigma 35 a step-1 ``beta`` of 1.1 (+0.03 dB at
    10), from 35 no flat-area rule in step 2 (the Bayes estimate with the
    basic group's covariance keeps gentle gradients that the group's mean
    flattens: +0.29 dB at 50; +0.03 dB at 25 too, but at 1.2 times the
    time, which the speed bar at 25 cannot afford); a 7 x 7 step-2 patch
    from sigma 40 (+0.12 dB at 50, 1.6 times the time).  The search window
    is the IPOL one (wider: better on brick, worse on moon), except that its
    first step (radius 8 -> 11) is at sigma 5 with ``n1``'s instead of 10.

    A third pass (``passes=3``) for grey images: with the speckle and gamma
    models at every level, with additive or Poisson noise from sigma 35
    (below, the speed bar at sigma 25 cannot afford its time); for colour
    from sigma 45 with every model (half-size astronaut, coffee, chelsea,
    rocket: Gaussian sigma 50 +0.13..+0.34 dB, gamma L = 4 +0.08..+0.35 dB;
    at sigma 35 +0.06..+0.15 dB, but -0.15..-0.04 dB with speckle var 0.01
    and gamma L = 16, around sigma 30).  Measured on
    the public set, blind, against two passes: speckle var 0.01 / 0.04 / 0.1
    +0.00 / +0.17 / +0.09 dB, gamma L = 1 / 4 / 16 +0.90 / +0.51 / +0.14 dB,
    Gaussian sigma 50 +0.30 dB (brick +0.13..+0.90, text -0.05..+0.47).
    Pass 3's threshold (0.07 times the mean noise variance) was chosen on
    the same set (0.05..0.2 and absolute thresholds tried).
    """
    if ndim == 3:
        return volume_parameters(sigma255, channels, multiplicative)
    s = float(sigma255)
    if channels == 1:
        p1 = 5 if s < 30 else 7
        p2 = 5
    else:
        p1 = 3 if s < 20 else 5 if s < 50 else 7
        p2 = 3 if s < 50 else 5 if s < 70 else 7
    n1 = 35 if s < 10 else 45 if s < 30 else 90 if s < 80 else 100
    n2 = 15 if s < 20 else 25 if s < 40 else 30 if s < 80 else 45
    side = n1 // 2
    if side % 2 == 0:
        side += 1
    # the window is capped at 33 x 33: wider windows cost up to 3x the time
    # and measured no better (camera / coins 256 x 256: Gaussian sigma 50
    # +0.02 dB; gamma L = 1 +0.35 dB, L = 4 -0.05 dB; full public set,
    # Gaussian sigma 10 / 25 / 50: radius 22 +0.03 / -0.04 / 0.0 dB)
    radius = min(side // 2, 16)
    beta = (1.0, 1.0)
    flat = (1.05, 1.05)
    if channels == 1 and not multiplicative:
        n1 = 35 if s < 5 else 60 if s < 15 else 90 if s < 35 else 120
        # the window's first step moves with n1's to sigma 5 (IPOL: 10): at a
        # level users ask for, it made brick lose 0.3 dB when sigma 10 was
        # estimated 0.1 % low (full public set at sigma 10: -0.102 -> -0.084
        # dB against BM3D)
        if s >= 5:
            radius = max(radius, 11)
        p2 = 5 if s < 40 else 7
        if s < 35:
            beta = (1.1, 1.0)
        else:
            flat = (1.05, 0.0)
    third = (multiplicative or s >= 35) if channels == 1 else s >= 45
    passes = 3 if third else 2
    return dict(patch1=p1, patch2=p2, n1=n1, n2=n2, radius=radius, beta=beta, flat=flat, passes=passes)


def _grid(n, p, stride):
    last = n - p
    g = list(range(0, last + 1, stride))
    if g[-1] != last:
        g.append(last)
    return np.asarray(g, dtype=np.int64)



def _model(x, noise, sigma, looks):
    """Resolve ``noise``/``sigma``/``looks`` into a model (estimating what is missing).

    Returns ``(model, estimated, name)``, ``name`` the argument the model came
    from (for the messages).
    """
    if isinstance(noise, NoiseModel):
        if sigma is not None or looks is not None:
            raise ValueError("sigma and looks are not used with a NoiseModel instance (it has its parameters)")
        return noise, False, "noise"
    if not isinstance(noise, str) or noise not in ("auto",) + NOISE_MODELS:
        raise ValueError(f"noise must be one of {('auto',) + NOISE_MODELS} or a nlm.noise.NoiseModel, got {noise!r}")
    if sigma is not None and looks is not None:
        raise ValueError(
            "give either sigma (the std of Gaussian noise) or looks (the number of looks of SAR speckle), not both"
        )
    if sigma is not None:
        if noise == "rician":
            return Rician(_check_nonneg(sigma, "sigma")), False, "sigma"
        if noise not in ("gaussian", "auto"):
            raise ValueError(
                f"sigma is the Gaussian (or Rician) noise std; it is not used with noise={noise!r}"
            )
        return Gaussian(_check_nonneg(sigma, "sigma")), False, "sigma"
    if looks is not None:
        if noise not in ("gamma", "auto"):
            raise ValueError(f"looks is the number of looks of SAR speckle; it is not used with noise={noise!r}")
        if isinstance(looks, bool) or not isinstance(looks, numbers.Real):
            raise TypeError(f"looks must be a real number, got {looks!r}")
        if not np.isfinite(looks) or looks <= 0:
            raise ValueError(f"looks must be a finite number > 0, got {looks}")
        return Gamma(float(looks)), False, "looks"
    return estimate_noise(x, noise, channel_axis=0), True, "noise"


def _pow2_exponent(xc):
    """``e`` such that ``max |x| 2^e`` lies near 1 (0 when ``max |x|`` is in ``[2^-20, 2^20]`` or 0).

    NL-Bayes squares differences and noise variances; scaling by a power of
    two is exact, so values of any finite magnitude neither overflow nor
    underflow, and images in ordinary ranges are not touched.
    """
    amax = float(np.max(np.abs(xc)))
    if amax == 0.0 or 2.0**-20 <= amax <= 2.0**20:
        return 0
    return int(np.clip(-np.round(np.log2(amax)), -1000, 1000))


def denoise_nl_bayes(
    image: ArrayLike,
    *,
    noise: str | NoiseModel = "auto",
    sigma: float | None = None,
    looks: float | None = None,
    channel_axis: int | None = None,
    preserve_range: bool = False,
    patch_size: int | tuple[int, int] | None = None,
    n_similar: int | tuple[int, int] | None = None,
    search_radius: int | None = None,
    beta: float | tuple[float, float] | None = None,
    flat: float | tuple[float, float] | None = None,
    passes: int | None = None,
    stride: int = 2,
    num_threads: int | None = None,
    return_model: bool = False,
    mask: ArrayLike | None = None,
) -> np.ndarray | tuple[np.ndarray, NoiseModel]:
    """Two-step non-local Bayes denoising with a signal-dependent noise model.

    Every group of similar patches is estimated under a Gaussian model of its
    patches: step 1 from the noisy group, step 2 with the covariance of the
    step-1 (basic) estimate.  Where NL-Bayes assumes white noise ``sigma^2 I``,
    the noise covariance of a group is ``D = diag(NLF(m_k))``: the model's
    level function at the group's mean at every patch pixel, so Poisson,
    speckle and SAR noise are handled without a variance-stabilising
    transform (and without its inverse's bias).

    Parameters
    ----------
    image : array_like
        2-D image or 3-D volume (``(z, y, x)``, ``(t, y, x)``: any three
        spatial axes), with one extra channel axis if ``channel_axis`` is
        given.  Real numeric dtype, finite values; non-negative for the
        speckle and gamma models.
    noise : str or nlm.noise.NoiseModel, keyword-only
        ``"auto"`` (default: the model and its parameters are estimated by
        :func:`nlm.estimate_noise`), ``"gaussian"``, ``"poisson"``,
        ``"speckle"``, ``"gamma"``, ``"rician"`` (that model, parameters
        estimated; Rician: magnitude MRI, see Notes), or a
        model instance such as ``nlm.noise.Gamma(4)`` (used as given, in the
        units of the converted image).
    sigma : float >= 0 or array of the image's spatial shape, keyword-only
        Known Gaussian noise std (converted-image units); implies
        ``noise="gaussian"``, except with ``noise="rician"``, where it is the
        Rician ``sigma`` (the std of the real and imaginary parts).  An array
        (channels excluded; e.g. from ``nlm.estimate_noise(image,
        return_map=True)``) is a per-pixel Gaussian noise std map: each
        group's noise covariance is ``diag`` of the map's variance averaged
        over the group's patches at every patch pixel (see Notes); the
        parameters (patch sizes, group sizes, ...) are those of its RMS over
        the valid pixels.
    looks : float > 0, keyword-only
        Known number of looks of SAR intensity data; implies
        ``noise="gamma"``.
    channel_axis : int or None, keyword-only
        Axis of the channels.  Colour is denoised in the orthonormal
        decorrelated space (luminance, two chrominances) with joint patches
        in step 2, as in the IPOL colour version.
    preserve_range : bool, keyword-only
        Integer images: keep the raw values (float64) instead of scaling to
        [0, 1] like scikit-image.
    patch_size : int or (int, int), keyword-only
        Patch sides of steps 1 and 2 (odd); default from the noise level
        (:func:`bayes_parameters`).  Volumes: an int (every axis, both
        steps), one odd int per axis (``(1, 5, 5)``: 5x5 patches within a
        frame; both steps), or a pair (step 1, step 2) of those; default
        from :func:`volume_parameters`.
    n_similar : int or (int, int), keyword-only
        Group sizes of steps 1 and 2; default from the noise level.
    search_radius : int or (int, int, int), keyword-only
        Search window radius (both steps); default ``n1 / 4``, at most 16.
        Volumes: an int >= 1 or one int >= 0 per axis (``(1, 4, 4)``: one
        frame either side); default from :func:`volume_parameters`.
    beta : float > 0 or (float, float), keyword-only
        Noise correction factor, one for both steps or a pair (step 1,
        step 2).  Default: 1.1 and 1 for grey images with additive or
        Poisson noise (:func:`bayes_parameters`), 1 and 1 for colour, 1.1
        for both steps with the speckle and gamma models (their per-group
        ``D`` from the group's mean underestimates the mean variance of its
        patches).
    flat : float >= 0 or (float, float), keyword-only
        Flat-area threshold ``gamma``, one for both steps or a pair (step 1,
        step 2); 0 disables the rule.  Default 1.05 in both steps, except
        grey images with additive or Poisson noise from sigma 35 (of 255):
        1.05 and 0 (:func:`bayes_parameters`).
    passes : {2, 3}, keyword-only
        2: the two steps; 3: step 2 once more, with the step-2 result as
        its guide (see Notes).  Default from the noise level
        (:func:`bayes_parameters`): 3 for grey images with the speckle and
        gamma models, and with additive or Poisson noise from sigma 35 (of
        255); for colour images from sigma 45; else 2.
    stride : int >= 1, keyword-only
        Step of the reference grid (default 2).  Positions already estimated
        in a group are skipped as references.
    num_threads : int >= 1, keyword-only
        Numba threads for this call (the result does not depend on it); for
        a dask array, per tile (default 1).
    return_model : bool, keyword-only
        Also return the noise model used (estimated or given).

    Returns
    -------
    out : ndarray
        Same shape as ``image``.  float32 (and float16) input gives float32,
        float64 gives float64, integer and bool give float64 (the dtype rules
        of :func:`nlm.denoise_nl_means`).  The working precision of every
        group estimate is float64; images and accumulators keep the
        working dtype (float32 results agree with float64 to ~1e-5).
        A ``dask.array.Array`` gives a lazy dask array, filtered tile by tile
        and equal to the in-memory result bit for bit: the model and the
        parameters are set once (from ``nlm.tiling.sample_regions``: the
        whole image up to 2^22 pixels, else a sample) and every tile is told
        its origin, so it visits the image's reference grid and cells; its
        margin is :func:`tile_margin` (see Notes and docs/nl-bayes.md).
    mask : array_like of bool or None, keyword-only
        The image's spatial shape, True = valid.  Only patches without a
        masked pixel are references or group members, so masked pixels never
        enter an estimate; they come back unchanged (NaN/Inf allowed there).
        Valid pixels that no valid patch of the reference grid reached get
        groups of their own (every valid patch still holding such a pixel
        becomes a reference); a valid pixel that lies in no valid patch at
        all (a gap narrower than the patch) is returned as it is.  The noise
        model is estimated with masked pixels set to the median of the valid
        ones (constant blocks carry no weight in the estimate).

    model : NoiseModel
        Only with ``return_model=True``.

    Raises
    ------
    TypeError
        Non-numeric image; wrong argument types; the abstract
        ``NoiseModel()``.
    ValueError
        Empty image, NaN/Inf, negative values with a multiplicative model,
        unknown ``noise``, ``sigma``/``looks`` with a model that does not use
        them or together, bad parameter values (``beta`` above 100, ``flat``
        above 1e6); a model that does not fit the data
        (:func:`nlm.noise.check_model`: non-finite coefficients, a negative
        or overflowing variance over the data's range, clip bounds the data
        lie outside, such as ``clip=True`` on raw 0..255 values); a noise
        std more than 1000 times the data's range (a model in the wrong
        units); values so large that the estimated variance overflows.
    UnsupportedDimensionError
        Not a 2-D image or 3-D volume (plus channels).

    Notes
    -----
    Algorithm (Lebrun, Buades, Morel 2013).  Step 1: for references on a grid
    of ``stride`` (skipping positions already estimated as part of a group),
    the ``n1`` patches nearest to the reference on the noisy luminance in the
    search window form the group ``Y`` (mean ``m``, covariance ``C_Y``); per
    channel, ``X = m + (C_Y - beta D) C_Y^-1 (Y - m)``.  If the group's
    variance is at most ``flat`` times its mean noise variance, every patch
    becomes the group's mean value.  Estimates are aggregated with uniform
    weights.  Step 2: the ``n2`` nearest on the basic estimate (all
    channels), plus any closer than ``tau = (4/255)^2`` of the image range
    squared, up to ``2 n1``; ``X = m_Y + C_B (C_B + beta D)^-1 (Y - m_Y)``
    with ``C_B`` the covariance of the basic group; ``D`` from the level
    function at the basic group's mean.  The linear systems are solved by
    Cholesky factorisation in float64.  Pass 3 (``passes=3``) is step 2
    again with the step-2 result as the guide, which is close enough to the
    clean image that much larger groups stay homogeneous: the ``n2`` nearest
    plus every patch closer than ``tau3 = 0.07 s^2`` (``s^2``: the mean
    noise variance over the image), up to the whole search window.  Larger
    groups give a better estimated covariance (figures in
    :func:`bayes_parameters`).

    Clipped data (a model with ``bounds``, as :func:`nlm.estimate_noise`
    reports when the noise piles up at the data's minimum or maximum: 0 and
    1 for a converted 8-bit photo, 0 and 255 for its raw values with
    ``preserve_range=True``): ``D`` is the variance of the *clipped*
    observation at the group's mean (a table of
    :meth:`~nlm.noise.NoiseModel.observed_moments` over the bounds, or the
    data's range on an open side), and the result, which estimates the
    clipped observation's mean, is mapped back through the inverse of that
    mean (Foi 2009), so black and white areas are not lifted by the clipped
    half of the noise.  The model's bounds must contain the data.

    Rician data (:class:`nlm.noise.Rician`, magnitude MRI) go the same way
    as clipped data: the model's :meth:`~nlm.noise.NoiseModel.observed_moments`
    (the exact Rician mean and variance) give ``D`` at the group's mean
    (the observed mean, above the amplitude: ``sigma sqrt(pi/2)`` in the
    air) and the inverse of the Rician mean maps the result back to the
    amplitude (0 below the Rayleigh mean), so that homogeneous areas keep
    their mean at low SNR (measured within 2 % at SNR 1 to 5).  This sits
    in :func:`_level_table` / :func:`_uniform_interp`, which are
    dimension-agnostic: a caller that builds its ``nlf`` with
    ``_level_table(model, lo, hi)`` and maps its result with
    ``_uniform_interp(out, inverse)`` when the inverse is not None gets the
    Rician handling with no other change.

    Zero, tiny and huge noise.  When the model's noise std is at most 1e-7
    of the data's range everywhere in it (``sigma=0``, a noise-free image
    whose estimate is 0, ``looks=1e300``), there is nothing to remove: the
    input is returned (in the output dtype).  Values of any finite magnitude
    are scaled internally by a power of two (exact), so ``x * 2**k`` gives
    the result for ``x`` times ``2**k``.  Search windows, groups and patches
    larger than the image are clamped to it.

    Order and tiles.  References are visited in cells of ``B x B``
    positions (``B = max(2 search_radius + patch, 8)``) fixed in the image,
    by colour (the parities of the cell's row and column), one colour's
    cells in parallel, raster order inside a cell; a reference already
    estimated as a member of an earlier group is skipped.  The result does
    not depend on the thread count, and a tile with the margin of
    :func:`tile_margin` reproduces the image's result in its interior.

    Cost: per reference, ``O(W^2 P^2)`` for the search (window ``W``, patch
    ``P^2 C``) and ``O(n d^2 + d^3)`` for the estimate (``d = P^2`` in step
    1, ``P^2 C`` in step 2); about ``N / (2 stride^2)`` references per step.

    Volumes (3-D, kernels in :mod:`nlm.ops._bayes_volume`): the same steps
    with box patches ``pz x py x px`` and box search windows, per axis, on
    ``stride`` grids along every axis; parameters from
    :func:`volume_parameters` (tuned on public MRI volumes, see
    docs/volumes.md).  Patches and windows are clamped per axis to the
    volume (a one-slice volume is a 2-D image with ``pz = 1``).  Cost per
    reference ``O(W_z W_y W_x P_z P_y P_x C)`` for the search and ``O(n d^2
    + d^3)`` with ``d = P_z P_y P_x`` (``C`` times that in step 2).  The
    references are visited in cells of ``max(2 r + p, 8)`` positions per
    axis anchored at the volume's origin, colour by colour (the parities of
    the cell's indices; the cells of a colour in parallel), so the result
    does not depend on the thread count, and a block with the margin of
    :func:`volume_margin` reproduces the volume's values exactly
    (:func:`run_volume_passes` takes the block's origin).
    Memory: the working image, the basic estimate, a float64 numerator,
    a float32 weight image and a mask: about 6 times a float32 grey input.

    References
    ----------
    .. [1] M. Lebrun, A. Buades, J.-M. Morel, "A nonlocal Bayesian image
       denoising algorithm", SIAM J. Imaging Sci. 6(3), 2013.
    .. [2] M. Lebrun, A. Buades, J.-M. Morel, "Implementation of the
       "Non-Local Bayes" (NL-Bayes) image denoising algorithm", Image
       Processing On Line 3, 2013.
    .. [3] M. Lebrun, M. Colom, J.-M. Morel, "The Noise Clinic: a blind
       image denoising algorithm", Image Processing On Line 5, 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage import data, img_as_float
    >>> from nlm import denoise_nl_bayes
    >>> from nlm.noise import Gamma
    >>> from nlm.metrics import psnr
    >>> clean = img_as_float(data.camera()[::4, ::4])
    >>> noisy = Gamma(4).sample(clean, seed=0)
    >>> out, model = denoise_nl_bayes(noisy, return_model=True)
    >>> model.name
    'gamma'
    >>> bool(psnr(clean, out) > psnr(clean, noisy) + 8)
    True
    """
    _refuse_dask(image, "denoise_nl_bayes")
    sigma_map = None
    if is_map(sigma):
        if isinstance(noise, NoiseModel) or noise not in ("auto", "gaussian"):
            raise ValueError(f"sigma: a noise map is the std of Gaussian noise; not used with noise={noise!r}")
        sigma_map, sigma, noise = sigma, None, "gaussian"
    nodata = None
    if mask is not None:
        image, mask, nodata = masked_nonfinite(image, mask, channel_axis)
    image = _as_numeric(image)
    preserve_range = _check_bool(preserve_range, "preserve_range")
    return_model = _check_bool(return_model, "return_model")
    if num_threads is not None:
        num_threads = _check_int(num_threads, "num_threads", 1)
    stride = _check_int(stride, "stride", 1)
    flat = _pair_float(flat, "flat", positive=False)
    beta = _pair_float(beta, "beta", positive=True)
    n_user = _pair(n_similar, "n_similar", minimum=2)
    passes = _check_passes(passes)

    x = _to_float(image, preserve_range)
    if channel_axis is None:
        axis = None
        xc = x[None]
    else:
        axis = _check_axis(channel_axis, image.ndim)
        xc = np.moveaxis(x, axis, 0)
    if xc.ndim == 4:
        if sigma_map is not None or mask is not None:
            raise NotImplementedError(
                "denoise_nl_bayes: noise maps and masks are 2-D only for now; use denoise_nl_means for a volume "
                "with a noise map or a mask"
            )
        return _denoise_volume(image.dtype, xc, axis, noise, sigma, looks, preserve_range, patch_size, n_user,
                               search_radius, beta, flat, passes, stride, num_threads, return_model)
    if xc.ndim != 3:
        raise UnsupportedDimensionError(
            "denoise_nl_bayes needs a 2-D or 3-D image (plus an optional channel axis), "
            f"got {xc.ndim - 1} spatial dimension(s)"
        )
    p_user = _pair(patch_size, "patch_size", odd=True)
    if search_radius is not None:
        search_radius = _check_int(search_radius, "search_radius", 1)
    spatial = xc.shape[1:]
    if sigma_map is not None:
        sigma_map = check_sigma_map(sigma_map, spatial)
    mask = check_mask(mask, spatial)
    if mask is not None and mask.all():
        mask = None
    given = xc
    if mask is not None and mask.any():
        # masked pixels: the median of the valid ones, for the estimators (never used by the groups)
        fill = np.median(xc[:, mask], axis=1).astype(xc.dtype)
        xc = np.where(mask[None], xc, fill[:, None, None])
    if sigma_map is not None:
        v = sigma_map if mask is None else sigma_map[mask]
        sigma = float(np.sqrt(np.mean(v**2))) if v.size else 0.0
        if sigma == 0:
            sigma_map = None  # a map of zeros: sigma = 0
    prm = _parameters(xc, image.dtype, noise, sigma, looks, preserve_range, p_user, n_user, search_radius, beta,
                      flat, passes)
    out = run_passes(prm["xc"], prm, stride, num_threads, sigma_map=sigma_map, mask=mask)
    out = _restore(out, given, mask, nodata, axis)
    return (out, prm["user_model"]) if return_model else out


def _mix(tmat, xc):
    """``tmat @ xc`` over the channels (float64), pixel by pixel in a fixed order.

    Elementwise products and sums, not BLAS: a pixel's rounding never depends
    on its place in the array, so a tile gets the whole image's values.
    """
    C = xc.shape[0]
    if C == 1 and tmat[0, 0] == 1.0:
        return xc.astype(np.float64)
    out = np.empty(xc.shape, dtype=np.float64)
    for c in range(C):
        acc = float(tmat[c, 0]) * xc[0].astype(np.float64)
        for j in range(1, C):
            acc += float(tmat[c, j]) * xc[j].astype(np.float64)
        out[c] = acc
    return out


def _grid_in(n, p, stride, start, m):
    """The image's reference grid along an axis of ``n`` (:func:`_grid`) within a block of ``m`` from ``start``.

    Block coordinates: the grid positions ``g`` with ``start <= g <= start + m - p``, minus ``start``.
    """
    g = _grid(n, p, stride)
    return np.ascontiguousarray(g[(g >= start) & (g <= start + m - p)] - start)


def _band(radius, p):
    """Side (in reference positions) of the kernel's cells (:func:`nlm.ops._bayes_kernels.bayes_step`)."""
    return max(2 * radius + p, 8)


def tile_margin(prm):
    """Margins ``(rows, columns)`` (pixels per side) that make a tile of :func:`run_passes` exact.

    The kernel visits cells of ``B x B`` reference positions (``B``:
    :func:`_band`) in four colours (:func:`nlm.ops._bayes_kernels.bayes_step`).
    Per pass, the kept pixels receive groups of references up to ``r + p -
    1`` away, in cells reaching ``B - 1`` further, whose skipped positions
    depend on the cells of earlier colours around them: at most one cell
    further along the rows and three along the columns; the last of these
    reads ``r`` positions (and a patch) beyond its cell.  So per pass ``2 B
    + 2 r + p - 2`` rows and ``4 B + 2 r + p - 2`` columns.  Each pass reads
    the previous one's estimate: the passes' margins add up.  ``prm``: the
    dict of :func:`_parameters`.
    """
    r = prm["radius"]
    ps = [prm["p1"]] + [prm["p2"]] * (prm["passes"] - 1)
    rows = sum(2 * _band(r, p) + 2 * r + p - 2 for p in ps)
    cols = sum(4 * _band(r, p) + 2 * r + p - 2 for p in ps)
    return rows, cols


def run_passes(xc, prm, stride, num_threads, origin=None, shape=None, sigma_map=None, mask=None):
    """The passes of :func:`denoise_nl_bayes` on a channel-first float block; channel-first result.

    ``xc``: already scaled by ``prm["exponent"]`` (:func:`_parameters`).
    ``origin``, ``shape``: the position of the block's first pixel in the
    image and the image's spatial shape, for a tile (:mod:`nlm.tiling`); the
    reference grid and the kernel's cells are the image's, so
    the pixels at least :func:`tile_margin` inside the block (or at the
    image's border) are those of the whole image, bit for bit.  None: the
    block is the image.  ``sigma_map``, ``mask``: the block's noise std map
    (image units) and validity mask, or None (see :func:`denoise_nl_bayes`).
    """
    e = prm["exponent"]
    if prm["identity"]:
        # no noise to remove (see Notes): the input, in the output dtype
        return np.array(np.ldexp(xc, -e) if e else xc, dtype=xc.dtype)
    model, tmat, p1, p2, n1, n2 = prm["model"], prm["tmat"], prm["p1"], prm["p2"], prm["n1"], prm["n2"]
    radius, beta, n_max, tau, flat = prm["radius"], prm["beta"], prm["n_max"], prm["tau"], prm["flat"]
    C, H, W = xc.shape
    oy, ox = (0, 0) if origin is None else (int(origin[0]), int(origin[1]))
    Hg, Wg = (H, W) if shape is None else (int(shape[0]), int(shape[1]))
    dtype = xc.dtype

    work = np.ascontiguousarray(_mix(tmat, xc).astype(dtype, copy=False))
    nlf, unbias = _level_table(model, prm["lo"], prm["hi"])
    from nlm.ops._bayes_kernels import bayes_step

    # noise map (variances, working units) and valid patches; empty: none
    vmap = np.empty((0, 0)) if sigma_map is None else np.ascontiguousarray((sigma_map * 2.0**e) ** 2)
    valid1 = _valid_patches(mask, p1)
    valid2 = valid1 if p2 == p1 else _valid_patches(mask, p2)
    rows1, cols1 = _grid_in(Hg, p1, stride, oy, H), _grid_in(Wg, p1, stride, ox, W)
    rows2, cols2 = _grid_in(Hg, p2, stride, oy, H), _grid_in(Wg, p2, stride, ox, W)
    with _threads(num_threads):
        basic = bayes_step(work, work, rows1, cols1, p1, radius, n1, n1, 0.0, True, nlf, tmat, float(beta[0]),
                           float(flat[0]), _band(radius, p1), vmap, valid1, oy, ox)
        _check_finite(basic, "step 1", model)
        band2 = _band(radius, p2)
        final = bayes_step(work, basic, rows2, cols2, p2, radius, n2, n_max, tau, False, nlf, tmat,
                           float(beta[1]), float(flat[1]), band2, vmap, valid2, oy, ox)
        if prm["passes"] == 3:
            _check_finite(final, "step 2", model)
            del basic
            basic = final
            final = bayes_step(work, basic, rows2, cols2, p2, radius, n2, prm["n_max3"], prm["tau3"], False, nlf,
                               tmat, float(beta[1]), float(flat[1]), band2, vmap, valid2, oy, ox)
    del basic, work
    out = _mix(tmat.T, final)
    if unbias is not None:
        # clipped data: the groups estimate the mean of the clipped
        # observation, pulled inside the bounds near them; its inverse
        out = _uniform_interp(out, unbias)
    _check_finite(out, "the last step", model)
    if e:
        out = np.ldexp(out, -e)
    return out.astype(dtype, copy=False)


def _valid_patches(mask, p):
    """(H - p + 1, W - p + 1) bool: the p x p patches (top-left corners) without a masked pixel; (0, 0) for none."""
    if mask is None:
        return np.empty((0, 0), dtype=bool)
    bad = np.pad((~mask).astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    box = bad[p:, p:] - bad[:-p, p:] - bad[p:, :-p] + bad[:-p, :-p]
    return np.ascontiguousarray(box == 0)


def _restore(out, given, mask, nodata, axis):
    """Channel-first ``out`` -> the caller's layout, masked pixels as given (and their NaN/Inf)."""
    if mask is not None:
        out[:, ~mask] = given[:, ~mask]
    out = out[0] if axis is None else np.moveaxis(out, 0, axis)
    if nodata is not None:
        out[nodata[0]] = nodata[1].astype(out.dtype)
    return out


def _check_finite(a, where, model):
    """A last guard: non-finite values must never reach the next kernel (its search would index garbage)."""
    if not np.isfinite(a).all():
        raise FloatingPointError(
            f"NL-Bayes produced NaN or infinite values in {where} with the noise model {model!r}; this is a bug "
            "in nlm, please report it with the image's shape, dtype and range"
        )


#: intervals of the clipped level table (uniform in the observed mean on the table's span)
_TABLE = 512
#: ... at most, for the Rician table (64 intervals per sigma)
_TABLE_MAX = 1 << 16

#: noise std, relative to the data's range, below which NL-Bayes returns the input
_IDENTITY = 1e-7
#: ... and above which it refuses the model
_HUGE = 1e3


def _level_table(model, lo=0.0, hi=1.0):
    """The kernels' ``nlf`` array of a model, and the inverse of its clipped mean.

    Unclipped (``model.biased_mean`` False): ``(a, b, c)``, and None.
    Clipped, or Rician (``biased_mean``; the Rician table has 64 intervals
    per ``sigma``, 512 to 65536 in all): the table spans ``[t0,
    t1]``, the model's bounds (an open side: the data's minimum ``lo`` or
    maximum ``hi``); ``nlf`` is ``(a, b, c, t0, s)`` followed by the
    variance of the clipped observation at ``_TABLE + 1`` observed means
    ``t0, t0 + 1 / s, ..., t1`` (``s = _TABLE / (t1 - t0)``; the kernels
    interpolate it at the group mean, which estimates the clipped mean), and
    the inverse is ``(t0, t1, table, open_lo, open_hi)``: the clean value at
    ``2 _TABLE + 1`` observed means ``t0, ..., t1`` for
    :func:`_uniform_interp`.
    """
    coef = np.array(model.coefficients, dtype=np.float64)
    if not model.biased_mean:
        return coef, None
    blo, bhi = (float(b) for b in model.bounds)
    t0 = blo if np.isfinite(blo) else min(float(lo), bhi)
    t1 = bhi if np.isfinite(bhi) else max(float(hi), blo)
    if not t1 > t0:  # data constant at an open bound's side
        t1 = t0 + max(np.sqrt(model.variance(t0)), abs(t0) * 1e-6, 1e-300)
    K = _TABLE
    if model.name == "rician" and model.sigma > 0:
        # the inverse of the Rician mean is steep near the Rayleigh mean (a
        # square root): at least 64 intervals per sigma there
        K = int(np.clip(64.0 * (t1 - t0) / model.sigma, _TABLE, _TABLE_MAX))
    x = np.linspace(t0, t1, 4 * K + 1)
    m, v = model.observed_moments(x)
    m = np.maximum.accumulate(m)  # increasing (speckle's is only to ~1e-16 at x = 0)
    table = np.interp(np.linspace(t0, t1, K + 1), m, v)
    nlf = np.concatenate([coef, [t0, K / (t1 - t0)], table])
    inverse = np.interp(np.linspace(t0, t1, 2 * K + 1), m, x)
    return nlf, (t0, t1, inverse, not np.isfinite(blo), not np.isfinite(bhi))


def _uniform_interp(u, spec):
    """The inverse table of :func:`_level_table` interpolated linearly at ``u``.

    Clamped to the table's span on a bounded side; beyond an open side, the
    identity shifted to meet the table's end.
    """
    t0, t1, table, open_lo, open_hi = spec
    K = table.size - 1
    z = np.clip((u - t0) * (K / (t1 - t0)), 0.0, K)
    i = np.minimum(z.astype(np.intp), K - 1)
    z -= i
    lo = table[i]
    out = lo + z * (table[i + 1] - lo)
    if open_hi:
        out = np.where(u > t1, u - t1 + table[-1], out)
    if open_lo:
        out = np.where(u < t0, u - t0 + table[0], out)
    return out


def _parameters(xc, image_dtype, noise, sigma, looks, preserve_range, p_user, n_user, search_radius, beta,
                flat=None, passes=None):
    """Noise model and algorithm parameters of a channel-first float image (see denoise_nl_bayes).

    Also scales ``xc`` by a power of two when its magnitude is extreme
    (:func:`_pow2_exponent`; ``prm["xc"]``, ``prm["exponent"]``): ``model``
    is in the scaled (working) units, ``user_model`` in the image's.
    """
    e = _pow2_exponent(xc)
    if e:
        xc = np.ldexp(xc, e).astype(xc.dtype, copy=False)
    model, estimated, name = _model(xc, noise, sigma, looks)
    user_model = model
    if e:
        try:
            if estimated:
                user_model = model.scaled(2.0**-e)
            else:
                model = model.scaled(2.0**e)
        except NotImplementedError:
            raise ValueError(
                f"{name}: the image's values (up to {2.0**-e:g} in magnitude) need the model in other units, "
                f"and {type(model).__name__} does not implement scaled()"
            ) from None
        except ValueError as exc:  # the estimated model does not fit float64 in the image's units
            raise ValueError(
                f"image: its values (up to about {2.0**-e:g} in magnitude) are too large for the noise model's "
                f"variance in float64 ({exc}); rescale the image"
            ) from None
    lo, hi = float(xc.min()), float(xc.max())
    check_range(dict(model=model, exponent=e, name=name), lo, hi)
    C, H, W = xc.shape[0], xc.shape[-2], xc.shape[-1]  # volumes: geometry of their own (_denoise_volume)

    # noise level on the 0..255 scale: root mean variance over the image
    from scipy.ndimage import uniform_filter

    smooth = uniform_filter(xc.astype(np.float64), size=(1,) + (3,) * (xc.ndim - 1), mode="reflect")
    if preserve_range and np.dtype(image_dtype).kind in "iu":
        # the dtype's range, as [0, 1] is for converted images
        rng = float(np.iinfo(image_dtype).max) * 2.0**e
    elif hi <= 1.0 + 1e-6 and lo >= -1.0 - 1e-6:
        rng = 1.0
    else:
        rng = max(float(np.percentile(smooth, 99.5)) - min(float(np.percentile(smooth, 0.5)), 0.0), 1e-300)
    tmat = _colour_transform(C)
    mean_var = float(np.mean(model.variance(smooth)))
    del smooth
    grid = np.linspace(max(lo, 0.0), max(hi, 0.0), 65)
    max_var = max(float(np.max(model.variance(grid))), float(model.variance(lo)))
    if np.sqrt(mean_var) > _HUGE * rng:
        raise ValueError(
            f"{name}: the noise std of {user_model!r} ({np.sqrt(mean_var) * 2.0**-e:g} on average) is more than "
            f"{_HUGE:g} times the data's range ({rng * 2.0**-e:g}); is the model in the image's units "
            "(converted images lie in [0, 1]; raw values with preserve_range=True)?"
        )
    identity = np.sqrt(max_var) <= _IDENTITY * rng
    sigma255 = 255.0 * np.sqrt(mean_var) / rng
    prm = bayes_parameters(sigma255, C, multiplicative=model.c > 0)
    p1, p2 = p_user if p_user is not None else (prm["patch1"], prm["patch2"])
    n1, n2 = n_user if n_user is not None else (prm["n1"], prm["n2"])
    radius = prm["radius"] if search_radius is None else search_radius
    # a window wider than the image is the whole image
    radius = max(1, min(radius, max(H, W) - 1))
    if beta is None:
        # D from the group's mean underestimates the mean variance of its
        # patches for multiplicative noise (E[c x^2] >= c E[x]^2): measured
        # +0.05 dB with 1.1 at L = 4 (camera, coins), -0.04 dB for Gaussian
        beta = (1.1, 1.1) if model.c > 0 else prm["beta"]
    if flat is None:
        flat = prm["flat"]
    p1 = min(p1, _largest_odd(min(H, W)))
    p2 = min(p2, _largest_odd(min(H, W)))
    cand = (2 * radius + 1) ** 2
    n1 = min(n1, cand)
    n2 = min(n2, cand)
    n_max = max(n2, min(2 * n1, cand))
    tau = (4.0 / 255.0 * rng) ** 2
    if passes is None:
        passes = prm["passes"]
    # pass 3: every patch closer than TAU3 times the mean noise variance, up
    # to the whole window (see denoise_nl_bayes)
    tau3 = TAU3 * mean_var
    n_max3 = max(n2, cand)

    return dict(model=model, user_model=user_model, estimated=estimated, tmat=tmat, p1=p1, p2=p2, n1=n1, n2=n2,
                radius=radius, beta=beta, n_max=n_max, tau=tau, flat=flat, passes=passes, tau3=tau3,
                n_max3=n_max3, xc=xc, exponent=e, lo=lo, hi=hi, identity=bool(identity), sigma255=sigma255,
                mean_var=mean_var, name=name)


def check_range(prm: dict, lo: float, hi: float) -> None:
    """The data checks of :func:`_parameters` for (scaled) data in ``[lo, hi]``: non-negative for a
    multiplicative model, inside a clipped model's bounds (:func:`nlm.noise.check_model`)."""
    model, e = prm["model"], prm["exponent"]
    if model.nonnegative and model.name != "poisson" and lo < 0:
        raise ValueError(
            f"image must be non-negative for the {model.name!r} noise model, got a minimum of {lo * 2.0**-e:g}"
        )
    check_model(model, lo, hi, name=prm["name"])


def _check_passes(passes):
    if passes is None:
        return None
    passes = _check_int(passes, "passes", 2)
    if passes > 3:
        raise ValueError(f"passes must be 2 or 3, got {passes}")
    return passes


def _pair_float(value, name, positive):
    """``beta``/``flat`` argument -> None or a pair (step 1, step 2) of floats (> 0 or >= 0)."""
    if value is None:
        return None
    vals = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(vals) != 2:
        raise ValueError(f"{name} must be a number or a pair of numbers (step 1, step 2), got {value!r}")
    out = tuple(_check_nonneg(v, name) for v in vals)
    if positive and min(out) == 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if max(out) > _PAIR_MAX[name]:
        raise ValueError(f"{name} must be at most {_PAIR_MAX[name]:g}, got {value!r}")
    return out


#: the largest beta (noise correction factor) and flat (threshold) accepted:
#: far beyond any useful value, and the products with variances stay finite
_PAIR_MAX = {"beta": 100.0, "flat": 1e6}


def _largest_odd(n):
    return n if n % 2 else n - 1


def _ints(value, name, n, what, minimum, odd, sequences=(tuple, list)):
    """An int or ``n`` ints -> a tuple of ``n`` checked ints (``what`` names the sequence in the error)."""
    vals = (value,) * n if not isinstance(value, sequences) else tuple(value)
    if len(vals) != n:
        raise ValueError(f"{name} must be an int or {what}, got {value!r}")
    out = []
    for v in vals:
        v = _check_int(v, name, minimum)
        if odd and v % 2 == 0:
            raise ValueError(f"{name} must be odd, got {v}")
        out.append(v)
    return tuple(out)


def _pair(value, name, odd=False, minimum=1):
    if value is None:
        return None
    return _ints(value, name, 2, "a pair of ints (step 1, step 2)", minimum, odd)


# ---------------------------------------------------------------------------- volumes
def volume_parameters(sigma255: float, channels: int = 1, multiplicative: bool = False) -> dict[str, Any]:
    """The parameters NL-Bayes uses on a volume (3-D image) at a noise level.

    Parameters
    ----------
    sigma255 : float >= 0
        Noise standard deviation on the 0..255 scale (signal-dependent
        noise: the root of the mean noise variance over the volume).
    channels : int, optional
        1 (grey) or more.
    multiplicative : bool, optional
        The noise model has a quadratic term (speckle, SAR gamma).

    Returns
    -------
    dict
        As :func:`bayes_parameters`, with ``patch1``, ``patch2`` and
        ``radius`` per axis (triples).

    Notes
    -----
    One table at every level: 3 x 3 x 3 patches in both steps, groups of
    ``n1 = 60`` and ``n2 = 30``, a 9 x 9 x 9 window (radius 4), ``beta`` 1,
    the flat-area rule in step 1 only (1.05, 0) and three passes.  Tuned
    blind on three public MRI volumes (``S0_10slices``, ``test_piesno``
    from dipy, the first ``example4d`` volume from nibabel; Gaussian noise
    of 3 / 6 / 12 % of the range; ``benchmarks/bayes3d.py``), against the
    first table tried (two passes, flat 1.05 in both steps, n 60 / 30 below
    sigma 15 of 255, 90 / 45 above), in dB at 3 / 6 / 12 %: the third pass
    +0.06 / +0.06 / +0.19; then no flat rule in step 2 +0.06 / +0.07 /
    +0.13; then n 60 / 30 at every level +0.02 / +0.06 / +0.08.  Tried and
    not taken: radius 5 or 6 (+0.03 to +0.04 dB at 1.6 times the time),
    ``(3, 5, 5)`` step-2 patches (+0.01 / +0.07 / +0.13 dB at twice the
    time, and it assumes the first axis is the coarse one), 5 x 5 x 5
    patches (-1.3 dB: groups smaller than the patch), larger groups (90 /
    45, 120 / 60), smaller (40 / 20), step-1 ``beta`` 1.1 or 0.9, flat 1.5.
    (Measured with a first version of the kernel whose groups marked
    members as done only inside their reference's cell; the final one marks
    them everywhere, as in 2-D.)
    Colour volumes and the multiplicative models use the same table (not
    tuned separately; ``denoise_nl_bayes`` sets ``beta`` 1.1 for the
    multiplicative ones, as in 2-D).
    """
    p = 3
    r = 4
    return dict(patch1=(p,) * 3, patch2=(p,) * 3, n1=60, n2=30, radius=(r,) * 3, beta=(1.0, 1.0),
                flat=(1.05, 0.0), passes=3)


def _triple(value, name, minimum, odd=False):
    """An int or a sequence of 3 ints (one per axis) -> a tuple of 3 ints."""
    return _ints(value, name, 3, "one int per axis (3) on a volume", minimum, odd, (tuple, list, np.ndarray))


def _steps3(value, name):
    """Volume ``patch_size``: an int, a triple (per axis), or a pair (step 1, step 2) of those."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(_triple(v, name, 1, odd=True) for v in value)
    t = _triple(value, name, 1, odd=True)
    return t, t


def _cells3(rad, p):
    """Cell sides (in reference positions) of :func:`nlm.ops._bayes_volume.bayes_step3`, per axis."""
    return np.array([max(2 * int(r) + int(q), 8) for r, q in zip(rad, p)], dtype=np.int64)


def volume_margin(prm: dict[str, Any]) -> tuple[int, int, int]:
    """Margins (voxels per side, per axis) that make a block of :func:`run_volume_passes` exact.

    Per pass, a kept voxel receives groups of references up to ``r + p - 1``
    away, in cells reaching ``B - 1`` further, whose skipped positions
    depend on the cells of earlier colours around them: chains of at most 1
    / 3 / 7 cells along the first / second / third axis (colour ``4 pz + 2 py
    + px``); the last of these reads ``r`` positions and a patch beyond its
    cell.  So per pass ``(k + 1) B + 2 r + p - 2`` with ``k`` = 1, 3, 7; the
    passes' margins add up.  ``prm``: the dict of :func:`_volume_parameters`.
    """
    rad = prm["radius"]
    ps = [prm["p1"]] + [prm["p2"]] * (prm["passes"] - 1)
    out = []
    for a, k in enumerate((1, 3, 7)):
        out.append(sum((k + 1) * _cells3(rad, p)[a] + 2 * rad[a] + p[a] - 2 for p in ps))
    return tuple(int(m) for m in out)


def _volume_parameters(xc, image_dtype, noise, sigma, looks, preserve_range, patch_size, n_user, search_radius,
                       beta, flat, passes):
    """:func:`_parameters` for a channel-first volume ``(C, Z, H, W)``: per-axis triples in ``p1``, ``p2``,
    ``radius`` (from :func:`volume_parameters` or the arguments, clamped to the volume)."""
    p_user = _steps3(patch_size, "patch_size")
    r_user = None
    if search_radius is not None:
        if isinstance(search_radius, (tuple, list, np.ndarray)):
            r_user = _triple(search_radius, "search_radius", 0)
        else:
            r_user = _triple(search_radius, "search_radius", 1)
    # the model, the noise level and tau from the shared code; the geometry is the volume's (below)
    prm = _parameters(xc, image_dtype, noise, sigma, looks, preserve_range, (1, 1), (2, 2), 1, beta, flat, passes)
    if prm["identity"]:
        return prm
    model = prm["model"]
    shape = prm["xc"].shape[1:]
    vp = volume_parameters(prm["sigma255"], xc.shape[0], multiplicative=model.c > 0)
    p1, p2 = p_user if p_user is not None else (vp["patch1"], vp["patch2"])
    n1, n2 = n_user if n_user is not None else (vp["n1"], vp["n2"])
    rad = r_user if r_user is not None else vp["radius"]
    if beta is None:
        beta = (1.1, 1.1) if model.c > 0 else vp["beta"]
    # clamped to the volume: a patch to its largest odd side, a window to the whole axis
    p1 = tuple(min(p, _largest_odd(n)) for p, n in zip(p1, shape))
    p2 = tuple(min(p, _largest_odd(n)) for p, n in zip(p2, shape))
    rad = tuple(min(r, n - 1) for r, n in zip(rad, shape))
    cand = int(np.prod([min(2 * r + 1, n - min(a, b) + 1) for r, n, a, b in zip(rad, shape, p1, p2)]))
    n1 = min(n1, cand)
    n2 = min(n2, cand)
    prm.update(p1=p1, p2=p2, n1=n1, n2=n2, radius=rad, beta=beta, flat=vp["flat"] if flat is None else flat,
               passes=vp["passes"] if passes is None else passes, n_max=max(n2, min(2 * n1, cand)),
               n_max3=max(n2, cand))
    return prm


def run_volume_passes(xc, prm, stride, num_threads, origin=None, shape=None):
    """The passes of :func:`denoise_nl_bayes` on a channel-first float volume or block of one.

    ``xc``: ``(C, Z, H, W)``, already scaled by ``prm["exponent"]``
    (:func:`_volume_parameters`).  ``origin``, ``shape``: the position of the
    block's first voxel in the volume and the volume's spatial shape; the
    reference grid and the kernel's cells are the volume's, so the voxels at
    least :func:`volume_margin` inside the block (or at the volume's border)
    are those of the whole volume, bit for bit.  None: the block is the
    volume.  Returns the channel-first result in ``xc``'s dtype (unscaled).
    """
    e = prm["exponent"]
    if prm["identity"]:
        return np.array(np.ldexp(xc, -e) if e else xc, dtype=xc.dtype)
    model, tmat, beta, flat = prm["model"], prm["tmat"], prm["beta"], prm["flat"]
    block = xc.shape[1:]
    origin = (0, 0, 0) if origin is None else tuple(int(o) for o in origin)
    shape = block if shape is None else tuple(int(n) for n in shape)
    rad = np.array(prm["radius"], dtype=np.int64)
    p1 = np.array(prm["p1"], dtype=np.int64)
    p2 = np.array(prm["p2"], dtype=np.int64)
    dtype = xc.dtype
    work = np.ascontiguousarray(_mix(tmat, xc).astype(dtype, copy=False))
    nlf, unbias = _level_table(model, prm["lo"], prm["hi"])
    o = np.array(origin, dtype=np.int64)

    def grids(p):
        return [_grid_in(shape[a], int(p[a]), stride, origin[a], block[a]) for a in range(3)]

    from nlm.ops._bayes_volume import bayes_step3

    with _threads(num_threads):
        basic = bayes_step3(work, work, *grids(p1), p1, rad, prm["n1"], prm["n1"], 0.0, True, nlf, tmat,
                            float(beta[0]), float(flat[0]), _cells3(rad, p1), o)
        _check_finite(basic, "step 1", model)
        g2, c2 = grids(p2), _cells3(rad, p2)
        final = bayes_step3(work, basic, *g2, p2, rad, prm["n2"], prm["n_max"], prm["tau"], False, nlf, tmat,
                            float(beta[1]), float(flat[1]), c2, o)
        if prm["passes"] == 3:
            _check_finite(final, "step 2", model)
            del basic
            basic = final
            final = bayes_step3(work, basic, *g2, p2, rad, prm["n2"], prm["n_max3"], prm["tau3"], False, nlf,
                                tmat, float(beta[1]), float(flat[1]), c2, o)
    del basic, work
    out = _mix(tmat.T, final)
    if unbias is not None:
        out = _uniform_interp(out, unbias)
    _check_finite(out, "the last step", model)
    if e:
        out = np.ldexp(out, -e)
    return out.astype(dtype, copy=False)


def _denoise_volume(image_dtype, xc, axis, noise, sigma, looks, preserve_range, patch_size, n_user,
                    search_radius, beta, flat, passes, stride, num_threads, return_model):
    """:func:`denoise_nl_bayes` on a channel-first volume ``(C, Z, H, W)`` (arguments checked but the geometry)."""
    prm = _volume_parameters(xc, image_dtype, noise, sigma, looks, preserve_range, patch_size, n_user,
                             search_radius, beta, flat, passes)
    out = run_volume_passes(prm["xc"], prm, stride, num_threads)
    out = out[0] if axis is None else np.moveaxis(out, 0, axis)
    return (out, prm["user_model"]) if return_model else out
