"""Tests of nlm.noise.add_noise: statistics, seeding, clipping, skimage equality."""

import numpy as np
import pytest
from skimage.util import random_noise

from nlm.noise import MODELS, add_noise


@pytest.fixture
def ramp():
    rng = np.random.default_rng(123)
    return rng.uniform(0.05, 0.95, (64, 80))


@pytest.mark.parametrize("model", ["speckle", "gaussian"])
@pytest.mark.parametrize("var", [0.01, 0.04, 0.1])
@pytest.mark.parametrize("seed", [0, 7])
def test_equals_skimage_bit_for_bit(ramp, model, var, seed):
    ours = add_noise(ramp, model, var=var, seed=seed)
    ref = random_noise(ramp, mode=model, var=var, rng=seed)
    assert ours.dtype == ref.dtype == np.float64
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("clip", [True, False])
def test_speckle_equals_skimage_default_var_and_clip(ramp, clip):
    assert np.array_equal(
        add_noise(ramp, seed=3, clip=clip), random_noise(ramp, mode="speckle", rng=3, clip=clip)
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_input_is_scaled_like_skimage(dtype):
    rng = np.random.default_rng(5)
    img = rng.integers(0, np.iinfo(dtype).max, (32, 40), dtype=dtype, endpoint=True)
    ours = add_noise(img, "speckle", var=0.04, seed=1)
    assert ours.dtype == np.float64
    assert np.array_equal(ours, random_noise(img, mode="speckle", var=0.04, rng=1))
    # zero noise limit: the conversion alone
    np.testing.assert_allclose(
        add_noise(img, "speckle", var=1e-30, seed=0), img / np.iinfo(dtype).max, rtol=1e-12
    )


def test_float32_stays_float32(ramp):
    x32 = ramp.astype(np.float32)
    for model, kw in [("speckle", {"var": 0.04}), ("gaussian", {"var": 0.01}), ("gamma", {"looks": 4})]:
        out = add_noise(x32, model, seed=0, **kw)
        assert out.dtype == np.float32
        assert out.shape == x32.shape
    # float32 speckle = skimage's float64 result cast to float32
    ref = random_noise(x32, mode="speckle", var=0.04, rng=2).astype(np.float32)
    assert np.array_equal(add_noise(x32, "speckle", var=0.04, seed=2), ref)


def test_speckle_statistics():
    x = np.full((400, 400), 0.4)
    var = 0.04
    y = add_noise(x, "speckle", var=var, seed=11, clip=False)
    rel = y / x - 1.0
    assert abs(rel.mean()) < 0.003
    assert abs(rel.var() - var) < 0.02 * var
    # multiplicative: the noise std scales with the signal
    x2 = np.concatenate([np.full((300, 300), 0.1), np.full((300, 300), 0.8)])
    y2 = add_noise(x2, "speckle", var=var, seed=4, clip=False)
    s_lo, s_hi = y2[:300].std(), y2[300:].std()
    assert abs(s_hi / s_lo - 8.0) < 0.4


@pytest.mark.parametrize("looks", [1, 4, 25])
def test_gamma_statistics(looks):
    x = np.full((400, 400), 0.25)
    y = add_noise(x, "gamma", looks=looks, seed=2, clip=False)
    s = y / x
    assert s.min() >= 0
    assert abs(s.mean() - 1.0) < 0.01
    assert abs(s.var() - 1.0 / looks) < 0.03 / looks
    # gamma is skewed: third standardised moment 2 / sqrt(L)
    skew = np.mean((s - s.mean()) ** 3) / s.std() ** 3
    assert abs(skew - 2 / np.sqrt(looks)) < 0.1


def test_gamma_var_is_one_over_looks(ramp):
    assert np.array_equal(add_noise(ramp, "gamma", var=0.04, seed=9), add_noise(ramp, "gamma", looks=25, seed=9))


def test_gaussian_statistics():
    x = np.full((300, 300), 0.5)
    y = add_noise(x, "gaussian", var=0.0025, seed=8, clip=False)
    assert abs((y - x).mean()) < 0.001
    assert abs((y - x).std() - 0.05) < 0.001


@pytest.mark.parametrize("model", MODELS)
def test_seeding(ramp, model):
    kw = {"looks": 10} if model == "gamma" else {"var": 0.04}
    a = add_noise(ramp, model, seed=42, **kw)
    b = add_noise(ramp, model, seed=42, **kw)
    c = add_noise(ramp, model, seed=43, **kw)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # a Generator is used as is
    g1, g2 = np.random.default_rng(42), np.random.default_rng(42)
    assert np.array_equal(add_noise(ramp, model, seed=g1, **kw), a)
    assert not np.array_equal(add_noise(ramp, model, seed=g1, **kw), a)  # advanced
    assert np.array_equal(add_noise(ramp, model, seed=g2, **kw), a)


@pytest.mark.parametrize("model", MODELS)
def test_clipping(model):
    x = np.linspace(0, 1, 10000).reshape(100, 100)
    kw = {"looks": 1} if model == "gamma" else {"var": 0.5}
    clipped = add_noise(x, model, seed=0, **kw)
    raw = add_noise(x, model, seed=0, clip=False, **kw)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert raw.max() > 1  # the test is meaningful: clipping did something
    assert np.array_equal(clipped, np.clip(raw, 0, 1))


def test_input_not_modified(ramp):
    before = ramp.copy()
    add_noise(ramp, "speckle", var=0.1, seed=0)
    assert np.array_equal(ramp, before)


def test_any_shape():
    vol = np.full((4, 8, 8, 3), 0.5)
    assert add_noise(vol, "gamma", looks=3, seed=0).shape == vol.shape
    assert add_noise([0.2, 0.4], "speckle", seed=0).shape == (2,)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"model": "poisson"}, ValueError, "model"),
        ({"model": 3}, TypeError, "model"),
        ({"var": 0}, ValueError, "var"),
        ({"var": -0.1}, ValueError, "var"),
        ({"var": float("nan")}, ValueError, "var"),
        ({"var": "0.1"}, TypeError, "var"),
        ({"looks": 4}, ValueError, "looks"),
        ({"model": "gamma"}, ValueError, "looks"),
        ({"model": "gamma", "looks": 0}, ValueError, "looks"),
        ({"model": "gamma", "looks": 4, "var": 0.25}, ValueError, "looks"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"clip": "yes"}, TypeError, "clip"),
    ],
)
def test_bad_arguments(ramp, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        add_noise(ramp, **kwargs)


@pytest.mark.parametrize(
    "image, exc",
    [
        (np.array([[0.5, 1.5]]), ValueError),
        (np.array([[-0.1, 0.5]]), ValueError),
        (np.array([[np.nan, 0.5]]), ValueError),
        (np.zeros((0, 3)), ValueError),
        (np.array([[-3, 4]], dtype=np.int16), ValueError),
        (np.array([["a"]]), TypeError),
        (np.array([[1 + 1j]]), TypeError),
        ("image.png", TypeError),
    ],
)
def test_bad_images(image, exc):
    with pytest.raises(exc, match="image"):
        add_noise(image, "speckle", seed=0)
