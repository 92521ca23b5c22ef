"""Blind noise estimation: the Gaussian sigma and the noise level function.

:func:`estimate_sigma` is the wavelet-MAD estimator of additive Gaussian
noise.  :func:`estimate_noise` fits the whole noise level function
``var(y | x) = a + b x + c x^2`` from one image and returns the
:mod:`nlm.noise.models` model it describes.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from nlm._validate import (
    UnsupportedDimensionError,
    _as_numeric,
    _check_axis,
    _check_dask_chunks,
    _check_spatial,
    _refuse_dask,
)
from nlm.noise._blocks import _block_stats
from nlm.noise._fits import _fit, _fit_rician, _one_bin_apart, _rician_sigma, _tukey_loss
from nlm.noise.models import NOISE_MODELS, Gamma, Gaussian, PoissonGaussian, Rician, Speckle
from nlm.noise.noise_map import _noise_map, residual_sigma

if TYPE_CHECKING:

    from numpy.typing import ArrayLike

    from nlm.noise.models import NoiseModel

__all__ = ["estimate_sigma", "estimate_noise", "residual_sigma"]

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


def _detail_abs(a, block_bytes=1 << 22, valid=False):
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


def _mean(values):
    """Mean of per-channel estimates that cannot overflow (estimates near the float64 maximum)."""
    return float(sum(v / len(values) for v in values))


def _sigma_mad(a):
    # scale-covariant: magnitudes far from 1 (float64 near its maximum, or
    # subnormal) are estimated on the data scaled by a power of two (exact)
    peak = max(abs(float(a.min())), abs(float(a.max())))
    k = -int(np.frexp(peak)[1]) if peak > 0 else 0
    if abs(k) <= 256:
        return _mad([_detail_abs(a)])
    sigma = _mad([_detail_abs(np.ldexp(np.asarray(a, dtype=np.float64), k))])
    with np.errstate(over="ignore"):  # an estimate beyond the float64 range: its maximum
        return min(float(np.ldexp(sigma, -k)), float(np.finfo(np.float64).max))


def estimate_sigma(
    image: ArrayLike, average_sigmas: bool = False, *, channel_axis: int | None = None
) -> float | list[float]:
    """Robust (wavelet MAD) estimate of the standard deviation of Gaussian noise.

    Same signature and behaviour as ``skimage.restoration.estimate_sigma``.
    The Gaussian special case of :func:`estimate_noise`.

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
    if not isinstance(average_sigmas, (bool, np.bool_)):
        raise TypeError(f"average_sigmas must be a bool, got {average_sigmas!r}")
    _refuse_dask(image, "estimate_sigma")
    image = _as_numeric(image)  # validated before the hint below
    if channel_axis is None and np.ndim(image) > 0 and np.shape(image)[-1] <= 4:
        warnings.warn(
            f"image is size {np.shape(image)[-1]} on the last axis, but channel_axis is None. "
            "If this is a color image, please set channel_axis=-1 for proper noise estimation.",
            UserWarning,
            stacklevel=2,
        )
    if channel_axis is None:
        if image.ndim == 0:
            raise UnsupportedDimensionError("image must have at least 1 dimension, got a 0-D array")
        return _sigma_mad(image)
    channel_axis = _check_axis(channel_axis, image.ndim)
    image = np.moveaxis(image, channel_axis, -1)
    if image.ndim < 2:
        raise UnsupportedDimensionError("image must have at least 1 dimension besides its channel axis")
    sigmas = [_sigma_mad(image[..., c]) for c in range(image.shape[-1])]
    return _mean(sigmas) if average_sigmas else sigmas


def _dask_checks(image, channel_axis):
    """Validation of a dask array's dtype, chunks and shape; returns (channel axis, spatial axes)."""
    _check_dask_chunks(image)
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


