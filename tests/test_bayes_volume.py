"""NL-Bayes on volumes: the 3-D kernels against their NumPy twins, properties, API."""

import naive_bayes as naive
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlm.denoisers.bayes import denoise_nl_bayes, volume_parameters
from nlm.denoisers.bayes_setup import _colour_transform, _grid, _level_table
from nlm.metrics import psnr
from nlm.noise import Gamma, Gaussian
from nlm.ops import _bayes_volume as V

#: the kernels' "no noise map" and "no mask"
NOMAP = np.empty((0, 0, 0))
NOVALID = np.empty((0, 0, 0), dtype=bool)


def _rng(seed):
    return np.random.default_rng(seed)


def _phantom(shape, seed=0):
    """A smooth volume with a few edges, in [0.1, 0.9]."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    v = 0.5 + 0.2 * np.sin(2 * x + y) * np.cos(z) + 0.2 * ((x**2 + y**2 + z**2) < 0.4)
    return np.clip(v, 0.1, 0.9)


# ------------------------------------------------------------------ kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, c_dist", [(1, 1), (3, 1), (2, 2)])
def test_search3_matches_oracle(dtype, C, c_dist):
    rng = _rng(5)
    guide = rng.random((C, 7, 9, 11)).astype(dtype)
    guide[:, 2:5, 3:6, :] = 0.5  # exact ties and distances of 0
    psz, rad = np.array([3, 1, 3]), np.array([1, 2, 3])
    side = int(np.prod(2 * rad + 1))
    cd, work = np.empty(side), np.empty(side)
    for (rz, ri, rj), n_sim, n_max, tau in [((0, 0, 0), 5, 5, -1.0), ((2, 4, 3), 8, 20, 0.01),
                                            ((4, 8, 8), 3, 40, 0.05), ((3, 5, 4), 1, 1, -1.0),
                                            ((2, 4, 5), 500, 500, -1.0)]:
        dist, idx = np.empty(max(n_max, n_sim)), np.empty(max(n_max, n_sim), dtype=np.int64)
        n = V.search3(guide, rz, ri, rj, psz, rad, c_dist, n_sim, n_max, tau, dist, idx, cd, work, NOVALID)
        want_d, want_i = naive.search3(guide, rz, ri, rj, psz, rad, c_dist, n_sim, n_max, tau)
        assert n == want_i.size
        np.testing.assert_array_equal(idx[:n], want_i)
        np.testing.assert_allclose(dist[:n], want_d, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-12)


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("step1", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clipped", [False, True])
def test_step3_matches_oracle(C, step1, dtype, clipped):
    rng = _rng(7 + C)
    shape = (9, 8, 11)  # odd and even sides, borders everywhere
    clean = _phantom(shape)
    noisy = np.stack([clean * (1 + 0.1 * c) for c in range(C)]) + 0.05 * rng.standard_normal((C,) + shape)
    noisy = noisy.astype(dtype)
    guide = noisy if step1 else (noisy + 0.01 * rng.standard_normal(noisy.shape)).astype(dtype)
    psz, rad = np.array([3, 3, 1]), np.array([1, 2, 3])
    grids = [_grid(n, int(p), 2) for n, p in zip(shape, psz)]
    nlf = _level_table(Gaussian(0.05, clip=clipped))[0]
    tmat = _colour_transform(C)
    # cells of the smallest legal size (2 r + p), several per axis; a block's origin shifts them
    for cell, origin in [((5, 8, 8), (0, 0, 0)), ((5, 7, 7), (3, 1, 2)), ((5, 7, 7), (0, 0, 0))]:
        cell, origin = np.array(cell), np.array(origin)
        args = (*grids, psz, rad, 6, 12, 0.001, step1, nlf, tmat, 1.0, 1.05, cell, origin)
        got = V.bayes_step3(noisy, guide, *args, NOMAP, NOVALID)
        want = naive.bayes_step3(noisy, guide, *args)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 if dtype == np.float64 else 2e-5)


def test_step3_isotropic_patch_matches_oracle():
    rng = _rng(3)
    shape = (6, 7, 8)
    noisy = (_phantom(shape) + 0.08 * rng.standard_normal(shape))[None]
    psz, rad = np.array([3, 3, 3]), np.array([2, 2, 2])
    grids = [_grid(n, 3, 1) for n in shape]
    nlf, tmat = np.array([0.0064, 0.0, 0.0]), _colour_transform(1)
    for flat in (0.0, 1.05, 1e6):
        args = (*grids, psz, rad, 10, 20, 0.002, False, nlf, tmat, 1.0, flat, np.array([7, 8, 8]), np.zeros(3, int))
        np.testing.assert_allclose(V.bayes_step3(noisy, noisy, *args, NOMAP, NOVALID),
                                   naive.bayes_step3(noisy, noisy, *args),
                                   rtol=0, atol=1e-9)


@pytest.mark.parametrize("step1", [True, False])
def test_block_with_margin_is_exact(step1):
    """A block of the volume, told its origin, gives the whole volume's values inside the margin."""
    from nlm.denoisers.bayes_setup import _grid_in

    rng = _rng(11)
    shape = (22, 36, 72)
    clean = _phantom(shape)
    noisy = (clean + 0.06 * rng.standard_normal(shape))[None]
    guide = noisy if step1 else noisy + 0.01 * rng.standard_normal(noisy.shape)
    psz, rad, cell = np.array([1, 1, 1]), np.array([1, 1, 1]), np.array([3, 3, 3])
    nlf, tmat = np.array([0.0036, 0.0, 0.0]), _colour_transform(1)
    # the margin of volume_margin for one pass: (k + 1) B + 2 r + p - 2, k = 1, 3, 7
    margin = [(k + 1) * 3 + 2 + 1 - 2 for k in (1, 3, 7)]

    def run(o, m):
        sl = (slice(None),) + tuple(slice(a, a + b) for a, b in zip(o, m))
        grids = [_grid_in(shape[a], 1, 2, o[a], m[a]) for a in range(3)]
        return V.bayes_step3(np.ascontiguousarray(noisy[sl]), np.ascontiguousarray(guide[sl]), *grids, psz, rad,
                             6, 12, 0.001, step1, nlf, tmat, 1.0, 1.05, cell, np.array(o), NOMAP, NOVALID)

    whole = run((0, 0, 0), shape)
    o, m = (1, 2, 5), (21, 34, 62)
    part = run(o, m)
    inner = tuple(slice(mg, b - mg) for mg, b in zip(margin, m))
    assert all(b - 2 * mg > 0 for mg, b in zip(margin, m))
    whole_inner = whole[(slice(None),) + tuple(slice(a + mg, a + b - mg) for a, mg, b in zip(o, margin, m))]
    np.testing.assert_array_equal(part[(slice(None),) + inner], whole_inner)


