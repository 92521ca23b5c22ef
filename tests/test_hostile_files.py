"""Planned failures of files and stores say what is wrong (issue 18, part 6).

A truncated or corrupt TIFF, a corrupt zarr chunk, a malformed OME-Zarr, a
full disk: one ``Error:`` line in the user's terms, exit 1, nothing left
behind; "unexpected ... please report it" is kept for bugs.  tifffile's log
lines never reach stderr in front of the ``Error:`` line (``--verbose``
shows them).  A huge ``--memory-limit`` is a usage error (exit 2).  OME-Zarr
output names its final path, not the temporary directory.
"""

import errno
import logging
import os
import shutil
import struct

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import cli
from nlm.cli import batch
from nlm.io import ImageIOError, read_image

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")

from nlm.io import budget, tiled  # noqa: E402

FAST = ["--patch-size", "3", "--patch-distance", "2", "--sigma", "10", "-q"]


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def failed(result, code, *messages):
    """One ``Error:`` line, last, no traceback, no "unexpected"; returns that line."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.rstrip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "unexpected" not in errors[0] and "please report" not in errors[0], errors[0]
    for message in messages:
        assert message in errors[0], errors[0]
    return errors[0]


def only(directory, *names):
    """Nothing but ``names`` in ``directory`` (no output, no hidden temporary file)."""
    assert sorted(os.listdir(directory)) == sorted(names)


def _image(shape=(96, 96), seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _raw_tiff(width, height, data=b"\x80" * 256):
    """A classic TIFF whose one strip claims width x height uint8 pixels, followed by ``data``."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 0),
               (277, 3, 1), (278, 4, height), (279, 4, (width * height) % 2**32)]
    start = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<IH", 8, len(entries)))
    for tag, kind, value in entries:
        value = start if tag == 273 else value
        payload = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + payload
    return bytes(out + struct.pack("<I", 0) + data)


# --------------------------------------------------------------------------- #
# TIFF: truncated files, a garbage first-IFD offset, tifffile's log
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("out", ["o.tif", "o.zarr", "o.png"])
def test_header_of_100000_squared_with_256_bytes_is_a_truncated_file(tmp_path, out):
    src = tmp_path / "in.tif"
    src.write_bytes(_raw_tiff(100000, 100000))
    line = failed(run("denoise", src, tmp_path / out, *FAST), 1, "in.tif", "truncated", "100000x100000",
                  "holds 378 bytes")
    assert "mmap" not in line and "estimate the noise" not in line
    only(tmp_path, "in.tif")


def test_truncated_header_is_named_before_the_pixel_limit_by_every_reader(tmp_path):
    src = tmp_path / "in.tif"
    src.write_bytes(_raw_tiff(100000, 100000))
    with pytest.raises(ImageIOError, match=r"in\.tif: the file is truncated: .*100000x100000 uint8"):
        read_image(src)
    with pytest.raises(ImageIOError, match=r"in\.tif: the file is truncated"):
        tiled.open_lazy(src)
    failed(run("noise", src, tmp_path / "n.tif"), 1, "truncated")
    failed(run("psnr", src, src), 1, "truncated")
    only(tmp_path, "in.tif")


