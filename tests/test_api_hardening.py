"""Regression tests of issue 10 (library half): extreme values, h = inf,
NaN/Inf refusal in the generic operation and the block, byte order, the
scikit-image signatures, the dimensionality error, and images smaller than
the patch.  Each test failed before its fix."""

import warnings

import naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlm import NonLocalBlock, UnsupportedDimensionError, denoise_nl_means, estimate_sigma, nonlocal_op
from nlm.ops.kernels import EuclideanGaussian, PatchEuclideanGaussian

HYP = dict(deadline=None, derandomize=True, database=None)


def _rng(seed=0):
    return np.random.default_rng(seed)


# ------------------------------------------------ huge h / sigma, extreme values


@pytest.mark.parametrize(
    "dtype,h,sigma",
    [
        (np.float32, 1e30, 0.0),
        (np.float32, 3e38, 0.0),
        (np.float32, 0.1, 1e30),
        (np.float32, 1e30, 1e30),
        (np.float64, 1e200, 0.0),
        (np.float64, 1.7e308, 0.0),
        (np.float64, 0.1, 1e200),
        (np.float64, 1e300, 1e300),
    ],
)
def test_huge_h_or_sigma_gives_the_window_mean_not_nan(dtype, h, sigma):
    image = _rng(1).random((9, 11)).astype(dtype)
    out = denoise_nl_means(image, 3, 2, h, sigma=sigma)
    assert out.dtype == dtype
    assert np.isfinite(out).all()
    if h > 1e10:  # every weight 1
        ref = naive.window_mean(image[..., None], 2)[..., 0]
        np.testing.assert_allclose(out, ref, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("spatial,channels", [((9, 10), None), ((7, 8), 3), ((4, 5, 6), None), ((17,), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_h_inf_is_exactly_the_clipped_window_mean(spatial, channels, dtype):
    image = _rng(2).random(spatial + ((channels,) if channels else ())).astype(dtype)
    out = denoise_nl_means(image, 3, 2, np.inf, sigma=0.3, channel_axis=-1 if channels else None)
    x = image if channels else image[..., None]
    ref = naive.window_mean(x, 2)
    np.testing.assert_allclose(out, ref if channels else ref[..., 0], rtol=1e-6 if dtype == np.float32 else 1e-13)
    f = PatchEuclideanGaussian(np.inf, 0.0, 3, spatial_ndim=len(spatial))
    assert EuclideanGaussian(np.inf).h == np.inf
    np.testing.assert_allclose(nonlocal_op(x, f, window=2), ref, rtol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_near_the_float_maximum(dtype):
    top = float(np.finfo(dtype).max) * 0.9
    image = (_rng(3).random((10, 12)) * 2 - 1).astype(dtype) * dtype(top)
    for h in (top, top / 10, np.inf):
        out = denoise_nl_means(image, 3, 2, h)
        assert out.dtype == dtype and np.isfinite(out).all()
        assert out.min() >= image.min() and out.max() <= image.max()
    # the weights are scale invariant: the result is the unit-scale result, scaled
    unit = (image / dtype(top)).astype(dtype)
    ref = denoise_nl_means(unit, 3, 2, 0.3)
    np.testing.assert_allclose(denoise_nl_means(image, 3, 2, 0.3 * top) / top, ref, rtol=1e-5, atol=1e-6)


@settings(max_examples=30, **HYP)
@given(
    k=st.integers(-1000, 1000),
    dtype=st.sampled_from([np.float32, np.float64]),
    sigma_f=st.sampled_from([0.0, 0.05, 1e3]),
    h_f=st.sampled_from([1e-3, 0.1, 1.0, 1e6, np.inf]),
)
def test_results_scale_with_the_image(k, dtype, sigma_f, h_f):
    """Multiplying image, h and sigma by 2^k multiplies the result by 2^k, at any magnitude."""
    k = int(np.clip(k, -100, 100)) if dtype == np.float32 else k
    base = (_rng(4).random((8, 9)) * 0.75 + 0.25).astype(dtype)
    ref = denoise_nl_means(base, 3, 2, h_f, sigma=sigma_f)
    s = float(np.ldexp(1.0, k))
    image = np.ldexp(base, k).astype(dtype)
    out = denoise_nl_means(image, 3, 2, h_f * s, sigma=sigma_f * s)
    assert out.dtype == dtype and np.isfinite(out).all()
    np.testing.assert_allclose(np.ldexp(out.astype(np.float64), -k), ref, rtol=1e-6, atol=0)


@settings(max_examples=40, **HYP)
@given(
    mag=st.floats(1e-300, 1e300),
    h=st.one_of(st.floats(1e-300, 1e308), st.just(np.inf)),
    sigma=st.floats(0, 1e308),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_any_magnitude_finite_and_within_range(mag, h, sigma, dtype):
    info = np.finfo(dtype)
    mag = float(np.clip(mag, float(info.tiny) * 1e3, float(info.max) / 4))
    image = ((_rng(5).random((7, 8)) - 0.3) * mag).astype(dtype)
    out = denoise_nl_means(image, 3, 2, h, sigma=sigma)
    assert out.dtype == dtype and np.isfinite(out).all()
    assert out.min() >= image.min() and out.max() <= image.max()


def test_automatic_h_scales_with_small_images():
    """The automatic h's floor is relative to the image's magnitude (it was
    max(1, |x|) eps, which smoothed images of magnitude << 1 into their mean)."""
    ramp = np.tile(np.linspace(0, 1, 16), (16, 1))
    ref = denoise_nl_means(ramp, 3, 2)
    tiny = np.ldexp(ramp, -60)
    np.testing.assert_allclose(np.ldexp(denoise_nl_means(tiny, 3, 2), 60), ref, rtol=1e-12, atol=1e-15)


# --------------------------------------------- NaN/Inf in nonlocal_op and the block


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonlocal_op_refuses_non_finite_x(bad):
    x = _rng(6).random((6, 7, 1))
    x[2, 3, 0] = bad
    for f, window in ((PatchEuclideanGaussian(0.1, 0.0, 3), 2), (EuclideanGaussian(1.0), None)):
        with pytest.raises(ValueError, match="x contains NaN or Inf"):
            nonlocal_op(x, f, window=window)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_block_refuses_non_finite_input(bad):
    block = NonLocalBlock(2, spatial_ndim=2, seed=0, zero_init=False)
    x = _rng(7).random((1, 5, 6, 2))
    x[0, 1, 1, 1] = bad
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        block(x)
    good = _rng(7).random((1, 5, 6, 2))
    block(good)
    dz = np.ones_like(good)
    dz[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match="dz contains NaN or Inf"):
        block.backward(dz)


# ------------------------------------------------------------ byte order, strides


@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("dtype,expect", [("f2", np.float32), ("f4", np.float32), ("f8", np.float64)])
def test_byte_order_and_strides_keep_the_dtype(order, dtype, expect):
    base = _rng(8).random((12, 14, 2))
    x = base.astype(order + dtype)
    strided = np.asfortranarray(base.astype(order + dtype))[::1, ::-1]
    f = PatchEuclideanGaussian(0.2, 0.0, 3)
    ref = nonlocal_op(base.astype(dtype).astype(expect), f, window=2)
    for arr in (x, strided):
        y = nonlocal_op(arr, f, window=2)
        assert y.dtype == expect and y.dtype.isnative
        want = ref if arr is x else nonlocal_op(np.ascontiguousarray(arr, dtype=expect), f, window=2)
        np.testing.assert_allclose(y, want, rtol=1e-6)
        assert denoise_nl_means(arr[..., 0], 3, 2, 0.2).dtype == expect
    block = NonLocalBlock(2, spatial_ndim=2, seed=0, zero_init=False)
    assert block(x[None]).dtype == expect
    assert block(strided[None]).dtype == expect


# --------------------------------------------------- scikit-image's signatures


def test_fast_mode_is_the_fifth_positional_argument():
    rng = _rng(9)
    noisy = np.clip(0.5 + 0.1 * rng.standard_normal((24, 26)), 0, 1)
    ref = denoise_nl_means(noisy, 7, 5, 0.1, sigma=0.0)
    np.testing.assert_array_equal(denoise_nl_means(noisy, 7, 5, 0.1, True), ref)
    np.testing.assert_array_equal(denoise_nl_means(noisy, 7, 5, 0.1, False), ref)  # one exact algorithm
    np.testing.assert_array_equal(
        denoise_nl_means(noisy, 7, 5, 0.1, np.True_, 0.05), denoise_nl_means(noisy, 7, 5, 0.1, sigma=0.05)
    )
    for bad in (1, 0, 0.05, "yes", None):
        with pytest.raises(TypeError, match="fast_mode must be a bool"):
            denoise_nl_means(noisy, 7, 5, 0.1, bad)


def test_skimage_call_styles_port_unchanged():
    from skimage import restoration

    rng = _rng(10)
    noisy = np.clip(0.5 + 0.1 * rng.standard_normal((20, 22)), 0, 1)
    kw = dict(fast_mode=True, sigma=0.1, preserve_range=False, channel_axis=None)
    ours = denoise_nl_means(noisy, 5, 3, 0.08, **kw)
    theirs = restoration.denoise_nl_means(noisy, 5, 3, 0.08, **kw)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype


def test_estimate_sigma_positional_average_and_warning():
    rng = _rng(11)
    img = 0.5 + 0.1 * rng.standard_normal((64, 64, 3))
    with pytest.warns(UserWarning, match="image is size 3 on the last axis, but channel_axis is None"):
        estimate_sigma(img)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        avg = estimate_sigma(img, True, channel_axis=-1)
        assert isinstance(avg, float) and abs(avg - 0.1) < 0.01
        assert len(estimate_sigma(img, False, channel_axis=-1)) == 3
        estimate_sigma(img[..., 0])  # no warning for a wide last axis
        denoise_nl_means(img, 3, 2, channel_axis=-1)  # the automatic mode does not warn
    with pytest.raises(TypeError, match="average_sigmas"):
        estimate_sigma(img, "yes", channel_axis=-1)


def test_estimate_sigma_any_dimension_like_skimage():
    pywt = pytest.importorskip("pywt")
    from skimage.restoration import estimate_sigma as sk_estimate

    x = _rng(12).normal(0, 0.2, (6, 8, 10, 12))
    assert estimate_sigma(x) == pytest.approx(sk_estimate(x), rel=1e-12)
    assert pywt is not None


def test_unsupported_dimensions_caught_both_ways():
    for image, kw in ((np.array(3.0), {}), (np.zeros(5), {"channel_axis": 0})):
        with pytest.raises(NotImplementedError):
            denoise_nl_means(image, **kw)
        with pytest.raises(ValueError, match="spatial dimension"):
            denoise_nl_means(image, **kw)
        with pytest.raises(UnsupportedDimensionError):
            denoise_nl_means(image, **kw)
    assert issubclass(UnsupportedDimensionError, ValueError)
    assert issubclass(UnsupportedDimensionError, NotImplementedError)


# ------------------------------------------------- images smaller than the patch


@pytest.mark.parametrize(
    "shape,channel_axis",
    [((5, 5), None), ((10, 10), None), ((6, 40), None), ((2, 3), None), ((1, 9), None), ((1, 1), None),
     ((3, 9, 10), None), ((2, 12, 11), None), ((4, 5, 3), -1), ((3,), None), ((1,), None)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_images_smaller_than_the_default_patch_are_filtered(shape, channel_axis, dtype):
    image = _rng(13).random(shape).astype(dtype)
    out = denoise_nl_means(image, 7, 11, 0.2, sigma=0.05, channel_axis=channel_axis)
    assert out.shape == image.shape and out.dtype == dtype and np.isfinite(out).all()
    x = image if channel_axis is not None else image[..., None]
    ref = naive.nl_means(x, 7, 11, 0.2, 0.05)
    atol = 2e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out, ref if channel_axis is not None else ref[..., 0], atol=atol)
    # the default arguments (automatic h) run too
    assert np.isfinite(denoise_nl_means(image, channel_axis=channel_axis)).all()


def test_small_image_generic_engine_agrees():
    x = _rng(14).random((4, 6, 2))
    f = PatchEuclideanGaussian(0.3, 0.05, 7)
    np.testing.assert_allclose(nonlocal_op(x, f, window=11), nonlocal_op(x, f, window=11, engine="numpy"), atol=1e-10)
    np.testing.assert_allclose(nonlocal_op(x, f, window=11), naive.nl_means(x, 7, 11, 0.3, 0.05), atol=1e-10)


@pytest.mark.parametrize(
    "shape,chunks", [((5, 5), 2), ((6, 40), (3, 10)), ((6, 40), 1), ((3, 9, 10), 2), ((1, 30), (1, 4))]
)
def test_small_dask_images_and_thin_chunks(shape, chunks):
    da = pytest.importorskip("dask.array")
    img = _rng(15).random(shape)
    for kw in (dict(patch_size=7, patch_distance=11, h=0.2, sigma=0.05), {}):
        ref = denoise_nl_means(img, **kw)
        out = denoise_nl_means(da.from_array(img, chunks=chunks), **kw).compute()
        np.testing.assert_allclose(out, ref, atol=1e-12)
