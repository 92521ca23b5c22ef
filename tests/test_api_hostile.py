"""Hostile-input suite of the public API (issue 10).

Hypothesis throws odd values at every parameter of every public function:
wrong types, bools, NumPy scalars, negative / zero / huge values, NaN and
Inf, odd shapes and strides, empty and 0-d arrays, object, string, complex,
bool, float16, big-endian and int64/uint64-extreme arrays.  The contract:

* a bad input raises ``ValueError`` or ``TypeError`` whose message names the
  parameter;
* a good input gives a finite result, of the documented dtype, in the
  documented range (for the filter: between the image's minimum and maximum).

Whether an input is good is decided here, independently of the code, by the
documented rules (``_valid_*``); every example must agree with them.
Derandomized and small, so the suite is fast and reproducible.
"""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from nlm import NonLocalBlock, default_h, default_patch, denoise_nl_means, estimate_sigma, nonlocal_op
from nlm.metrics import psnr, ssim
from nlm.noise import add_noise
from nlm.ops.kernels import EuclideanGaussian, PatchEuclideanGaussian, PlainGaussian

HYP = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))

# ------------------------------------------------------------- odd values

ODD_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([np.True_, np.False_]),
    st.integers(-5, 15),
    st.sampled_from([2**31 - 1, 2**63 + 1, -(2**70), 2**70 + 1]),
    st.sampled_from([np.int8(3), np.uint8(5), np.int64(7), np.uint64(9), np.int32(-1), np.int16(0)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7e308, np.inf, -np.inf, np.nan, 3.0, 0.5]),
    st.sampled_from([np.float16(0.5), np.float32(3.0), np.float64(0.1), np.float32(np.inf), np.float16(np.nan)]),
    st.sampled_from(["3", "gaussian", "speckle", "", b"1", 1 + 2j, np.complex64(1), [3], (3,), {}, object()]),
    st.sampled_from([np.array(3), np.array([3]), np.array(0.5), np.ones((2, 2))]),
)


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _is_bool(v):
    return isinstance(v, (bool, np.bool_))


def _valid_param(name, v, ndim):
    """The documented rules of denoise_nl_means's parameters."""
    if name == "patch_size":
        return v is None or (_is_int(v) and v >= 1 and v % 2 == 1)
    if name == "patch_distance":
        return v is None or (_is_int(v) and v >= 0)
    if name == "h":
        return v is None or (_is_real(v) and not math.isnan(float(v)) and float(v) > 0)
    if name == "sigma":
        return _is_real(v) and math.isfinite(float(v)) and float(v) >= 0
    if name in ("fast_mode", "preserve_range"):
        return _is_bool(v)
    if name == "channel_axis":
        return v is None or (_is_int(v) and -ndim <= v < ndim)
    if name == "noise":
        return isinstance(v, str) and v in ("gaussian", "speckle")
    if name == "num_threads":
        return v is None or (_is_int(v) and v >= 1)
    raise AssertionError(name)


def _raises_naming(exc, name):
    assert isinstance(exc, (ValueError, TypeError)), repr(exc)
    assert name in str(exc), f"{name!r} not named in: {exc}"


def _tol(lo, hi, dtype):
    """Rounding allowance of a weighted mean of values in [lo, hi]."""
    big = max(abs(lo), abs(hi))
    return 1e-5 * (big / 2 ** 20 + (hi / 2 - lo / 2)) + 8 * float(np.finfo(dtype).eps) * big + 1e-300


def _check_filtered(out, image, dtype):
    assert out.shape == image.shape
    assert out.dtype == dtype, (out.dtype, dtype)
    assert np.isfinite(out).all()
    lo, hi = float(image.min()), float(image.max())
    tol = _tol(lo, hi, out.dtype)
    assert float(out.min()) >= lo - tol and float(out.max()) <= hi + tol


IMAGE = np.random.default_rng(0).random((7, 9)) * 0.8 + 0.1
PARAMS = [
    "patch_size", "patch_distance", "h", "sigma", "fast_mode", "preserve_range", "channel_axis", "noise", "num_threads"
]