@pytest.mark.parametrize("kind", ["strips", "tiles, compressed"])
def test_tiff_cut_short_is_a_truncated_file(tmp_path, kind):
    src = tmp_path / "in.tif"
    kw = {} if kind == "strips" else {"tile": (32, 32), "compression": "zlib"}
    tifffile.imwrite(src, _image((100, 100)), **kw)
    raw = src.read_bytes()
    src.write_bytes(raw[: len(raw) * 6 // 10])
    for out, extra in [("o.tif", ()), ("o.zarr", ()), ("o.tif", ("--memory-limit", "1K", "--tile-size", "64"))]:
        failed(run("denoise", src, tmp_path / out, *FAST, *extra), 1, "in.tif", "truncated")
        only(tmp_path, "in.tif")


def test_a_block_that_cannot_be_read_names_the_file_and_the_region(tmp_path):
    """A file cut after it was opened (the header check has passed) fails on the block read."""
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((64, 64)), tile=(32, 32), compression="zlib")
    image = tiled.open_lazy(src, tile=32)
    raw = src.read_bytes()
    src.write_bytes(raw[:-600])
    with pytest.raises(ImageIOError, match=r"in\.tif: cannot read the pixels \[32:64, 32:64\]: "):
        image.data.compute()
    contiguous = tmp_path / "flat.tif"
    tifffile.imwrite(contiguous, _image((64, 64)))
    image = tiled.open_lazy(contiguous, tile=32)
    contiguous.write_bytes(contiguous.read_bytes()[:1000])
    with pytest.raises(ImageIOError, match=r"flat\.tif: cannot read the pixels .*truncated"):
        image.data.compute()


def _garbage_ifd(path):
    tifffile.imwrite(path, _image((32, 32)))
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack("<I", 0x7FFFFF00)
    path.write_bytes(bytes(raw))


def test_tifffile_log_never_comes_before_the_error_line(tmp_path):
    src = tmp_path / "in.tif"
    _garbage_ifd(src)
    logger = logging.getLogger("tifffile")
    handlers, propagate = list(logger.handlers), logger.propagate
    for out in ("o.tif", "o.zarr"):
        result = run("denoise", src, tmp_path / out, *FAST)
        failed(result, 1, "in.tif: TIFF holds no image (its first page is missing or corrupt)")
        assert result.stderr.count("\n") == 1, result.stderr  # the Error: line alone
        assert "tifffile:" not in result.stderr and "invalid offset" not in result.stderr
    # --verbose shows it, still before the one Error: line at the end
    result = run("denoise", src, tmp_path / "o.tif", *FAST[:-1], "--verbose")
    failed(result, 1, "in.tif")
    assert "log: tifffile: " in result.stderr and "invalid offset" in result.stderr, result.stderr
    assert (logger.handlers, logger.propagate) == (handlers, propagate)  # restored
    only(tmp_path, "in.tif")


# --------------------------------------------------------------------------- #
# --memory-limit
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("value", ["9" * 400, "1e400", "1048577T", "99999999999999999999999T", "0.5", "0", "-1",
                                   "." + "0" * 400 + "1", "inf", "nan"])
def test_invalid_memory_limits_are_usage_errors(tmp_path, value):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, _image((32, 32)))
    line = failed(run("denoise", src, tmp_path / "o.tif", *FAST, "--memory-limit", value), 2, "--memory-limit")
    assert len(line) < 200, line
    only(tmp_path, "in.tif")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=30),
                 st.from_regex(r"\s*[0-9]{0,450}\.?[0-9]{1,450}\s*[kmgtKMGT]?(i?[bB])?\s*", fullmatch=True)))
def test_parse_size_gives_a_bounded_size_or_a_value_error(text):
    try:
        size = budget.parse_size(text)
    except ValueError as exc:
        assert len(str(exc)) < 200
    else:
        assert isinstance(size, int) and 1 <= size <= budget.MAX_SIZE


def test_parse_size_limits():
    assert budget.parse_size("1048576T") == budget.MAX_SIZE == 1 << 60
    assert budget.parse_size("1") == 1 and budget.parse_size("1.5GiB") == 3 << 29
    with pytest.raises(ValueError, match="at most 1 EiB"):
        budget.parse_size(str(budget.MAX_SIZE + 1))


# --------------------------------------------------------------------------- #
# zarr and OME-Zarr: corrupt chunks, malformed metadata, the name in the output
# --------------------------------------------------------------------------- #
def _plain_zarr(path, image=None):
    image = _image() if image is None else image
    arr = zarr.open_array(str(path), mode="w", shape=image.shape, chunks=(32, 32), dtype=image.dtype, zarr_format=2)
    arr[:] = image
    return path


