"""Tests of nlm.metrics: the wrappers agree with scikit-image and validate."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from nlm.metrics import psnr, ssim


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    ref = rng.random((40, 48))
    img = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    return ref, img


def test_psnr_matches_skimage(pair):
    ref, img = pair
    assert psnr(ref, img) == pytest.approx(peak_signal_noise_ratio(ref, img, data_range=1.0), rel=1e-12)
    assert psnr(ref, img, data_range=2.0) == pytest.approx(
        peak_signal_noise_ratio(ref, img, data_range=2.0), rel=1e-12
    )


def test_psnr_known_value():
    ref = np.zeros((10, 10))
    assert psnr(ref, ref + 0.1) == pytest.approx(20.0)
    assert psnr(ref, ref + 0.01) == pytest.approx(40.0)
    assert psnr(ref, ref) == float("inf")


def test_psnr_data_range_inferred_from_reference_dtype():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (16, 16)).astype(np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-5, 6, ref.shape), 0, 255).astype(np.uint8)
    assert psnr(ref, img) == pytest.approx(peak_signal_noise_ratio(ref, img, data_range=255), rel=1e-12)
    # uint8 arithmetic would wrap around: the wrapper works in float64
    a = np.array([[0, 255]], dtype=np.uint8)
    b = np.array([[255, 0]], dtype=np.uint8)
    assert psnr(a, b) == pytest.approx(0.0)
    # signed floats in [-1, 1]: range 2, as scikit-image
    s = np.array([[-0.5, 0.5]])
    assert psnr(s, s + 0.02) == pytest.approx(peak_signal_noise_ratio(s, s + 0.02, data_range=2.0))


def test_float32_inputs(pair):
    ref, img = pair
    assert psnr(ref.astype(np.float32), img.astype(np.float32)) == pytest.approx(psnr(ref, img), abs=1e-4)


def test_ssim_matches_skimage(pair):
    ref, img = pair
    assert ssim(ref, img) == pytest.approx(structural_similarity(ref, img, data_range=1.0), rel=1e-12)
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(ref, img) < 0.99


def test_ssim_channels():
    rng = np.random.default_rng(2)
    ref = rng.random((20, 24, 3))
    img = np.clip(ref + rng.normal(0, 0.1, ref.shape), 0, 1)
    want = structural_similarity(ref, img, data_range=1.0, channel_axis=-1)
    assert ssim(ref, img, channel_axis=-1) == pytest.approx(want)
    assert ssim(ref, img, channel_axis=2) == pytest.approx(want)
    moved = np.moveaxis(ref, -1, 0), np.moveaxis(img, -1, 0)
    assert ssim(*moved, channel_axis=0) == pytest.approx(want)


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_shape_mismatch(fn, pair):
    ref, img = pair
    with pytest.raises(ValueError, match="same shape"):
        fn(ref, img[:, :-1])


@pytest.mark.parametrize("fn", [psnr, ssim])
@pytest.mark.parametrize("which", ["reference", "image"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_rejected(fn, pair, which, bad):
    ref, img = (a.copy() for a in pair)
    (ref if which == "reference" else img)[3, 4] = bad
    with pytest.raises(ValueError, match=which):
        fn(ref, img)


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_bad_data_range(fn, pair):
    ref, img = pair
    for dr, exc in [(0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), ("1", TypeError)]:
        with pytest.raises(exc, match="data_range"):
            fn(ref, img, data_range=dr)
    with pytest.raises(ValueError, match="data_range"):
        fn(ref * 255, img * 255)  # float outside [-1, 1]: must be explicit
    assert np.isfinite(fn(ref * 255, img * 255, data_range=255))


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_bad_types(fn, pair):
    ref, img = pair
    with pytest.raises(TypeError, match="reference"):
        fn("a.png", img)
    with pytest.raises(TypeError, match="image"):
        fn(ref, ref.astype(complex))
    with pytest.raises(ValueError, match="empty"):
        fn(np.zeros((0, 4)), np.zeros((0, 4)))


def test_ssim_argument_checks(pair):
    ref, img = pair
    with pytest.raises(ValueError, match="channel_axis"):
        ssim(ref, img, channel_axis=2)
    with pytest.raises(TypeError, match="channel_axis"):
        ssim(ref, img, channel_axis=1.0)
    with pytest.raises(ValueError, match=">= 7"):
        ssim(ref[:5], img[:5])
