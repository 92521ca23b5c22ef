"""The NL-Ridge pass of NL-Bayes: the kernel against its NumPy twin, properties, the argument."""

import naive_ridge as naive
import numpy as np
import pytest
from skimage import data
from skimage.util import img_as_float

from nlm.denoisers.bayes import bayes_parameters, denoise_nl_bayes
from nlm.denoisers.bayes_passes import tile_margin
from nlm.denoisers.bayes_setup import _colour_transform, _grid, _level_table, _parameters
from nlm.metrics import psnr
from nlm.noise import Gaussian, PoissonGaussian
from nlm.ops import _ridge_kernels as K

_NO_VMAP = np.empty((0, 0))
_NO_MASK = np.empty((0, 0), dtype=bool)


def _rng(seed):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------ kernel against its twin
@pytest.mark.parametrize("n, D", [(2, 9), (7, 4), (20, 27), (12, 1)])
@pytest.mark.parametrize("oracle", [True, False])
@pytest.mark.parametrize("centre", [True, False])
def test_ridge_estimate_matches_oracle(n, D, oracle, centre):
    rng = _rng(n * 10 + D + 2 * oracle + centre)
    Y = rng.random((n, D))
    G = Y + 0.05 * rng.standard_normal((n, D))
    for dv in (np.full(n, 0.01 * D), 0.002 * D * (1 + rng.random(n)), np.zeros(n)):
        want_x, want_w = naive.ridge_estimate(Y, G, oracle, 0.05, centre, dv)
        X, w = np.empty((n, D)), np.empty(n)
        K.ridge_estimate(Y.copy(), G.copy(), n, D, oracle, 0.05, centre, dv, np.empty((n, n)), np.empty((n, n)),
                         np.empty((n, D)), X, w, np.empty(D), np.empty(D))
        np.testing.assert_allclose(X, want_x, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(w, want_w, rtol=1e-7)
        if not dv.any():  # no noise: every patch is its own estimate
            np.testing.assert_allclose(X, Y, atol=1e-9)


@pytest.mark.parametrize("C, pp", [(1, 9), (3, 4)])
@pytest.mark.parametrize("oracle", [True, False])
@pytest.mark.parametrize("table", [False, True])
def test_patch_variances_match_oracle(C, pp, oracle, table):
    rng = _rng(C + pp + oracle)
    n = 6
    Y = rng.random((n, C * pp))
    G = Y + 0.05 * rng.standard_normal(Y.shape)
    nlf = np.array([0.002, 0.01, 0.03])
    if table:
        nlf = np.concatenate([nlf, [0.1, 8 / 0.8], 0.001 + 0.01 * rng.random(9)])
    tmat = _colour_transform(C)
    dv = np.empty(n)
    K.patch_variances(Y, G, n, C, pp, oracle, nlf, tmat, np.empty(0), np.empty(C * pp), dv)
    np.testing.assert_allclose(dv, naive.patch_variances(Y, G, C, pp, oracle, nlf, tmat), rtol=1e-12)


@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("oracle", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("clipped", [False, True])
@pytest.mark.parametrize("origin", [(0, 0), (5, 13)])
def test_step_matches_oracle(C, oracle, dtype, clipped, origin):
    """The kernel against its twin, also with cells anchored off the block's corner (a tile)."""
    rng = _rng(11 + C)
    clean = np.linspace(0.2, 0.8, 14 * 19).reshape(14, 19)
    noisy = (np.stack([clean * (1 + 0.1 * c) for c in range(C)]) + 0.05 * rng.standard_normal((C, 14, 19)))
    noisy = noisy.astype(dtype)
    guide = (noisy + 0.01 * rng.standard_normal(noisy.shape)).astype(dtype) if oracle else noisy
    p, radius = 3, 3
    rows, cols = _grid(14, p, 2), _grid(19, p, 2)
    nlf = _level_table(Gaussian(0.05, clip=clipped))[0]
    args = (rows, cols, p, radius, 6, oracle, nlf, _colour_transform(C), 0.05, True, 2 * radius + p)
    got = K.ridge_step(noisy, guide, *args, _NO_VMAP, _NO_MASK, *origin)
    want = naive.ridge_step(noisy, guide, *args, None, None, *origin)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 if dtype == np.float64 else 2e-5)


@pytest.mark.parametrize("C", [1, 3])
def test_step_with_map_and_mask_matches_oracle(C):
    rng = _rng(3 + C)
    H, W = 15, 17
    noisy = rng.random((C, H, W))
    guide = noisy + 0.01 * rng.standard_normal(noisy.shape)
    vmap = 0.001 + 0.01 * rng.random((H, W))
    mask = np.ones((H, W), dtype=bool)
    mask[4:7, 5:9] = False
    p, radius = 3, 2
    from nlm.denoisers.bayes_passes import _valid_patches

    pvalid = _valid_patches(mask, p)
    rows, cols = _grid(H, p, 2), _grid(W, p, 2)
    args = (rows, cols, p, radius, 5, True, np.array([0.01, 0.0, 0.0]), _colour_transform(C), 0.05, True, 8)
    got = K.ridge_step(noisy, guide, *args, vmap, pvalid, 0, 0)
    want = naive.ridge_step(noisy, guide, *args, vmap, pvalid, 0, 0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


def test_step_thread_count_independent():
    import numba

    rng = _rng(0)
    noisy = rng.random((1, 40, 44))
    guide = noisy + 0.02 * rng.standard_normal(noisy.shape)
    args = (_grid(40, 5, 2), _grid(44, 5, 2), 5, 4, 10, True, np.array([0.01, 0.0, 0.0]), np.eye(1), 0.05, True,
            13, _NO_VMAP, _NO_MASK)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = K.ridge_step(noisy, guide, *args)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = K.ridge_step(noisy, guide, *args)
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(one, two)


# ------------------------------------------------------------------ through denoise_nl_bayes
def _camera(size=64):
    return img_as_float(data.camera()[::4, ::4])[:size, :size]


def test_table_turns_the_pass_on_for_grey_additive_noise():
    for s in (5, 15, 25, 50, 90):
        prm = bayes_parameters(s)
        assert 0 < prm["ridge"] <= 1 and prm["ridge_at"] in (2, 3)
    assert bayes_parameters(25, channels=3)["ridge"] > 0
    assert bayes_parameters(25, multiplicative=True)["ridge"] == 0
    # colour with speckle or gamma noise: only at weak noise (measured: see bayes_parameters' Notes)
    assert bayes_parameters(30, channels=3, multiplicative=True)["ridge"] > 0
    assert bayes_parameters(60, channels=3, multiplicative=True)["ridge"] == 0


def test_ridge_improves_and_can_be_turned_off():
    clean = _camera()
    noisy = clean + 25 / 255 * _rng(1).standard_normal(clean.shape)
    off = denoise_nl_bayes(noisy, ridge=0)
    on = denoise_nl_bayes(noisy)
    assert not np.array_equal(on, off)
    assert psnr(clean, np.clip(on, 0, 1)) > psnr(clean, np.clip(off, 0, 1))
    full = denoise_nl_bayes(noisy, ridge=1)
    assert psnr(clean, np.clip(full, 0, 1)) > psnr(clean, noisy) + 5


@pytest.mark.parametrize("noise", [Gaussian(0.1), PoissonGaussian(0.002, 0.02), Gaussian(0.1, clip=True)])
def test_ridge_with_models_float32_and_threads(noise):
    clean = _camera(48)
    noisy = np.clip(noise.sample(clean, seed=2), 0, None)
    a = denoise_nl_bayes(noisy, noise=noise, ridge=0.5, num_threads=1)
    b = denoise_nl_bayes(noisy, noise=noise, ridge=0.5, num_threads=2)
    np.testing.assert_array_equal(a, b)
    c = denoise_nl_bayes(noisy.astype(np.float32), noise=noise, ridge=0.5)
    assert c.dtype == np.float32
    # float32 rounding moves a few patches across pass 3's threshold (its groups: every patch of a 49 x 49
    # window closer than it): up to 3 % of the pixels move by up to about 2e-3, the rest within 2e-4
    d = np.abs(c - a)
    assert d.max() < 5e-3 and np.mean(d > 2e-4) < 0.05 and d.mean() < 1e-4
    assert psnr(clean, np.clip(a, 0, 1)) > psnr(clean, np.clip(noisy, 0, 1)) + 3


def test_ridge_with_noise_map_and_mask():
    clean = _camera(48)
    smap = np.full(clean.shape, 0.05)
    smap[:, 24:] = 0.15
    noisy = clean + smap * _rng(4).standard_normal(clean.shape)
    mask = np.ones(clean.shape, dtype=bool)
    mask[10:14, 10:30] = False
    noisy[~mask] = np.nan
    out = denoise_nl_bayes(noisy, sigma=smap, mask=mask, ridge=0.5)
    assert np.isnan(out[~mask]).all() and np.isfinite(out[mask]).all()
    ok = mask.copy()
    assert psnr(clean[ok], np.clip(out[ok], 0, 1), data_range=1.0) > psnr(clean[ok], np.clip(noisy[ok], 0, 1),
                                                                          data_range=1.0) + 3


def test_zero_noise_returns_input_and_constants_stay():
    img = _camera(32)
    np.testing.assert_array_equal(denoise_nl_bayes(img, sigma=0.0, ridge=1.0), img)
    const = np.full((30, 34), 0.3)
    np.testing.assert_allclose(denoise_nl_bayes(const, sigma=0.1, ridge=1.0), 0.3, atol=1e-9)


def test_tile_margin_counts_the_ridge_pass():
    x = _camera(64)[None]
    prm = _parameters(x, x.dtype, "gaussian", 0.1, None, False, None, None, None, None)
    off = dict(prm, ridge=0.0)
    rows_on, cols_on = tile_margin(prm)
    rows_off, cols_off = tile_margin(off)
    assert rows_on > rows_off and cols_on > cols_off


@pytest.mark.parametrize("bad, exc", [(-0.1, ValueError), (1.5, ValueError), (float("nan"), ValueError),
                                      ("0.5", TypeError), (True, TypeError)])
def test_bad_ridge(bad, exc):
    with pytest.raises(exc, match="ridge"):
        denoise_nl_bayes(_camera(16), sigma=0.1, ridge=bad)


def test_ridge_refused_on_volumes():
    with pytest.raises(ValueError, match="ridge"):
        denoise_nl_bayes(np.zeros((4, 12, 12)), sigma=0.1, ridge=0.5)


def test_colour_ridge_threads_and_quality():
    clean = img_as_float(data.astronaut()[::8, ::8])
    noisy = clean + 0.1 * _rng(6).standard_normal(clean.shape)
    a = denoise_nl_bayes(noisy, channel_axis=-1, num_threads=1)
    b = denoise_nl_bayes(noisy, channel_axis=-1, num_threads=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, denoise_nl_bayes(noisy, channel_axis=-1, ridge=0))
    assert psnr(clean, np.clip(a, 0, 1)) > psnr(clean, noisy) + 5
