"""Hostile and everyday inputs for NL-Bayes and the noise models' bounds (issue 18).

The data's range: clipping is modelled at the bounds where the data pile up
(0 and 1 after conversion, 0 and 255 / 65535 for raw values), so raw 8- and
16-bit photos denoise as well as the same photo converted to [0, 1].  Zero,
tiny and huge noise, hostile models and extreme parameters either give a
finite result or a ValueError/TypeError naming the parameter; no kernel ever
sees values that could crash it.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage import data

from nlm import denoise_nl_bayes, estimate_noise
from nlm.metrics import psnr
from nlm.noise import Gamma, Gaussian, NoiseModel, PoissonGaussian, Speckle, check_model


@pytest.fixture(scope="module")
def camera():
    return data.camera()[::4, ::4] / 255.0  # 128 x 128


def _clipped(clean, sigma255, seed=0):
    """An 8-bit camera: Gaussian noise, clipped at 0 and 1 (the float version)."""
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0.0, sigma255 / 255.0, clean.shape), 0.0, 1.0)


# ------------------------------------------------------------- model bounds
def test_clip_bounds_forms():
    assert Gaussian(0.1, clip=True).bounds == (0.0, 1.0)
    assert Gaussian(0.1).bounds is None and not Gaussian(0.1).clip
    assert Gaussian(5, clip=(0, 255)).bounds == (0.0, 255.0)
    assert Gaussian(5, clip=(0, None)).bounds == (0.0, np.inf)
    assert PoissonGaussian(1.0, 2.0, clip=(None, 4095)).bounds == (-np.inf, 4095.0)
    assert Speckle(0.04).bounds == (0.0, 1.0) and Speckle(0.04, clip=False).bounds is None
    assert Gaussian(0.1, clip=(None, None)).bounds is None
    assert Gaussian(0.1, clip=(float("-inf"), 1)).bounds == (-np.inf, 1.0)
    assert repr(Gaussian(5, clip=(0, 255))) == "Gaussian(sigma=5, clip=(0, 255))"
    assert repr(Gaussian(5, clip=(0, None))) == "Gaussian(sigma=5, clip=(0, None))"
    assert Gaussian(5, clip=(0, 255)) != Gaussian(5, clip=True)
    assert Gaussian(0.1, clip=True).scaled(255.0) == Gaussian(25.5, clip=(0, 255))
    for bad, exc in [("yes", TypeError), ((0,), TypeError), ((0, "1"), TypeError), ((1, 0), ValueError),
                     ((0, float("nan")), ValueError), ((0, 0), ValueError), ((float("inf"), 1), ValueError)]:
        with pytest.raises(exc, match="clip"):
            Gaussian(0.1, clip=bad)


@pytest.mark.parametrize("model", [Gaussian(0.15, clip=True), PoissonGaussian(0.01, 0.05, clip=True), Speckle(0.1)])
def test_bounds_scale_with_the_moments(model):
    # the model of raw 0..255 values is the [0, 1] model scaled: same moments, scaled
    big = model.scaled(255.0)
    x = np.array([0.0, 0.02, 0.3, 0.97, 1.0])
    m, v = model.observed_moments(x)
    mb, vb = big.observed_moments(255.0 * x)
    np.testing.assert_allclose(mb, 255.0 * m, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(vb, 255.0**2 * v, rtol=1e-9, atol=1e-9)


def test_one_sided_bound_moments_match_monte_carlo():
    model = Gaussian(3.0, clip=(0, None))
    for x in (0.0, 1.5, 4.0, 100.0):
        y = model.sample(np.full(200_000, x), seed=int(x))
        assert y.min() >= 0.0
        m, v = model.observed_moments(x)
        assert m == pytest.approx(y.mean(), abs=3 * np.sqrt(v / y.size) + 1e-12)
        assert v == pytest.approx(y.var(), rel=0.02)
    assert model.observed_moments(100.0) == pytest.approx((100.0, 9.0))  # far from the bound: unclipped


def test_parameters_whose_square_overflows():
    with pytest.raises(ValueError, match="sigma is too large"):
        Gaussian(1e300)
    with pytest.raises(ValueError, match="sigma is too large"):
        PoissonGaussian(0.1, 1e200)
    with pytest.raises(ValueError, match="looks is too small"):
        Gamma(1e-320)
    assert Gaussian(1e150).a == pytest.approx(1e300)


class _Custom(NoiseModel):
    name = "gaussian"

    def __init__(self, a=0.0, b=0.0, c=0.0, bounds=None):
        self.a, self.b, self.c, self.bounds = a, b, c, bounds


@pytest.mark.parametrize(
    "model, exc, word",
    [
        (NoiseModel(), TypeError, "abstract"),
        (_Custom(a=np.nan), ValueError, "coefficient a"),
        (_Custom(b=np.inf), ValueError, "coefficient b"),
        (_Custom(c="x"), ValueError, "coefficient c"),
        (_Custom(a=-0.01), ValueError, "negative"),
        (_Custom(a=0.01, b=-0.1), ValueError, "negative"),
        (_Custom(c=1e306), ValueError, "overflows"),
        (_Custom(a=0.01, bounds=(1.0, 0.0)), ValueError, "pair lo < hi"),
        (Gaussian(0.1, clip=True), ValueError, "clip=True means"),
        (Gaussian(0.1, clip=(0, 100)), ValueError, "clips at"),
        ("gaussian", TypeError, "noise model"),
    ],
)
def test_check_model_refuses(model, exc, word):
    with pytest.raises(exc, match=word):
        check_model(model, 0.0, 255.0)
    if not isinstance(model, str):  # and so does the denoiser, before any kernel runs
        with pytest.raises(exc, match=word):
            denoise_nl_bayes(np.linspace(0, 255, 32 * 32).reshape(32, 32), noise=model)


def test_check_model_accepts_a_fitting_model():
    m = Gaussian(2.0, clip=(0, 255))
    assert check_model(m, 0.0, 255.0) is m
    assert check_model(Gaussian(0.1, clip=True), 0.0, 1.0 + 1e-9) is not None  # conversion rounding
    assert check_model(_Custom(a=0.01, b=-0.001), 0.0, 1.0) is not None  # negative b, variance still >= 0


# ------------------------------------------------------- estimated bounds
@pytest.mark.parametrize("scale, dtype", [(1.0, np.float64), (255.0, np.uint8), (65535.0, np.uint16),
                                          (255.0, np.float32)])
def test_estimate_reports_the_data_bounds(camera, scale, dtype):
    noisy = _clipped(camera, 25)
    y = noisy * scale
    y = np.round(y).astype(dtype) if np.dtype(dtype).kind == "u" else y.astype(dtype)
    model, details = estimate_noise(y, return_details=True)
    assert model.name == "gaussian" and model.bounds == (0.0, scale) and details["bounds"] == (0.0, scale)
    assert model.sigma == pytest.approx(25 / 255 * scale, rel=0.15)  # a small textured crop


def test_estimate_one_sided_and_unclipped(camera):
    dark = 0.4 * camera
    y = np.clip(dark + np.random.default_rng(1).normal(0, 0.05, dark.shape), 0, None)  # clipped at 0 only
    assert estimate_noise(y).bounds == (0.0, np.inf)
    assert estimate_noise(Gaussian(0.05).sample(0.2 + 0.6 * camera, seed=2)).bounds is None
    # floats piled up at 0 and 255: the bounds of that data, not [0, 1]
    assert estimate_noise(_clipped(camera, 30) * 255.0).bounds == (0.0, 255.0)


def test_estimate_noise_in_4d():
    x = np.linspace(0.2, 0.8, 16) * np.ones((12, 12, 16, 16))
    model = estimate_noise(Gaussian(0.05).sample(x, seed=1))
    assert model.name == "gaussian" and model.sigma == pytest.approx(0.05, rel=0.05)


# ---------------------------------------------- raw photos = converted ones
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("sigma255", [10, 25])
def test_raw_integer_photo_matches_the_float_path(camera, dtype, sigma255):
    top = np.iinfo(dtype).max
    raw = np.round(_clipped(camera, sigma255) * top).astype(dtype)
    as_float = raw / float(top)
    ref, ref_model = denoise_nl_bayes(as_float, return_model=True)
    out, model = denoise_nl_bayes(raw, preserve_range=True, return_model=True)
    assert ref_model.bounds[0] == 0.0 and model.bounds == tuple(b * top for b in ref_model.bounds)
    assert out.mean() == pytest.approx(raw.mean(), rel=0.02)  # not black
    assert abs(psnr(camera, out / top) - psnr(camera, ref)) < 0.05
    # and the default conversion (to [0, 1]; x * (1/255) rounds differently
    # from x / 255, which moves a few group choices)
    assert abs(psnr(camera, denoise_nl_bayes(raw)) - psnr(camera, ref)) < 0.05


def test_float_photo_in_0_255(camera):
    noisy = _clipped(camera, 20)
    ref = denoise_nl_bayes(noisy)
    out, model = denoise_nl_bayes((noisy * 255.0).astype(np.float32), return_model=True)
    assert model.bounds == (0.0, 255.0)
    assert abs(psnr(camera, out / 255.0) - psnr(camera, ref)) < 0.05


def test_given_bounds_on_raw_values(camera):
    raw = np.round(_clipped(camera, 20) * 255).astype(np.uint8)
    out = denoise_nl_bayes(raw, preserve_range=True, noise=Gaussian(20.0, clip=(0, 255)))
    ref = denoise_nl_bayes(raw / 255.0, noise=Gaussian(20 / 255, clip=True))
    assert np.abs(out / 255.0 - ref).mean() < 1e-4 and abs(psnr(camera, out / 255) - psnr(camera, ref)) < 0.02
    with pytest.raises(ValueError, match=r"clips at \[0, 1\].*preserve_range"):
        denoise_nl_bayes(raw, preserve_range=True, noise=Gaussian(20.0, clip=True))


# ------------------------------------------------------- zero, tiny, huge
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_noise_free_ramp_comes_back(dtype):
    ramp = np.linspace(0, 1, 96)[None, :].repeat(40, 0)
    if np.dtype(dtype).kind == "u":
        img = np.round(ramp * np.iinfo(dtype).max).astype(dtype)
        want = img / float(np.iinfo(dtype).max)
    else:
        img = want = ramp.astype(dtype)
    out = denoise_nl_bayes(img)
    assert np.isfinite(out).all()
    # within a quarter of a quantisation step (the estimate finds its noise)
    step = 1.0 / np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1e-6
    assert np.abs(out - want).max() <= 0.5 * step + 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [dict(sigma=0), dict(sigma=0.0), dict(sigma=1e-300), dict(sigma=5e-324), dict(looks=1e300),
     dict(noise=Gaussian(0)), dict(noise=PoissonGaussian(1e-300)), dict(noise=Speckle(1e-300)),
     dict(noise=_Custom())],
)
def test_zero_and_tiny_noise_is_the_identity(kwargs):
    rng = np.random.default_rng(3)
    img = rng.random((37, 41))
    out = denoise_nl_bayes(img, **kwargs)
    np.testing.assert_array_equal(out, img)
    out32 = denoise_nl_bayes(img.astype(np.float32), **kwargs)
    assert out32.dtype == np.float32
    np.testing.assert_array_equal(out32, img.astype(np.float32))


def test_small_noise_on_a_clean_image_stays_close(camera):
    # above the identity threshold, on data with no noise: the ridge keeps every
    # group estimate finite (it was NaN, then a segmentation fault)
    for sigma in (1e-6, 1e-4, 1e-3):
        out = denoise_nl_bayes(camera, sigma=sigma)
        assert np.isfinite(out).all() and np.abs(out - camera).max() < 50 * sigma


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(sigma=1e300), "sigma"),
        (dict(sigma=1e100), "sigma"),
        (dict(looks=1e-300), "looks"),
        (dict(sigma=0.1, looks=4), "not both"),
        (dict(noise=Gamma(2e-7)), "noise"),
        (dict(beta=1e300), "beta"),
        (dict(flat=1e300), "flat"),
    ],
)
def test_extreme_values_raise_value_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        denoise_nl_bayes(np.random.default_rng(0).random((24, 24)), **kwargs)


def test_huge_geometry_is_clamped_to_the_image():
    img = 0.5 + 0.05 * np.random.default_rng(1).standard_normal((30, 34))
    ref = denoise_nl_bayes(img, sigma=0.05, search_radius=33)
    for kw in (dict(search_radius=10**6), dict(search_radius=2**70), dict(n_similar=10**9),
               dict(stride=10**12), dict(patch_size=10**6 + 1)):
        out = denoise_nl_bayes(img, sigma=0.05, **kw)
        assert out.shape == img.shape and np.isfinite(out).all()
    np.testing.assert_array_equal(denoise_nl_bayes(img, sigma=0.05, search_radius=10**6), ref)


@pytest.mark.parametrize("exponent", [-600, -60, 60, 400])
def test_extreme_magnitudes_scale_exactly(exponent):
    # values of any finite magnitude: scaled internally by a power of two
    noisy = Gaussian(0.05).sample(np.linspace(0.1, 0.9, 48 * 40).reshape(48, 40), seed=4)
    ref = denoise_nl_bayes(noisy)
    out, model = denoise_nl_bayes(np.ldexp(noisy, exponent), return_model=True)
    np.testing.assert_array_equal(out, np.ldexp(ref, exponent))
    assert model.sigma == pytest.approx(estimate_noise(noisy).sigma * 2.0**exponent)
    given = denoise_nl_bayes(np.ldexp(noisy, exponent), sigma=0.05 * 2.0**exponent)
    np.testing.assert_array_equal(given, np.ldexp(denoise_nl_bayes(noisy, sigma=0.05), exponent))
    with pytest.raises(ValueError, match="image"):
        denoise_nl_bayes(np.ldexp(noisy, 1000))  # its noise variance cannot be expressed in float64


# ------------------------------------------------------------ seeded fuzzing
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    exp=st.integers(-300, 300),
    offset=st.sampled_from([0.0, -0.5, 3.0]),
    coef=st.tuples(*[st.one_of(st.just(0.0), st.floats(-330, 308).map(lambda e: 10.0**e)) for _ in range(3)]),
    sign=st.sampled_from([1.0, -1.0]),
    clip=st.sampled_from([None, "data", "wrong"]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_fuzz_models_and_magnitudes(exp, offset, coef, sign, clip, dtype, seed):
    """Any model on any magnitude: a finite result within reach of the data, or a clear ValueError/TypeError."""
    rng = np.random.default_rng(seed)
    with np.errstate(over="ignore"):
        x = ((rng.random((20, 23)) + offset) * 10.0**exp).astype(dtype)
    if not np.isfinite(x).all():
        return
    a, b, c = coef
    lo, hi = float(x.min()), float(x.max())
    bounds = {None: None, "data": (lo, hi), "wrong": (lo + 0.5 * (hi - lo), hi + 1.0 + abs(hi))}[clip]
    if bounds is not None and not bounds[0] < bounds[1]:
        return
    model = _Custom(sign * a, b, c, bounds)
    try:
        out = denoise_nl_bayes(x, noise=model)
    except (ValueError, TypeError) as exc:
        assert any(w in str(exc) for w in ("noise", "image")), exc
        return
    assert out.dtype == x.dtype and out.shape == x.shape and np.isfinite(out).all()
    span = max(hi - lo, abs(hi), abs(lo))
    assert out.min() >= lo - 2 * span and out.max() <= hi + 2 * span


# ------------------------------------------- the same checks in non-local means
@pytest.mark.parametrize(
    "model, exc, word",
    [
        (NoiseModel(), TypeError, "abstract"),
        (_Custom(a=np.nan), ValueError, "coefficient a"),
        (_Custom(a=-1.0), ValueError, "negative"),
        (Gaussian(0.1, clip=True), ValueError, "clip=True means"),
    ],
)
def test_nl_means_checks_models_too(model, exc, word):
    from nlm import denoise_nl_means

    with pytest.raises(exc, match=word):
        denoise_nl_means(np.linspace(0, 255, 24 * 24).reshape(24, 24), noise=model, preserve_range=True)
    with pytest.raises(TypeError, match="name"):
        bad = _Custom(a=0.01)
        bad.name = "laplace"
        denoise_nl_means(np.zeros((8, 8)), noise=bad)


# ------------------------------------------------------------ tiles (dask)
def test_tiled_raw_photo_and_noise_free_image(camera):
    da = pytest.importorskip("dask.array")
    raw = np.round(_clipped(camera, 20, seed=5) * 255).astype(np.uint8)
    ref = denoise_nl_bayes(raw, preserve_range=True)
    tiled, model = denoise_nl_bayes(da.from_array(raw, chunks=64), preserve_range=True, return_model=True)
    tiled = tiled.compute()
    assert model.bounds == (0.0, 255.0) and tiled.mean() == pytest.approx(raw.mean(), rel=0.02)
    assert abs(psnr(camera, tiled / 255) - psnr(camera, ref / 255)) < 0.3  # tiles are not exact (README)
    ramp = np.tile(np.linspace(0, 1, 128), (96, 1))
    np.testing.assert_array_equal(denoise_nl_bayes(da.from_array(ramp, chunks=48)).compute(), ramp)
    with pytest.raises(ValueError, match="clip=True means"):
        denoise_nl_bayes(da.from_array(raw, chunks=64), preserve_range=True, noise=Gaussian(20, clip=True))