# --------------------------------------------------------------- properties
@pytest.mark.parametrize("value", [0.0, 0.37, 1.0])
@pytest.mark.parametrize("channels", [None, -1])
def test_constant_volume_stays_constant(value, channels):
    shape = (10, 14, 12) if channels is None else (10, 14, 12, 3)
    vol = np.full(shape, value)
    for noise in (Gaussian(0.05), Gamma(4), "auto"):
        out = denoise_nl_bayes(vol, noise=noise, channel_axis=channels)
        assert out.shape == shape
        np.testing.assert_allclose(out, value, atol=1e-7)


@pytest.fixture(scope="module")
def phantom():
    return _phantom((12, 24, 20))


def test_zero_noise_returns_the_input(phantom):
    np.testing.assert_array_equal(denoise_nl_bayes(phantom, sigma=0.0), phantom)
    out = denoise_nl_bayes(phantom, sigma=1e-4)
    assert np.abs(out - phantom).max() < 1e-3


def test_denoises_and_beats_noisy(phantom):
    noisy = Gaussian(0.08).sample(phantom, seed=1)
    for passes in (2, 3):
        out = denoise_nl_bayes(noisy, sigma=0.08, passes=passes)
        assert psnr(phantom, out, data_range=1.0) > psnr(phantom, noisy, data_range=1.0) + 6
    blind = denoise_nl_bayes(noisy)
    assert psnr(phantom, blind, data_range=1.0) > psnr(phantom, noisy, data_range=1.0) + 6


def test_float32_close_to_float64(phantom):
    noisy = Gaussian(0.08).sample(phantom, seed=2)
    o64 = denoise_nl_bayes(noisy, sigma=0.08)
    o32 = denoise_nl_bayes(noisy.astype(np.float32), sigma=0.08)
    assert o64.dtype == np.float64 and o32.dtype == np.float32
    assert abs(psnr(phantom, o64, data_range=1.0) - psnr(phantom, o32, data_range=1.0)) < 0.02
    assert np.abs(o64 - o32).mean() < 1e-3
    u16 = np.round(np.clip(noisy, 0, 1) * 65535).astype(np.uint16)
    assert denoise_nl_bayes(u16, sigma=0.08).dtype == np.float64