# --------------------------------------------------------------------------- #
# noise level function
# --------------------------------------------------------------------------- #
_BLOCK = {1: 32, 2: 8, 3: 4}
#: per-bin trim of the half-block detail energies: values above this many times the bin's median are dropped
#: (1-D and 2-D; volumes' 4^3 blocks give a half-block fewer terms, whose energies scatter more)
_TRIM = 3.5
_TRIM_3D = 4.5
#: candidate models for noise="auto": name -> columns of [1, x, x^2]
_CANDIDATES = {"gaussian": (0,), "poisson": (0, 1), "multiplicative": (2,), "full": (0, 1, 2)}

#: BIC difference taken as strong evidence (Kass and Raftery 1995)
_STRONG = 6.0


def _choose(bic, fits, x):
    """The model for ``noise="auto"`` from the candidates' BICs.

    A richer model of the nested chain ``a`` < ``a + b x`` < ``a + b x +
    c x^2`` is taken only on strong evidence (and ``a + b x`` over ``a``
    only when the noise std it gives differs by more than 5 % on the
    observed range).  The multiplicative ``c x^2``
    is not nested with the first two: it is taken when it beats both
    strongly.  When the data lean multiplicative without excluding the
    others (a narrow intensity range, few blocks), the answer is the
    Poisson-Gaussian fit (with three bins or more; through two bins it fits
    exactly whatever the noise, and the answer stays Gaussian), whose error
    costs least either way: measured with
    NL-Bayes on the benchmark images, calling Gaussian noise multiplicative
    costs 1.3-5 dB and calling speckle Gaussian 0.4-1.8 dB, while the
    ``a + b x`` fit costs at most 0.1 dB on Gaussian noise and 0.2-0.4 dB on
    speckle.
    """
    kind = "gaussian"
    if bic["poisson"] < bic["gaussian"] - _STRONG:
        # ... and only when the slope matters: the two fits' noise std differ
        # by more than 5 % somewhere on the observed range (NL-Bayes loses
        # about 0.03 dB per 1 % of overestimated sigma; a slope below that is
        # more often texture on bright or dark objects than photon noise)
        a_g = max(fits["gaussian"][0][0], 1e-300)
        a, b, _ = fits["poisson"][0]
        ends = np.array([x.min(), x.max()])
        if np.max(np.abs(np.sqrt(np.maximum(a + b * ends, 0.0) / a_g) - 1.0)) > 0.05:
            kind = "poisson"
    if bic["multiplicative"] < min(bic["gaussian"], bic["poisson"]) - _STRONG:
        kind = "multiplicative"
    elif bic["multiplicative"] < bic[kind]:
        # "poisson-or-multiplicative" when the constant is excluded: the
        # third cumulant decides (see _skew_choice)
        if bic["multiplicative"] < bic["gaussian"] - _STRONG:
            kind = "poisson-or-multiplicative"
        elif x.size >= 3:
            # the hedge needs a third bin: through two, a + b x fits exactly
            # whatever the noise, and a slope from a narrow range is
            # extrapolated to every intensity (a heavily clipped BSD68 image
            # with Gaussian noise, two bins at 0.12-0.15, got such a slope
            # when the third difference came in: 2.3 dB lost)
            kind = "poisson"
    if bic["full"] < bic[kind.split("-")[0]] - _STRONG:
        kind = "full"
    return kind


def _skew_choice(mu, r2, r3, nd, fits):
    """Poisson-Gaussian or multiplicative, from the third cumulant.

    Where the level functions ``a + b x`` and ``c x^2`` agree on the
    observed range, the noise's third cumulant does not: ``b^2 x`` for
    Poisson-Gaussian noise, 0 for scikit-image's Gaussian speckle,
    ``2 c^2 x^3`` for gamma speckle.  The ratio of the summed third to the
    summed second moments of the centre-minus-neighbours residual over the
    kept blocks (times ``1 - 1/k``, ``k`` neighbours, for the residual) is
    compared with each prediction; the nearest wins.
    """
    k = 3**nd - 1
    f = 1.0 - 1.0 / k
    s2 = float(np.sum(r2))
    if s2 <= 0 or mu.size < 2:
        return "poisson"
    rho = float(np.sum(r3)) / s2
    a, b, _ = fits["poisson"][0]
    c = fits["multiplicative"][0][2]
    xp = np.maximum(mu, 0.0)
    pred = {
        "poisson": f * b * b * float(np.sum(xp)) / max(float(np.sum(a + b * xp)), 1e-300),
        "speckle": 0.0,
        "gamma": f * 2.0 * c * float(np.sum(xp**3)) / max(float(np.sum(xp**2)), 1e-300),
    }
    best = min(pred, key=lambda m: abs(rho - pred[m]))
    return "poisson" if best == "poisson" else "multiplicative"


