"""Non-local Bayes denoising on the noise models of :mod:`nlm.noise`.

:func:`denoise_nl_bayes` is the toolkit's second denoiser: the two-step
NL-Bayes algorithm of Lebrun, Buades and Morel, with the per-group noise
covariance taken from the noise level function of a model (Gaussian,
Poisson-Gaussian, speckle, SAR gamma), given or estimated from the image.
The compiled work is in :mod:`nlm.ops._bayes_kernels`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nlm._validate import (
    UnsupportedDimensionError,
    _as_numeric,
    _check_axis,
    _check_bool,
    _check_int,
    _refuse_dask,
    _to_float,
    check_mask,
    check_sigma_map,
    is_map,
    masked_nonfinite,
)
from nlm.denoisers.bayes_passes import (
    _restore,
    run_passes,
    run_volume_passes,
)
from nlm.denoisers.bayes_setup import (
    _check_passes,
    _check_ridge,
    _pair,
    _pair_float,
    _parameters,
    _volume_parameters,
    bayes_parameters,
    volume_parameters,
)
from nlm.noise import NoiseModel

if TYPE_CHECKING:

    from numpy.typing import ArrayLike

__all__ = ["denoise_nl_bayes", "bayes_parameters", "volume_parameters"]


def _cpu_only(device):
    """The ``device=`` of tiled (dask) NL-Bayes: the CPU (``"auto"`` says so in a log record; ``"cuda"`` refused)."""
    from nlm.ops._cuda_device import DEVICES, logger

    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "cuda":
        raise ValueError(
            "device='cuda': NL-Bayes of a dask array runs tile by tile on the CPU; pass a NumPy (or GPU) array "
            "for the GPU, or use device='cpu' or 'auto'"
        )
    if device == "auto":
        logger.info("device='auto': NL-Bayes of a dask array runs tile by tile on the CPU")


def _on_gpu_array(image, kwargs):
    """:func:`denoise_nl_bayes` of an image that lives on the GPU: the result on the GPU, as the input's kind.

    The noise model, the parameters and the colour transform are host code
    (the same as the NumPy path's), so the image is copied to the host once
    and the result back once; the steps run on the device
    (``device="cuda"``) and keep their images there in between.
    """
    from numba import cuda

    from nlm.ops import _cuda_device as dev

    _, dtype = dev.gpu_array_info(image)
    if dtype.kind not in "fiub":
        raise TypeError(f"image: a GPU array must be numeric, got {dtype}")
    host = dev.to_device_view(image).copy_to_host()
    res = denoise_nl_bayes(host, **kwargs, device="cuda")
    out, model = res if kwargs.get("return_model") else (res, None)
    out = dev.like_input(cuda.to_device(np.ascontiguousarray(out)), image)
    return (out, model) if kwargs.get("return_model") else out


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
    ridge: float | None = None,
    stride: int = 2,
    num_threads: int | None = None,
    return_model: bool = False,
    mask: ArrayLike | None = None,
    device: str = "cpu",
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
        the valid pixels.  Volumes too (per-voxel maps).  With a dask image,
        a NumPy or dask array.
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
        Patch sides of steps 1 and 2 (odd); pass 3 takes step 2's.  Default
        from the noise level (:func:`bayes_parameters`, whose ``patch3``,
        pass 3's side, is step 2's).  Volumes: an int (every axis, both
        steps), one odd int per axis (``(1, 5, 5)``: 5x5 patches within a
        frame; both steps), or a pair (step 1, step 2) of those; default
        from :func:`volume_parameters`.
    n_similar : int or (int, int), keyword-only
        Group sizes of steps 1 and 2; default from the noise level.
    search_radius : int or (int, int, int), keyword-only
        Search window radius (every pass); default from the noise level
        (:func:`bayes_parameters`: ``n1 / 4``, at most 16, in step 1; grey
        images with additive or Poisson noise search wider in step 2 and
        pass 3: radius 24 below sigma 35 of 255, 22 in step 2 from 35).
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
        (:func:`bayes_parameters`): 3 for grey images (with additive or
        Poisson noise followed or preceded by the NL-Ridge pass) and for
        colour images with additive or Poisson noise; for colour images
        with the speckle and gamma models from sigma 45 (of 255); else 2.
    ridge : float in [0, 1], keyword-only
        Weight of the NL-Ridge pass (see Notes) in the result: the estimate
        becomes ``(1 - ridge) * nl_bayes + ridge * nl_ridge``; 0 turns the
        pass off.  Default from the noise level (:func:`bayes_parameters`),
        for grey images with additive or Poisson noise: 0.5 after pass 3
        below sigma 20 (of 255); 0.4 after pass 3 below 35; 0.5 after step
        2, before pass 3 (which takes the mix as its guide), from 35; colour
        images 0.4 after step 2 (with the speckle and gamma models only
        below sigma 40).  0 for grey images with the speckle, gamma and
        Rician models (not measured there).
    stride : int >= 1, keyword-only
        Step of the reference grid (default 2).  Positions already estimated
        in a group are skipped as references.  Grey images with additive or
        Poisson noise from sigma 35 (of 255) use ``stride + 1`` in step 2
        and pass 3 (``stride_add`` of :func:`bayes_parameters`).
    num_threads : int >= 1, keyword-only
        Numba threads for this call (the result does not depend on it); for
        a dask array, per tile (default 1).
    return_model : bool, keyword-only
        Also return the noise model used (estimated or given).
    mask : array_like of bool or None, keyword-only
        The image's spatial shape, True = valid.  Only patches without a
        masked pixel are references or group members, so masked pixels never
        enter an estimate; they come back unchanged (NaN/Inf allowed there).
        Valid pixels that no valid patch of the reference grid reached get
        groups of their own (every valid patch still holding such a pixel
        becomes a reference); a valid pixel that lies in no valid patch at
        all (a gap narrower than the patch) is returned as it is.  The noise
        model is estimated with masked pixels set to the median of the valid
        ones (constant blocks carry no weight in the estimate).  Volumes too;
        with a dask image, a NumPy or dask array (the result is the
        in-memory one bit for bit, see :mod:`nlm.tiling.bayes`).
    device : {"cpu", "cuda", "auto"}, keyword-only
        Where the steps run (docs/gpu.md).  ``"cuda"``: on the current CUDA
        device (numba-cuda, the ``gpu`` extra; Numba's CUDA simulator counts
        as one), 2-D and 3-D, grey and colour, every noise model, noise maps
        and masks; the noise model, the parameters and the colour transform
        are computed on the host as for the CPU (the same code), the steps on
        the device (:mod:`nlm.ops._cuda_bayes`, the CPU's cells, colours and
        order), so the result equals the CPU path's (to rounding under the
        simulator; within 1e-4 of the range on a device, see the module's
        Notes).  The NL-Ridge pass (``ridge``) has no GPU kernel yet: it runs
        on the host between two device steps (one copy each way).  An image
        on the GPU (CuPy, PyTorch CUDA tensor, anything with
        ``__cuda_array_interface__`` or CUDA DLPack) is copied to the
        host for the setup and its result comes back on the GPU as the
        input's kind of array; NumPy in, NumPy out.  ``"auto"``: the GPU when
        there is one (or the image is on it), else the CPU, said in a
        ``logging`` record of the ``"nlm"`` logger.  Dask images are tiled on
        the CPU only (``"cuda"`` raises ``ValueError``).

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
        margin is :func:`nlm.denoisers.bayes_passes.tile_margin` (see Notes and docs/nl-bayes.md).
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
    nlm.ops._cuda_device.DeviceUnavailableError
        ``device="cuda"`` (or a GPU array) without ``numba-cuda`` or a usable
        GPU / driver (a ``RuntimeError``).

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

    NL-Ridge pass (Herbreteau and Kervrann 2022; kernel
    :mod:`nlm.ops._ridge_kernels`).  With an NL-Bayes estimate ``E`` as the
    guide (after step 2, or after pass 3), groups of the 30 patches (5 x 5)
    nearest on ``E`` in a 13 x 13 window are estimated
    again, each patch a linear combination of the group's noisy patches:
    with ``Y`` (noisy) and ``G`` (guide) the group's patches as rows, both
    centred on their mean patch, and ``Dn = diag(d_i)``, ``d_i`` the summed
    noise variance of patch ``i`` (the level function at the guide's values,
    or the noise map), ``X = m_Y + G G^T (G G^T + Dn)^-1 (Y - m_Y)``.  Each
    patch is aggregated with the weight ``1 / clip(||theta_i||^2, 1/n, 1)``
    (``theta_i``: its row of the combination).  The NL-Ridge image is mixed
    into ``E`` with the weight ``ridge``; the mix is the result, or pass 3's
    guide.  The two estimators err differently (a Wiener filter in the
    space of a patch's pixels against combinations of the group's
    patches), so the mix beats both (see :func:`bayes_parameters` and
    docs/nl-bayes.md for the figures; ``benchmarks/beyond_bm3d.py``).  The
    NL-Ridge pass is 2-D only (``ridge`` must be unset or 0 for a volume).
    Cost per group ``O(n^2 d + n^3)`` (``n = 30``, ``d = 25 C``).

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
    in :func:`nlm.denoisers.bayes_setup._level_table` / :func:`nlm.denoisers.bayes_setup._uniform_interp`, which are
    dimension-agnostic: a caller that builds its ``nlf`` with
    ``_level_table(model, lo, hi)`` and maps its result with
    ``_uniform_interp(out, inverse)`` when the inverse is not None gets the
    Rician handling with no other change.

    SAR gamma data with an exactly-zero background (an MRI slice, a masked
    scene).  Gamma speckle multiplies, so ``y = 0`` exactly where ``x = 0``:
    such pixels stay 0 in the result (per channel; the groups that mix them
    with their non-zero neighbours would lift them), and they are left out
    of the mean noise variance that sets the parameters and pass 3's
    threshold (with them, a 79 % zero background made that level 5 times
    too low; ``benchmarks/sar_weak_spots.py``: at ``L = 1`` given, four such
    images, three draws each, +0.52 -> +0.74 dB against BM3D on the log on
    their mean).

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
    :func:`nlm.denoisers.bayes_passes.tile_margin` reproduces the image's result in its interior.

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
    :func:`nlm.denoisers.bayes_passes.volume_margin` reproduces the volume's values exactly
    (:func:`nlm.denoisers.bayes_passes.run_volume_passes` takes the block's origin).
    Memory (2-D alike): the blind estimate reads the image in float64
    slabs (:func:`nlm.estimate_noise`: about 1.4 times a float32 grey
    input), the noise level a float64 smoothed copy (2 times; 4 while its
    percentiles are taken, for data outside [0, 1]); a grey input is its
    own working image, and each step holds the guide, a float64 numerator,
    its result (whose last channel keeps the weights until it is written)
    and a mask of the patch positions: about 4.3 times a float32 grey
    input, 4.5 measured on 128x128x64 (``benchmarks/volumes.py``; colour
    adds the decorrelated working copy).
    A noise map adds its float64 variances, a mask one bool array of valid
    patches per patch size (and a transient int32 count of the masked
    pixels).

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
    from nlm.ops._cuda_device import is_gpu_array, resolve_device

    device = resolve_device(device, image)
    if device == "cuda" and is_gpu_array(image):
        return _on_gpu_array(image, dict(
            noise=noise, sigma=sigma, looks=looks, channel_axis=channel_axis, preserve_range=preserve_range,
            patch_size=patch_size, n_similar=n_similar, search_radius=search_radius, beta=beta, flat=flat,
            passes=passes, stride=stride, num_threads=num_threads, return_model=return_model, mask=mask))
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
    ridge = _check_ridge(ridge)

    x = _to_float(image, preserve_range)
    if channel_axis is None:
        axis = None
        xc = x[None]
    else:
        axis = _check_axis(channel_axis, image.ndim)
        xc = np.moveaxis(x, axis, 0)
    if xc.ndim not in (3, 4):
        raise UnsupportedDimensionError(
            "denoise_nl_bayes needs a 2-D or 3-D image (plus an optional channel axis), "
            f"got {xc.ndim - 1} spatial dimension(s)"
        )
    given = xc
    xc, sigma, sigma_map, mask = _maps_and_masks(xc, sigma, sigma_map, mask)
    if xc.ndim == 4:
        if ridge:
            raise ValueError("ridge: the NL-Ridge pass is 2-D only for now; leave ridge unset (or 0) for a volume")
        return _denoise_volume(image.dtype, xc, given, axis, noise, sigma, looks, preserve_range, patch_size, n_user,
                               search_radius, beta, flat, passes, stride, num_threads, return_model, sigma_map,
                               mask, nodata, device)
    p_user = _pair(patch_size, "patch_size", odd=True)
    if search_radius is not None:
        search_radius = _check_int(search_radius, "search_radius", 1)
    prm = _parameters(xc, image.dtype, noise, sigma, looks, preserve_range, p_user, n_user, search_radius, beta,
                      flat, passes, ridge)
    out = run_passes(prm["xc"], prm, stride, num_threads, sigma_map=sigma_map, mask=mask, device=device)
    out = _restore(out, given, mask, nodata, axis)
    return (out, prm["user_model"]) if return_model else out


def _maps_and_masks(xc, sigma, sigma_map, mask):
    """The noise map and the mask of a channel-first image: ``(xc, sigma, sigma_map, mask)`` checked.

    The map and the mask have the spatial shape; a mask with every pixel
    valid is None.  Masked pixels of ``xc`` become the median of the valid
    ones (per channel), for the noise estimators (the groups never use
    them).  With a map, ``sigma`` is its RMS over the valid pixels (the
    parameters' noise level); a map of zeros is ``sigma = 0``.
    """
    spatial = xc.shape[1:]
    if sigma_map is not None:
        sigma_map = check_sigma_map(sigma_map, spatial)
    mask = check_mask(mask, spatial)
    if mask is not None and mask.all():
        mask = None
    if mask is not None and mask.any():
        xc = fill_masked(xc, mask, masked_median(xc, mask))
    if sigma_map is not None:
        sigma = map_rms(sigma_map, mask)
        if sigma == 0:
            sigma_map = None  # a map of zeros: sigma = 0
    return xc, sigma, sigma_map, mask


def masked_median(xc, mask):
    """Per channel, the median of the valid pixels of a channel-first ``xc`` (``xc``'s dtype)."""
    return np.median(xc[:, mask], axis=1).astype(xc.dtype)


def fill_masked(xc, mask, fill):
    """``xc`` (channel-first) with its masked pixels set to ``fill`` (one value per channel)."""
    return np.where(mask[None], xc, fill.reshape((-1,) + (1,) * mask.ndim))


def map_rms(sigma_map, mask):
    """The root mean square of a noise map over the valid pixels (0 with none)."""
    v = sigma_map if mask is None else sigma_map[mask]
    return float(np.sqrt(np.mean(v**2))) if v.size else 0.0


def _denoise_volume(image_dtype, xc, given, axis, noise, sigma, looks, preserve_range, patch_size, n_user,
                    search_radius, beta, flat, passes, stride, num_threads, return_model, sigma_map, mask, nodata,
                    device="cpu"):
    """:func:`denoise_nl_bayes` on a channel-first volume ``(C, Z, H, W)`` (arguments checked but the geometry).

    ``xc``: masked voxels filled (:func:`_maps_and_masks`); ``given``: as
    given, for the masked voxels of the result.
    """
    prm = _volume_parameters(xc, image_dtype, noise, sigma, looks, preserve_range, patch_size, n_user,
                             search_radius, beta, flat, passes)
    out = run_volume_passes(prm["xc"], prm, stride, num_threads, sigma_map=sigma_map, mask=mask, device=device)
    out = _restore(out, given, mask, nodata, axis)
    return (out, prm["user_model"]) if return_model else out