def test_result_independent_of_threads(phantom):
    import numba

    noisy = Gaussian(0.06).sample(np.tile(phantom, (3, 1, 1)), seed=3)  # 36 slices: several slabs
    kw = dict(sigma=0.06, patch_size=3, search_radius=(2, 3, 3), passes=3)
    one = denoise_nl_bayes(noisy, num_threads=1, **kw)
    many = denoise_nl_bayes(noisy, num_threads=numba.config.NUMBA_NUM_THREADS, **kw)
    np.testing.assert_array_equal(one, many)


def test_channels_and_channel_axis(phantom):
    rgb = np.stack([phantom, 1 - phantom, 0.5 * phantom + 0.2], axis=-1)
    noisy = Gaussian(0.08).sample(rgb, seed=4)
    out = denoise_nl_bayes(noisy, sigma=0.08, channel_axis=-1)
    assert out.shape == rgb.shape
    assert psnr(rgb, out, data_range=1.0) > psnr(rgb, noisy, data_range=1.0) + 6
    first = denoise_nl_bayes(np.moveaxis(noisy, -1, 0), sigma=0.08, channel_axis=0)
    np.testing.assert_allclose(np.moveaxis(first, 0, -1), out, rtol=0, atol=1e-12)


def test_one_slice_volume_like_the_image():
    from skimage import data
    from skimage.util import img_as_float

    cam = img_as_float(data.camera()[::4, ::4])
    noisy = Gaussian(0.1).sample(cam, seed=5)
    kw = dict(sigma=0.1, n_similar=(60, 25), search_radius=8, beta=1.0, flat=1.05, passes=2)
    img = denoise_nl_bayes(noisy, patch_size=5, **kw)
    vol = denoise_nl_bayes(noisy[None], patch_size=(1, 5, 5), **kw)
    assert vol.shape == (1,) + cam.shape
    assert abs(psnr(cam, vol[0], data_range=1.0) - psnr(cam, img, data_range=1.0)) < 0.3
    # the default patch (3 x 3 x 3) is clamped to one slice
    assert psnr(cam, denoise_nl_bayes(noisy[None], sigma=0.1)[0], data_range=1.0) > psnr(cam, noisy) + 6


def test_anisotropic_geometry_and_short_axes(phantom):
    noisy = Gaussian(0.08).sample(phantom[:3], seed=6)  # a (t, y, x) stack of 3 frames
    for kw in (dict(patch_size=(1, 5, 5), search_radius=(1, 4, 4)), dict(patch_size=((3, 3, 3), (1, 5, 5))),
               dict(search_radius=(0, 3, 3)), dict(patch_size=9, search_radius=50, n_similar=(300, 150))):
        out = denoise_nl_bayes(noisy, sigma=0.08, **kw)
        assert out.shape == noisy.shape and np.isfinite(out).all()
        # patches clamped to 3 x 9 x 9 (d = 243) need groups larger than d
        assert psnr(phantom[:3], out, data_range=1.0) > psnr(phantom[:3], noisy, data_range=1.0) + 8


def test_clipped_noise_keeps_black_and_white():
    vol = np.zeros((8, 20, 20))
    vol[:, :, 10:] = 1.0
    noisy = np.clip(Gaussian(0.1).sample(vol, seed=7), 0, 1)
    out = denoise_nl_bayes(noisy, noise=Gaussian(0.1, clip=True))
    assert abs(out[:, :, 2:8].mean()) < 0.01 and abs(out[:, :, 12:18].mean() - 1) < 0.01


def test_volume_parameters_table():
    for s in (1, 5, 10, 25, 50, 100):
        prm = volume_parameters(s)
        assert len(prm["patch1"]) == 3 and len(prm["patch2"]) == 3 and len(prm["radius"]) == 3
        assert prm["n1"] >= 2 and prm["n2"] >= 2 and prm["passes"] in (2, 3)
        assert all(p % 2 == 1 for p in prm["patch1"] + prm["patch2"])
        assert prm["tau_var"] > 0


