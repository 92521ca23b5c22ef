"""Tile-by-tile command line: out-of-core TIFF and zarr, clusters, same result as in memory."""


import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import cli

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")


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
    """Bit-identical: the tiles' kernels add every sum in the whole image's order."""
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), float(np.nanmax(np.abs(a.astype(np.float64) - b)))


def _in_memory(tmp_path, src, *opts):
    ref = tmp_path / "ref.tif"
    r = run("denoise", src, ref, "-q", *opts)
    assert r.exit_code == 0, r.output
    return tifffile.imread(ref)


@pytest.mark.parametrize(
    "shape, dtype",
    [((300, 261), np.uint8), ((150, 133, 3), np.uint16), ((97, 140), np.float32)],
)
def test_out_of_core_tiff_equals_in_memory(tmp_path, shape, dtype):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image(shape, dtype), photometric="rgb" if len(shape) == 3 else "minisblack")
    ref = _in_memory(tmp_path, src)
    out = tmp_path / "out.tif"
    r = run("denoise", src, out, "--memory-limit", "1K", "--tile-size", "64")
    assert r.exit_code == 0, r.output
    assert "processed tile by tile" in r.output
    got = tifffile.imread(out)
    _same(got, ref)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled and tif.pages[0].tilewidth == 64


def test_compressed_tiled_input_and_given_parameters(tmp_path):
    src = tmp_path / "in.tif"
    img = _image((200, 170), seed=3)
    tifffile.imwrite(src, img, tile=(32, 32), compression="zlib")
    ref = _in_memory(tmp_path, src, "--h", "12", "--sigma", "20")
    out = tmp_path / "out.tif"
    r = run("denoise", src, out, "--h", "12", "--sigma", "20", "--memory-limit", "1K", "--tile-size", "96")
    assert r.exit_code == 0, r.output
    _same(tifffile.imread(out), ref)


def test_volume_tile_by_tile(tmp_path):
    src = tmp_path / "vol.tif"
    vol = np.stack([_image((70, 80), seed=s) for s in range(5)])
    tifffile.imwrite(src, vol)
    ref = tmp_path / "ref.tif"
    assert run("denoise", src, ref, "--volume", "--patch-size", "3", "--patch-distance", "2", "-q").exit_code == 0
    out = tmp_path / "out.tif"
    r = run("denoise", src, out, "--volume", "--patch-size", "3", "--patch-distance", "2",
            "--memory-limit", "1K", "--tile-size", "64", "-q")
    assert r.exit_code == 0, r.output
    # the in-memory volume filter sees the whole stack; tile by tile, each
    # block holds one page plus the margin, so compare against 2-D filtering
    # would be wrong: the tiled run must still be the 3-D filter
    _same(tifffile.imread(out), tifffile.imread(ref))


def test_zarr_out_and_in(tmp_path):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((130, 150), seed=4))
    ref = _in_memory(tmp_path, src)
    store = tmp_path / "out.zarr"
    r = run("denoise", src, store, "--tile-size", "64", "-q")
    assert r.exit_code == 0, r.output
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["multiscales"][0]["axes"][-1]["name"] == "x"
    assert group["0"].chunks == (64, 64)
    _same(np.asarray(group["0"]), ref)
    # OME-Zarr in, TIFF out; and a plain zarr array in
    again = tmp_path / "again.tif"
    assert run("denoise", store, again, "--h", "10", "--sigma", "15", "-q").exit_code == 0
    plain = tmp_path / "plain.zarr"
    arr = zarr.create_array(str(plain), shape=(130, 150), chunks=(50, 50), dtype=np.uint8)
    arr[:] = _image((130, 150), seed=4)
    from_plain = tmp_path / "from_plain.tif"
    assert run("denoise", plain, from_plain, "-q").exit_code == 0
    _same(tifffile.imread(from_plain), ref)


def test_rgb_zarr_round_trip_channels_first(tmp_path):
    src = tmp_path / "in.tif"
    img = _image((90, 100, 3), seed=5)
    tifffile.imwrite(src, img, photometric="rgb")
    ref = _in_memory(tmp_path, src)
    store = tmp_path / "out.zarr"
    assert run("denoise", src, store, "--tile-size", "64", "-q").exit_code == 0
    arr = zarr.open_group(str(store), mode="r")["0"]
    assert arr.shape == (3, 90, 100)
    _same(np.moveaxis(np.asarray(arr), 0, -1), ref)


