"""Tiled NL-Bayes: a dask array gives the in-memory result, bit for bit (issue 20, item 5)."""

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nlm
from nlm import tiling
from nlm.denoisers import bayes_passes as _passes
from nlm.denoisers import bayes_setup as _setup
from nlm.denoisers.bayes import denoise_nl_bayes as in_memory
from nlm.noise import Gamma

# small windows and patches keep the margins (and the tests) small: radius 3,
# patch 3 -> cells of 9, margins 2 x 25 rows and 2 x 43 columns (dask's
# overlap makes every chunk at least its axis margin); two passes and no
# NL-Ridge pass (its own margin is tested in test_ridge_pass_tiles_exactly)
SMALL = dict(search_radius=3, patch_size=3, n_similar=(12, 8), passes=2, ridge=0)


@pytest.fixture(autouse=True)
def _blocks_as_chunked(monkeypatch):
    """Filter the chunks as given (no merging into bigger working blocks), so that these small images
    really are cut into tiles."""
    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", None)


def _clean(shape, channels=None):
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    clean = np.where((np.sin(x / 7.0) * np.cos(y / 11.0)) > 0, 0.7, 0.25) + 0.1 * np.sin(x / 23.0 + y / 31.0)
    if channels:
        clean = np.stack([clean * (1 - 0.15 * c) for c in range(channels)], axis=-1)
    return clean


def _noisy(shape, seed=0, channels=None, dtype=np.float32, sigma=0.08):
    clean = _clean(shape, channels)
    y = np.clip(clean + np.random.default_rng(seed).normal(0, sigma, clean.shape), 0, 1)
    if np.dtype(dtype).kind == "u":
        return np.round(y * np.iinfo(dtype).max).astype(dtype)
    return y.astype(dtype)


def _tiles(out):
    return [len(c) for c in out.chunks]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("chunks, channels", [((45, 49), None), ((93, 29), None), ((45, 50, 3), 3)])
def test_tiles_equal_in_memory(dtype, chunks, channels):
    """Odd chunkings, grey and colour, every dtype, sigma estimated: identical to the in-memory call."""
    image = _noisy((181, 197), seed=1, channels=channels, dtype=dtype)
    axis = -1 if channels else None
    ref, model = in_memory(image, channel_axis=axis, return_model=True, **SMALL)
    lazy, tmodel = nlm.denoise_nl_bayes(da.from_array(image, chunks=chunks), channel_axis=axis, return_model=True,
                                        **SMALL)
    assert isinstance(lazy, da.Array) and tmodel == model
    assert min(_tiles(lazy)[:2]) >= 2, lazy.chunks  # really tiled
    got = lazy.compute()
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("preserve_range", [False, True])
def test_raw_integers_and_given_sigma(preserve_range):
    image = _noisy((190, 200), seed=2, dtype=np.uint16)
    sigma = 0.08 * (65535 if preserve_range else 1)
    kw = dict(sigma=sigma, preserve_range=preserve_range, stride=3, **SMALL)
    ref = in_memory(image, **kw)
    got = nlm.denoise_nl_bayes(da.from_array(image, chunks=(50, 47)), **kw).compute()
    np.testing.assert_array_equal(got, ref)


def test_default_parameters_and_the_third_pass():
    """The default table (sigma 25 of 255: radius 11 in step 1, 24 in step 2, patch 5; two passes, no
    NL-Ridge pass) and Gamma noise's three passes."""
    image = _noisy((330, 1000), seed=3, sigma=25 / 255)
    kw = dict(sigma=25 / 255, passes=2, ridge=0)
    ref = in_memory(image, **kw)
    lazy = nlm.denoise_nl_bayes(da.from_array(image, chunks=(330, 500)), **kw)
    assert _tiles(lazy) == [1, 2]  # margins of 236 rows and 396 columns
    np.testing.assert_array_equal(lazy.compute(), ref)
    speckled = Gamma(4).sample(_clean((270, 280)), seed=4).astype(np.float32)
    kw = dict(looks=4, search_radius=3, patch_size=3)
    ref = in_memory(speckled, **kw)
    lazy = nlm.denoise_nl_bayes(da.from_array(speckled, chunks=(45, 45)), **kw)  # margins 75 and 129
    assert min(_tiles(lazy)) >= 2
    np.testing.assert_array_equal(lazy.compute(), ref)