def test_step2_threshold_capped_by_the_noise_variance(phantom):
    from nlm.denoisers.bayes_setup import _volume_parameters

    # phantom in [0, 1]: the absolute threshold is (4/255)^2; the cap 0.01 sigma^2 is below it up to sigma 0.157
    for sigma, capped in ((0.02, True), (0.1, True), (0.3, False)):
        prm = _volume_parameters(phantom[None], np.float64, "auto", sigma, None, False, None, None, None, None,
                                 None, None)
        cap = volume_parameters(prm["sigma255"])["tau_var"] * sigma**2
        assert prm["tau"] == pytest.approx(cap if capped else (4.0 / 255.0) ** 2, rel=1e-9)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        (dict(patch_size=4), ValueError, "patch_size"),
        (dict(patch_size=(3, 3, 4)), ValueError, "patch_size"),
        (dict(patch_size=(3, 3, 3, 3)), ValueError, "patch_size"),
        (dict(patch_size=((3, 3), 3)), ValueError, "patch_size"),
        (dict(patch_size=3.0), TypeError, "patch_size"),
        (dict(search_radius=0), ValueError, "search_radius"),
        (dict(search_radius=(1, -1, 2)), ValueError, "search_radius"),
        (dict(search_radius=(1, 2)), ValueError, "search_radius"),
        (dict(n_similar=1), ValueError, "n_similar"),
        (dict(passes=4), ValueError, "passes"),
    ],
)
def test_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        denoise_nl_bayes(np.full((6, 8, 8), 0.5), sigma=0.1, **kwargs)


def test_bad_volumes():
    from nlm import UnsupportedDimensionError

    with pytest.raises(UnsupportedDimensionError, match="2-D or 3-D"):
        denoise_nl_bayes(np.zeros((3, 4, 4, 4)), sigma=0.1)
    with pytest.raises(ValueError, match="NaN"):
        denoise_nl_bayes(np.full((4, 8, 8), np.nan))


def test_rician_volume_keeps_dark_means():
    """Magnitude MRI: the Rician model's tables work on volumes (dark areas are not lifted)."""
    from nlm.noise import Rician

    vol = np.full((10, 24, 24), 0.1)
    vol[:, 8:16, 8:16] = 0.4
    noisy = Rician(0.05).sample(vol, seed=8)
    out = denoise_nl_bayes(noisy, noise="rician", sigma=0.05)
    dark = (slice(None), slice(0, 6), slice(None))
    assert abs(noisy[dark].mean() - 0.1) > 0.005  # the bias the model removes
    assert abs(out[dark].mean() - 0.1) < 0.003  # as the 2-D path does slice by slice (0.0978 here)
    assert abs(out[:, 10:14, 10:14].mean() - 0.4) < 0.008
    flat = Rician(0.05).sample(np.full((10, 40, 40), 0.1), seed=9)
    assert abs(denoise_nl_bayes(flat, noise="rician", sigma=0.05).mean() - 0.1) < 0.001


# ------------------------------------------------------- noise maps and masks
def _mask3(shape):
    """Valid everywhere but a slab cut through the volume, a small box at a corner and one voxel."""
    mask = np.ones(shape, bool)
    mask[2:4, 3:6, 1:-2] = False
    mask[-2:, :2, -3:] = False
    mask[1, -2, 4] = False
    return mask


@pytest.mark.parametrize("C", [1, 2])
@pytest.mark.parametrize("step1", [True, False])
@pytest.mark.parametrize("kind", ["map", "mask", "both"])
def test_step3_with_map_and_mask_matches_oracle(C, step1, kind):
    from nlm.denoisers.bayes_passes import _valid_patches

    rng = _rng(21 + C)
    shape = (7, 9, 10)  # odd and even sides, borders everywhere
    noisy = np.stack([_phantom(shape) * (1 + 0.1 * c) for c in range(C)]) + 0.05 * rng.standard_normal((C,) + shape)
    guide = noisy if step1 else noisy + 0.01 * rng.standard_normal(noisy.shape)
    psz, rad = np.array([3, 1, 3]), np.array([1, 2, 2])
    vmap = (0.02 + 0.08 * rng.random(shape)) ** 2 if kind != "mask" else None
    mask = _mask3(shape) if kind != "map" else None
    pvalid = _valid_patches(mask, psz, 3) if mask is not None else None
    grids = [_grid(n, int(p), 2) for n, p in zip(shape, psz)]
    nlf, tmat = _level_table(Gaussian(0.05))[0], _colour_transform(C)
    for cell, origin in [((5, 5, 7), (0, 0, 0)), ((5, 6, 7), (2, 3, 1))]:
        args = (*grids, psz, rad, 6, 12, 0.001, step1, nlf, tmat, 1.0, 1.05, np.array(cell), np.array(origin))
        got = V.bayes_step3(noisy, guide, *args, NOMAP if vmap is None else vmap,
                            NOVALID if pvalid is None else pvalid)
        want = naive.bayes_step3(noisy, guide, *args, vmap=vmap, pvalid=pvalid)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        if mask is not None:
            np.testing.assert_array_equal(got[:, ~mask], noisy[:, ~mask])