def test_no_overwrite_and_atomic(tmp_path):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((80, 80)))
    out = tmp_path / "out.tif"
    out.write_bytes(b"keep")
    r = run("denoise", src, out, "--memory-limit", "1K", "--tile-size", "64")
    assert r.exit_code == 2 and "already exists" in r.output
    assert out.read_bytes() == b"keep"
    r = run("denoise", src, out, "--memory-limit", "1K", "--tile-size", "64", "--overwrite", "-q")
    assert r.exit_code == 0 and tifffile.imread(out).shape == (80, 80)
    store = tmp_path / "o.zarr"
    store.mkdir()
    r = run("denoise", src, store, "--tile-size", "64")
    assert r.exit_code == 2 and "already exists" in r.output
    assert run("denoise", src, store, "--tile-size", "64", "--overwrite", "-q").exit_code == 0
    assert zarr.open_group(str(store), mode="r")["0"].shape == (80, 80)
    # a failure while computing leaves nothing behind
    bad = tmp_path / "nan.tif"
    img = _image((80, 80), np.float32)
    img[70, 75] = np.nan
    tifffile.imwrite(bad, img)
    r = run("denoise", bad, tmp_path / "nan_out.tif", "--h", "0.1", "--sigma", "0.1",
            "--memory-limit", "1K", "--tile-size", "64", "-q")
    assert r.exit_code == 1 and "NaN" in r.output
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert not (tmp_path / "nan_out.tif").exists() and leftovers == []


def test_usage_errors(tmp_path):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((80, 80)))
    out = tmp_path / "o.tif"
    assert run("denoise", src, out, "--memory-limit", "lots").exit_code == 2
    assert run("denoise", src, out, "--tile-size", "100").exit_code == 2
    assert run("denoise", src, out, "--scheduler", "tcp://127.0.0.1:1", "--workers", "1").exit_code == 2
    r = run("denoise", src, tmp_path / "o.png", "--memory-limit", "1K")
    assert r.exit_code == 1 and ".zarr" in r.output
    r = run("denoise", src, out, "--memory-limit", "1K", "--noise", "speckle")
    assert r.exit_code == 1 and "speckle" in r.output
    assert not out.exists()


@pytest.fixture
def local_cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster


def test_scheduler_runs_tiles_and_batch_files(tmp_path, local_cluster):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((160, 150), seed=6))
    ref = _in_memory(tmp_path, src)
    out = tmp_path / "out.tif"
    r = run("denoise", src, out, "--scheduler", local_cluster.scheduler_address, "--tile-size", "64", "-q")
    assert r.exit_code == 0, r.output
    _same(tifffile.imread(out), ref)
    # batch mode: every file a task on the cluster
    files = []
    for k in range(3):
        p = tmp_path / f"b{k}.tif"
        tifffile.imwrite(p, _image((60 + k, 70), seed=10 + k))
        files.append(p)
    r = run("denoise", *files, "-o", tmp_path / "local", "-q")
    assert r.exit_code == 0, r.output
    r = run("denoise", *files, "-o", tmp_path / "cluster", "--scheduler", local_cluster.scheduler_address, "-q")
    assert r.exit_code == 0, r.output
    for p in files:
        cluster, local = tifffile.imread(tmp_path / "cluster" / p.name), tifffile.imread(tmp_path / "local" / p.name)
        assert np.array_equal(cluster, local)


def test_workers_starts_a_local_cluster(tmp_path):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((120, 110), seed=7))
    ref = _in_memory(tmp_path, src, "--h", "12", "--sigma", "20")
    out = tmp_path / "out.zarr"
    r = run("denoise", src, out, "--h", "12", "--sigma", "20", "--workers", "2", "--tile-size", "64", "-q")
    assert r.exit_code == 0, r.output
    _same(np.asarray(zarr.open_group(str(out), mode="r")["0"]), ref)


def test_bad_scheduler_address(tmp_path):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((40, 40)))
    r = run("denoise", src, tmp_path / "o.tif", "--scheduler", "tcp://127.0.0.1:9", "--cluster-timeout", "2")
    assert r.exit_code == 1 and "cannot connect" in r.output
    assert r.output.count("Error:") == 1 and "Traceback" not in r.output, r.output