@pytest.mark.parametrize("channels", [None, 3])
def test_ridge_pass_tiles_exactly(channels):
    """The NL-Ridge pass (patch 5, radius 6: cells of 17) adds its margin: 2 x 25 + 49 rows, 2 x 43 + 83 columns."""
    image = _noisy((220, 360), seed=5, channels=channels)
    axis = -1 if channels else None
    kw = dict(SMALL, ridge=0.5, channel_axis=axis)
    prm_rows, prm_cols = 2 * 25 + 49, 2 * 43 + 83
    ref = in_memory(image, **kw)
    lazy = nlm.denoise_nl_bayes(da.from_array(image, chunks=(110, 180) + ((3,) if channels else ())), **kw)
    assert _tiles(lazy)[:2] == [2, 2], (lazy.chunks, prm_rows, prm_cols)
    np.testing.assert_array_equal(lazy.compute(), ref)


def test_third_pass_own_patch_tiles_exactly(monkeypatch):
    """Pass 3 with a patch of its own (the table's ``patch3``; 5 x 5 after 7 x 7 at sigma 50, here 3 after 5)
    runs it and adds its own margin: tiles equal the in-memory result."""
    from nlm.denoisers import bayes_setup

    table = bayes_setup.bayes_parameters

    def small(*args, **kwargs):
        prm = table(*args, **kwargs)
        prm.update(patch1=3, patch2=5, patch3=3)
        return prm

    monkeypatch.setattr(bayes_setup, "bayes_parameters", small)
    image = _noisy((220, 360), seed=6)
    kw = dict(sigma=0.08, search_radius=3, n_similar=(12, 8), passes=3, ridge=0)
    ref = in_memory(image, **kw)
    assert not np.array_equal(ref, in_memory(image, **dict(kw, patch_size=(3, 5))))  # pass 3 took patch 3
    lazy = nlm.denoise_nl_bayes(da.from_array(image, chunks=(110, 180)), **kw)
    assert _tiles(lazy) == [2, 2]  # margins 25 + 31 + 25 rows, 43 + 53 + 43 columns
    np.testing.assert_array_equal(lazy.compute(), ref)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(150, 220),
    width=st.integers(150, 240),
    ch=st.integers(20, 70),
    cw=st.integers(20, 70),
    stride=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_any_chunking_equals_in_memory(height, width, ch, cw, stride, seed):
    image = _noisy((height, width), seed=seed)
    kw = dict(sigma=0.08, stride=stride, search_radius=2, patch_size=3, n_similar=(10, 6))
    ref = in_memory(image, **kw)
    got = nlm.denoise_nl_bayes(da.from_array(image, chunks=(ch, cw)), **kw).compute()
    np.testing.assert_array_equal(got, ref)


def test_thread_count_does_not_matter():
    image = _noisy((180, 190), seed=5)
    lazy = [nlm.denoise_nl_bayes(da.from_array(image, chunks=(90, 95)), sigma=0.08, num_threads=t, **SMALL)
            for t in (1, 2)]
    one, two = (a.compute(scheduler="threads") for a in lazy)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, in_memory(image, sigma=0.08, num_threads=2, **SMALL))