_RAYLEIGH_CV2 = (4.0 - np.pi) / np.pi


def estimate_noise(
    image: ArrayLike,
    noise: str = "auto",
    *,
    channel_axis: int | None = None,
    return_details: bool = False,
    return_map: bool = False,
) -> NoiseModel | tuple:
    """Fit the noise level function of an image and pick its noise model.

    Parameters
    ----------
    image : array_like
        1-D or more (4-D: blocks of 4^4 pixels), plus a channel axis if
        ``channel_axis`` is set, in its own units (no rescaling).  Every channel is assumed to follow
        the same model; their samples are pooled.
    noise : {"auto", "gaussian", "poisson", "speckle", "gamma", "rician"}, optional
        ``"auto"`` (default) chooses the model; a name fits that model only.
    channel_axis : int or None, keyword-only
        Axis of the channels.
    return_details : bool, keyword-only
        Also return a dict with the bins (``x``, ``var``, ``count``), the
        fitted coefficients of every candidate, the residual skewness and the
        number of blocks used.
    return_map : bool, keyword-only
        Also return a per-pixel noise standard deviation map (last in the
        returned tuple), of the image's spatial shape, float64: see Notes.

    Returns
    -------
    model : NoiseModel
        :class:`~nlm.noise.Gaussian`, :class:`~nlm.noise.PoissonGaussian`,
        :class:`~nlm.noise.Speckle`, :class:`~nlm.noise.Gamma` or
        :class:`~nlm.noise.Rician` with the estimated parameters
        (``Gamma.looks`` is the estimated ``L``, ``Rician.sigma`` the std
        of the real and imaginary parts).
        Clipped noise is reported as the model's ``bounds``: the levels
        where the noise piles up (the image's minimum and/or maximum, in its
        own units: ``(0, 1)`` for a converted 8-bit photo, ``(0, 255)`` for
        its raw values, ``(0, inf)`` when only the dark end is clipped), and
        ``details["bounds"]``; unclipped data have ``bounds`` None.
    details : dict
        Only with ``return_details=True``.
    sigma_map : ndarray
        Only with ``return_map=True``: ``(model, sigma_map)``, or ``(model,
        details, sigma_map)`` with both flags.  Ready for the ``sigma=``
        argument of :func:`nlm.denoise_nl_means` and :func:`nlm.denoise_nl_bayes`.

    Raises
    ------
    TypeError
        Non-numeric ``image``, non-string ``noise``, bad ``channel_axis``.
    ValueError
        Empty image, NaN/Inf, unsupported shape, unknown ``noise``, negative
        values for a multiplicative or Poisson model, a dask array with
        unknown chunk sizes (a dask array is otherwise computed whole).

    Notes
    -----
    In the manner of Foi et al. (2008): the image is cut into blocks
    (8x8 in 2-D, 4^3 in 3-D, 32 in 1-D); per block, the local mean, the
    energy of the unit-norm third-difference detail
    ``[1, -3, 3, -1]/sqrt(20)`` along every axis (which cancels constants,
    ramps, quadratics and axis-aligned edges, and has the noise variance as
    its expectation on a smooth block; at the far edge of an axis, the
    last core pixel takes its neighbour's value) and the spread of its
    sub-block means.  The third difference replaced the second difference
    ``[1, -2, 1]/sqrt(6)``: its response is more concentrated at the
    highest frequencies, where white noise has as much energy as anywhere
    and the fine texture of natural images (sand, grass, fur) the least,
    which the block selection cannot reject (it shifts every block of an
    intensity range, not a few).  Measured on BSD68 with Gaussian noise of
    15/255 (68 images): mean std estimated / true 1.032 -> 1.020, images
    taken for Poisson-Gaussian 9 -> 3 (25/255: 1.012 -> 1.006, 4 -> 1);
    the fourth difference gave 1.019 and 2 but lost power on speckle and
    gamma (its block energies scatter more: 0.56 relative std per
    half-block against 0.50 and 0.43).
    Blocks are dropped when their detail energy is zero, when their
    sub-block means spread more than three times the noise allows
    (texture, edges, ramps; relaxed when too few blocks pass), and near the
    image's minimum or maximum when a point mass sits there.  Clipped noise
    (its level is reached from every block within a few noise deviations,
    at the rate a Gaussian tail predicts) drops the blocks whose *mean* is
    within two noise deviations of the level, never by their own variance
    (which would keep the low-variance survivors); a plateau of the signal
    (an exactly-zero background, isolated black pixels, a saturated area)
    drops the blocks that touch it.

    Each block's two halves (along the last axis) are measured separately;
    a half is ordered by the *other* half's mean and placed at its own,
    so the noise of the ordering key is independent of what is measured
    (ordering by a block's own noisy mean flattens the level function on
    a narrow intensity range, and for skewed noise ties the variance
    measured to the ordering).  The halves are binned (equal counts); per
    bin, a trimmed mean of the detail energies (values above 3.5 times
    the bin's median dropped: with Gaussian noise the trim lowers the
    variance by about 0.6 %; the third difference's energies scatter
    more than the second's, trimmed at 3 times, and 3 times would cost
    1.7 %; at 4 times, 0.3 %, gamma and speckle noise were estimated
    0.5 % higher than at 3.5 on the test sets; volumes, whose 4^3 blocks
    give fewer terms a half-block, are trimmed at 4.5 times: at 3.5 the
    blind sigma of six public MRI volumes with Gaussian noise of 2 / 5 /
    10 % came out 0.974-0.996 times the truth, at 4.5 0.985-1.010
    (anatomical aside: its reference has noise of its own), as
    with the second difference).  The level function is fitted, for each
    candidate (``a``; ``a + b x``; ``c x^2``; ``a + b x + c x^2``), by
    iteratively reweighted non-negative least squares with relative errors
    and one-sided Tukey weights (texture only adds energy: a bin above the
    fit may be texture, a bin below it is evidence).  ``"auto"`` compares
    robust BICs (the one-sided Tukey loss with the larger of the bins'
    sampling scale and the full model's residual MAD, plus ``p log K``)
    and takes a richer model only on strong evidence (a BIC lower by 6):
    ``a + b x`` over ``a`` when, also, it changes the noise std by more
    than 5 % on the observed range, and not when the bin at either end of
    the range stands apart from all the others (its gap to the next is
    more than four times their span: the slope would be that one bin's,
    extrapolated to every intensity beyond it); ``c x^2`` when it beats
    both ``a`` and ``a + b x``.  When the data lean multiplicative without that evidence,
    the answer is the ``a + b x`` fit (from three bins up: two bins, which
    any slope fits exactly, leave it Gaussian), the choice whose error costs least
    (measured with NL-Bayes: Gaussian noise taken for speckle loses 1.3-5
    dB, speckle taken for Gaussian 0.4-1.8 dB, the ``a + b x`` fit at most
    0.1 dB on Gaussian noise and 0.2-0.4 dB on speckle); when the constant
    is excluded and only ``a + b x`` and ``c x^2`` remain, the third
    cumulant of the centre-minus-neighbours residual decides (``b^2 x`` for
    Poisson noise, 0 for scikit-image's speckle, ``2 c^2 x^3`` for gamma).
    A full quadratic taken is reported as multiplicative when its ``x^2``
    term dominates at the median intensity, else as Poisson-Gaussian.  A
    multiplicative fit is ``"speckle"`` (scikit-image's clipped Gaussian
    speckle) when the image has a plateau at its maximum or the residual's
    skewness is less than half of what gamma speckle with the same
    variance gives, otherwise ``"gamma"`` with ``L = 1 / c``.  The chosen
    model's parameters are refitted with the bins' sampling scale in the
    one-sided weights (the MAD scale is inflated when texture lifts many
    bins).

    Rician noise (``noise="rician"``, magnitude MRI) is fitted from the
    same bins: the one-parameter curve ``var(y | E[y]) = sigma^2 w(E[y] /
    sigma)`` (the exact Rician variance against the observed mean, from
    ``(2 - pi/2) sigma^2`` in the Rayleigh background to ``sigma^2`` at
    high SNR), with the one-sided Tukey loss.  With a background (air
    around the object) the low bins pin ``sigma`` by the Rayleigh level;
    without one, the tissue bins give it as the high-SNR level (where
    Rician and Gaussian noise agree).  ``"auto"`` reports Rician noise only
    on clear evidence: non-negative data, a fitted curve whose lowest bin is
    in the low-SNR range (mean below ``3 sigma``) and a robust BIC lower by
    6 than every other candidate's (the curve's dip to the Rayleigh level
    is what no quadratic level function shows); otherwise the other
    candidates are chosen as before (at high SNR everywhere, Rician noise
    is Gaussian noise of the same ``sigma``, and is reported so).

    The noise map (``return_map=True``) combines the fitted level function
    with a local robust estimate, so that it follows both signal-dependent
    noise and noise whose level varies in space (sCMOS gain, coil
    sensitivity): ``sigma_map = sqrt(NLF(s) k^2)`` with ``s`` the image
    smoothed by a 5-pixel box (every channel; the variances averaged over
    channels) and ``k^2`` the local variance of the unit-gain Laplacian
    residual ``e`` (see :func:`residual_sigma`) normalised by
    ``sqrt(NLF(s))``: the squared ``1.4826 median |e / sqrt(NLF(s))|`` per
    block (16x16 in 2-D, 8^3 in 3-D, 64 in 1-D), median-filtered over 3
    blocks per axis (texture and edges), linearly interpolated to every
    pixel.  Poisson-Gaussian noise gives ``k ~ 1`` (the map is the level
    function at the local intensity); Gaussian noise whose std varies in
    space is fitted as one ``a`` and ``k`` carries the variation.  It
    resolves variations slower than about two blocks.

    Limits: a textured image with no smooth block at some intensity leaves
    that range to the fit's extrapolation, and texture present at every
    intensity of a bin range still lifts the estimate (BSD68, Gaussian
    noise of 15/255: up to 1.16 times the true std, sand in ``test031``;
    such fine texture shifts a bin's whole distribution of detail
    energies, not only its upper tail, so no per-bin statistic recovers
    the noise from it).  Measured there and not taken (each removes most
    Poisson-Gaussian choices of Gaussian noise but loses real
    signal-dependent noise): a tighter sub-block spread bound (1 to 2
    times the rough level before 3) gave speckle and Poisson-Gaussian
    images estimated at 0.2 to 0.5 of their std; a second selection
    against the fitted level function changed almost nothing; a slope
    threshold above 5 % changed nothing (the texture's slope reaches 10-20
    % at the ends of the range); on a narrow
    intensity range with few blocks (crops of about 128x128 and smaller)
    signal-dependent noise is often reported as the ``a + b x`` hedge or
    as Gaussian; images smaller than about 32x32
    fall back to the wavelet MAD :func:`estimate_sigma` (Gaussian; a
    requested model gets its parameter from that sigma at the mean
    intensity).  Time
    ``O(N)``; memory of the model's estimate: the finiteness mask, ten
    float64 statistics per block (0.3 times a float32 image) and a few
    float64 slabs of 2^17 values (the image is never copied whole to
    float64); ``return_map`` adds the map's own.

    References
    ----------
    .. [1] A. Foi, M. Trimeche, V. Katkovnik, K. Egiazarian, "Practical
       Poissonian-Gaussian noise modeling and fitting for single-image
       raw-data", IEEE Trans. Image Process. 17(10), 2008.
    .. [2] M. Lebrun, M. Colom, J.-M. Morel, "The Noise Clinic: a blind image
       denoising algorithm", Image Processing On Line 5, 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from nlm.noise import Gamma, estimate_noise
    >>> clean = np.repeat(np.linspace(0.1, 1.0, 16), 32)[None, :].repeat(512, 0)
    >>> model = estimate_noise(Gamma(4).sample(clean, seed=0))
    >>> model.name, round(model.looks)
    ('gamma', 4)
    """
    if not isinstance(noise, str):
        raise TypeError(f"noise must be a string, got {noise!r}")
    if noise not in ("auto",) + NOISE_MODELS:
        raise ValueError(f"noise must be one of {('auto',) + NOISE_MODELS}, got {noise!r}")
    if not isinstance(return_details, (bool, np.bool_)):
        raise TypeError(f"return_details must be a bool, got {return_details!r}")
    if not isinstance(return_map, (bool, np.bool_)):
        raise TypeError(f"return_map must be a bool, got {return_map!r}")
    image = _as_numeric(_check_dask_chunks(image))
    if channel_axis is None:
        _check_spatial(image.ndim, "image")
        y = image[..., None]
    else:
        y = np.moveaxis(image, _check_axis(channel_axis, image.ndim), -1)
        _check_spatial(y.ndim - 1, "image (without its channel axis)")
    nd = y.ndim - 1
    if noise in ("speckle", "gamma", "rician") and float(y.min()) < 0:
        raise ValueError(
            f"image must be non-negative for the {noise!r} noise model, got a minimum of {float(y.min()):g}"
        )
    model, details = _estimate(y, nd, noise)
    out = (model, details) if return_details else (model,)
    if return_map:
        out = out + (_noise_map(y, model),)
    return out if len(out) > 1 else model


