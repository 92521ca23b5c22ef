"""Per-pixel noise maps (``sigma=`` an array) and masks (``mask=``) in the denoisers (issue 20, items 3-4)."""

import naive
import numpy as np
import pytest

import nlm
from nlm import denoise_nl_means
from nlm.noise import PoissonGaussian, estimate_noise
from nlm.noise.noise_map import residual_sigma


def _ref(sigma_map, mask):
    """The reference level ``sqrt(mean s^2)`` over valid pixels (what the public function passes on)."""
    valid = np.ones(sigma_map.shape, bool) if mask is None else mask
    return float(np.sqrt(np.mean(sigma_map[valid] ** 2)))


CASES = [
    # spatial shape, channels, patch, window
    ((9, 11), None, 3, 2),
    ((7, 10), 3, (3, 5), (2, 3)),
    ((13,), None, 5, 4),
    ((4, 5, 6), None, (3, 3, 1), (1, 2, 2)),
    ((5, 4, 3), 2, 3, 1),
    ((3, 12), None, 7, 5),  # patch larger than an axis
]


@pytest.mark.parametrize("shape, channels, patch, window", CASES)
@pytest.mark.parametrize("kind", ["map", "mask", "both"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_the_numpy_twin(shape, channels, patch, window, kind, dtype):
    rng = np.random.default_rng(len(shape) * 7 + (channels or 0))
    full = shape + ((channels,) if channels else ())
    x = rng.random(full).astype(dtype)
    smap = (0.03 + 0.2 * rng.random(shape)) if kind != "mask" else None
    mask = (rng.random(shape) > 0.3) if kind != "map" else None
    if mask is not None:
        mask.flat[0] = False  # at least one masked pixel
    h = 0.15
    got = denoise_nl_means(x, patch, window, h, sigma=0.1 if smap is None else smap, mask=mask,
                           channel_axis=-1 if channels else None)
    assert got.dtype == dtype and got.shape == x.shape
    xc = x[..., None] if channels is None else x
    sigma = 0.1 if smap is None else _ref(smap, mask)
    want = naive.nl_means_masked(xc, patch, window, h, sigma, smap, mask)
    want = want[..., 0] if channels is None else want
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, atol=tol, rtol=0)


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("shape", [(20, 23), (9, 8, 7), (40,)])
def test_constant_map_equals_scalar_sigma(shape, dtype, tol):
    rng = np.random.default_rng(1)
    x = rng.random(shape).astype(dtype)
    for h in (0.08, None):
        a = denoise_nl_means(x, 5, 3, h, sigma=0.12)
        b = denoise_nl_means(x, 5, 3, h, sigma=np.full(shape, 0.12))
        np.testing.assert_allclose(a, b, atol=tol, rtol=0)


def test_all_true_mask_equals_no_mask():
    rng = np.random.default_rng(2)
    x = rng.random((24, 30)).astype(np.float32)
    a = denoise_nl_means(x, 5, 4, 0.1, sigma=0.05)
    b = denoise_nl_means(x, 5, 4, 0.1, sigma=0.05, mask=np.ones(x.shape, bool))
    np.testing.assert_array_equal(a, b)
    # through the masked kernel too: one masked pixel far away changes nothing beyond its reach
    m = np.ones(x.shape, bool)
    m[0, 0] = False
    c = denoise_nl_means(x, 3, 2, 0.1, sigma=0.05, mask=m)
    d = denoise_nl_means(x, 3, 2, 0.1, sigma=0.05)
    np.testing.assert_allclose(c[10:, 10:], d[10:, 10:], atol=2e-6)


@pytest.mark.parametrize("h", [0.1, None])
@pytest.mark.parametrize("use_map", [False, True])
def test_masked_pixels_do_not_leak(h, use_map):
    rng = np.random.default_rng(3)
    x = (0.5 + 0.1 * rng.standard_normal((40, 44))).astype(np.float32)
    mask = np.ones(x.shape, bool)
    mask[10:18, 5:30] = False
    mask[30:, 35:] = False
    smap = np.full(x.shape, 0.1) if use_map else 0.0
    outs = []
    for fill in (1e30, -7.0, 0.5, np.float32(np.finfo(np.float32).max)):
        y = x.copy()
        y[~mask] = fill
        out = denoise_nl_means(y, 5, 6, h, sigma=smap, mask=mask)
        np.testing.assert_array_equal(out[~mask], y[~mask])  # unchanged
        outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out[mask], outs[0][mask])  # whatever the masked pixels hold
    valid = outs[0][mask]
    assert valid.min() >= x[mask].min() and valid.max() <= x[mask].max()