@settings(max_examples=250, **HYP)
@given(name=st.sampled_from(PARAMS), value=ODD_SCALARS)
def test_denoise_parameters(name, value):
    kwargs = {name: value}
    if name in ("patch_size", "patch_distance") and _is_int(value) and value > 100:
        kwargs["h"] = 0.1  # a huge patch/window on the small image: fine, but skip the estimate
    try:
        out = denoise_nl_means(IMAGE, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the contract is checked below
        assert not _valid_param(name, value, IMAGE.ndim), f"{name}={value!r} refused: {exc!r}"
        _raises_naming(exc, name)
        return
    assert _valid_param(name, value, IMAGE.ndim), f"{name}={value!r} accepted"
    if kwargs.get("noise") == "speckle":
        assert out.shape == IMAGE.shape and np.isfinite(out).all() and out.dtype == np.float64
    else:
        _check_filtered(out, IMAGE, np.float64)


# ------------------------------------------------------------ odd arrays

DTYPES = st.sampled_from(
    ["f2", ">f2", "f4", ">f4", "f8", ">f8", "i1", "u1", "i2", ">u2", "i4", "u4", "i8", ">i8", "u8", "?",
     "c8", "c16", "U1", "O", "M8[s]", "longdouble"]
)


@st.composite
def hostile_arrays(draw, max_dims=3):
    dtype = np.dtype(draw(DTYPES))
    shape = draw(array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6))
    if dtype.kind == "O":
        return np.full(shape, 1.0, dtype=object)
    if dtype.kind == "f":
        info = np.finfo(dtype)
        extremes = st.sampled_from([float(info.max), -float(info.max), float(info.tiny), 0.0, 1.0, np.nan, np.inf])
        elements = st.one_of(st.floats(-1.0, 1.0, width=min(dtype.itemsize, 8) * 8), extremes)
        a = draw(arrays(dtype.newbyteorder("="), shape, elements=elements))
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        elements = st.one_of(st.integers(int(info.min), int(info.max)), st.sampled_from([int(info.min), int(info.max)]))
        a = draw(arrays(dtype.newbyteorder("="), shape, elements=elements))
    else:
        a = draw(arrays(dtype.newbyteorder("="), shape))
    a = a.astype(dtype)
    if a.ndim >= 2 and draw(st.booleans()):
        a = np.asfortranarray(a)[::-1, ::2] if a.shape[1] > 1 else np.asfortranarray(a)[::-1]
    return a


def _image_rule(a, spatial_min=1, spatial_max=3):
    """None for a good image, else the substring the error must contain."""
    if a.dtype == object or a.dtype.kind not in "biuf":
        return "image"
    if a.size == 0 or not spatial_min <= a.ndim <= spatial_max:
        return "image"
    if a.dtype.kind == "f" and not np.isfinite(a.astype(np.float64)).all():
        return "image"
    return None


def _result_dtype(a):
    return np.float32 if a.dtype.kind == "f" and a.dtype.itemsize <= 4 else np.float64