def test_working_blocks_bounded_by_memory_limit(tmp_path, monkeypatch):
    """Out of core, whole-row working blocks are only made while they fit the memory limit."""
    from nlm import tiling

    seen = []
    original = tiling.blocks._work_minimum

    def spy(chunks, spatial_axes, depth, patch, work_pixels=None):
        # the budget is the call's argument: the library's global is never set
        seen.append(tiling.blocks.WORK_PIXELS if work_pixels is None else work_pixels)
        return original(chunks, spatial_axes, depth, patch, work_pixels)

    monkeypatch.setattr(tiling.means, "_work_minimum", spy)
    src = tmp_path / "in.zarr"  # zarr input goes tile by tile whatever the limit
    arr = zarr.create_array(str(src), shape=(120, 900), chunks=(64, 64), dtype=np.uint8)
    arr[:] = _image((120, 900))
    default = tiling.blocks.WORK_PIXELS
    for limit, expected in (("1K", 1 << 16), ("4G", default)):
        out = tmp_path / f"out{limit}.tif"
        r = run("denoise", src, out, "--h", "12", "--sigma", "20", "--memory-limit", limit, "-q")
        assert r.exit_code == 0, r.output
        assert seen[-1] == expected
        assert tiling.blocks.WORK_PIXELS == default  # untouched
    assert len(seen) == 2


# --------------------------------------------------------------------------
# Noise maps and masks with non-local means, tile by tile (issue 20)
# --------------------------------------------------------------------------

TILED = ("--memory-limit", "1K", "--tile-size", "64")


@pytest.fixture
def means_blocks(monkeypatch):
    """Working blocks as the chunks (merged only to the margins), and how many the NLM filter got."""
    from nlm import tiling

    monkeypatch.setattr(tiling.blocks, "MARGIN_WORK", None)
    seen = []
    original = tiling.means.map_tiles

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(int(np.prod(out.numblocks)))
        return out

    monkeypatch.setattr(tiling.means, "map_tiles", recording)
    return seen


def _map_and_mask_files(tmp_path, spatial, scale):
    """sig.tif (a std ramp along x, in the image's units, float32) and m.tif (a masked rectangle)."""
    xx = np.linspace(0, 1, spatial[-1])
    smap = ((0.02 + 0.1 * xx) * scale * np.ones(spatial)).astype(np.float32)
    mask = np.ones(spatial, np.uint8)
    mask[..., 20:45, 30:70] = 0
    tifffile.imwrite(tmp_path / "sig.tif", smap, photometric="minisblack")
    tifffile.imwrite(tmp_path / "m.tif", mask, photometric="minisblack")
    return smap, mask


@pytest.mark.parametrize(
    "case",
    ["u16 map+mask", "u16 rgb map", "u8 png auto+mask", "u8 mask, estimated map written", "f32 nodata map"],
)
def test_means_maps_tile_by_tile_equal_in_memory(tmp_path, means_blocks, case):
    """`nlm denoise` (non-local means) with --sigma-map FILE|auto, --mask, the TIFF no-data value and
    --noise-map-out, tile by tile (--memory-limit 1K): the in-memory outputs and maps, bit for bit."""
    spatial = (150, 133)
    rgb = "rgb" in case
    dtype = np.uint16 if "u16" in case else np.uint8 if "u8" in case else np.float32
    scale = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    smap, mask = _map_and_mask_files(tmp_path, spatial, scale)
    img = _image(spatial + ((3,) if rgb else ()), dtype, seed=len(case))
    src = tmp_path / "in.tif"
    if "nodata" in case:
        img[mask == 0] = np.nan
        tifffile.imwrite(src, img, extratags=[(42113, "s", 0, "nan", True)])
    else:
        img[mask == 0] = 3
        tifffile.imwrite(src, img, photometric="rgb" if rgb else "minisblack")
    ref_src = src
    if "png" in case:  # the 8-bit PNG in memory; tile by tile reads TIFF and zarr only: the same pixels as TIFF
        from PIL import Image

        ref_src = tmp_path / "in.png"
        Image.fromarray(img).save(ref_src)
    opts = ("--patch-size", "5", "--patch-distance", "4")
    if "map" in case and "estimated" not in case:
        opts += ("--sigma-map", "auto" if "auto" in case else tmp_path / "sig.tif")
    if "mask" in case:
        opts += ("--mask", tmp_path / "m.tif")
    mem, tiled = tmp_path / "mem", tmp_path / "tiled"
    mem.mkdir()
    tiled.mkdir()
    ref = _in_memory(mem, ref_src, *opts, "--noise-map-out", mem / "nm.tif")
    r = run("denoise", src, tiled / "out.tif", *opts, "--noise-map-out", tiled / "nm.tif", *TILED)
    assert r.exit_code == 0, r.output
    assert "processed tile by tile" in r.output and means_blocks[-1] >= 4
    got = tifffile.imread(tiled / "out.tif")
    _same(got, ref)
    _same(tifffile.imread(tiled / "nm.tif"), tifffile.imread(mem / "nm.tif"))
    if "sig.tif" in map(str, opts):
        _same(tifffile.imread(tiled / "nm.tif"), smap)
    if "mask" in case:
        assert (got[mask == 0] == 3).all()
    if "nodata" in case:
        assert np.isnan(got[mask == 0]).all() and np.isfinite(got[mask == 1]).all()