def test_mask_thread_count_independent_and_float32_close_to_float64():
    rng = np.random.default_rng(4)
    x = rng.random((70, 33))
    mask = rng.random(x.shape) > 0.1
    smap = 0.05 + 0.1 * rng.random(x.shape)
    a = denoise_nl_means(x, 5, 5, 0.1, sigma=smap, mask=mask, num_threads=1)
    b = denoise_nl_means(x, 5, 5, 0.1, sigma=smap, mask=mask, num_threads=2)
    np.testing.assert_array_equal(a, b)
    c = denoise_nl_means(x.astype(np.float32), 5, 5, 0.1, sigma=smap, mask=mask)
    np.testing.assert_allclose(c, a, atol=1e-5)


def test_noise_free_and_zero_map():
    x = np.tile(np.linspace(0, 1, 30), (20, 1))
    out = denoise_nl_means(x, 5, 4, sigma=np.zeros(x.shape))
    np.testing.assert_allclose(out, x, atol=1e-12)
    m = np.ones(x.shape, bool)
    m[5:8, 5:8] = False
    out = denoise_nl_means(x, 5, 4, mask=m)
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_the_map_uses_both_pixels_noise():
    # left half noisy, right half clean; with the map the clean half stays (nearly) as it is
    rng = np.random.default_rng(5)
    clean = np.tile(np.linspace(0.2, 0.8, 48), (48, 1))
    smap = np.where(np.arange(48)[None, :] < 24, 0.15, 0.002) * np.ones((48, 48))
    noisy = clean + smap * rng.standard_normal(clean.shape)
    out = denoise_nl_means(noisy, 5, 5, sigma=smap)
    err_clean_half = np.abs(out - clean)[:, 30:].mean()
    assert err_clean_half < 0.01
    assert np.abs(out - clean)[:, :18].mean() < np.abs(noisy - clean)[:, :18].mean() * 0.6


def test_map_beats_blind_scalar_on_a_ramp():
    # the target in small: sigma from 0.02 to 0.2 across the image
    rng = np.random.default_rng(6)
    yy, xx = np.mgrid[0:96, 0:96] / 95.0
    clean = 0.5 + 0.3 * np.sin(6 * yy) * np.cos(4 * xx)
    smap = 0.02 + 0.18 * xx
    noisy = clean + smap * rng.standard_normal(clean.shape)

    def psnr(a):
        return 10 * np.log10(1.0 / np.mean((a - clean) ** 2))

    blind = denoise_nl_means(noisy, 7, 8)
    mapped = denoise_nl_means(noisy, 7, 8, sigma=smap)
    assert psnr(mapped) > psnr(blind) + 0.5


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(sigma=np.ones((5, 5))), ValueError, "sigma"),
        (dict(sigma=np.full((8, 9), np.nan)), ValueError, "sigma"),
        (dict(sigma=-np.ones((8, 9))), ValueError, "sigma"),
        (dict(sigma=np.ones((8, 9), complex)), TypeError, "sigma"),
        (dict(sigma=np.ones((8, 9)).astype(object)), TypeError, "sigma"),
        (dict(mask=np.ones((8, 8), bool)), ValueError, "mask"),
        (dict(mask=np.full((8, 9), 2)), ValueError, "mask"),
        (dict(mask=np.full((8, 9), np.nan)), ValueError, "mask"),
        (dict(mask=np.ones((8, 9), bool), noise="poisson"), ValueError, "mask"),
        (dict(sigma=np.ones((8, 9)), noise="speckle"), ValueError, "sigma"),
    ],
)
def test_bad_maps_and_masks(kwargs, exc, words):
    x = np.random.default_rng(0).random((8, 9))
    with pytest.raises(exc, match=words):
        denoise_nl_means(x, 3, 2, **kwargs)


def test_maps_with_channels_and_4d():
    x = np.random.default_rng(0).random((8, 9, 3))
    with pytest.raises(ValueError, match=r"sigma.*\(8, 9\)"):
        denoise_nl_means(x, 3, 2, sigma=np.ones((8, 9, 3)), channel_axis=-1)
    y = np.random.default_rng(0).random((3, 3, 4, 5))
    with pytest.raises(nlm.UnsupportedDimensionError, match="mask"):
        denoise_nl_means(y, 3, 1, mask=np.random.default_rng(0).random(y.shape) > 0.5)


