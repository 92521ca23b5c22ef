"""Tiled (dask) non-local means: equal to the in-memory filter under any chunking."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

from nlm import (  # noqa: E402
    denoise_nl_means,
    estimate_sigma,
    tiling,  # noqa: E402
)

# the bound, of the value range, for every dtype; the kernels do
# better: each block is told where it lies in the image, its running sums
# restart at rows fixed in the image and its bands and strips start at rows and
# columns fixed in the image, so kept pixels are bit-identical (checked too)
TOL = 1e-6


@pytest.fixture(autouse=True)
def _blocks_as_chunked(monkeypatch):
    """Filter the chunks as given (no merging into bigger working blocks), so
    that these small images really are cut into many tiles."""
    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", None)


def _noisy(shape, seed=0, channels=None, dtype=np.float32):
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    clean = (np.sin(6 * sum(grids)) > 0).astype(np.float64) * 0.6 + 0.2
    if channels:
        clean = np.stack([clean * (1 - 0.2 * c) for c in range(channels)], axis=-1)
    return (clean + rng.normal(0, 0.08, clean.shape)).astype(dtype)


def _close(tiled, ref):
    assert isinstance(tiled, da.Array)
    got = tiled.compute(scheduler="threads")
    assert got.dtype == ref.dtype and got.shape == ref.shape
    span = float(ref.max() - ref.min()) or 1.0
    err = float(np.abs(got.astype(np.float64) - ref).max()) / span
    assert err <= TOL, err
    assert np.array_equal(got, ref), f"not bit-identical (max diff {err:.2e} of the range)"
    return got


CHUNKINGS_2D = [
    (64, 64),
    (1000, 1000),
    (1, 300),  # 1-pixel chunks: all smaller than the halo
    (50, 7),
    ((128, 128, 1), (150, 149, 1)),  # 1-pixel-thin edge chunks
    ((1, 255, 1), (1, 1, 298)),
    ((13, 244), (290, 10)),
]


@pytest.mark.parametrize("chunks", CHUNKINGS_2D)
def test_automatic_parameters_equal_in_memory(chunks):
    img = _noisy((257, 300))
    ref = denoise_nl_means(img)
    _close(denoise_nl_means(da.from_array(img, chunks=chunks)), ref)


@pytest.mark.parametrize("chunks", [(40, 40), ((1, 69, 30), (99, 1))])
def test_float64_given_parameters(chunks):
    img = _noisy((100, 100), seed=1, dtype=np.float64)
    kw = dict(patch_size=5, patch_distance=6, h=0.06, sigma=0.08)
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=chunks), **kw), ref)


@pytest.mark.parametrize("preserve_range", [False, True])
def test_uint8(preserve_range):
    img = (np.clip(_noisy((90, 111), seed=2), 0, 1) * 255).astype(np.uint8)
    ref = denoise_nl_means(img, patch_size=3, patch_distance=5, preserve_range=preserve_range)
    assert ref.dtype == np.float64
    out = denoise_nl_means(
        da.from_array(img, chunks=(17, 40)), patch_size=3, patch_distance=5, preserve_range=preserve_range
    )
    _close(out, ref)


@pytest.mark.parametrize("channel_axis", [-1, 0])
def test_channels(channel_axis):
    img = np.moveaxis(_noisy((70, 83), seed=3, channels=3), -1, channel_axis)
    ref = denoise_nl_means(img, patch_size=5, patch_distance=4, channel_axis=channel_axis)
    chunks = (1, 30, 20) if channel_axis == 0 else (30, 20, 1)  # channels split too
    _close(denoise_nl_means(da.from_array(img, chunks=chunks), patch_size=5, patch_distance=4,
                            channel_axis=channel_axis), ref)


@pytest.mark.parametrize("chunks", [(7, 5, 9), ((1, 19), (23, 1), (2, 20))])
def test_volume(chunks):
    img = _noisy((20, 24, 22), seed=4)
    kw = dict(patch_size=3, patch_distance=2)
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=chunks), **kw), ref)


@pytest.mark.parametrize("chunks", [(5, 17, 11), ((2, 9, 1), (1, 20, 19, 1), (31, 2))])
def test_volume_several_bands_and_channels(chunks):
    """Volumes taller than a band (16 rows), 5^3 patches, two channels, odd shapes."""
    img = _noisy((12, 41, 33), seed=12, channels=2)
    kw = dict(patch_size=5, patch_distance=2, h=0.1, sigma=0.08, channel_axis=-1)
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=chunks + (2,)), **kw), ref)


@pytest.mark.parametrize(
    "chunks",
    [
        (100, 400),
        ((1, 133, 135, 1), (1, 499, 500, 101)),  # 1-pixel-thin edge chunks
        ((129, 128, 13), (977, 124)),  # around the band (128) and strip widths
        (17, 1101),
    ],
)
def test_several_bands_and_strips(chunks):
    """Wide and tall enough for several bands and column strips of the row kernel."""
    img = _noisy((270, 1101), seed=13)
    kw = dict(patch_size=7, patch_distance=11, h=0.07, sigma=0.08)
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=chunks), **kw), ref)


def test_rgb_odd_shape_channels_split():
    img = _noisy((151, 97), seed=14, channels=3)
    kw = dict(patch_size=5, patch_distance=6, h=0.08, sigma=0.08, channel_axis=-1)
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=(1, 31, 1)), **kw), ref)
    _close(denoise_nl_means(da.from_array(img.astype(np.float64), chunks=(40, 50, 3)), **kw),
           denoise_nl_means(img.astype(np.float64), **kw))


@pytest.mark.parametrize("chunks", [(4, 9, 11), ((1, 11), (5, 20), (25, 1))])
def test_per_axis_geometry(chunks):
    """Tuples of patch sides and radii: per-axis halos keep tiles exact."""
    img = _noisy((12, 25, 26), seed=6)
    kw = dict(patch_size=(1, 3, 5), patch_distance=(3, 2, 4))
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=chunks), **kw), ref)


def test_4d_with_channels():
    img = _noisy((4, 5, 12, 13), seed=7, channels=2)
    kw = dict(patch_size=(1, 3, 3, 3), patch_distance=(1, 1, 2, 2), channel_axis=-1)
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=(2, 3, 7, 6, 2)), **kw), ref)


def test_signal_1d_and_window_zero():
    sig = _noisy((400,), seed=5)
    ref = denoise_nl_means(sig, patch_size=5, patch_distance=9)
    _close(denoise_nl_means(da.from_array(sig, chunks=33), patch_size=5, patch_distance=9), ref)
    img = _noisy((30, 30), seed=5)
    ref = denoise_nl_means(img, patch_size=7, patch_distance=0, h=0.1)
    _close(denoise_nl_means(da.from_array(img, chunks=(3, 4)), patch_size=7, patch_distance=0, h=0.1), ref)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_chunkings(data):
    shape = (data.draw(st.integers(16, 60)), data.draw(st.integers(16, 60)))
    img = _noisy(shape, seed=data.draw(st.integers(0, 100)))
    patch_size = data.draw(st.sampled_from([1, 3, 5]))
    patch_distance = data.draw(st.integers(0, 6))
    chunks = []
    for n in shape:
        cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=6))))
        chunks.append(tuple(np.diff([0, *cuts, n]).tolist()))
    kw = dict(patch_size=patch_size, patch_distance=patch_distance, h=0.07, sigma=0.05)
    ref = denoise_nl_means(img, **kw)
    _close(denoise_nl_means(da.from_array(img, chunks=tuple(chunks)), **kw), ref)


def test_lazy_and_no_read_with_given_parameters():
    calls = []

    def load(block):
        calls.append(block.shape)
        return block

    img = _noisy((64, 64), seed=6)
    lazy = da.from_array(img, chunks=32).map_blocks(load, dtype=img.dtype, meta=np.empty((0, 0), img.dtype))
    out = denoise_nl_means(lazy, patch_size=3, patch_distance=3, h=0.1)
    assert calls == [] and isinstance(out, da.Array) and out.dtype == np.float32
    out.compute(scheduler="sync")
    assert calls


def test_sampled_parameters_of_a_large_array(monkeypatch):
    img = _noisy((300, 280), seed=7)
    monkeypatch.setattr(tiling.blocks, "SAMPLE_PIXELS", 64 * 64)
    regions = tiling.sample_regions(da.from_array(img, chunks=50), spatial_axes=(0, 1))
    assert len(regions) == 16 and sum(r.size for r in regions) <= 64 * 64 * 1.01
    lazy = da.from_array(img, chunks=50)
    full = estimate_sigma(img)
    sampled = estimate_sigma(lazy)
    assert abs(sampled - full) / full < 0.05
    # the sample sets one sigma and h for every tile: same as in memory with them
    from nlm import default_h

    ref = denoise_nl_means(img, h=default_h(sampled), sigma=sampled)
    _close(denoise_nl_means(lazy), ref)


def test_estimate_sigma_channels_exact_when_small():
    img = _noisy((64, 70), seed=8, channels=3)
    lazy = da.from_array(img, chunks=(10, 10, 1))
    assert estimate_sigma(lazy, channel_axis=-1) == estimate_sigma(img, channel_axis=-1)
    assert estimate_sigma(lazy, channel_axis=-1, average_sigmas=True) == estimate_sigma(
        img, channel_axis=-1, average_sigmas=True
    )


def test_min_chunks():
    assert tiling.min_chunks((1, 1, 1, 5, 1), 3) == (3, 6)
    assert tiling.min_chunks((10, 10, 1), 4) == (10, 11)
    assert tiling.min_chunks((2,), 14) == (2,)
    for chunks in [(3, 7, 1, 1, 20), (1,) * 30]:
        out = tiling.min_chunks(chunks, 5)
        assert sum(out) == sum(chunks) and min(out) >= 5
    # balanced: cut at the chunk boundaries nearest to an even split
    assert tiling.min_chunks((512,) * 8, 1120) == (2048, 2048)
    assert tiling.min_chunks((300,) * 7, 460) == (600, 900, 600)
    assert tiling.min_chunks((1,) * 40, 14) == (20, 20)
    assert tiling.min_chunks((1024,) * 4, 860) == (1024,) * 4  # long enough: kept


def test_min_chunks_properties():
    rng = np.random.default_rng(21)
    for _ in range(300):
        chunks = tuple(int(c) for c in rng.integers(1, 40, rng.integers(1, 30)))
        minimum = int(rng.integers(1, 120))
        out = tiling.min_chunks(chunks, minimum)
        assert sum(out) == sum(chunks)
        # every cut is one of the input's chunk boundaries
        assert set(np.cumsum(out)) <= set(np.cumsum(chunks))
        if sum(chunks) >= minimum:
            assert min(out) >= minimum
        else:
            assert out == (sum(chunks),)
        if min(chunks) >= minimum:
            assert out == chunks


def test_threaded_scheduler_with_threads_per_tile():
    img = _noisy((128, 128), seed=9)
    kw = dict(patch_size=5, patch_distance=5, h=0.08, sigma=0.08)
    ref = denoise_nl_means(img, **kw)
    out = denoise_nl_means(da.from_array(img, chunks=40), num_threads=2, **kw)
    with dask.config.set(scheduler="threads", num_workers=3):
        got = out.compute()
    assert np.array_equal(got, ref)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(patch_size=4), ValueError, "patch_size"),
        (dict(patch_size=0), ValueError, "patch_size"),
        (dict(patch_distance=-1), ValueError, "patch_distance"),
        (dict(h=0.0), ValueError, "h"),
        (dict(sigma=-1.0), ValueError, "sigma"),
        (dict(channel_axis=5), ValueError, "channel_axis"),
        (dict(noise="speckle"), ValueError, "speckle"),
        (dict(noise="rician"), ValueError, "rician.*denoise_nl_bayes tiles Rician"),
        (dict(num_threads=0), ValueError, "num_threads"),
        (dict(num_threads=1.5), TypeError, "num_threads"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        denoise_nl_means(da.from_array(np.zeros((40, 40), np.float32), chunks=10), **kwargs)


def test_bad_dtype_and_nan():
    with pytest.raises(TypeError, match="dtype"):
        denoise_nl_means(da.from_array(np.zeros((20, 20), complex), chunks=10))
    img = np.zeros((30, 30), np.float32)
    img[25, 25] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        denoise_nl_means(da.from_array(img, chunks=10), h=0.1).compute()


def test_num_threads_in_memory():
    import numba

    img = _noisy((96, 96), seed=10)
    before = numba.get_num_threads()
    a = denoise_nl_means(img, h=0.08, num_threads=1)
    assert numba.get_num_threads() == before
    b = denoise_nl_means(img, h=0.08, num_threads=10_000)  # clipped
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "shape, kw",
    [
        ((300, 1050), dict(patch_size=7, patch_distance=11)),  # several bands and strips
        ((70, 90, 3), dict(patch_size=5, patch_distance=4, channel_axis=-1)),
        ((9, 50, 21), dict(patch_size=3, patch_distance=2)),  # volume: several bands
        ((3, 4, 40, 37), dict(patch_size=(1, 3, 5, 3), patch_distance=(1, 1, 3, 2))),  # frames
    ],
)
def test_in_memory_result_independent_of_thread_count(shape, kw):
    """Bands and strips are fixed in the image: any thread count, the same bits."""
    img = _noisy(shape, seed=15)
    ref = denoise_nl_means(img, h=0.08, sigma=0.08, num_threads=1, **kw)
    for threads in (2, 3):
        assert np.array_equal(denoise_nl_means(img, h=0.08, sigma=0.08, num_threads=threads, **kw), ref)


def test_small_chunks_filtered_in_working_blocks(monkeypatch):
    """By default chunks are merged until the margins cost at most MARGIN_WORK per axis."""
    import numba

    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", 0.05)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)  # at least 2 blocks wanted
    img = _noisy((2100, 90), seed=16)
    kw = dict(patch_size=3, patch_distance=3, h=0.08, sigma=0.08)
    lazy = da.from_array(img, chunks=(300, 30))
    out = denoise_nl_means(lazy, **kw)
    # rows: margins 4 + 15 (anchor) before and 4 after -> at least 23 / 0.05 = 460 rows,
    # in three nearly equal blocks; columns: 8 / 0.05 = 160 > 90, one chunk
    assert out.chunks == ((600, 900, 600), (90,))
    _close(out, denoise_nl_means(img, **kw))
    margins = ((29, 14), (14, 14))  # the scale benchmark's: patch 7, distance 11
    chunks = ((512,) * 8,) * 2
    # whole rows fit the pixel budget: the columns are one piece
    assert tiling.blocks._work_minimum(chunks, (0, 1), margins, 7) == (860, 4096)
    assert tiling.tile_chunks(chunks, (0, 1), margins, (860, 4096)) == ((1024,) * 4, (4096,))
    # over the budget: columns merged only as the margins need
    monkeypatch.setattr(tiling.blocks, "WORK_PIXELS", 860 * 4096 - 1)
    assert tiling.blocks._work_minimum(chunks, (0, 1), margins, 7) == (860, 560)
    assert tiling.tile_chunks(chunks, (0, 1), margins, (860, 560)) == ((1024,) * 4,) * 2
    # chunks of 1024 already cost less: kept
    assert tiling.tile_chunks(((1024,) * 4,) * 2, (0, 1), margins, (860, 560)) == ((1024,) * 4,) * 2
    monkeypatch.setattr(tiling.blocks, "WORK_PIXELS", 860 * 4096)
    # channels count in the budget
    assert tiling.blocks._work_minimum(chunks + ((3,),), (0, 1), margins, 7) == (860, 560)
    # the default: 2.5 % per axis; the 4096^2 benchmark image becomes one band of whole rows per core
    monkeypatch.setattr(tiling.blocks, "WORK_PIXELS", 1 << 24)
    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", 0.025)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    for c in (512, 1024, 2048):
        ch = ((c,) * (4096 // c),) * 2
        work = tiling.blocks._work_minimum(ch, (0, 1), margins, 7)
        assert work == (1720, 4096)
        assert tiling.tile_chunks(ch, (0, 1), margins, work) == ((2048, 2048), (4096,))
    # never fewer blocks than cores: the row minimum is halved first, then the columns' too
    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", 0.05)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 4)
    small = ((256,) * 6,) * 2
    work = tiling.blocks._work_minimum(small, (0, 1), margins, 7)
    assert work == (215, 1536)
    assert tiling.tile_chunks(small, (0, 1), margins, work) == ((256,) * 6, (1536,))
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 16)
    work = tiling.blocks._work_minimum(((512, 512),) * 2, (0, 1), margins, 7)
    assert len(tiling.tile_chunks(((512, 512),) * 2, (0, 1), margins, work)[1]) == 2


def test_threads_per_block(monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 8)
    assert [tiling.blocks._threads_per_block(b) for b in (1, 3, 8, 64)] == [8, 2, 1, 1]


def test_map_tiles_asymmetric_margins_and_origin():
    """Each block gets its margins (before, after) and its position in the image."""
    img = np.arange(47 * 30).reshape(47, 30)
    seen = []

    def func(block, origin):
        seen.append(origin)
        assert block[0, 0] == origin[0] * 30 + origin[1]  # the pixel at `origin`
        return block * 2

    lazy = da.from_array(img, chunks=((10, 20, 2, 15), (12, 18)))
    out = tiling.map_tiles(func, lazy, ((5, 2), 3), spatial_axes=(0, 1), dtype=img.dtype, origin=True)
    assert out.chunks == ((10, 20, 17), (12, 18))  # the chunk under the margin merged
    np.testing.assert_array_equal(out.compute(scheduler="sync"), img * 2)
    assert {(0, 0), (5, 0), (25, 0), (0, 9), (5, 9), (25, 9)} <= set(seen)


def test_import_nlm_does_not_import_dask():
    code = (
        "import sys, numpy as np, nlm\n"
        "nlm.denoise_nl_means(np.random.default_rng(0).random((32, 32)), h=0.1)\n"
        "nlm.estimate_sigma(np.random.default_rng(0).random((32, 32)))\n"
        "print(sorted(m for m in ('dask', 'distributed', 'zarr') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_compiled_kernel_releases_the_gil():
    from numba.core.registry import CPUDispatcher

    from nlm.ops import _nlm_kernels

    kernels = [v for v in vars(_nlm_kernels).values() if isinstance(v, CPUDispatcher)]
    assert len(kernels) >= 5
    assert all(k.targetoptions.get("nogil") for k in kernels), [
        k.__name__ for k in kernels if not k.targetoptions.get("nogil")
    ]


@pytest.mark.parametrize("chunks, channels", [(((1, 59, 60), (50, 70)), None), ((50, 60, 3), 3)])
def test_nl_bayes_tiles_close_to_in_memory(chunks, channels):
    from nlm import denoise_nl_bayes
    from nlm.metrics import psnr

    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:120, 0:120]
    clean = np.where((np.sin(x / 9.0) * np.cos(y / 13.0)) > 0, 0.7, 0.25)
    if channels:
        clean = np.stack([clean * (1 - 0.15 * c) for c in range(channels)], axis=-1)
    noisy = (clean + rng.normal(0, 0.08, clean.shape)).astype(np.float32)
    axis = -1 if channels else None
    ref, model = denoise_nl_bayes(noisy, sigma=0.08, channel_axis=axis, return_model=True)
    tiled, tmodel = denoise_nl_bayes(da.from_array(noisy, chunks=chunks), sigma=0.08, channel_axis=axis,
                                     return_model=True)
    assert isinstance(tiled, da.Array) and tmodel == model
    got = tiled.compute()
    assert got.dtype == ref.dtype and got.shape == ref.shape
    # exact (cells, grid and parameters of the whole image; tests/test_bayes_tiled.py cuts finer)
    np.testing.assert_array_equal(got, ref)
    assert psnr(clean, got, data_range=1.0) > psnr(clean, noisy, data_range=1.0) + 5
    # a single chunk is the in-memory computation
    whole = denoise_nl_bayes(da.from_array(noisy, chunks=-1), sigma=0.08, channel_axis=axis).compute()
    assert np.array_equal(whole, ref)


def test_nl_bayes_tiles_with_the_third_pass():
    """Gamma noise (three passes by default): tiles get the three passes' margin, equal to in-memory."""
    from nlm import denoise_nl_bayes
    from nlm.metrics import psnr
    from nlm.noise import Gamma

    y, x = np.mgrid[0:120, 0:120]
    clean = np.where((np.sin(x / 9.0) * np.cos(y / 13.0)) > 0, 0.7, 0.25)
    noisy = Gamma(4).sample(clean, seed=12).astype(np.float32)
    ref = denoise_nl_bayes(noisy, looks=4)
    assert not np.array_equal(ref, denoise_nl_bayes(noisy, looks=4, passes=2))
    got = denoise_nl_bayes(da.from_array(noisy, chunks=((1, 59, 60), (50, 70))), looks=4).compute()
    np.testing.assert_array_equal(got, ref)
    assert psnr(clean, got, data_range=1.0) > psnr(clean, noisy, data_range=1.0) + 5
    whole = denoise_nl_bayes(da.from_array(noisy, chunks=-1), looks=4).compute()
    assert np.array_equal(whole, ref)
    two = denoise_nl_bayes(da.from_array(noisy, chunks=-1), looks=4, passes=2).compute()
    assert np.array_equal(two, denoise_nl_bayes(noisy, looks=4, passes=2))


def test_dispatch_is_on_top():
    """The in-memory functions refuse a dask array (no hidden compute); the public ones tile it."""
    from nlm.denoisers.bayes import denoise_nl_bayes as bayes_in_memory
    from nlm.denoisers.means import denoise_nl_means as means_in_memory
    from nlm.noise import estimate_sigma as sigma_in_memory

    lazy = da.zeros((16, 16), chunks=8)
    for func, name in ((means_in_memory, "denoise_nl_means"), (bayes_in_memory, "denoise_nl_bayes"),
                       (sigma_in_memory, "estimate_sigma")):
        with pytest.raises(TypeError, match=f"nlm.{name}"):
            func(lazy)
    import nlm

    for name in ("denoise_nl_means", "denoise_nl_bayes", "estimate_sigma"):
        public = getattr(nlm, name)
        assert public is getattr(tiling, name)
        assert public.__doc__ and "Parameters" in public.__doc__  # the in-memory function's docstring
    out = nlm.denoise_nl_means(lazy, 3, 2, h=0.1)
    assert isinstance(out, da.Array)
    with pytest.raises(TypeError):  # bound to the real signature
        nlm.denoise_nl_means(lazy, 3, 2, h=0.1, bogus=1)
