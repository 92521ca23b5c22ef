"""`nlm denoise --method bayes` tile by tile (--memory-limit, zarr, --scheduler): the in-memory output, bit for bit."""

import numpy as np
import pytest
import tifffile
from cli_tiles import in_memory as _in_memory
from cli_tiles import noisy_image as _image
from cli_tiles import run
from cli_tiles import same as _same

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
    """The default table (sigma about 20 of 255: radius 11 then 24, patch 5, three passes and the NL-Ridge
    pass: margins 442 rows and 742 columns)."""
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((1100, 120), seed=1))
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


def _masked_stack(tmp_path, shape=(130, 12, 16)):
    """A 16-bit stack of many small pages (cut along z, margins of 63 pages), its mask (a slab and a corner),
    a float32 noise std map (a ramp along z)."""
    rng = np.random.default_rng(4)
    z = np.linspace(0, 3, shape[0])[:, None, None]
    clean = 0.5 + 0.3 * np.sin(z) * np.cos(np.arange(shape[2]) / 5.0)
    vol = np.rint(np.clip(clean + 0.05 * rng.standard_normal(shape), 0, 1) * 65535).astype(np.uint16)
    mask = np.ones(shape, np.uint8)
    mask[40:70, 3:8, 2:12] = 0
    mask[-3:, -4:, -5:] = 0
    vol[mask == 0] = 7
    smap = (0.02 + 0.06 * z * np.ones(shape) / 3) * 65535
    for name, a in (("stack.tif", vol), ("m.tif", mask), ("sig.tif", smap.astype(np.float32))):
        tifffile.imwrite(tmp_path / name, a, photometric="minisblack")
    tifffile.imwrite(tmp_path / "nd.tif", vol, photometric="minisblack", extratags=[(42113, "s", 0, "7", True)])
    return vol, mask


@pytest.mark.parametrize("maps", [(), ("--sigma-map", "sig.tif"), ("--sigma-map", "auto")])
def test_volume_with_mask_and_maps(tmp_path, blocks, maps):
    """`--volume --method bayes --mask m.tif` (and a noise map, given or estimated; the map written) on a
    16-bit stack, tile by tile: the in-memory volume and map, bit for bit; masked voxels unchanged."""
    vol, mask = _masked_stack(tmp_path)
    maps = tuple(str(tmp_path / m) if m.endswith(".tif") else m for m in maps)
    opts = ("--volume", "--method", "bayes", "--patch-size", "3", "--patch-distance", "2", "--mask",
            tmp_path / "m.tif", *maps)
    ref = _in_memory(tmp_path, tmp_path / "stack.tif", *opts, "--noise-map-out", tmp_path / "nm_ref.tif")
    out = tmp_path / "out.tif"
    r = run("denoise", tmp_path / "stack.tif", out, *opts, "--noise-map-out", tmp_path / "nm.tif", *TILED)
    assert r.exit_code == 0, r.output
    assert "processed tile by tile" in r.output and blocks[-1] >= 2
    got = tifffile.imread(out)
    _same(got, ref)
    assert (got[mask == 0] == 7).all()
    _same(tifffile.imread(tmp_path / "nm.tif"), tifffile.imread(tmp_path / "nm_ref.tif"))
    if maps and maps[1] != "auto":
        _same(tifffile.imread(tmp_path / "nm.tif"), tifffile.imread(tmp_path / "sig.tif"))
    # the map is not overwritten without --overwrite
    r = run("denoise", tmp_path / "stack.tif", tmp_path / "o2.tif", *opts, "--noise-map-out", tmp_path / "nm.tif",
            *TILED)
    assert r.exit_code == 1 and "exists" in r.output and not (tmp_path / "o2.tif").exists()


