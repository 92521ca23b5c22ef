"""`nlm denoise --method bayes` tile by tile (--memory-limit, zarr, --scheduler): the in-memory output, bit for bit."""

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import cli

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

# small windows keep the margins small (2 x 25 rows, 2 x 43 columns), so that
# these small images are cut into several tiles
SMALL = ("--method", "bayes", "--patch-size", "3", "--patch-distance", "3")
TILED = ("--memory-limit", "1K", "--tile-size", "64")


@pytest.fixture(autouse=True)
def blocks(monkeypatch):
    """Working blocks as the chunks (merged only to the margins), and a record of how many the filter got."""
    from nlm import tiling

    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", None)
    seen = []
    original = tiling.map_tiles

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(int(np.prod(out.numblocks)))
        return out

    monkeypatch.setattr(tiling.bayes, "map_tiles", recording)
    return seen


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def _image(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    clean = np.where((np.sin(x / 9.0) * np.cos(y / 13.0)) > 0, 0.7, 0.25)
    if len(shape) == 3:
        clean = np.stack([clean * (1 - 0.15 * c) for c in range(shape[2])], axis=-1)
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)
    if np.dtype(dtype).kind == "f":
        return noisy.astype(dtype)
    return np.rint(noisy * np.iinfo(dtype).max).astype(dtype)


def _same(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a, b), float(np.abs(a.astype(np.float64) - b).max())


def _in_memory(tmp_path, src, *opts):
    ref = tmp_path / "ref.tif"
    r = run("denoise", src, ref, "-q", *opts)
    assert r.exit_code == 0, r.output
    assert "tile by tile" not in r.output
    return tifffile.imread(ref)


@pytest.mark.parametrize(
    "shape, dtype, opts",
    [((330, 200), np.uint8, ()), ((260, 330, 3), np.uint16, ()), ((330, 200), np.float32, ("--sigma", "0.08")),
     ((260, 330), np.uint8, ("--noise", "poisson")), ((330, 200), np.uint8, ("--looks", "4"))],
)
def test_out_of_core_bayes_equals_in_memory(tmp_path, shape, dtype, opts, blocks):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image(shape, dtype), photometric="rgb" if len(shape) == 3 else "minisblack")
    ref = _in_memory(tmp_path, src, *SMALL, *opts)
    out = tmp_path / "out.tif"
    r = run("denoise", src, out, *SMALL, *opts, *TILED)
    assert r.exit_code == 0, r.output
    assert "processed tile by tile" in r.output
    assert blocks[0] >= 2
    _same(tifffile.imread(out), ref)


def test_default_parameters(tmp_path, blocks):
    """The default table (sigma about 20 of 255: radius 11, patch 5, three passes and the NL-Ridge pass:
    margins 286 rows and 482 columns)."""
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((720, 200), seed=1))
    ref = _in_memory(tmp_path, src, "--method", "bayes")
    out = tmp_path / "out.tif"
    r = run("denoise", src, out, "--method", "bayes", *TILED, "-q")
    assert r.exit_code == 0, r.output
    assert blocks[0] >= 2
    _same(tifffile.imread(out), ref)


def test_zarr_out_and_in(tmp_path, blocks):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((330, 210), seed=2))
    ref = _in_memory(tmp_path, src, *SMALL)
    store = tmp_path / "out.zarr"
    r = run("denoise", src, store, *SMALL, "--tile-size", "64", "-q")
    assert r.exit_code == 0, r.output
    _same(np.asarray(zarr.open_group(str(store), mode="r")["0"]), ref)
    plain = tmp_path / "plain.zarr"
    arr = zarr.create_array(str(plain), shape=(330, 210), chunks=(55, 70), dtype=np.uint8)
    arr[:] = _image((330, 210), seed=2)
    back = tmp_path / "back.tif"
    assert run("denoise", plain, back, *SMALL, "-q").exit_code == 0
    assert blocks[0] >= 2  # the zarr store read with --tile-size 64: tiles
    _same(tifffile.imread(back), ref)


@pytest.fixture
def local_cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster


def test_scheduler(tmp_path, local_cluster, blocks):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((330, 190), seed=3))
    ref = _in_memory(tmp_path, src, *SMALL)
    out = tmp_path / "out.tif"
    r = run("denoise", src, out, *SMALL, "--scheduler", local_cluster.scheduler_address, "--tile-size", "64", "-q")
    assert r.exit_code == 0, r.output
    assert blocks[0] >= 2
    _same(tifffile.imread(out), ref)