def test_search3_skips_masked_patches():
    from nlm.denoisers.bayes_passes import _valid_patches

    rng = _rng(6)
    guide = rng.random((1, 6, 8, 9))
    psz, rad = np.array([1, 3, 3]), np.array([2, 2, 2])
    pvalid = _valid_patches(_mask3((6, 8, 9)), psz, 3)
    side = int(np.prod(2 * rad + 1))
    cd, work = np.empty(side), np.empty(side)
    for (rz, ri, rj), n_sim in [((0, 0, 0), 5), ((4, 4, 5), 500), ((5, 5, 6), 12)]:
        dist, idx = np.empty(n_sim), np.empty(n_sim, dtype=np.int64)
        n = V.search3(guide, rz, ri, rj, psz, rad, 1, n_sim, n_sim, -1.0, dist, idx, cd, work, pvalid)
        want_d, want_i = naive.search3(guide, rz, ri, rj, psz, rad, 1, n_sim, n_sim, -1.0, pvalid)
        assert n == want_i.size
        np.testing.assert_array_equal(idx[:n], want_i)
        assert pvalid.reshape(-1)[idx[1:n]].all()


def _ramp_volume(shape=(10, 20, 24), seed=0):
    rng = _rng(seed)
    clean = _phantom(shape)
    smap = 0.02 + 0.18 * np.linspace(0, 1, shape[-1])[None, None, :] * np.ones(shape)
    return clean, smap, clean + smap * rng.standard_normal(shape)


def test_volume_constant_map_equals_scalar_sigma():
    clean, _, _ = _ramp_volume()
    noisy = Gaussian(0.08).sample(clean, seed=1)
    for kw in (dict(), dict(passes=3, channel_axis=None)):
        a = denoise_nl_bayes(noisy, sigma=0.08, **kw)
        b = denoise_nl_bayes(noisy, sigma=np.full(clean.shape, 0.08), **kw)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_volume_masks_unchanged_no_leak_and_all_true():
    clean = _phantom((10, 20, 24))
    noisy = Gaussian(0.1).sample(clean, seed=2)
    a = denoise_nl_bayes(noisy, sigma=0.1)
    np.testing.assert_array_equal(a, denoise_nl_bayes(noisy, sigma=0.1, mask=np.ones(clean.shape, bool)))
    mask = _mask3(clean.shape)
    outs = []
    for fill in (1e6, -3.0, np.nan):
        y = noisy.copy()
        y[~mask] = fill
        for sigma in (0.1, None):
            out = denoise_nl_bayes(y, noise="gaussian", sigma=sigma, mask=mask)
            np.testing.assert_array_equal(out[~mask], y[~mask])
            outs.append(out)
    for k in range(2, len(outs)):  # what the masked voxels hold never matters
        np.testing.assert_array_equal(outs[k][mask], outs[k % 2][mask])
    assert np.isfinite(outs[0][mask]).all()
    # the voxels next to the mask are denoised (covered), not left noisy (those of slice 1 lie in no
    # valid 3 x 3 x 3 patch: returned as they are)
    ring = np.zeros(clean.shape, bool)
    ring[4, 3:6, 1:-2] = True
    np.testing.assert_array_equal(outs[0][1, 3:6, 1:-2], noisy[1, 3:6, 1:-2])
    assert np.abs(outs[0] - clean)[ring].mean() < 0.5 * np.abs(noisy - clean)[ring].mean()