@pytest.mark.parametrize("maps", [("--sigma-map", "sig.tif"), ("--sigma-map", "auto")])
def test_means_volume_with_maps_tile_by_tile(tmp_path, means_blocks, maps):
    """`--volume` (3-D non-local means) with a mask and a noise map, given or estimated, tile by tile: the
    in-memory volume and map, bit for bit."""
    vol = np.stack([_image((70, 90), np.uint16, seed=k) for k in range(6)])
    smap, mask = _map_and_mask_files(tmp_path, vol.shape, 65535)
    vol[mask == 0] = 7
    tifffile.imwrite(tmp_path / "stack.tif", vol, photometric="minisblack")
    maps = tuple(str(tmp_path / m) if m.endswith(".tif") else m for m in maps)
    opts = ("--volume", "--patch-size", "3", "--patch-distance", "2", "--mask", tmp_path / "m.tif", *maps)
    ref = _in_memory(tmp_path, tmp_path / "stack.tif", *opts, "--noise-map-out", tmp_path / "nm_ref.tif")
    r = run("denoise", tmp_path / "stack.tif", tmp_path / "out.tif", *opts, "--noise-map-out", tmp_path / "nm.tif",
            *TILED)
    assert r.exit_code == 0, r.output
    assert "processed tile by tile" in r.output and means_blocks[-1] >= 2
    got = tifffile.imread(tmp_path / "out.tif")
    _same(got, ref)
    assert (got[mask == 0] == 7).all()
    _same(tifffile.imread(tmp_path / "nm.tif"), tifffile.imread(tmp_path / "nm_ref.tif"))


def test_means_maps_to_zarr_and_errors(tmp_path, means_blocks):
    """A zarr output (tile by tile whatever the limit) with a given map equals the in-memory TIFF; a map of
    the wrong size, with a negative value, or an existing --noise-map-out: exit 1, nothing written."""
    spatial = (100, 120)
    smap, _ = _map_and_mask_files(tmp_path, spatial, 255)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image(spatial, seed=9))
    ref = _in_memory(tmp_path, src, "--sigma-map", tmp_path / "sig.tif", "--h", "9")
    r = run("denoise", src, tmp_path / "out.zarr", "--sigma-map", tmp_path / "sig.tif", "--h", "9", "--tile-size",
            "64", "-q")
    assert r.exit_code == 0, r.output
    _same(np.asarray(zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["0"]), ref)
    # above the sample budget (the map and the mask stay lazy, the map's RMS in one pass): the same output
    from nlm import tiling

    mask = np.ones(spatial, np.uint8)
    mask[10:30, 40:90] = 0
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    opts = ("--sigma-map", tmp_path / "sig.tif", "--mask", tmp_path / "mask.tif", "--h", "9")
    (tmp_path / "big").mkdir()
    ref = _in_memory(tmp_path / "big", src, *opts)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tiling.blocks, "SAMPLE_PIXELS", 2000)
        r = run("denoise", src, tmp_path / "big.tif", *opts, *TILED)
    assert r.exit_code == 0, r.output
    _same(tifffile.imread(tmp_path / "big.tif"), ref)
    tifffile.imwrite(tmp_path / "small.tif", smap[:90])
    neg = smap.copy()
    neg[50, 60] = -1
    tifffile.imwrite(tmp_path / "neg.tif", neg)
    out, nm = tmp_path / "o.tif", tmp_path / "nm.tif"
    for m, words in (("small.tif", "--sigma-map"), ("neg.tif", ">= 0")):
        r = run("denoise", src, out, "--sigma-map", tmp_path / m, "--noise-map-out", nm, *TILED)
        assert r.exit_code == 1 and words in r.output and "Traceback" not in r.output, r.output
        assert not out.exists() and not nm.exists()
    nm.write_bytes(b"keep")
    r = run("denoise", src, out, "--noise-map-out", nm, *TILED)
    assert r.exit_code == 1 and "exists" in r.output and not out.exists() and nm.read_bytes() == b"keep"