@pytest.mark.parametrize("out", ["o.tif", "o.zarr"])
def test_corrupt_zarr_chunk_is_a_data_error(tmp_path, out):
    src = _plain_zarr(tmp_path / "in.zarr")
    (src / "1.2").write_bytes(b"garbage" * 10)
    failed(run("denoise", src, tmp_path / out, *FAST), 1, "in.zarr: cannot read the pixels [32:64, 64:96]",
           "a chunk of the store is corrupt")
    only(tmp_path, "in.zarr")


def _ome(path, multiscales, arrays=("0",)):
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.attrs["multiscales"] = multiscales
    for name in arrays:
        group.create_array(name, shape=(40, 40), chunks=(20, 20), dtype=np.uint8)[:] = _image((40, 40))
    group.create_group("sub")
    return path


MALFORMED = {
    "no datasets": ([{}], "malformed OME-Zarr metadata: the first multiscale has no 'datasets'"),
    "empty datasets": ([{"datasets": []}], "the first multiscale has no 'datasets'"),
    "dataset without path": ([{"datasets": [{}]}], "the first dataset has no 'path'"),
    "path not a string": ([{"datasets": [{"path": 0}]}], "the first dataset has no 'path'"),
    "missing level": ([{"datasets": [{"path": "1"}]}], "names the level '1', which is not an array"),
    "level is a group": ([{"datasets": [{"path": "sub"}]}], "names the level 'sub', which is not an array"),
    "not a list": ("x", "'multiscales' must be a list of objects"),
    "a dict": ({"datasets": []}, "'multiscales' must be a list of objects"),
    "axes not a list": ([{"datasets": [{"path": "0"}], "axes": "yx"}], "'axes' must be a list"),
    "axes without names": ([{"datasets": [{"path": "0"}], "axes": [1, {"type": "space"}]}],
                           "every axis needs a name"),
    "unknown axes": ([{"datasets": [{"path": "0"}], "axes": ["q", "r"]}], "zarr axes ['q', 'r'] are not supported"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_ome_zarr_is_a_data_error(tmp_path, case):
    multiscales, message = MALFORMED[case]
    src = _ome(tmp_path / "in.zarr", multiscales)
    failed(run("denoise", src, tmp_path / "o.tif", *FAST), 1, "in.zarr", message)
    only(tmp_path, "in.zarr")


def test_zarr_arrays_that_are_no_image(tmp_path):
    line = zarr.open_array(str(tmp_path / "line.zarr"), mode="w", shape=(9,), chunks=(4,), dtype=np.uint8)
    line[:] = 1
    failed(run("denoise", tmp_path / "line.zarr", tmp_path / "o.tif", *FAST), 1, "1-D zarr array is not an image")
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / ".zarray").write_text("{not json")
    failed(run("denoise", tmp_path / "junk.zarr", tmp_path / "o.tif", *FAST), 1, "junk.zarr: cannot open as zarr")
    only(tmp_path, "line.zarr", "junk.zarr")


def test_ome_zarr_output_names_its_final_path(tmp_path):
    src = _plain_zarr(tmp_path / "in.zarr")
    out = tmp_path / "result.zarr"
    assert run("denoise", src, out, *FAST).exit_code == 0
    group = zarr.open_group(str(out), mode="r")
    assert group.attrs["multiscales"][0]["name"] == "result.zarr"
    text = "".join(p.read_text() for p in out.rglob(".z*"))
    assert ".part" not in text and "result." in text
    only(tmp_path, "in.zarr", "result.zarr")
    # and it reads back as the same image through the OME-Zarr path
    again = tmp_path / "again.tif"
    assert run("denoise", out, again, *FAST).exit_code == 0


# --------------------------------------------------------------------------- #
# a full disk (simulated: the writer's write fails with ENOSPC)
# --------------------------------------------------------------------------- #
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("out", ["o.zarr", "o.tif"])
def test_full_disk_during_a_tiled_write(tmp_path, monkeypatch, out):
    src = _plain_zarr(tmp_path / "in.zarr")
    real = tiled._compute_band
    calls = []

    def band_then_full(*args, **kwargs):  # the first band is written, the second finds the disk full
        calls.append(1)
        if len(calls) > 1:
            _no_space()
        return real(*args, **kwargs)

    monkeypatch.setattr(tiled, "_compute_band", band_then_full)
    failed(run("denoise", src, tmp_path / out, *FAST, "--tile-size", "64"), 1, out, "cannot write",
           "No space left on device")
    assert len(calls) == 2
    only(tmp_path, "in.zarr")


def test_full_disk_when_the_temporary_directory_is_made(tmp_path, monkeypatch):
    src = _plain_zarr(tmp_path / "in.zarr")
    monkeypatch.setattr(tiled.tempfile, "mkdtemp", _no_space)
    failed(run("denoise", src, tmp_path / "o.zarr", *FAST), 1, "o.zarr: cannot write: No space left on device")
    only(tmp_path, "in.zarr")


def test_system_errors_anywhere_are_not_reported_as_bugs(tmp_path, monkeypatch):
    src = _plain_zarr(tmp_path / "in.zarr")

    def io_error(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/dev/disk")

    monkeypatch.setattr(batch, "denoise_any", io_error)
    failed(run("denoise", src, tmp_path / "o.zarr", *FAST), 1, "/dev/disk: Input/output error")

    def bare(*args, **kwargs):  # no errno: nobody planned for it
        raise OSError("something odd")

    monkeypatch.setattr(batch, "denoise_any", bare)
    result = run("denoise", src, tmp_path / "o.zarr", *FAST)
    assert result.exit_code == 1 and "unexpected OSError: something odd (please report it" in result.stderr


# --------------------------------------------------------------------------- #
# seeded fuzzing of the lazy readers: read, or one ImageIOError naming the file
# --------------------------------------------------------------------------- #
def test_fuzzed_tiffs_and_zarr_chunks_through_the_lazy_readers(tmp_path):
    rng = np.random.default_rng(18)
    seeds = {}
    for name, kw in [("flat.tif", {}), ("tiles.tif", {"tile": (16, 16), "compression": "zlib"}),
                     ("rgb.tif", {"photometric": "rgb"})]:
        tifffile.imwrite(tmp_path / name, _image((40, 40, 3) if name == "rgb.tif" else (40, 40)), **kw)
        seeds[name] = (tmp_path / name).read_bytes()
        (tmp_path / name).unlink()
    outcomes = {"read": 0, "refused": 0}
    for k in range(90):
        name = sorted(seeds)[k % len(seeds)]
        raw = bytearray(seeds[name])
        if k % 3 == 0:
            raw = raw[: int(rng.integers(8, len(raw)))]
        else:
            for _ in range(int(rng.integers(1, 6))):
                raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        path = tmp_path / f"f{k}_{name}"
        path.write_bytes(bytes(raw))
        try:
            tiled.open_lazy(path, tile=16).data.compute()
        except ImageIOError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            outcomes["refused"] += 1
        else:
            outcomes["read"] += 1
        path.unlink()
    src = _plain_zarr(tmp_path / "in.zarr")
    chunk = (src / "0.0").read_bytes()
    for k in range(20):
        raw = bytearray(chunk)
        for _ in range(int(rng.integers(1, 6))):
            raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        (src / "0.0").write_bytes(bytes(raw[: len(raw) - k]))
        try:
            tiled.open_lazy(src, tile=32).data.compute()
        except ImageIOError as exc:
            assert "in.zarr: cannot read the pixels [0:32, 0:32]" in str(exc)
            outcomes["refused"] += 1
        else:
            outcomes["read"] += 1
    assert outcomes["refused"] > 40 and outcomes["read"] > 5, outcomes
    shutil.rmtree(src)