@pytest.mark.parametrize("channels", [None, -1])
def test_constant_volume_with_a_mask_stays_constant(channels):
    shape = (8, 12, 11) if channels is None else (8, 12, 11, 2)
    vol = np.full(shape, 0.4)
    mask = _mask3(shape[:3])
    vol[~mask] = 7.0
    for kw in (dict(sigma=0.05), dict(sigma=np.full(shape[:3], 0.05)), dict()):
        out = denoise_nl_bayes(vol, mask=mask, channel_axis=channels, **kw)
        np.testing.assert_allclose(out[mask], 0.4, atol=1e-7)
        np.testing.assert_array_equal(out[~mask], 7.0)


def test_volume_map_and_mask_thread_count_independent_and_float32():
    import numba

    clean, smap, noisy = _ramp_volume((12, 18, 20), seed=4)
    mask = _mask3(clean.shape)
    kw = dict(sigma=smap, mask=mask, patch_size=3, search_radius=(1, 3, 3), passes=3)
    one = denoise_nl_bayes(noisy, num_threads=1, **kw)
    many = denoise_nl_bayes(noisy, num_threads=numba.config.NUMBA_NUM_THREADS, **kw)
    np.testing.assert_array_equal(one, many)
    o32 = denoise_nl_bayes(noisy.astype(np.float32), **kw)
    assert o32.dtype == np.float32
    assert np.abs(o32 - one)[mask].mean() < 1e-3


def test_volume_map_beats_blind_scalar_on_a_ramp():
    clean, smap, noisy = _ramp_volume((12, 24, 32), seed=5)
    blind = denoise_nl_bayes(noisy, noise="gaussian")
    mapped = denoise_nl_bayes(noisy, sigma=smap)
    assert psnr(clean, mapped, data_range=1.0) > psnr(clean, blind, data_range=1.0) + 1


def test_volume_bad_maps_and_masks():
    vol = np.random.default_rng(3).random((5, 12, 13)).astype(np.float32)
    with pytest.raises(ValueError, match="sigma"):
        denoise_nl_bayes(vol, sigma=np.full((5, 12), 0.1))
    with pytest.raises(ValueError, match="sigma"):
        denoise_nl_bayes(vol, sigma=np.full(vol.shape, -0.1))
    with pytest.raises(ValueError, match="sigma"):
        denoise_nl_bayes(vol, sigma=np.full(vol.shape, 0.1), noise="gamma")
    with pytest.raises(ValueError, match="mask"):
        denoise_nl_bayes(vol, sigma=0.1, mask=np.ones((5, 12, 12), bool))
    with pytest.raises(ValueError, match="mask"):
        denoise_nl_bayes(vol, sigma=0.1, mask=np.full(vol.shape, 2))
    vol[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="valid"):
        denoise_nl_bayes(vol, sigma=0.1, mask=np.ones(vol.shape, bool))


@settings(max_examples=12, deadline=None)
@given(
    shape=st.tuples(st.integers(3, 8), st.integers(5, 12), st.integers(5, 12)),
    holes=st.floats(0.0, 0.3),
    sigma=st.floats(0.02, 0.3),
    stride=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_properties_with_maps_and_masks_on_random_small_volumes(shape, holes, sigma, stride, seed):
    """A constant map is the scalar sigma; masked voxels come back as given and never change the others;
    a constant volume stays constant with a mask."""
    rng = np.random.default_rng(seed)
    x = rng.random(shape)
    kw = dict(patch_size=3, search_radius=(1, 2, 2), stride=stride, passes=2)
    a = denoise_nl_bayes(x, sigma=sigma, **kw)
    np.testing.assert_allclose(denoise_nl_bayes(x, sigma=np.full(shape, sigma), **kw), a, rtol=0, atol=1e-9)
    mask = rng.random(shape) >= holes
    if not mask.any():
        mask[0, 0, 0] = True
    y = x.copy()
    y[~mask] = 1e3
    b = denoise_nl_bayes(y, sigma=sigma, mask=mask, **kw)
    np.testing.assert_array_equal(b[~mask], y[~mask])
    y[~mask] = -5.0
    np.testing.assert_array_equal(denoise_nl_bayes(y, sigma=sigma, mask=mask, **kw)[mask], b[mask])
    assert np.isfinite(b).all()
    c = np.where(mask, 0.25, 9.0)
    np.testing.assert_allclose(denoise_nl_bayes(c, sigma=sigma, mask=mask, **kw)[mask], 0.25, atol=1e-9)