def test_the_margin_is_needed(monkeypatch):
    """With half the margin the tiles differ from the image: the tests above can see a wrong margin."""
    image = _noisy((200, 200), seed=6)
    ref = in_memory(image, sigma=0.08, **SMALL)
    full = _passes.tile_margin
    monkeypatch.setattr(_passes, "tile_margin", lambda prm: tuple(m // 3 for m in full(prm)))
    got = nlm.denoise_nl_bayes(da.from_array(image, chunks=(50, 50)), sigma=0.08, **SMALL).compute()
    assert not np.array_equal(got, ref)


def test_margins_grow_with_the_parameters():
    prm = dict(radius=11, p1=5, p2=5, passes=2)
    assert _passes.tile_margin(prm) == (2 * (54 + 22 + 3), 2 * (108 + 22 + 3))
    assert _passes.tile_margin(dict(prm, passes=3)) == (3 * 79, 3 * 133)


def test_large_image_sample_and_bad_pixels_outside_it(monkeypatch):
    """Above the sample budget the parameters come from windows, the data's range from the whole array:
    a negative pixel the windows miss still fails a multiplicative model, before any tile runs."""
    monkeypatch.setattr(tiling.blocks, "SAMPLE_PIXELS", 2000)
    image = Gamma(4).sample(_clean((160, 260)), seed=7).astype(np.float32)
    image[0, 0] = -1.0
    with pytest.raises(ValueError, match="non-negative"):
        nlm.denoise_nl_bayes(da.from_array(image, chunks=(60, 100)), looks=4, **SMALL)
    image[0, 0] = 0.5
    got = nlm.denoise_nl_bayes(da.from_array(image, chunks=(60, 100)), looks=4, **SMALL).compute()
    # the parameters (the mean noise level and its thresholds) come from the windows: not the
    # in-memory call's, but a result of the same quality
    ref = in_memory(image, looks=4, **SMALL)
    clean = _clean((160, 260))
    assert got.shape == ref.shape and np.isfinite(got).all()
    assert abs(np.mean((got - clean) ** 2) / np.mean((ref - clean) ** 2) - 1) < 0.05


@pytest.mark.parametrize("sample", [None, 2000])
def test_nan_anywhere_is_refused(monkeypatch, sample):
    """NaN in the sample, or (a large image) only outside it: a clear ValueError before any tile runs."""
    if sample:
        monkeypatch.setattr(tiling.blocks, "SAMPLE_PIXELS", sample)
    image = _noisy((100, 100), seed=8)
    image[0, 99] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nlm.denoise_nl_bayes(da.from_array(image, chunks=50), sigma=0.08, **SMALL)


def test_nan_in_a_tile_fails_the_computation():
    """A block checks its own values too (an array whose extremes were not looked at)."""
    image = _noisy((100, 100), seed=8)
    image[70, 80] = np.nan
    func = tiling.bayes._nl_bayes_block
    prm = _setup._parameters(_noisy((100, 100))[None], np.dtype(np.float32), "gaussian", 0.08, None, False, None,
                             None, 3, None)
    with pytest.raises(ValueError, match="NaN"):
        func(image, (0, 0), prm=prm, channel_axis=None, preserve_range=False, stride=2, num_threads=1,
             shape=image.shape)


def test_tiled_entry_point_and_its_errors():
    image = _noisy((180, 190), seed=9)
    lazy = tiling.denoise_nl_bayes_tiled(da.from_array(image, chunks=45), sigma=0.08, work_pixels=1 << 20, **SMALL)
    np.testing.assert_array_equal(lazy.compute(), in_memory(image, sigma=0.08, **SMALL))
    with pytest.raises(TypeError, match="dask array"):
        tiling.denoise_nl_bayes_tiled(image, sigma=0.08)
    with pytest.raises(ValueError, match="work_pixels"):
        tiling.denoise_nl_bayes_tiled(da.from_array(image), sigma=0.08, work_pixels=0)
    with pytest.raises(TypeError):
        tiling.denoise_nl_bayes_tiled(da.from_array(image), sigma=0.08, bogus=1)


def test_working_blocks_follow_the_budget(monkeypatch):
    """Whole rows when they fit the budget; else square-ish blocks of about the budget; cores kept busy."""
    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", 0.025)
    import numba

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    depth = ((158, 158), (266, 266))
    rows, minimum = tiling.bayes._bayes_blocks(da.zeros((9000, 1000), chunks=512), (0, 1), depth, 5, 1 << 22)
    assert minimum == ((1 << 22) // 1000 - 316, 1000)
    assert tiling.tile_chunks(rows.chunks, (0, 1), depth, minimum)[1] == (1000,)
    big = da.zeros((3000, 9000), chunks=4096)
    split, minimum = tiling.bayes._bayes_blocks(big, (0, 1), depth, 5, 1 << 20)
    assert minimum == (1024 - 316, 1024 - 532)
    chunks = tiling.tile_chunks(split.chunks, (0, 1), depth, minimum)
    assert max(chunks[0]) <= 2 * minimum[0] and max(chunks[1]) <= 2 * minimum[1]
    # a small image still gives a block per core
    small, minimum = tiling.bayes._bayes_blocks(da.zeros((700, 500), chunks=100), (0, 1), depth, 5, 1 << 22)
    assert np.prod([len(c) for c in tiling.tile_chunks(small.chunks, (0, 1), depth, minimum)]) >= 2
    # any number of spatial axes (for 3-D NL-Bayes): near-cubic blocks within the budget, at least the margins
    cube = da.zeros((256, 256, 256), chunks=64)
    vol, minimum = tiling.bayes._bayes_blocks(cube, (0, 1, 2), ((20, 20),) * 3, 5, 1 << 20)
    assert len(minimum) == 3 and min(minimum) >= 20
    assert np.prod([m + 40 for m in minimum]) <= 1 << 20


@pytest.mark.parametrize("shape, chunks, channels", [
    ((12, 30, 450), (12, 30, 225), None),  # cut along x (the longest chain: 7 cells)
    ((440, 12, 14), (220, 12, 14), None),  # along z
    ((8, 20, 440, 3), (8, 20, 220, 3), 3),  # colour
])
def test_volume_tiles_equal_in_memory(shape, chunks, channels):
    """3-D NL-Bayes (nlm.ops._bayes_volume, the same cells and origin): tiles equal the in-memory volume."""
    rng = np.random.default_rng(10)
    grid = np.indices(shape[:3])
    clean = np.where(np.sin(grid[2] / 7.0) * np.cos(grid[1] / 5.0 + grid[0] / 4.0) > 0, 0.7, 0.25)
    if channels:
        clean = np.stack([clean * (1 - 0.15 * c) for c in range(channels)], axis=-1)
    vol = (clean + rng.normal(0, 0.08, clean.shape)).astype(np.float32)
    kw = dict(sigma=0.08, patch_size=3, search_radius=2, channel_axis=-1 if channels else None)
    ref = in_memory(vol, **kw)
    lazy = nlm.denoise_nl_bayes(da.from_array(vol, chunks=chunks), **kw)
    assert max(lazy.numblocks) >= 2  # margins 63 / 111 / 207 (three passes)
    np.testing.assert_array_equal(lazy.compute(), ref)


@pytest.mark.parametrize("chunks", [(1, 40, 44), 120, (30, 20, 44)])
def test_volume_blocks_respect_the_budget(monkeypatch, chunks):
    """Volumes: the largest working block (chunk + margins) holds at most the budget's values wherever the
    margins allow it, whatever the input's chunks (pages, one chunk, bigger than a block); never shorter
    than the margins."""
    import numba

    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", 0.025)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    depth = ((6, 6), (8, 8), (10, 10))
    image = da.zeros((120, 40, 44), np.float32, chunks=chunks)
    for budget in (30_000, 60_000, 100_000, 200_000):
        planned, minimum = tiling.bayes._bayes_blocks(image, (0, 1, 2), depth, 3, budget)
        tiles = tiling.tile_chunks(planned.chunks, (0, 1, 2), depth, minimum)
        assert tiling.blocks._largest_block(tiles, (0, 1, 2), depth) <= budget, budget
        assert all(min(c) >= m for c, (m, _) in zip(tiles, depth))
        assert np.prod([len(c) for c in tiles]) >= 2  # still a block per core


def test_volume_blocks_within_a_budget_are_exact(monkeypatch):
    """A volume tiled by a small budget (the planner on, not the chunks as given): bit-identical to in memory."""
    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", 0.025)
    rng = np.random.default_rng(5)
    z = np.linspace(0, 3, 200)[:, None, None]
    vol = np.clip(0.5 + 0.3 * np.sin(z) + 0.05 * rng.standard_normal((200, 14, 16)), 0, 1).astype(np.float32)
    kw = dict(search_radius=2, patch_size=3)
    ref = in_memory(vol, **kw)
    out = tiling.denoise_nl_bayes_tiled(da.from_array(vol, chunks=(1, 14, 16)), work_pixels=170 * 14 * 16, **kw)
    assert out.numblocks[0] >= 2
    np.testing.assert_array_equal(out.compute(), ref)


# ------------------------------------------------------------------ noise maps and masks (issue 20, items 3-5)
def _map_and_mask(shape, seed=0):
    """A noise std ramp along the last axis and a mask with a slab, a block at a corner and a lone pixel."""
    rng = np.random.default_rng(seed)
    smap = 0.02 + 0.18 * np.linspace(0, 1, shape[-1]) * np.ones(shape)
    mask = np.ones(shape, bool)
    mid = tuple(slice(n // 4, n // 4 + max(2, n // 8)) for n in shape[:-1]) + (slice(3, -5),)
    mask[mid] = False
    mask[(slice(-4, None),) * len(shape)] = False
    mask[tuple(int(rng.integers(0, n)) for n in shape)] = False
    return smap, mask


def _as(kind, a, chunks):
    return da.from_array(a, chunks=chunks) if kind == "dask" else a


@pytest.mark.parametrize("what", ["map", "mask", "both"])
@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_maps_and_masks_tiles_equal_in_memory(what, kind):
    """2-D, odd chunks: a noise map and/or a mask (NumPy or dask, chunked their own way) give the in-memory
    result bit for bit; masked pixels (here NaN) come back as given."""
    shape = (161, 191)
    smap, mask = _map_and_mask(shape, seed=1)
    image = (_clean(shape) + smap * np.random.default_rng(2).standard_normal(shape)).astype(np.float32)
    kw = dict(noise="gaussian", **SMALL)  # margins 50 rows, 86 columns
    if what != "mask":
        kw["sigma"] = smap
    if what != "map":
        kw["mask"] = mask
        image[~mask] = np.nan
    ref = in_memory(image, **kw)
    lazy_kw = {k: (_as(kind, v, (40, 70)) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    lazy = nlm.denoise_nl_bayes(da.from_array(image, chunks=(53, 95)), **lazy_kw)
    assert min(_tiles(lazy)) >= 2, lazy.chunks
    got = lazy.compute()
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)
    if what != "map":
        assert np.isnan(got[~mask]).all() and np.isfinite(got[mask]).all()


def test_colour_uint16_and_mask_tiles_equal_in_memory():
    shape = (130, 140)
    _, mask = _map_and_mask(shape, seed=3)
    image = _noisy(shape, seed=3, channels=3, dtype=np.uint16)
    image[~mask] = 7
    kw = dict(mask=mask, channel_axis=-1, **SMALL)
    ref = in_memory(image, **kw)
    got = nlm.denoise_nl_bayes(da.from_array(image, chunks=(50, 47, 3)), **kw).compute()
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got[~mask], 7 / 65535)


@pytest.mark.parametrize("shape, chunks", [
    ((10, 12, 300), (10, 12, 151)),  # cut along x (the longest chain)
    ((90, 12, 14), (45, 12, 14)),  # along z
])
def test_volume_maps_and_masks_tiles_equal_in_memory(shape, chunks):
    smap, mask = _map_and_mask(shape, seed=4)
    grid = np.indices(shape)
    clean = np.where(np.sin(grid[2] / 7.0) * np.cos(grid[1] / 5.0 + grid[0] / 4.0) > 0, 0.7, 0.25)
    vol = (clean + smap * np.random.default_rng(5).standard_normal(shape)).astype(np.float32)
    vol[~mask] = -9999.0
    kw = dict(sigma=smap, mask=mask, patch_size=3, search_radius=2, passes=2)
    ref = in_memory(vol, **kw)
    lazy = nlm.denoise_nl_bayes(da.from_array(vol, chunks=chunks), **dict(kw, mask=da.from_array(mask, chunks=50)))
    assert max(lazy.numblocks) >= 2  # margins 42 / 74 / 138 (two passes)
    got = lazy.compute()
    np.testing.assert_array_equal(got, ref)
    assert (got[~mask] == -9999.0).all()


def test_large_image_with_lazy_map_and_mask(monkeypatch):
    """Above the sample budget: the map's RMS from the whole (lazy) map, the data's range from the valid
    pixels only (a masked -9999 does not count), a NaN at a valid pixel outside the sample refused."""
    monkeypatch.setattr(tiling.blocks, "SAMPLE_PIXELS", 3000)
    shape = (150, 170)
    smap, mask = _map_and_mask(shape, seed=6)
    image = np.clip(_clean(shape) + smap * np.random.default_rng(7).standard_normal(shape), 0, 1).astype(np.float32)
    image[~mask] = -9999.0
    kw = dict(sigma=smap, mask=mask, **SMALL)
    lazy_kw = dict(kw, sigma=da.from_array(smap, chunks=60), mask=da.from_array(mask, chunks=60))
    got = nlm.denoise_nl_bayes(da.from_array(image, chunks=(50, 57)), **lazy_kw).compute()
    # valid data in [0, 1] and a given map: the parameters are those of the whole image
    np.testing.assert_array_equal(got, in_memory(image, **kw))
    bad = image.copy()
    bad[mask.nonzero()[0][-1], mask.nonzero()[1][-1]] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nlm.denoise_nl_bayes(da.from_array(bad, chunks=(50, 57)), **lazy_kw)
    neg = smap.copy()
    neg[0, 0] = -1
    with pytest.raises(ValueError, match=">= 0"):
        nlm.denoise_nl_bayes(da.from_array(image, chunks=(50, 57)), **dict(lazy_kw, sigma=da.from_array(neg)))


def test_maps_and_masks_errors_on_dask_arrays():
    image = da.from_array(_noisy((60, 70)), chunks=30)
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_bayes(image, sigma=np.ones((60, 71)))
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_bayes(image, sigma=da.ones((60, 71)))
    with pytest.raises(ValueError, match="sigma"):
        nlm.denoise_nl_bayes(image, sigma=np.ones((60, 70)), noise="gamma")
    with pytest.raises(ValueError, match="mask"):
        nlm.denoise_nl_bayes(image, mask=np.ones((60, 71), bool))
    with pytest.raises(ValueError, match="mask"):
        nlm.denoise_nl_bayes(image, mask=da.full((60, 70), 2, dtype=np.uint8))
    with pytest.raises(ValueError, match="every pixel"):
        nlm.denoise_nl_bayes(image, sigma=0.1, mask=np.zeros((60, 70), bool))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(100, 150),
    width=st.integers(160, 220),
    ch=st.integers(42, 70),
    cw=st.integers(74, 110),
    stride=st.sampled_from([1, 2, 4]),  # 4 > patch: the grid leaves gaps that the masked run fills
    holes=st.floats(0.0, 0.2),
    seed=st.integers(0, 1000),
)
def test_any_chunking_with_map_and_mask_equals_in_memory(height, width, ch, cw, stride, holes, seed):
    rng = np.random.default_rng(seed)
    image = _noisy((height, width), seed=seed)
    smap = 0.03 + 0.1 * rng.random((height, width))
    mask = rng.random((height, width)) >= holes
    mask[: height // 3, width // 2 : width // 2 + 9] = False
    kw = dict(sigma=smap, mask=mask, stride=stride, search_radius=2, patch_size=3, n_similar=(10, 6), passes=2)
    ref = in_memory(image, **kw)
    got = nlm.denoise_nl_bayes(da.from_array(image, chunks=(ch, cw)), **kw).compute()
    np.testing.assert_array_equal(got, ref)