def _estimate(y, nd, noise):
    B = _BLOCK.get(nd, 4)  # 4-D and more: 4^nd pixels a block
    spatial = y.shape[:-1]
    while B > 2 and any((n - 2) // B < 2 for n in spatial):
        B //= 2
    stats = []
    clipped = set()  # levels at which the noise is clipped
    if all(n - 2 >= B for n in spatial):
        for ch in range(y.shape[-1]):
            stats.append(_block_stats(y[..., ch], nd, B, clipped))
    # the level function fitted away from the bounds is the unclipped one,
    # and the model says where the data are clipped: at the levels where the
    # noise piles up (0 and 1 for an 8-bit camera converted to float, 0 and
    # 255 for its raw values), never at a range assumed from the dtype
    lows = [v for sgn, v in clipped if sgn < 0]
    highs = [v for sgn, v in clipped if sgn > 0]
    bounds = (min(lows) if lows else None, max(highs) if highs else None)
    clip = bounds if (lows or highs) and (not (lows and highs) or bounds[0] < bounds[1]) else False
    details = {
        "blocks": 0,
        "block_size": B,
        "clipped": tuple(sorted({v for _, v in clipped})),
        "bounds": None if clip is False else (
            -np.inf if bounds[0] is None else bounds[0], np.inf if bounds[1] is None else bounds[1]
        ),
    }
    if stats:
        # one channel: its arrays as they are; several: joined a statistic at a time
        mu, mu_a, mu_b, v_a, v_b, v, var, r2, r3, plateau = (
            stats[0] if len(stats) == 1 else [np.concatenate(s) for s in zip(*stats)])
        del stats
    else:
        mu = np.zeros(0)
    if mu.size:
        ok = ~plateau & (v > 0)
        keep = ok
        if np.count_nonzero(ok) >= 24:
            # rough level function: per-bin medians of the detail energy
            idx = np.flatnonzero(ok)
            order = idx[np.argsort(mu[idx], kind="stable")]
            rough = np.full(mu.shape, np.inf)  # set where ok below; np.empty left garbage (NaN warnings)
            for part in np.array_split(order, int(np.clip(order.size // 40, 1, 24))):
                rough[part] = np.median(v[part])
            for bound in (3.0, 6.0, 12.0):
                keep = ok & (var <= bound * rough)
                if np.count_nonzero(keep) >= 24:
                    break
            else:
                keep = ok
        details["blocks"] = int(np.count_nonzero(keep))
    if details["blocks"] < 8:
        sigma = estimate_sigma(y, channel_axis=-1, average_sigmas=True)
        if sigma <= 64 * np.finfo(np.float64).eps * max(1.0, float(np.abs(y).max())):
            sigma = 0.0  # round-off of a noise-free image
        details.update(reason="too few smooth blocks: wavelet MAD sigma")
        xm = float(np.mean(y))
        if noise == "rician":
            return Rician(sigma), details
        if noise in ("auto", "gaussian") or xm <= 0 or sigma == 0:
            return Gaussian(sigma, clip=clip), details
        # the requested model, from the MAD sigma at the mean intensity
        if noise == "poisson":
            return PoissonGaussian(sigma * sigma / xm, 0.0, clip=clip), details
        c = (sigma / xm) ** 2
        return (Speckle(c, clip=clip) if noise == "speckle" else Gamma(1.0 / c)), details
    mu, v, r2, r3 = mu[keep], v[keep], r2[keep], r3[keep]
    # half-blocks: ordered by the other half's mean, measured on their own
    key = np.concatenate([mu_b[keep], mu_a[keep]])
    xh = np.concatenate([mu_a[keep], mu_b[keep]])
    vh = np.concatenate([v_a[keep], v_b[keep]])
    good = vh > 0
    key, xh, vh = key[good], xh[good], vh[good]

    order = np.argsort(key, kind="stable")
    nbins = int(np.clip(mu.size // 40, 2, 24))
    xs, vs, ns, spread = [], [], [], []
    for idx in np.array_split(order, nbins):
        vb = vh[idx]
        med = np.median(vb)
        sel = vb <= (_TRIM if nd < 3 else _TRIM_3D) * med
        xs.append(float(np.mean(xh[idx][sel])))
        vs.append(float(np.mean(vb[sel])))
        ns.append(float(np.count_nonzero(sel)))
        if ns[-1] > 1:
            spread.append(float(np.std(vb[sel], ddof=1)) / max(vs[-1], 1e-300))
    x, vv, n = np.array(xs), np.array(vs), np.array(ns)
    # relative spread of one block's detail energy about its bin's mean
    # (about 0.49 for Gaussian noise): the sampling scale of the bins
    spread = float(np.median(spread)) if spread else 1.0
    details.update(x=x, var=vv, count=n)

    fits = {name: _fit(x, vv, n, cols) for name, cols in _CANDIDATES.items()}
    details["fits"] = {k: tuple(float(c) for c in f[0]) for k, f in fits.items()}
    K = x.size
    if noise == "rician":
        sigma0 = np.sqrt(fits["gaussian"][0][0])
        if sigma0 <= 0:
            return Rician(0.0), details
        sigma, source = _rician_sigma(x, vv, n, sigma0, spread)
        details["fits"]["rician"] = (sigma,)
        details["rician_from"] = source
        return Rician(sigma), details
    if noise == "auto":
        # a robust BIC: the bins' residual scale is the larger of their
        # sampling scale and the full model's residual MAD (misfit the full
        # model cannot explain is not evidence between the others); every
        # candidate pays the one-sided Tukey loss on its residuals
        zf = fits["full"][1]
        mad = 1.4826 * float(np.median(np.abs(zf))) * np.sqrt(K / max(K - 3, 1)) if K > 3 else 0.0
        scale = max(mad, spread, 1e-3)
        bic = {k: _tukey_loss(fits[k][1], scale) + len(cols) * np.log(K) for k, cols in _CANDIDATES.items()}
        details["bic"] = bic
        kind = _choose(bic, fits, x)
        sigma0 = np.sqrt(fits["gaussian"][0][0])
        if float(y.min()) >= 0 and sigma0 > 0 and K >= 4:
            # Rician (magnitude) noise: only on clear evidence, see Notes
            # the family's fit quality from its best curve; the estimate, from the background if any
            sigma_f, z_r = _fit_rician(x, vv, n, sigma0, scale)
            bic["rician"] = _tukey_loss(z_r, scale) + np.log(K)
            details["fits"]["rician"] = (sigma_f,)
            if float(x.min()) < 3.0 * sigma_f and bic["rician"] < min(bic[k] for k in _CANDIDATES) - _STRONG:
                sigma_r, source = _rician_sigma(x, vv, n, sigma_f, spread)
                details["fits"]["rician"] = (sigma_r,)
                details["rician_from"] = source
                return Rician(sigma_r), details
        if kind == "poisson-or-multiplicative":
            kind = _skew_choice(mu, r2, r3, nd, fits)
        if kind == "full":
            a, b, c = fits["full"][0]
            xm = float(np.median(mu))
            kind = "multiplicative" if c * xm * xm > a + b * xm else "poisson"
        if kind == "poisson" and _one_bin_apart(x):
            kind = "gaussian"
            details["one_bin_apart"] = True
    else:
        kind = {"gaussian": "gaussian", "poisson": "poisson"}.get(noise, "multiplicative")

    # The parameters of the chosen model: refitted with the bins' sampling
    # scale for the one-sided weights (the MAD scale above is inflated when
    # texture lifts many bins, as the grass of `camera` does: +13 % on the
    # speckle variance there; with the sampling scale those bins drop out).
    name = {"gaussian": "gaussian", "poisson": "poisson"}.get(kind, "multiplicative")
    fits[name] = _fit(x, vv, n, _CANDIDATES[name], scale=spread)
    details["fits"][name] = tuple(float(c) for c in fits[name][0])
    if kind == "gaussian":
        a = fits["gaussian"][0][0]
        return Gaussian(np.sqrt(a), clip=clip), details
    if kind == "poisson":
        a, b, _ = fits["poisson"][0]
        if b <= 0:
            return Gaussian(np.sqrt(a), clip=clip), details
        return PoissonGaussian(b, np.sqrt(a), clip=clip), details
    c = fits["multiplicative"][0][2]
    if c <= 0:
        return Gaussian(0.0, clip=clip), details
    # skewness of the residual: gamma speckle is skewed (2 / sqrt(L)),
    # scikit-image's Gaussian speckle is not
    pos = mu > 0
    m2 = np.mean(r2[pos] / mu[pos] ** 2) if pos.any() else 0.0
    m3 = np.mean(r3[pos] / mu[pos] ** 3) if pos.any() else 0.0
    skew = float(m3 / max(m2, 1e-300) ** 1.5)
    gamma_skew = 2.0 * np.sqrt(c)  # 2 / sqrt(L)
    k = 3**nd - 1
    gamma_skew *= (1 - 1 / k**2) / (1 + 1 / k) ** 1.5
    details.update(skewness=skew, gamma_skewness=float(gamma_skew))
    if noise == "speckle":
        return Speckle(c, clip=clip), details
    if noise == "gamma":
        return Gamma(1.0 / c), details
    hi = float(y.max())
    at_max = np.count_nonzero(y == hi) > 16  # a plateau at the maximum: clipped data
    if at_max or skew < 0.5 * gamma_skew:
        return Speckle(c, clip=clip), details
    return Gamma(1.0 / c), details