def test_errors(tmp_path):
    """NaN, a model that does not fit: clear errors, nothing written."""
    bad = tmp_path / "nan.tif"
    img = _image((100, 100), np.float32)
    img[70, 75] = np.nan
    tifffile.imwrite(bad, img)
    r = run("denoise", bad, tmp_path / "o.tif", *SMALL, *TILED)
    assert r.exit_code == 1 and "NaN" in r.output
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((100, 100)))
    r = run("denoise", src, tmp_path / "g.tif", *SMALL, "--noise", "gamma", *TILED)
    assert r.exit_code in (0, 1), r.output
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_budget_counts_nl_bayes_working_set(tmp_path):
    """An image whose NLM run fits the limit but whose NL-Bayes run (1.5 times more) does not goes tile by tile."""
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((100, 100)))  # 5 float32 copies: 200000 bytes
    r = run("denoise", src, tmp_path / "m.tif", "--memory-limit", "250000")
    assert r.exit_code == 0 and "tile by tile" not in r.output
    r = run("denoise", src, tmp_path / "b.tif", *SMALL, "--memory-limit", "250000")
    assert r.exit_code == 0 and "processed tile by tile" in r.output
    _same(tifffile.imread(tmp_path / "b.tif"), _in_memory(tmp_path, src, *SMALL))


def test_mask_refused_tile_by_tile(tmp_path):
    """NL-Bayes takes masks on NumPy arrays only: tile by tile the command says so (exit 1, nothing written)."""
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((100, 100)))
    mask = tmp_path / "mask.tif"
    tifffile.imwrite(mask, np.ones((100, 100), np.uint8))
    out = tmp_path / "o.tif"
    r = run("denoise", src, out, *SMALL, "--mask", mask, *TILED)
    assert r.exit_code == 1 and "mask" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_volume(tmp_path, blocks):
    """`nlm denoise stack.tif out.tif --volume --method bayes` tile by tile: the in-memory volume, bit for bit."""
    stack = tmp_path / "stack.tif"
    vol = np.stack([_image((30, 480), seed=k) for k in range(10)])
    tifffile.imwrite(stack, vol, photometric="minisblack")
    opts = ("--volume", "--method", "bayes", "--patch-size", "3", "--patch-distance", "2")
    ref = _in_memory(tmp_path, stack, *opts)
    out = tmp_path / "out.tif"
    r = run("denoise", stack, out, *opts, *TILED)
    assert r.exit_code == 0, r.output
    assert "processed tile by tile" in r.output and blocks[0] >= 2
    _same(tifffile.imread(out), ref)


def test_volume_blocks_run_once(tmp_path, blocks, monkeypatch):
    """A volume cut into z-slabs (rows and columns whole) is written a slab at a time: each block runs once.

    (The writer used to compute each page alone, which ran the slab's block once per page.)
    """
    from nlm import tiling

    calls = []
    real = tiling.bayes._nl_bayes_block

    def counting(block, origin, **kwargs):
        if block.size:
            calls.append(origin)
        return real(block, origin, **kwargs)

    monkeypatch.setattr(tiling.bayes, "_nl_bayes_block", counting)
    stack = tmp_path / "stack.tif"
    rng = np.random.default_rng(3)
    z = np.linspace(0, 3, 150)[:, None, None]
    vol = np.clip(0.5 + 0.3 * np.sin(z) + 0.05 * rng.standard_normal((150, 12, 12)), 0, 1).astype(np.float32)
    tifffile.imwrite(stack, vol, photometric="minisblack")
    opts = ("--volume", "--method", "bayes", "--patch-size", "3", "--patch-distance", "2")
    ref = _in_memory(tmp_path, stack, *opts)
    calls.clear()
    out = tmp_path / "out.tif"
    r = run("denoise", stack, out, *opts, *TILED)
    assert r.exit_code == 0, r.output
    assert blocks[-1] >= 2
    assert len(set(calls)) == blocks[-1] and len(calls) <= blocks[-1] + 1  # + dask's type-inference call
    _same(tifffile.imread(out), ref)