@settings(max_examples=250, **HYP)
@given(a=hostile_arrays(), preserve_range=st.booleans(), auto=st.booleans())
def test_denoise_arrays(a, preserve_range, auto):
    rule = _image_rule(a)
    kw = {} if auto else dict(patch_size=3, patch_distance=2, h=0.2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = denoise_nl_means(a, preserve_range=preserve_range, **kw)
    except (ValueError, TypeError) as exc:
        assert rule is not None, f"{a.dtype} {a.shape} refused: {exc!r}"
        _raises_naming(exc, rule)
        return
    assert rule is None, f"{a.dtype} {a.shape} accepted"
    if a.dtype.kind == "f" or preserve_range:
        _check_filtered(out, a.astype(np.float64), _result_dtype(a))
    else:
        assert out.dtype == np.float64 and np.isfinite(out).all() and out.shape == a.shape


@settings(max_examples=150, **HYP)
@given(a=hostile_arrays(max_dims=4), average=st.sampled_from([True, False, 1, None]))
def test_estimate_sigma_arrays(a, average):
    rule = _image_rule(a, 1, 99)
    if not _is_bool(average):
        rule = "average_sigmas"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the (H, W, <=4) hint
            warnings.simplefilter("error", RuntimeWarning)
            s = estimate_sigma(a, average)
    except (ValueError, TypeError) as exc:
        assert rule is not None, f"{a.dtype} {a.shape} refused: {exc!r}"
        _raises_naming(exc, rule)
        return
    assert rule is None, f"{a.dtype} {a.shape} accepted"
    assert isinstance(s, float) and math.isfinite(s) and s >= 0


@settings(max_examples=150, **HYP)
@given(
    a=hostile_arrays(), engine=st.sampled_from(["auto", "numpy"]), which=st.sampled_from(["patch", "dense", "gauss"])
)
def test_nonlocal_op_arrays(a, engine, which):
    x = a[..., None] if a.ndim else a
    rule = _image_rule(a)
    if rule is not None:
        rule = "x"
    nd = max(x.ndim - 1, 1)
    f = {
        "patch": PatchEuclideanGaussian(0.2, 0.0, 3, spatial_ndim=min(nd, 3)),
        "dense": EuclideanGaussian(0.5),
        "gauss": PlainGaussian(),
    }[which]
    window = 2 if which == "patch" else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = nonlocal_op(x, f, window=window, engine=engine)
    except (ValueError, TypeError) as exc:
        if rule is None and which == "gauss" and "overflowed" in str(exc):
            _raises_naming(exc, "x")  # exp(x_i . x_j) of huge values: refused, never NaN
            return
        assert rule is not None, f"{a.dtype} {a.shape} {which} refused: {exc!r}"
        _raises_naming(exc, "x")
        return
    assert rule is None, f"{a.dtype} {a.shape} accepted"
    assert y.dtype == _result_dtype(a) and y.dtype.isnative and np.isfinite(y).all()
    if which != "gauss":
        lo, hi = float(x.astype(np.float64).min()), float(x.astype(np.float64).max())
        tol = _tol(lo, hi, y.dtype)
        assert float(y.min()) >= lo - tol and float(y.max()) <= hi + tol


@settings(max_examples=80, **HYP)
@given(a=hostile_arrays(max_dims=2), window=st.sampled_from([None, 1, 2**70]))
def test_block_arrays(a, window):
    rule = None if _image_rule(a, 2, 2) is None else "x"
    block = NonLocalBlock(1, spatial_ndim=2, zero_init=False, seed=0, window=window, bn=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            z = block(a[None, ..., None] if a.ndim == 2 else a)
    except (ValueError, TypeError) as exc:
        if rule is None and "overflowed" in str(exc):
            _raises_naming(exc, "x")
            return
        assert rule is not None, f"{a.dtype} {a.shape} refused: {exc!r}"
        _raises_naming(exc, "x")
        return
    assert rule is None, f"{a.dtype} {a.shape} accepted"
    assert z.dtype == _result_dtype(a) and np.isfinite(z).all()


# ------------------------------------------------- small public helpers


@settings(max_examples=100, **HYP)
@given(value=ODD_SCALARS)
def test_default_h_and_patch(value):
    try:
        h = default_h(value)
    except (ValueError, TypeError) as exc:
        assert not (_is_real(value) and math.isfinite(float(value)) and float(value) >= 0), repr(exc)
        _raises_naming(exc, "sigma")
    else:
        assert _is_real(value) and math.isfinite(h) and h >= 0
    try:
        p = default_patch(value)
    except (ValueError, TypeError) as exc:
        _raises_naming(exc, "noise")
        assert not (isinstance(value, str) and value in ("gaussian", "speckle"))
    else:
        assert isinstance(value, str) and p in ((7, 11), (5, 11))


@settings(max_examples=150, **HYP)
@given(name=st.sampled_from(["h", "sigma", "patch_size", "spatial_ndim"]), value=ODD_SCALARS)
def test_kernel_constructors(name, value):
    kw = dict(h=0.1, sigma=0.0, patch_size=3, spatial_ndim=2)
    kw[name] = value
    valid = {
        "h": _is_real(value) and not math.isnan(float(value)) and float(value) > 0,
        "sigma": _is_real(value) and math.isfinite(float(value)) and float(value) >= 0,
        "patch_size": _is_int(value) and value >= 1 and value % 2 == 1,
        "spatial_ndim": _is_int(value) and 1 <= value <= 63,
    }[name]
    try:
        f = PatchEuclideanGaussian(**kw)
    except (ValueError, TypeError) as exc:
        assert not valid, repr(exc)
        _raises_naming(exc, name)
        return
    assert valid
    if f.spatial_ndim > 4:
        return
    x = np.random.default_rng(1).random((5, 6, 1) if f.spatial_ndim == 2 else (3,) * f.spatial_ndim + (1,))
    assert np.isfinite(nonlocal_op(x, f, window=1)).all()


@settings(max_examples=150, **HYP)
@given(name=st.sampled_from(["var", "looks", "seed", "clip", "model"]), value=ODD_SCALARS)
def test_add_noise_parameters(name, value):
    img = np.random.default_rng(2).random((6, 7)).astype(">f4")
    kw = {"model": "gamma", "looks": 4.0} if name == "looks" else {"model": "gaussian", "var": 0.01}
    if name == "looks":
        kw.pop("looks")
    kw[name] = value
    if name == "model" and isinstance(value, str) and value == "gamma":
        kw.pop("var")
        kw["looks"] = 4.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = add_noise(img, **kw)
    except (ValueError, TypeError) as exc:
        _raises_naming(exc, name)
        return
    assert out.dtype == np.float32 and out.dtype.isnative and np.isfinite(out).all()
    if kw.get("clip", True):
        assert out.min() >= 0 and out.max() <= 1


@settings(max_examples=150, **HYP)
@given(
    value=ODD_SCALARS,
    scale=st.sampled_from([1.0, 2.0**-1070, 2.0**-600, 2.0**600, 1.7e308 / 2]),
    which=st.sampled_from(["psnr", "ssim"]),
)
def test_metrics_data_range(value, scale, which):
    rng = np.random.default_rng(3)
    ref = rng.random((8, 9)) * scale
    img = np.clip(ref + 0.05 * scale * rng.standard_normal(ref.shape), 0, scale)
    fn = psnr if which == "psnr" else ssim
    valid = value is None or (_is_real(value) and math.isfinite(float(value)) and float(value) > 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            r = fn(ref, img, data_range=value)
    except (ValueError, TypeError) as exc:
        assert not valid or value is None or which == "ssim" or scale != 1.0, repr(exc)
        _raises_naming(exc, "data_range")
        return
    assert valid and math.isfinite(r)
    if which == "ssim":
        assert -1.0 <= r <= 1.0


@pytest.mark.parametrize("dtype", [">f4", "<f4", "f2", ">f8"])
def test_scaled_metrics_agree(dtype):
    rng = np.random.default_rng(4)
    ref = rng.random((16, 17))
    img = ref + 0.02 * rng.standard_normal(ref.shape)
    base_p, base_s = psnr(ref, img, data_range=1.0), ssim(ref, img, data_range=1.0)
    for k in (-1060, -600, 600, 1000):
        s = 2.0**k
        assert psnr(ref * s, img * s, data_range=s) == pytest.approx(base_p, abs=1e-6 if k > -1000 else 1e-2)
        assert ssim(ref * s, img * s, data_range=s) == pytest.approx(base_s, abs=1e-9 if k > -1000 else 1e-3)
    r = ref.astype(dtype)
    assert math.isfinite(psnr(r, img.astype(dtype), data_range=1.0))


# ------------------------------------ what the suite found, pinned as examples


def test_found_0d_integer_image_is_a_dimension_error():
    with pytest.raises(ValueError, match="image must have .* spatial dimension"):
        denoise_nl_means(np.array(0, np.int8), 3, 2, 0.2)  # was skimage's "return arrays must be of ArrayType"


def test_found_generic_engine_nan_when_first_offsets_have_zero_weight():
    x = np.array([[0.0, 3.4028235e38]], np.float32)[..., None]
    y = nonlocal_op(x, PatchEuclideanGaussian(0.2, 0.0, 3), window=2, engine="numpy")  # was NaN
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("engine", ["auto", "numpy"])
def test_found_means_at_the_float_maximum_stay_finite(engine):
    x = np.full((2, 4, 1), np.finfo(np.float32).max, np.float32)
    x[0, 1] = 0
    y = nonlocal_op(x, PatchEuclideanGaussian(np.inf, 0.0, 3), window=2, engine=engine)  # rounding gave inf
    assert np.isfinite(y).all() and y.max() <= x.max()
    assert np.isfinite(denoise_nl_means(x[..., 0])).all()  # automatic h


def test_found_estimates_near_the_float64_maximum():
    rng = np.random.default_rng(5)
    a = np.where(rng.random((20, 20, 3)) > 0.5, 1.7e308, -1.7e308)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(estimate_sigma(a[..., 0]))
        assert math.isfinite(estimate_sigma(a, True, channel_axis=-1))  # the mean overflowed
        assert np.isfinite(denoise_nl_means(a, channel_axis=-1)).all()
    x = rng.normal(0, 1, (64, 64))
    for k in (-1060, 1000):
        assert estimate_sigma(np.ldexp(x, k)) == pytest.approx(np.ldexp(estimate_sigma(x), k), rel=1e-3)


def test_found_default_patch_of_an_array():
    with pytest.raises(ValueError, match="noise"):
        default_patch(np.ones(2))


def test_found_metric_data_range_extremes():
    rng = np.random.default_rng(6)
    ref = rng.random((9, 9))
    img = ref + 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psnr(ref, img, data_range=1e308) == pytest.approx(40 + 20 * 308, rel=1e-9)  # OverflowError
        assert psnr(ref, img, data_range=1e-320) == pytest.approx(40 - 20 * 320, rel=1e-3)  # divide by zero
        with pytest.raises(ValueError, match="data_range"):
            ssim(ref, img, data_range=1e308)  # OverflowError
        with pytest.raises(ValueError, match="data_range"):
            ssim(ref, img, data_range=6.7e78)  # overflow inside skimage


def test_found_add_noise_extremes_and_byte_order():
    img = np.full((6, 6), 0.5, ">f4")
    assert add_noise(img, "gaussian", var=0.01).dtype == np.float32  # was float64
    with pytest.raises(ValueError, match="looks"):
        add_noise(img, "gamma", looks=1e-320, clip=False)  # was inf/NaN


def test_found_huge_windows():
    x = np.random.default_rng(7).random((5, 6, 1))
    f = PatchEuclideanGaussian(0.3, 0.0, 3)
    np.testing.assert_allclose(nonlocal_op(x, f, window=2**70, engine="numpy"), nonlocal_op(x, f, window=6), atol=1e-12)
    block = NonLocalBlock(1, spatial_ndim=2, window=2**70, bn=False, zero_init=False, seed=0)  # OverflowError
    assert np.isfinite(block(x[None])).all()
