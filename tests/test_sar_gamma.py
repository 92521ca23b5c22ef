"""SAR gamma speckle off the public set: exactly-zero backgrounds and homogeneous-area means.

Property tests of the two weak spots of issue 22 (measurements: ``benchmarks/sar_weak_spots.py``):
a large exactly-zero background (MRI slices, masked scenes) stays exactly zero, the pixels next to it keep
their level, non-local means is not the identity there, NL-Bayes's noise level ignores the zeros; and the
means of homogeneous areas stay within 2 % with NLM's gamma path and NL-Bayes.
"""

import numpy as np
import pytest
from scipy import ndimage

from nlm import denoise_nl_bayes, denoise_nl_means
from nlm.denoisers.bayes_setup import _parameters
from nlm.metrics import psnr
from nlm.noise import Gamma
from nlm.noise.transforms import gamma_floor


def _disc(n=64, level=0.5):
    yy, xx = np.mgrid[:n, :n]
    return np.where((yy - n / 2) ** 2 + (xx - n / 2) ** 2 <= (n / 3) ** 2, level, 0.0)


def _band(obj, a, b):
    """Pixels of ``obj`` at least ``a`` and less than ``b`` pixels inside its edge."""
    inner = ndimage.binary_erosion(obj, iterations=a) if a else obj
    return inner & ~ndimage.binary_erosion(obj, iterations=b)


@pytest.mark.parametrize("method", ["bayes", "means"])
def test_zero_background_stays_zero_and_its_edge_keeps_its_level(method):
    x = _disc()
    obj = x > 0
    near, inner = _band(obj, 1, 5), ndimage.binary_erosion(obj, iterations=5)
    errs = []
    for seed in range(2):
        y = Gamma(1).sample(x, seed=seed).astype(np.float32)
        assert (y[~obj] == 0).all()  # speckle multiplies: the background stays exactly zero
        if method == "bayes":
            out = denoise_nl_bayes(y, looks=1)
        else:
            out = denoise_nl_means(y, noise=Gamma(1))
        assert (out[~obj] == 0).all()
        assert psnr(x, np.clip(out, 0, 1), data_range=1.0) > psnr(x, np.clip(y, 0, 1), data_range=1.0) + 5
        errs.append([out[near].mean() / 0.5 - 1, out[inner].mean() / y[inner].mean() - 1])
    near_err, inner_err = np.mean(errs, axis=0)
    assert abs(near_err) < 0.05, errs  # the 1..4 pixels next to the zeros: not pulled down by them
    assert abs(inner_err) < 0.02, errs


def test_zero_background_colour_and_float64():
    x = np.stack([_disc(48, 0.5), _disc(48, 0.3), _disc(48, 0.8)], axis=-1)
    y = Gamma(2).sample(x, seed=3)
    out = denoise_nl_bayes(y, looks=2, channel_axis=-1)
    assert out.dtype == np.float64
    assert (out[x == 0] == 0).all()
    out = denoise_nl_means(y, noise=Gamma(2), channel_axis=-1)
    assert (out[x == 0] == 0).all()


def test_other_models_do_not_force_zeros():
    """Only gamma speckle makes an exact zero a known value (Gaussian noise goes through its zeros)."""
    x = _disc(48)
    y = np.clip(x + np.random.default_rng(0).normal(0, 0.1, x.shape), 0, None)
    y[~(x > 0)] = 0.0
    y[::7, ::5] = 0.0
    out = denoise_nl_bayes(y, sigma=0.1)
    assert (out[y == 0] != 0).any()


def test_nl_bayes_noise_level_ignores_exact_zeros():
    """A zero frame around a speckled image leaves NL-Bayes's noise level (and parameters) as they are."""
    rng = np.random.default_rng(1)
    x = 0.3 + 0.5 * rng.random((48, 48))
    y = Gamma(1).sample(x, seed=1).astype(np.float32)
    padded = np.pad(y, 48)
    args = (np.float32, "auto", None, 1.0, False, None, None, None, None)
    a = _parameters(y[None], *args)
    b = _parameters(padded[None], *args)
    # the zeros lower only the edge pixels (the mean over all of them would be 4 times lower)
    assert b["mean_var"] == pytest.approx(a["mean_var"], rel=0.1)
    assert (b["p1"], b["p2"], b["n1"], b["n2"]) == (a["p1"], a["p2"], a["n1"], a["n2"])


def test_nlm_gamma_log_floor_is_the_smallest_positive_value():
    y = np.array([0.0, 1e-4, 0.5, 40.0])
    assert gamma_floor(y, 7.0) == 1e-4
    assert gamma_floor(np.zeros(3), 7.0) == 7.0


def _quadrants(n=128):
    h = n // 2
    x = np.empty((n, n))
    x[:h, :h], x[:h, h:], x[h:, :h], x[h:, h:] = 1.0, 0.25, 0.06, 0.5
    areas = []
    for sl in ((slice(0, h), slice(0, h)), (slice(0, h), slice(h, n)), (slice(h, n), slice(0, h)),
               (slice(h, n), slice(h, n))):
        m = np.zeros((n, n), dtype=bool)
        m[sl] = True
        areas.append(ndimage.binary_erosion(m, iterations=13))  # beyond NLM's window and patch
    return x, areas


@pytest.mark.parametrize("looks", [1, 4])
@pytest.mark.parametrize("method", ["bayes", "means"])
def test_homogeneous_area_means_within_2_percent(method, looks):
    """Four levels over more than a decade (a bright area beside dark ones): every area's mean, against
    the noisy area's mean, averaged over draws, within 2 %."""
    x, areas = _quadrants()
    errs = []
    for seed in range(3):
        y = Gamma(looks).sample(x, seed=seed).astype(np.float32)
        if method == "bayes":
            out = denoise_nl_bayes(y, looks=looks)
        else:
            out = denoise_nl_means(y, noise=Gamma(looks))
        errs.append([out[a].mean() / y[a].mean() - 1 for a in areas])
    bias = np.mean(errs, axis=0)
    assert np.abs(bias).max() < 0.02, bias