@pytest.mark.parametrize(
    "shape, chunks, channel_axis, patch, dist",
    [
        ((70, 61), (20, 25), None, 5, 4),
        ((100, 33), (33, 17), None, 7, 5),  # several row bands per tile
        ((40, 37, 3), (15, 13, 3), -1, 3, 3),
        ((12, 30, 28), (5, 11, 10), None, 3, 2),
        ((90,), (25,), None, 5, 7),
    ],
)
@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_dask_maps_and_masks_are_exact(shape, chunks, channel_axis, patch, dist, kind):
    """Tiled NLM with a map and/or a mask, NumPy or dask (chunked their own way): the in-memory result, bit for bit."""
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(len(shape))
    x = rng.random(shape).astype(np.float32)
    spatial = shape if channel_axis is None else shape[:-1]
    smap = 0.05 + 0.1 * rng.random(spatial)
    mask = rng.random(spatial) > 0.2

    def lazy(a):  # chunks of their own, odd
        return da.from_array(a, chunks=tuple(max(1, (n + 2) // 3) for n in a.shape)) if kind == "dask" else a

    for kw in (dict(sigma=smap), dict(mask=mask), dict(sigma=smap, mask=mask), dict(sigma=0.1, mask=mask, h=0.05),
               dict(sigma=smap, h=0.07)):
        want = denoise_nl_means(x, patch, dist, channel_axis=channel_axis, **kw)
        kw = {k: lazy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        out = nlm.denoise_nl_means(da.from_array(x, chunks=chunks), patch, dist, channel_axis=channel_axis, **kw)
        assert max(out.numblocks) >= 2
        got = out.compute()
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("channels", [None, 3])
def test_large_image_lazy_map_and_mask_are_exact(monkeypatch, channels):
    """Above the sample budget (a lazy map and mask stay lazy): the map's reference level is summed row by row,
    so the tiles equal the in-memory result with the same h; NaN at masked pixels come back; colour uint16."""
    da = pytest.importorskip("dask.array")
    from nlm import tiling
    from nlm.denoisers.means import map_rms, map_row_sums

    monkeypatch.setattr(tiling.blocks, "SAMPLE_PIXELS", 2000)
    rng = np.random.default_rng(11)
    spatial = (83, 97)
    smap = 0.02 + 0.1 * np.linspace(0, 1, spatial[1])[None, :] * np.ones(spatial)
    mask = rng.random(spatial) > 0.1
    if channels is None:
        x = (0.5 + smap * rng.standard_normal(spatial)).astype(np.float32)
        x[~mask] = np.nan
        axis = None
    else:
        x = np.clip(0.5 + smap[..., None] * rng.standard_normal(spatial + (channels,)), 0, 1)
        x = np.rint(x * 65535).astype(np.uint16)
        axis = -1
    chunks = (29, 41) + ((channels,) if channels else ())
    lazy_map, lazy_mask = da.from_array(smap, chunks=(31, 23)), da.from_array(mask, chunks=(19, 50))
    for h in (0.05, None):
        want = denoise_nl_means(x, 5, 4, h, sigma=smap, mask=mask, channel_axis=axis)
        out, used = tiling.denoise_nl_means_tiled(da.from_array(x, chunks=chunks), 5, 4, h, sigma=lazy_map,
                                                  mask=lazy_mask, channel_axis=axis, return_parameters=True)
        # the reference level: the in-memory one, bit for bit (rows summed, then an exactly rounded sum)
        rounded = smap.astype(want.dtype).astype(np.float64)
        assert used["sigma"] == map_rms(map_row_sums(rounded, mask), int(mask.sum()))
        assert abs(used["sigma"] - np.sqrt(np.mean(rounded[mask] ** 2))) < 1e-15
        got = out.compute()
        if h is not None:
            np.testing.assert_array_equal(got, want)
        else:  # h from the sample: close
            np.testing.assert_allclose(got, want, atol=0.05)
        if channels is None:
            assert np.isnan(got[~mask]).all() and np.isfinite(got[mask]).all()


def test_reference_level_is_tiling_independent():
    """nlm.denoisers.means.map_rms of row sums: the same value whether the rows are summed whole or in blocks."""
    from nlm.denoisers.means import map_rms, map_row_sums

    rng = np.random.default_rng(5)
    m = rng.random((57, 301)) ** 3
    mask = rng.random(m.shape) > 0.3
    whole = map_rms(map_row_sums(m, mask), int(mask.sum()))
    parts = np.concatenate([map_row_sums(m[a:b], mask[a:b]) for a, b in ((0, 7), (7, 40), (40, 57))])
    assert map_rms(parts[::-1], int(mask.sum())) == whole
    assert abs(whole - np.sqrt(np.mean(m[mask] ** 2))) <= 1e-15 * whole
    assert map_rms(np.zeros(0), 0) == 0.0


def test_dask_maps_and_masks_errors(monkeypatch):
    da = pytest.importorskip("dask.array")
    from nlm import tiling

    x = da.from_array(np.random.default_rng(0).random((16, 16)), chunks=8)
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_means(x, 3, 2, sigma=np.ones((15, 16)))
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_means(x, 3, 2, sigma=da.ones((15, 16)))
    with pytest.raises(ValueError, match="mask"):
        nlm.denoise_nl_means(x, 3, 2, mask=np.ones((16, 16), bool), noise="poisson")
    with pytest.raises(ValueError, match="mask"):
        nlm.denoise_nl_means(x, 3, 2, mask=da.full((16, 16), 2, dtype=np.uint8))
    for bad, words in ((np.nan, "NaN"), (-1.0, ">= 0")):
        smap = np.ones((16, 16))
        smap[3, 4] = bad
        with pytest.raises(ValueError, match=words):
            nlm.denoise_nl_means(x, 3, 2, sigma=da.from_array(smap, chunks=5))
        monkeypatch.setattr(tiling.blocks, "SAMPLE_PIXELS", 100)  # a lazy map stays lazy: checked in one pass
        with pytest.raises(ValueError, match=words):
            nlm.denoise_nl_means(x, 3, 2, sigma=da.from_array(smap, chunks=5))
        monkeypatch.undo()
    with pytest.raises(TypeError, match="sigma"):
        nlm.denoise_nl_means(x, 3, 2, sigma=da.from_array(np.array([["a"] * 16] * 16)))
    # NL-Bayes takes them on dask arrays too (tests/test_bayes_tiled.py)
    with pytest.raises(ValueError, match="mask"):
        nlm.denoise_nl_bayes(x, mask=np.ones((15, 16), bool))
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_bayes(x, sigma=np.ones((15, 16)))


# --------------------------------------------------------------------------
# estimate_noise(return_map=True) and residual_sigma
# --------------------------------------------------------------------------


def _smooth_image(n=192):
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1.0)
    return yy, xx, 0.2 + 0.3 * (1 + np.sin(3 * xx) * np.cos(2 * yy))


def test_noise_map_of_poisson_gaussian_noise():
    _, _, clean = _smooth_image()
    model = PoissonGaussian(0.01, 0.02)
    noisy = model.sample(clean, seed=0)
    est, smap = estimate_noise(noisy, return_map=True)
    assert smap.shape == clean.shape and smap.dtype == np.float64
    rel = np.abs(smap / np.sqrt(model.variance(clean)) - 1)
    assert np.median(rel) < 0.06 and np.percentile(rel, 90) < 0.15


def test_noise_map_of_spatially_varying_gaussian_noise():
    _, xx, clean = _smooth_image()
    sig = 0.02 + 0.18 * xx
    noisy = clean + sig * np.random.default_rng(1).standard_normal(clean.shape)
    _, smap = estimate_noise(noisy, "gaussian", return_map=True)
    rel = np.abs(smap / sig - 1)
    assert np.median(rel) < 0.06 and np.percentile(rel, 90) < 0.15


def test_noise_map_return_order_and_checks():
    rng = np.random.default_rng(2)
    x = rng.random((64, 64, 3))
    model, details, smap = estimate_noise(x, channel_axis=-1, return_details=True, return_map=True)
    assert isinstance(details, dict) and smap.shape == (64, 64)
    assert not isinstance(estimate_noise(x, channel_axis=-1), tuple)
    with pytest.raises(TypeError, match="return_map"):
        estimate_noise(x, return_map=1)
    # the map goes straight into the denoiser
    out = denoise_nl_means(x, 3, 2, sigma=smap, channel_axis=-1)
    assert out.shape == x.shape


def test_residual_sigma_ignores_masked_pixels():
    rng = np.random.default_rng(3)
    x = 0.5 + 0.1 * rng.standard_normal((100, 100))
    mask = np.ones(x.shape, bool)
    mask[20:60, 20:60] = False
    y = x.copy()
    y[~mask] = rng.random(int((~mask).sum())) * 1e6
    s = residual_sigma(y, mask=mask)
    assert abs(s - 0.1) < 0.01
    assert s == residual_sigma(x, mask=mask)
    assert residual_sigma(x, mask=np.zeros(x.shape, bool)) == 0.0


def test_nan_allowed_at_masked_pixels_only():
    rng = np.random.default_rng(7)
    x = rng.random((20, 21))
    mask = np.ones(x.shape, bool)
    mask[5:9, 3:12] = False
    y = x.copy()
    y[5:9, 3:12] = np.nan
    y[6, 4] = np.inf
    out = denoise_nl_means(y, 3, 3, 0.1, sigma=0.05, mask=mask)
    np.testing.assert_array_equal(out[~mask], y[~mask])
    z = x.copy()
    z[~mask] = 3.0
    np.testing.assert_array_equal(out[mask], denoise_nl_means(z, 3, 3, 0.1, sigma=0.05, mask=mask)[mask])
    y[0, 0] = np.nan
    with pytest.raises(ValueError, match="valid"):
        denoise_nl_means(y, 3, 3, 0.1, mask=mask)
    with pytest.raises(ValueError, match="NaN"):
        denoise_nl_means(y, 3, 3, 0.1)


# --------------------------------------------------------------------------
# command line: --sigma-map, --mask, --noise-map-out, the TIFF no-data value
# --------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    clean = 0.5 + 0.3 * np.sin(5 * yy)
    sig = 0.02 + 0.1 * xx
    noisy = (clean + sig * rng.standard_normal(clean.shape)).astype(np.float32)
    noisy[5:9, 5:20] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", noisy, extratags=[(42113, "s", 0, "nan", True)])
    tifffile.imwrite(tmp_path / "sig.tif", sig.astype(np.float32))
    mask = np.ones((48, 48), np.uint8)
    mask[30:40, 30:40] = 0
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    u8 = (np.clip(clean + 0.05 * rng.standard_normal(clean.shape), 0, 1) * 255).astype(np.uint8)
    u8[30:40, 30:40] = 255
    tifffile.imwrite(tmp_path / "u8.tif", u8)
    u16 = (u8.astype(np.uint16) * 257)
    u16[0:4, :] = 7
    tifffile.imwrite(tmp_path / "u16.tif", u16, extratags=[(42113, "s", 0, "7", True)])
    return tmp_path


def _run(args):
    from click.testing import CliRunner

    from nlm.cli.app import main

    return CliRunner().invoke(main, args)


def test_cli_mask_8_and_16_bit(files):
    import tifffile

    r = _run(["denoise", str(files / "u8.tif"), str(files / "o8.tif"), "--mask", str(files / "mask.tif")])
    assert r.exit_code == 0, r.output
    a, b = tifffile.imread(files / "u8.tif"), tifffile.imread(files / "o8.tif")
    assert b.dtype == np.uint8
    np.testing.assert_array_equal(b[30:40, 30:40], a[30:40, 30:40])
    assert "valid pixels" in r.output
    # 16-bit, the no-data value from the GDAL tag
    r = _run(["denoise", str(files / "u16.tif"), str(files / "o16.tif")])
    assert r.exit_code == 0, r.output
    a, b = tifffile.imread(files / "u16.tif"), tifffile.imread(files / "o16.tif")
    assert b.dtype == np.uint16
    np.testing.assert_array_equal(b[:4], a[:4])


def test_cli_nan_nodata_sigma_map_and_map_out(files):
    import tifffile

    out, nm = files / "out.tif", files / "nm.tif"
    r = _run(["denoise", str(files / "nan.tif"), str(out), "--sigma-map", str(files / "sig.tif"),
              "--mask", str(files / "mask.tif"), "--noise-map-out", str(nm)])
    assert r.exit_code == 0, r.output
    a, b = tifffile.imread(files / "nan.tif"), tifffile.imread(out)
    assert np.isnan(b[5:9, 5:20]).all() and np.isfinite(b[9:]).all()
    np.testing.assert_array_equal(b[30:40, 30:40], a[30:40, 30:40])
    np.testing.assert_array_equal(tifffile.imread(nm), tifffile.imread(files / "sig.tif"))
    # the map file is not overwritten without --overwrite
    r = _run(["denoise", str(files / "nan.tif"), str(files / "out2.tif"), "--noise-map-out", str(nm)])
    assert r.exit_code == 1 and "exists" in r.output
    r = _run(["denoise", str(files / "u8.tif"), str(files / "o3.tif"), "--sigma-map", "auto",
              "--noise-map-out", str(files / "est.tif")])
    assert r.exit_code == 0, r.output
    est = tifffile.imread(files / "est.tif")
    assert est.shape == (48, 48) and est.dtype == np.float32 and np.isfinite(est).all()


@pytest.mark.parametrize(
    "extra, code, words",
    [
        (["--sigma", "3", "--sigma-map", "sig.tif"], 2, "exclude"),
        (["--sigma-map", "sig.tif", "--noise", "speckle"], 2, "Gaussian"),
        (["--noise-map-out", "x.png"], 2, "tif"),
        (["--mask", "u16.tif"], 0, ""),  # the right size: fine
        (["--mask", "bad.tif"], 1, "one-channel image of the input's size"),
    ],
)
def test_cli_map_and_mask_errors(files, extra, code, words):
    import tifffile

    tifffile.imwrite(files / "bad.tif", np.ones((5, 5), np.uint8))
    args = ["denoise", str(files / "u8.tif"), str(files / "o.tif")] + [
        str(files / a) if a.endswith(".tif") and a != "x.png" else a for a in extra
    ]
    r = _run(args)
    assert r.exit_code == code, r.output
    assert words in r.output
    assert "Traceback" not in r.output


def test_cli_batch_refuses_maps(files):
    r = _run(["denoise", str(files / "u8.tif"), str(files / "u16.tif"), "-o", str(files / "outdir"),
              "--mask", str(files / "mask.tif")])
    assert r.exit_code == 2 and "one INPUT OUTPUT pair" in r.output


# --------------------------------------------------------------------------
# NL-Bayes (2-D): the kernel against its twin, and the public function
# --------------------------------------------------------------------------


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("step1", [True, False])
@pytest.mark.parametrize("kind", ["map", "mask", "both"])
def test_bayes_step_with_map_and_mask_matches_oracle(C, step1, kind):
    import naive_bayes

    from nlm.denoisers.bayes_passes import _valid_patches
    from nlm.denoisers.bayes_setup import _colour_transform, _grid, _level_table
    from nlm.noise import Gaussian
    from nlm.ops import _bayes_kernels as K

    rng = np.random.default_rng(11 + C)
    H, W = 15, 19
    clean = np.linspace(0.2, 0.8, H * W).reshape(H, W)
    noisy = np.stack([clean * (1 + 0.1 * c) for c in range(C)]) + 0.05 * rng.standard_normal((C, H, W))
    guide = noisy if step1 else noisy + 0.01 * rng.standard_normal(noisy.shape)
    p, radius, stride = 3, 3, 2
    vmap = (0.02 + 0.08 * rng.random((H, W))) ** 2 if kind != "mask" else None
    mask = None
    if kind != "map":
        mask = np.ones((H, W), bool)
        mask[4:7, 5:12] = False
        mask[12, 2] = False
    pvalid = _valid_patches(mask, p) if mask is not None else None
    nlf = _level_table(Gaussian(0.05))[0]
    tmat = _colour_transform(C)
    args = (_grid(H, p, stride), _grid(W, p, stride), p, radius, 6, 12, 0.001, step1, nlf, tmat, 1.0, 1.05,
            2 * radius + p)
    got = K.bayes_step(noisy, guide, *args, np.empty((0, 0)) if vmap is None else vmap,
                       np.empty((0, 0), bool) if pvalid is None else pvalid)
    want = naive_bayes.bayes_step(noisy, guide, *args, vmap, pvalid)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    if mask is not None:
        np.testing.assert_array_equal(got[:, ~mask], noisy[:, ~mask])


def _bayes_image(n=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / (n - 1.0)
    clean = 0.5 + 0.3 * np.sin(6 * yy) * np.cos(4 * xx)
    return rng, yy, xx, clean


def test_bayes_constant_map_equals_scalar_sigma():
    rng, _, _, clean = _bayes_image()
    noisy = clean + 0.08 * rng.standard_normal(clean.shape)
    a = nlm.denoise_nl_bayes(noisy, sigma=0.08)
    b = nlm.denoise_nl_bayes(noisy, sigma=np.full(clean.shape, 0.08))
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_bayes_all_true_mask_equals_no_mask_and_masks_do_not_leak():
    rng, _, _, clean = _bayes_image()
    noisy = clean + 0.05 * rng.standard_normal(clean.shape)
    a = nlm.denoise_nl_bayes(noisy, sigma=0.05)
    np.testing.assert_array_equal(a, nlm.denoise_nl_bayes(noisy, sigma=0.05, mask=np.ones(clean.shape, bool)))
    mask = np.ones(clean.shape, bool)
    mask[20:30, 10:50] = False
    outs = []
    for fill in (1e6, -3.0, np.nan):
        y = noisy.copy()
        y[~mask] = fill
        for sigma in (0.05, None):
            out = nlm.denoise_nl_bayes(y, sigma=sigma, mask=mask)
            np.testing.assert_array_equal(out[~mask], y[~mask])
            outs.append(out)
    for k in range(2, len(outs)):
        np.testing.assert_array_equal(outs[k][mask], outs[k % 2][mask])
    assert np.isfinite(outs[0][mask]).all()
    # the pixels next to the mask are denoised (covered), not left noisy
    ring = np.zeros(clean.shape, bool)
    ring[18:20, 10:50] = True
    ring[30:32, 10:50] = True
    assert np.abs(outs[0] - clean)[ring].mean() < 0.7 * np.abs(noisy - clean)[ring].mean()


def test_bayes_map_beats_blind_on_a_ramp_and_checks():
    rng, _, xx, clean = _bayes_image(96, seed=3)
    smap = 0.02 + 0.18 * xx
    noisy = clean + smap * rng.standard_normal(clean.shape)

    def psnr(a):
        return 10 * np.log10(1.0 / np.mean((a - clean) ** 2))

    blind = nlm.denoise_nl_bayes(noisy)
    mapped = nlm.denoise_nl_bayes(noisy, sigma=smap)
    assert psnr(mapped) > psnr(blind) + 0.5
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_bayes(noisy, sigma=np.ones((5, 5)))
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_bayes(noisy, sigma=smap, noise="gamma")
    with pytest.raises(ValueError, match="mask"):
        nlm.denoise_nl_bayes(noisy, mask=np.ones((5, 5), bool))


def test_zarr_nodata_attribute_masks_the_tiled_cli_run(tmp_path):
    zarr = pytest.importorskip("zarr")
    from nlm.io.tiled import zarr_nodata

    assert zarr_nodata({"nodata": -9999}) == -9999.0
    assert zarr_nodata({"_FillValue": [3]}) == 3.0
    assert zarr_nodata({"nodata": "none"}) is None and zarr_nodata({}) is None
    assert np.isnan(zarr_nodata({"missing_value": "nan"}))
    rng = np.random.default_rng(0)
    yy = np.mgrid[0:96, 0:80][0] / 95.0
    noisy = (0.5 + 0.3 * np.sin(5 * yy) + 0.05 * rng.standard_normal((96, 80))).astype(np.float32)
    noisy[10:30, 10:40] = -9999
    z = zarr.open(str(tmp_path / "nd.zarr"), mode="w", shape=noisy.shape, chunks=(32, 32), dtype="f4")
    z[:] = noisy
    z.attrs["nodata"] = -9999
    r = _run(["denoise", str(tmp_path / "nd.zarr"), str(tmp_path / "out.zarr")])
    assert r.exit_code == 0, r.output
    assert "valid pixels" in r.output
    g = zarr.open(str(tmp_path / "out.zarr"), mode="r")
    out = np.asarray(g["0"][:])
    assert (out[10:30, 10:40] == -9999).all()
    valid = np.ones(noisy.shape, bool)
    valid[10:30, 10:40] = False
    assert 0.1 < out[valid].min() and out[valid].max() < 0.9  # nothing of -9999 leaked


def test_noise_map_shapes_in_1d_and_3d():
    rng = np.random.default_rng(4)
    for shape in [(40, 50, 30), (500,), (10, 12)]:
        _, smap = estimate_noise(0.5 + 0.1 * rng.standard_normal(shape), return_map=True)
        assert smap.shape == shape and np.isfinite(smap).all()
        if min(shape) >= 40 or len(shape) == 1:
            assert abs(np.median(smap) - 0.1) < 0.01


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    given = None

if given is not None:

    @settings(max_examples=25, deadline=None)
    @given(
        h=st.integers(5, 14),
        w=st.integers(5, 14),
        patch=st.sampled_from([1, 3, 5]),
        dist=st.integers(1, 4),
        sigma=st.floats(0.01, 0.5),
        seed=st.integers(0, 1000),
    )
    def test_properties_on_random_small_images(h, w, patch, dist, sigma, seed):
        rng = np.random.default_rng(seed)
        x = rng.random((h, w))
        # a constant map is the scalar sigma
        a = denoise_nl_means(x, patch, dist, 0.2, sigma=sigma)
        b = denoise_nl_means(x, patch, dist, 0.2, sigma=np.full(x.shape, sigma))
        np.testing.assert_allclose(a, b, atol=1e-12)
        # masked pixels unchanged, the rest a weighted mean of valid pixels only
        mask = rng.random(x.shape) > 0.3
        c = denoise_nl_means(x, patch, dist, 0.2, sigma=sigma, mask=mask)
        np.testing.assert_array_equal(c[~mask], x[~mask])
        if mask.any():
            assert c[mask].min() >= x[mask].min() - 1e-12 and c[mask].max() <= x[mask].max() + 1e-12


def test_tiff_nodata_in_the_tiled_cli_run(files):
    import tifffile

    r = _run(["denoise", str(files / "u16.tif"), str(files / "t16.tif"), "--memory-limit", "1KiB"])
    assert r.exit_code == 0, r.output
    assert "tile" in r.output and "valid pixels" in r.output
    a, b = tifffile.imread(files / "u16.tif"), tifffile.imread(files / "t16.tif")
    np.testing.assert_array_equal(b[:4], a[:4])


def test_mask_file_in_the_tiled_cli_run_matches_in_memory(files):
    import tifffile

    src, m = str(files / "u8.tif"), str(files / "mask.tif")
    r = _run(["denoise", src, str(files / "mem.tif"), "--mask", m, "--sigma", "12", "--h", "8"])
    assert r.exit_code == 0, r.output
    r = _run(["denoise", src, str(files / "tiled.tif"), "--mask", m, "--sigma", "12", "--h", "8",
              "--memory-limit", "1KiB"])
    assert r.exit_code == 0, r.output
    assert "tile" in r.output
    np.testing.assert_array_equal(tifffile.imread(files / "tiled.tif"), tifffile.imread(files / "mem.tif"))
    # a noise map (float32 with NaN no-data) tile by tile too: the in-memory output (tests/test_scale_cli.py has more)
    nan = str(files / "nan.tif")
    r = _run(["denoise", nan, str(files / "mem_map.tif"), "--sigma-map", str(files / "sig.tif")])
    assert r.exit_code == 0, r.output
    r = _run(["denoise", nan, str(files / "tiled_map.tif"), "--sigma-map", str(files / "sig.tif"),
              "--memory-limit", "1KiB"])
    assert r.exit_code == 0, r.output
    assert "tile" in r.output
    np.testing.assert_array_equal(tifffile.imread(files / "tiled_map.tif"), tifffile.imread(files / "mem_map.tif"))


@pytest.mark.parametrize(
    "shape, chunks, axis",
    [((200, 230), (37, 61), None), ((150, 170, 3), (50, 40, 3), -1), ((40, 50, 60), (13, 17, 19), None),
     ((2, 90, 100), (2, 33, 40), 0)],
)
def test_noise_map_tiled_equals_the_in_memory_map(shape, chunks, axis):
    """nlm.tiling.noise.noise_map_tiled: the map of estimate_noise(return_map=True), bit for bit, any chunks."""
    da = pytest.importorskip("dask.array")
    from nlm.tiling.noise import noise_map_tiled

    rng = np.random.default_rng(len(shape) + shape[0])
    x = (0.3 + 0.2 * rng.random(shape) + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    model, want = estimate_noise(x, channel_axis=axis, return_map=True)
    lazy = noise_map_tiled(da.from_array(x, chunks=chunks), model, channel_axis=axis)
    assert max(lazy.numblocks) >= 2
    got = lazy.compute()
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="dask"):
        noise_map_tiled(x, model)
    with pytest.raises(TypeError, match="model"):
        noise_map_tiled(da.from_array(x), "gaussian")
