"""NL-Bayes's parameters: the tables, the argument checks and the noise model in working units.

:func:`bayes_parameters` (2-D) and :func:`volume_parameters` (3-D) are the
tables by noise level; ``_parameters`` / ``_volume_parameters`` turn the
arguments of :func:`nlm.denoisers.bayes.denoise_nl_bayes` into the dict the
passes run on (the model, given or estimated, its level table, the scaling,
the geometry clamped to the image).  :mod:`nlm.tiling` uses the same code
on a sample of a dask array, so a tiled run gets the in-memory parameters.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np

from nlm._validate import (
    _check_int,
    _check_nonneg,
)
from nlm.noise import NOISE_MODELS, Gamma, Gaussian, NoiseModel, Rician, check_model, estimate_noise

if TYPE_CHECKING:
    from typing import Any


# pass 3's similarity threshold, in units of the mean noise variance
TAU3 = 0.07
# the NL-Ridge pass: patch side, group size, search radius (every noise level)
RIDGE_PATCH = 5
RIDGE_N = 30
RIDGE_RADIUS = 6


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
        ``patch1``, ``patch2``, ``patch3`` (sides in steps 1, 2 and pass
        3), ``n1``, ``n2`` (group sizes),
        ``radius`` (search-window radius of step 1, and of the later
        passes unless ``radius2`` / ``radius3`` say otherwise),
        ``radius2``, ``radius3`` (the search-window radii of step 2 and pass
        3), ``nmax2`` (step 2's cap on its group, patches closer than its
        threshold included; None: ``2 n1``), ``stride_add`` (added to
        ``stride`` in step 2 and pass 3), ``beta`` (noise
        correction factors of steps 1 and 2, a pair), ``flat`` (flat-area
        thresholds of steps 1 and 2, a pair), ``passes`` (2, or 3: step 2
        repeated on its own result, see :func:`nlm.denoisers.bayes.denoise_nl_bayes`),
        ``ridge`` (the NL-Ridge pass's weight, 0: none), ``ridge_at`` (the
        pass it follows: 2 or 3), ``ridge_patch``, ``ridge_n``,
        ``ridge_radius`` (its patch side, group size and window radius).

    Notes
    -----
    The IPOL 2013 table: grey: patch 5 (7 from sigma 30) in step 1, 5 in
    step 2; colour: 3 / 5 / 7 below 20 / 50 / above in step 1, 3 below 50,
    then 5 (7 from 70) in step 2.  ``n1`` = 35 / 45 / 90 / 100 below sigma
    10 / 30 / 80 / above, ``n2`` = 15 / 25 / 30 / 45 below 20 / 40 / 80 /
    above; the search window is ``n1 / 2`` patches wide (odd), at most 33.
    ``beta`` is 1 (:func:`nlm.denoisers.bayes.denoise_nl_bayes` uses 1.1 for multiplicative
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
    from sigma 40 (+0.12 dB at 50, 1.6 times the time), in pass 3 too
    (``patch3``, step 2's: 5 x 5 there, with the NL-Ridge pass, blind at
    sigma 50, made pass 3 2.4 times faster and the whole run at 50 1.16
    times, but cost 0.03 dB on BSD68's first 10 images, 0.002 on Set12,
    0.025 on the public set with clipped noise; 5 x 5 in step 2 too:
    Set12 -0.025 dB, public set -0.08 dB, brick -0.21; in step 1 as well:
    Set12 -0.095 dB).  The search window
    is the IPOL one (wider: better on brick, worse on moon), except that its
    first step (radius 8 -> 11) is at sigma 5 with ``n1``'s instead of 10.

    A third pass (``passes=3``) for grey images: with the speckle and gamma
    models at every level, with additive or Poisson noise from sigma 35
    (from 20 with the NL-Ridge pass, see below; at 25 on Set12 pass 3 adds
    0.07 dB); for colour with additive or Poisson noise at every level
    (see the colour paragraph below), with the speckle and gamma models
    from sigma 45 (half-size astronaut, coffee, chelsea, rocket: Gaussian
    sigma 50 +0.13..+0.34 dB, gamma L = 4 +0.08..+0.35 dB; at sigma 35
    +0.06..+0.15 dB, but -0.15..-0.04 dB with speckle var 0.01 and gamma
    L = 16, around sigma 30).  Measured on
    the public set, blind, against two passes: speckle var 0.01 / 0.04 / 0.1
    +0.00 / +0.17 / +0.09 dB, gamma L = 1 / 4 / 16 +0.90 / +0.51 / +0.14 dB,
    Gaussian sigma 50 +0.30 dB (brick +0.13..+0.90, text -0.05..+0.47).
    Pass 3's threshold (0.07 times the mean noise variance) was chosen on
    the same set (0.05..0.2 and absolute thresholds tried).

    The NL-Ridge pass (grey images, additive or Poisson noise; chosen on
    four Set12 images, 01 / 02 / 05 / 07, blind, standard Gaussian protocol,
    against ``bm3d.bm3d`` at the true sigma on the same noise, in dB):
    NL-Bayes as before +0.09 / +0.07 / +0.28 at sigma 15 / 25 / 50; pass 3
    at 15 -0.04, at 25 +0.07; the NL-Ridge image alone (two NL-Ridge steps
    as in the paper) -0.06 at 25, but mixed with NL-Bayes: at 15 after
    step 2 (weight 0.5) +0.07; at 25 after pass 3 (0.4) +0.06, after step 2
    and before pass 3 +0.05; at 50 after pass 3 -0.01 to -0.1, after step 2
    and before pass 3 (0.5) +0.04.  Centring the group on its mean patch:
    +0.005 at 25 (and constants stay constant).  Patches 5 / 7 / 9, groups
    20..90, windows 13..17: 7 x 7, 45 and 17 x 17 measured best by <= 0.01
    dB at twice the time of 5 x 5, 30 and 13 x 13 (the table).  The stride
    of the reference grid (2..4) changed neither the result nor the time
    (positions already in a group are skipped).  Colour (256 x 256 centres
    of astronaut, coffee, chelsea; against ``bm3d.bm3d_rgb``): NL-Bayes
    -0.29 / -0.49 dB at sigma 25 / 50, with the NL-Ridge pass after step 2
    (weight 0.3 / 0.5) -0.13 / -0.34 (0.4 in the table).  Not measured with
    the speckle and gamma models: off there.  Tried and not kept (same four
    Set12 images, against the table's mix): LIChI-like iteration, a second
    NL-Ridge pass guided by the mix (groups searched again on it) and mixed
    in again, -0.01 to -0.16 dB at sigma 25 (the NL-Ridge image guided by
    the mix is 0.16 dB worse than the one guided by NL-Bayes: the mix is
    smoother than the signal, and ``G G^T`` then under-estimates it); three
    NL-Ridge images (5 x 5 / 30 / 13 x 13, 7 x 7 / 45 / 17 x 17, 3 x 3 / 20 /
    13 x 13) averaged with NL-Bayes: -0.01 to -0.10 at 25, +0.005 at 15, at
    up to twice the time; an NL-Bayes pass with 7 x 7 patches added to the
    average: -0.01.

    The later passes' windows, groups and stride (grey, additive or Poisson
    noise; issue 22's benchmark: Set12's 12 images and BSD68's first 10,
    blind, against ``bm3d.bm3d`` on the same noise, Set12 / BSD68 in dB):
    step 2 and pass 3 search wider windows than step 1, whose pilot is
    noisier.  Below sigma 20: step 2's window 49 x 49 (radius 24; 16 / 20 /
    28 / 32 measured +0.02..+0.05 on Set12 at rising time), ``n2`` 20
    (15: -0.017 / -0.002; 25 and more worse on BSD68) and a third pass with
    the same window (+0.016 / +0.011 at 1.46 times the time; the worst
    Set12 image, house, -0.22 -> -0.17): +0.075 / +0.045 in all.  From 20
    to 35: steps 2 and 3 at radius 24 (20 / 28: +0.05 / +0.04 and +0.07 /
    +0.05 against 11) and step 2's group capped at 60 (every patch closer
    than its threshold up to ``2 n1`` before): +0.073 / +0.055 in all.  From
    35: step 2's window radius 22 (pass 3's staying 16: 22 there too +0.02
    / -0.004 at 1.1 times the time), its group capped at 120 (60: +0.005 /
    +0.021 against 240 before the other changes, -0.003 / +0.010 against
    120 after them, but on the public set at sigma 50 moon -0.14 and brick
    -0.05 against 120) and the reference grid of steps 2 and 3
    one coarser (``stride_add``: stride 3, 0.85 times the time for -0.002
    / -0.004; 4: -0.014 more; stride 3 in step 1 or in the NL-Ridge pass
    cost more, and below 35 stride 3 in steps 2 and 3 cost 0.01-0.02):
    +0.019 / +0.017 in all at about 0.95 times the time.  Narrower windows in the
    later passes at sigma 50 (radius 11 in steps 2 and 3) cost 0.07 on
    Set12's first 7 images.

    Colour with additive or Poisson noise (issue 22; scikit-image's
    astronaut, coffee, chelsea and rocket at full size, Gaussian noise
    unclipped, blind, against ``bm3d.bm3d_rgb`` at the true sigma on the
    same noise; the IPOL table's result first): pass 3 at every level
    (sigma 25: -0.02 -> +0.17 dB; the level this table sees is relative to
    the data's range, which unclipped noise widens, so at a true sigma of
    50 astronaut and coffee came out at 44 and missed the old threshold of
    45: -0.40 and -0.41 dB against BM3D), ``n1`` at least 90 (+0.01), ``n2``
    at least 40 (+0.05), 49 x 49 windows in step 2 and pass 3 (+0.04) and
    no flat-area rule in step 2 (+0.03): +0.31 dB at sigma 25, +0.21 at 50
    (-0.10 before); on the same images against the IPOL table, +0.20 /
    +0.30 / +0.40 dB at sigma 10 / 15 / 35 (at up to twice the time below
    sigma 20).  Tried and not kept: 5 x 5 step-2 patches at 25 (-0.01) and
    7 x 7 at 50 (-0.04, three times the time), ``n2`` 60 (-0.05 at 25),
    ``n1`` 120 with the NL-Ridge weight 0.25 at 50 (-0.02), the NL-Ridge
    pass after pass 3 (-0.1 at 50), weights 0.25 / 0.3 / 0.5 (within 0.03),
    pass 3's threshold 0.035 / 0.15 times the mean noise variance (within
    0.07, worse).  The speckle and gamma models keep the IPOL table (not
    measured), and the NL-Ridge pass (0.4 after step 2) only below level
    40: astronaut, coffee and chelsea with gamma speckle, blind, against no
    NL-Ridge pass: L = 16 (level about 30) +0.06..+0.08 dB, L = 4 (about
    60) -0.02..+0.01, L = 1 -0.07..+0.02.
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
    third = (multiplicative or s >= 35) if channels == 1 else (s >= 45 or not multiplicative)
    passes = 3 if third else 2
    # the NL-Ridge pass (see Notes): its mixing weight, after which pass, its patch, group and window
    ridge, ridge_at = 0.0, 2
    if channels == 1 and not multiplicative:
        if s < 20:
            ridge, ridge_at, passes = 0.5, 3, 3
        elif s < 35:
            ridge, ridge_at, passes = 0.4, 3, 3
        else:
            ridge = 0.5
    elif channels > 1 and (not multiplicative or s < 40):
        # colour; with the speckle and gamma models only at weak noise (see Notes)
        ridge = 0.4
    # pass 3's patch: step 2's (5 x 5 after 7 x 7 measured faster but not better; see Notes)
    p3 = p2
    # the later passes' windows, step 2's group cap and stride (grey, additive or Poisson noise; see Notes)
    radius2 = radius3 = radius
    nmax2 = None
    stride_add = 0
    if channels == 1 and not multiplicative:
        if s < 20:
            n2, radius2, radius3 = 20, 24, 24
        elif s < 35:
            radius2 = radius3 = 24
            nmax2 = 60
        else:
            radius2, nmax2, stride_add = 22, 120, 1
    elif channels > 1 and not multiplicative:
        # colour with additive or Poisson noise (see Notes): larger groups, wider later windows, no flat-area
        # rule in step 2, and pass 3 at every level
        n1, n2 = max(n1, 90), max(n2, 40)
        radius2 = radius3 = 24
        flat = (1.05, 0.0)
    return dict(patch1=p1, patch2=p2, patch3=p3, n1=n1, n2=n2, radius=radius, radius2=radius2, radius3=radius3,
                nmax2=nmax2, stride_add=stride_add, beta=beta, flat=flat, passes=passes,
                ridge=ridge, ridge_at=ridge_at, ridge_patch=RIDGE_PATCH, ridge_n=RIDGE_N, ridge_radius=RIDGE_RADIUS)


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
    amax = max(float(np.max(xc)), -float(np.min(xc)))  # max |x|, without an |x| copy
    if amax == 0.0 or 2.0**-20 <= amax <= 2.0**20:
        return 0
    return int(np.clip(-np.round(np.log2(amax)), -1000, 1000))


def _grid_in(n, p, stride, start, m):
    """The image's reference grid along an axis of ``n`` (:func:`_grid`) within a block of ``m`` from ``start``.

    Block coordinates: the grid positions ``g`` with ``start <= g <= start + m - p``, minus ``start``.
    """
    g = _grid(n, p, stride)
    return np.ascontiguousarray(g[(g >= start) & (g <= start + m - p)] - start)


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


def _variance_in_place(model, a, chunk=1 << 16):
    """``model.variance(a)`` written over the float64 array ``a`` (returned), a chunk of values at a time.

    The variance is elementwise: the same values as one call on the whole
    array (chunks at multiples of ``chunk`` values keep the SIMD lanes), without its full-size
    temporaries (a Rician variance makes about ten).
    """
    if not a.flags.c_contiguous:
        return model.variance(a)
    flat = a.reshape(-1)
    for s in range(0, flat.size, chunk):
        flat[s : s + chunk] = model.variance(flat[s : s + chunk])
    return a


def _mean_noise_variance(model, smooth, xc):
    """The mean noise variance over an image ``xc`` (channel-first), from its float64 3 x 3 smoothed copy
    ``smooth`` (overwritten).

    With SAR gamma speckle (``y = x s``, ``s > 0``, never clipped) an exact
    zero of the data is a zero of the clean image, which carries no noise:
    pixels that are 0 in every channel are left out, so that a large
    exactly-zero background (an MRI slice, a masked scene) does not pull
    the noise level, and with it the parameters, down to that of a fraction
    of the image.  All zero: 0.  Other models: the mean over every pixel.
    """
    var = _variance_in_place(model, smooth)
    if model.name == "gamma":
        pos = np.broadcast_to((xc != 0).any(axis=0), var.shape)
        n = int(np.count_nonzero(pos))
        return float(np.sum(var, where=pos) / n) if n else 0.0
    return float(np.mean(var))


def _parameters(xc, image_dtype, noise, sigma, looks, preserve_range, p_user, n_user, search_radius, beta,
                flat=None, passes=None, ridge=None):
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

    # float64 output from the working dtype directly (scipy filters in float64 either way: the values of a
    # float64 copy, without the copy)
    smooth = uniform_filter(xc, size=(1,) + (3,) * (xc.ndim - 1), mode="reflect", output=np.float64)
    if preserve_range and np.dtype(image_dtype).kind in "iu":
        # the dtype's range, as [0, 1] is for converted images
        rng = float(np.iinfo(image_dtype).max) * 2.0**e
    elif hi <= 1.0 + 1e-6 and lo >= -1.0 - 1e-6:
        rng = 1.0
    else:
        rng = max(float(np.percentile(smooth, 99.5)) - min(float(np.percentile(smooth, 0.5)), 0.0), 1e-300)
    tmat = _colour_transform(C)
    mean_var = _mean_noise_variance(model, smooth, xc)
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
    p3 = p2 if p_user is not None else prm["patch3"]  # a patch_size given: pass 3 takes step 2's
    n1, n2 = n_user if n_user is not None else (prm["n1"], prm["n2"])
    radius = prm["radius"] if search_radius is None else search_radius
    radius2 = prm["radius2"] if search_radius is None else search_radius
    radius3 = prm["radius3"] if search_radius is None else search_radius
    # a window wider than the image is the whole image
    radius = max(1, min(radius, max(H, W) - 1))
    radius2 = max(1, min(radius2, max(H, W) - 1))
    radius3 = max(1, min(radius3, max(H, W) - 1))
    if beta is None:
        # D from the group's mean underestimates the mean variance of its
        # patches for multiplicative noise (E[c x^2] >= c E[x]^2): measured
        # +0.05 dB with 1.1 at L = 4 (camera, coins), -0.04 dB for Gaussian
        beta = (1.1, 1.1) if model.c > 0 else prm["beta"]
    if flat is None:
        flat = prm["flat"]
    p1 = min(p1, _largest_odd(min(H, W)))
    p2 = min(p2, _largest_odd(min(H, W)))
    p3 = min(p3, _largest_odd(min(H, W)))
    cand = (2 * radius + 1) ** 2
    cand2 = (2 * radius2 + 1) ** 2
    cand3 = (2 * radius3 + 1) ** 2
    n1 = min(n1, cand)
    n2 = min(n2, cand, cand2, cand3)
    nmax2 = prm["nmax2"] if n_user is None and prm["nmax2"] is not None else 2 * n1
    n_max = max(n2, min(nmax2, cand2))
    tau = (4.0 / 255.0 * rng) ** 2
    if passes is None:
        passes = prm["passes"]
    # pass 3: every patch closer than TAU3 times the mean noise variance, up
    # to the whole window (see denoise_nl_bayes)
    tau3 = TAU3 * mean_var
    n_max3 = max(n2, cand3)

    # the NL-Ridge pass: after step 2, or after pass 3 when there is one and the table says so
    alpha = prm["ridge"] if ridge is None else ridge
    if ridge is None and model.name == "rician":
        alpha = 0.0  # not measured on magnitude MRI: off unless asked for
    ridge_at = min(prm["ridge_at"], passes)
    ridge_patch = min(prm["ridge_patch"], _largest_odd(min(H, W)))
    ridge_radius = max(1, min(prm["ridge_radius"], max(H, W) - 1))
    ridge_n = max(2, min(prm["ridge_n"], (2 * ridge_radius + 1) ** 2))

    return dict(model=model, user_model=user_model, estimated=estimated, tmat=tmat, p1=p1, p2=p2, p3=p3, n1=n1, n2=n2,
                radius=radius, radius2=radius2, radius3=radius3, stride_add=int(prm["stride_add"]), beta=beta,
                n_max=n_max, tau=tau, flat=flat, passes=passes, tau3=tau3,
                n_max3=n_max3, xc=xc, exponent=e, lo=lo, hi=hi, identity=bool(identity), sigma255=sigma255,
                mean_var=mean_var, name=name, ridge=float(alpha), ridge_at=ridge_at, ridge_patch=ridge_patch,
                ridge_radius=ridge_radius, ridge_n=ridge_n)


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


def _check_ridge(ridge):
    """``ridge`` argument -> None or a float in [0, 1]."""
    if ridge is None:
        return None
    if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real):
        raise TypeError(f"ridge must be a real number in [0, 1], got {ridge!r}")
    ridge = float(ridge)
    if not 0.0 <= ridge <= 1.0:
        raise ValueError(f"ridge must be in [0, 1] (the NL-Ridge pass's weight), got {ridge}")
    return ridge


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
        ``radius`` per axis (triples), and ``tau_var``: the cap on step 2's
        similarity threshold, in units of the mean noise variance.

    Notes
    -----
    One table at every level: 3 x 3 x 3 patches in both steps, groups of
    ``n1 = 60`` and ``n2 = 30``, a 9 x 9 x 9 window (radius 4), ``beta`` 1,
    the flat-area rule in step 1 only, at 0.9 times the noise variance
    ``(0.9, 0)``, three passes, and step 2's threshold ``tau`` (the IPOL
    ``(4/255)^2`` of the range squared, per voxel) capped at ``tau_var =
    0.01`` times the mean noise variance.  Tuned blind on three public MRI
    volumes (``S0_10slices``, ``test_piesno`` from dipy, the first
    ``example4d`` volume from nibabel; Gaussian noise of 3 / 6 / 12 % of the
    range; ``benchmarks/bayes3d.py``), against the first table tried (two
    passes, flat 1.05 in both steps, n 60 / 30 below sigma 15 of 255, 90 /
    45 above), in dB at 3 / 6 / 12 %: the third pass +0.06 / +0.06 / +0.19;
    then no flat rule in step 2 +0.06 / +0.07 / +0.13; then n 60 / 30 at
    every level +0.02 / +0.06 / +0.08.  Tried and not taken: radius 5 or 6
    (+0.03 to +0.04 dB at 1.6 times the time), ``(3, 5, 5)`` step-2 patches
    (+0.01 / +0.07 / +0.13 dB at twice the time, and it assumes the first
    axis is the coarse one), 5 x 5 x 5 patches (-1.3 dB: groups smaller than
    the patch), larger groups (90 / 45, 120 / 60), smaller (40 / 20),
    step-1 ``beta`` 1.1 or 0.9, flat 1.5.  (Measured with a first version of
    the kernel whose groups marked members as done only inside their
    reference's cell; the final one marks them everywhere, as in 2-D.)

    Second round, for issue 20's 2 % level (the same tuning volumes, two
    seeded draws per volume and level, Gaussian 2 / 5 / 10 %, mean of
    NL-Bayes blind minus BM4D at the true sigma: +0.155 / +0.279 / +0.312 dB
    with the table above): ``tau`` capped at 0.01 times the mean noise
    variance +0.044 / +0.029 / +0.003 (the absolute threshold is loose at
    low noise: at sigma 5 of 255 it admits patches that differ by 0.8 sigma
    per voxel, and it follows the range, which for unclipped data is the
    0.5 / 99.5 percentiles of the smoothed volume and changes with the
    draw; capped, step 2's groups grow past ``n2`` only on near-duplicates
    such as a zero background: ``test_piesno`` up to +0.12 / +0.18 / +0.02,
    the others within 0.02); then step-1 flat 0.9 instead of 1.05 +0.013 /
    +0.032 / +0.026.  Result +0.212 / +0.340 / +0.341, and with sigma
    overestimated by 25 % (what the blind estimate does on a volume whose
    "clean" reference has noise of its own) -0.14 dB at 2 % instead of
    -0.35.  Tried and not taken (dB at 2 %, same protocol): the group cap
    ``n_max`` (``2 n1`` = 120) at 30 / 40 / 60 +0.042 / +0.038 / +0.031 but
    -0.024 / -0.009 / +0.003 at 10 %, ``tau`` capped at 0 (the same) or
    0.02 / 0.05 / 0.1 times the noise variance (less at 2 and 5 %), ``tau``
    relative to the noise variance instead of capped (-0.06 to -0.14 at
    10 %), flat 0.8 / 0.85 / 0.95 (0.8: -0.03 at 10 %), no flat rule
    (+0.02 at 2 %, but -0.6 dB with sigma 25 % high), flat in both steps
    (-0.02), radius 5 (+0.04 / +0.06 / +0.07, at 1.55 times the time on
    the speed volume), ``(4, 5, 5)`` or ``(3, 5, 5)`` windows (+0.03 /
    +0.02, 1.5 / 1.2 times), step-1 ``n1`` 40 / 80 (-0.01 / +0.00 at 2 %;
    80: +0.01 / +0.02 at 5 / 10 %, larger step-1 groups), ``n2`` 20 / 25 /
    35 / 40, ``beta`` 0.9 or 1.1 in either step (-0.07 to +0.01), pass 3's
    threshold ``tau3`` at 0.5 / 0.7 / 1.4 times (mixed per volume, -0.02 to
    +0.01 on the mean), ``(3, 5, 5)`` / ``(5, 5, 5)`` step-2 or ``(3, 5,
    5)`` step-1 patches (-0.05 to -0.35 at 2 %), two passes (-0.13 at 2 %).
    Colour volumes and the multiplicative models use the same table (not
    tuned separately; ``denoise_nl_bayes`` sets ``beta`` 1.1 for the
    multiplicative ones, as in 2-D).
    """
    p = 3
    r = 4
    return dict(patch1=(p,) * 3, patch2=(p,) * 3, n1=60, n2=30, radius=(r,) * 3, beta=(1.0, 1.0),
                flat=(0.9, 0.0), passes=3, tau_var=0.01)


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
               n_max3=max(n2, cand), tau=min(prm["tau"], vp["tau_var"] * prm["mean_var"]))
    return prm
