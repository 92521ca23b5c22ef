"""Tests of the blind speckle mode nlm.denoisers.speckle.denoise_speckle."""

import numpy as np
import pytest
from skimage import data
from skimage.util import img_as_float

from nlm.denoisers.speckle import H_FACTORS, denoise_speckle, speckle_sigma
from nlm.metrics import psnr
from nlm.noise import add_noise


@pytest.fixture(scope="module")
def clean():
    return img_as_float(data.camera()[::4, ::4])  # 128x128


@pytest.fixture(scope="module")
def coins():
    return img_as_float(data.coins()[50:178, 100:228])


@pytest.mark.parametrize("var", [0.01, 0.04, 0.1])
def test_improves_psnr_on_speckle(clean, var):
    noisy = add_noise(clean, "speckle", var=var, seed=0)
    out = denoise_speckle(noisy)
    gain = psnr(clean, np.clip(out, 0, 1)) - psnr(clean, noisy)
    assert gain > 2.0


@pytest.mark.parametrize("var", [0.04, 0.1])
def test_beats_the_obvious_gaussian_nlm(coins, var):
    # the baseline the speckle mode exists to beat: the Gaussian filter with
    # h = 0.8 * estimate_sigma (which underestimates signal-dependent noise)
    from nlm import denoise_nl_means, estimate_sigma

    noisy = add_noise(coins, "speckle", var=var, seed=1)
    s = estimate_sigma(noisy)
    obvious = denoise_nl_means(noisy, 7, 11, h=0.8 * s, sigma=s)
    ours = denoise_speckle(noisy)
    assert psnr(coins, np.clip(ours, 0, 1)) > psnr(coins, obvious) + 1.0


def test_gamma_speckle_and_log_transform(coins):
    noisy = add_noise(coins, "gamma", looks=16, seed=2)
    base = psnr(coins, noisy)
    for transform in ("sqrt", "log"):
        out = denoise_speckle(noisy, transform=transform)
        assert psnr(coins, np.clip(out, 0, 1)) > base + 3.0


@pytest.mark.parametrize("value", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("transform", ["sqrt", "log"])
def test_constant_image_stays_constant(value, transform):
    img = np.full((24, 30), value)
    out = denoise_speckle(img, transform=transform)
    np.testing.assert_allclose(out, value, atol=1e-9)


def test_nearly_constant_speckled_image_mean_preserved():
    img = add_noise(np.full((64, 64), 0.4), "speckle", var=0.04, seed=3)
    out = denoise_speckle(img)
    assert abs(out.mean() - img.mean()) < 1e-9  # the debiasing step
    assert out.std() < 0.3 * img.std()


def test_dtypes(clean):
    noisy = add_noise(clean, "speckle", var=0.04, seed=0)
    out32 = denoise_speckle(noisy.astype(np.float32))
    out64 = denoise_speckle(noisy)
    assert out32.dtype == np.float32 and out64.dtype == np.float64
    assert out32.shape == out64.shape == noisy.shape
    np.testing.assert_allclose(out32, out64, atol=2e-4)
    u8 = np.round(noisy * 255).astype(np.uint8)
    out8 = denoise_speckle(u8)
    assert out8.dtype == np.float64 and out8.max() <= 1.5
    raw = denoise_speckle(u8, preserve_range=True)
    np.testing.assert_allclose(raw, out8 * 255, rtol=1e-6, atol=1e-6)


def test_scale_equivariance(clean):
    noisy = add_noise(clean, "speckle", var=0.04, seed=0)
    a = 37.5
    np.testing.assert_allclose(denoise_speckle(a * noisy), a * denoise_speckle(noisy), rtol=1e-6, atol=1e-9)


def test_non_negative_and_input_untouched(clean):
    noisy = add_noise(clean, "speckle", var=0.1, seed=4)
    before = noisy.copy()
    out = denoise_speckle(noisy)
    assert out.min() >= 0
    assert np.array_equal(noisy, before)


def test_explicit_h_is_used(clean):
    noisy = add_noise(clean, "speckle", var=0.04, seed=5)
    s = speckle_sigma(noisy)
    auto = denoise_speckle(noisy)
    same = denoise_speckle(noisy, h=H_FACTORS["sqrt"] * s)
    np.testing.assert_allclose(auto, same, rtol=1e-12)
    tiny = denoise_speckle(noisy, h=1e-4 * s, sigma=0.0)
    np.testing.assert_allclose(tiny, noisy, atol=1e-6)
    assert denoise_speckle(noisy, h_factor=3.0).std() < auto.std()


def test_speckle_sigma_log_is_noise_std():
    img = add_noise(np.full((128, 128), 0.3), "speckle", var=0.04, seed=6)
    assert speckle_sigma(img, transform="log") == pytest.approx(0.2, rel=0.1)
    # sqrt domain: std of sqrt(x (1 + n)) ~ sqrt(x) * sqrt(var) / 2
    assert speckle_sigma(img) == pytest.approx(np.sqrt(0.3) * 0.1, rel=0.1)


def test_channels():
    rgb = img_as_float(data.astronaut()[100:164, 150:214])
    noisy = add_noise(rgb, "speckle", var=0.04, seed=7)
    out = denoise_speckle(noisy, channel_axis=-1)
    assert out.shape == rgb.shape
    assert psnr(rgb, np.clip(out, 0, 1)) > psnr(rgb, noisy) + 2
    moved = denoise_speckle(np.moveaxis(noisy, -1, 0), channel_axis=0)
    np.testing.assert_allclose(np.moveaxis(moved, 0, -1), out, rtol=1e-9, atol=1e-12)


def test_dispatch_from_denoise_nl_means(clean):
    from nlm import denoise_nl_means

    noisy = add_noise(clean, "speckle", var=0.04, seed=8).astype(np.float32)
    via = denoise_nl_means(noisy, 5, 11, noise="speckle")
    np.testing.assert_array_equal(via, denoise_speckle(noisy))


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"h": 0}, ValueError, "h"),
        ({"h": -1.0}, ValueError, "h"),
        ({"h": "0.1"}, TypeError, "h"),
        ({"sigma": -0.1}, ValueError, "sigma"),
        ({"h_factor": 0}, ValueError, "h_factor"),
        ({"transform": "anscombe"}, ValueError, "transform"),
        ({"transform": 1}, TypeError, "transform"),
        ({"foo": 1}, TypeError, "foo"),
        ({"patch_size": 4}, ValueError, "patch_size"),
        ({"patch_size": 2.5}, TypeError, "patch_size"),
        ({"patch_distance": -1}, ValueError, "patch_distance"),
        ({"channel_axis": 5}, ValueError, "channel_axis"),
        ({"preserve_range": "yes"}, TypeError, "preserve_range"),
    ],
)
def test_bad_arguments(kwargs, exc, word):
    img = np.full((16, 16), 0.5)
    with pytest.raises(exc, match=word):
        denoise_speckle(img, **kwargs)


@pytest.mark.parametrize(
    "image, exc, word",
    [
        (np.array([[0.5, -0.1], [0.2, 0.3]]), ValueError, "non-negative"),
        (np.full((8, 8), np.nan), ValueError, "NaN"),
        (np.zeros((0, 8)), ValueError, "empty"),
        (np.array([["a"]]), TypeError, "dtype"),
    ],
)
def test_bad_images(image, exc, word):
    with pytest.raises(exc, match=word):
        denoise_speckle(image)