def test_image_with_mask_estimated_map_and_colour(tmp_path, blocks):
    """2-D, tile by tile: grey uint8 with --mask and --sigma-map auto (the map written), and RGB uint16 with
    --mask and a given map: the in-memory outputs and maps, bit for bit."""
    mask = np.ones((330, 200), np.uint8)
    mask[100:140, 20:180] = 0
    tifffile.imwrite(tmp_path / "m.tif", mask)
    tifffile.imwrite(tmp_path / "sig.tif", np.full((330, 200), 0.08 * 65535, np.float32))
    for k, (shape, dtype, maps) in enumerate([((330, 200), np.uint8, ("--sigma-map", "auto")),
                                              ((330, 200, 3), np.uint16, ("--sigma-map", tmp_path / "sig.tif"))]):
        src, d = tmp_path / f"in{k}.tif", tmp_path / f"d{k}"
        d.mkdir()
        img = _image(shape, dtype, seed=k)
        img[mask == 0] = 3
        tifffile.imwrite(src, img, photometric="rgb" if len(shape) == 3 else "minisblack")
        opts = (*SMALL, "--mask", tmp_path / "m.tif", *maps)
        ref = _in_memory(d, src, *opts, "--noise-map-out", d / "nm_ref.tif")
        r = run("denoise", src, d / "out.tif", *opts, "--noise-map-out", d / "nm.tif", *TILED)
        assert r.exit_code == 0, r.output
        assert "processed tile by tile" in r.output and blocks[-1] >= 2
        got = tifffile.imread(d / "out.tif")
        _same(got, ref)
        assert (got[mask == 0] == 3).all()
        _same(tifffile.imread(d / "nm.tif"), tifffile.imread(d / "nm_ref.tif"))


def test_tiff_nodata_and_zarr_nodata(tmp_path, blocks):
    """The no-data value of a TIFF (GDAL tag) and of a zarr store (its attribute) masks the tiled run too."""
    vol, mask = _masked_stack(tmp_path)
    opts = ("--volume", "--method", "bayes", "--patch-size", "3", "--patch-distance", "2")
    ref = _in_memory(tmp_path, tmp_path / "nd.tif", *opts)
    assert (ref[mask == 0] == 7).all()
    out = tmp_path / "out.tif"
    r = run("denoise", tmp_path / "nd.tif", out, *opts, *TILED)
    assert r.exit_code == 0, r.output
    assert blocks[-1] >= 2
    _same(tifffile.imread(out), ref)
    # 2-D, from a zarr store with a 'nodata' attribute, against the in-memory TIFF with the GDAL tag
    img = _image((300, 260), np.uint16)  # tall and wide enough to tile with the NL-Ridge pass's margin
    img[30:60, 10:100] = 7
    tifffile.imwrite(tmp_path / "nd2.tif", img, extratags=[(42113, "s", 0, "7", True)])
    (tmp_path / "two").mkdir()
    ref2 = _in_memory(tmp_path / "two", tmp_path / "nd2.tif", *SMALL)
    z = zarr.create_array(str(tmp_path / "nd.zarr"), shape=img.shape, chunks=(60, 130), dtype=np.uint16)
    z[:] = img
    z.attrs["nodata"] = 7
    r = run("denoise", tmp_path / "nd.zarr", tmp_path / "o.tif", *SMALL, "--tile-size", "64", "-q")
    assert r.exit_code == 0, r.output
    assert blocks[-1] >= 2
    _same(tifffile.imread(tmp_path / "o.tif"), ref2)


def test_mask_errors_tile_by_tile(tmp_path):
    """A mask of the wrong size, every pixel masked: clear errors (exit 1), nothing written."""
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((100, 100)))
    tifffile.imwrite(tmp_path / "small.tif", np.ones((90, 100), np.uint8))
    tifffile.imwrite(tmp_path / "none.tif", np.zeros((100, 100), np.uint8))
    out = tmp_path / "o.tif"
    for m, words in (("small.tif", "input's size"), ("none.tif", "masked")):
        r = run("denoise", src, out, *SMALL, "--mask", tmp_path / m, *TILED)
        assert r.exit_code == 1 and words in r.output and "Traceback" not in r.output, r.output
        assert not out.exists()
    r = run("denoise", src, out, *SMALL, "--sigma-map", tmp_path / "small.tif", *TILED)
    assert r.exit_code == 1 and "--sigma-map" in r.output and not out.exists()


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
