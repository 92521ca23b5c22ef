"""Hostile input for the command line and the readers (issue 10).

Every failure is one ``Error:`` line on stderr, exit 1 (2 for usage errors, or
128 + N after signal N), never a traceback; no output, no temporary file is
left behind, the input is untouched, and nothing is silently lost.
"""

import hashlib
import io
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import cli
import nlm
import nlm.io._atomic
import nlm.io.image
from nlm.cli import psnr as psnr_command
from nlm.cli import runtime
from nlm.io import ImageIOError, from_float, read_image, write_image

ROOT = Path(cli.__file__).resolve().parent
FAST = ["--patch-size", "3", "--patch-distance", "2"]


def run(*args, **kwargs):
    return CliRunner().invoke(cli.main, [str(a) for a in args], **kwargs)


def listing(path):
    """Every name in ``path``, hidden ones (temporary files) included."""
    return sorted(os.listdir(path))


def failed(result, code, *messages):
    """A clean failure: exit code, one ``Error:`` line last, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error:"), result.stderr
    for message in messages:
        assert message in errors[0], result.stderr
    return result


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def grey(shape=(16, 16), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in.png"
    write_image(path, grey())
    return path


# --------------------------------------------------------------------------- #
# paths: names too long, non-regular files, the temporary name
# --------------------------------------------------------------------------- #
def test_input_name_too_long_is_a_usage_error(tmp_path):
    long_input = tmp_path / ("a" * 296 + ".png")
    result = failed(run("denoise", long_input, tmp_path / "o.png"), 2, "file name too long")
    assert "OSError" not in result.output
    assert listing(tmp_path) == []


def test_output_name_too_long_is_a_usage_error(src, tmp_path):
    failed(run("denoise", src, tmp_path / ("b" * 296 + ".png")), 2, "file name too long", "OUTPUT")
    failed(run("noise", src, tmp_path / ("b" * 296 + ".png")), 2, "file name too long")
    failed(run("psnr", src, tmp_path / ("b" * 296 + ".png")), 2, "file name too long")
    assert listing(tmp_path) == ["in.png"]


def test_batch_output_name_too_long_is_a_usage_error(src, tmp_path):
    failed(run("denoise", src, "-o", tmp_path, "--suffix", "x" * 260), 2, "file name too long")
    assert listing(tmp_path) == ["in.png"]


def test_legal_250_byte_output_name_is_written(src, tmp_path):
    """The temporary name is shortened to fit NAME_MAX, the output is not."""
    name = "é" * 60 + "c" * 126 + ".png"  # 250 bytes in UTF-8
    assert len(os.fsencode(name)) == 250
    result = run("denoise", src, tmp_path / name, *FAST, "--sigma", "5")
    assert result.exit_code == 0, result.output
    assert sorted(listing(tmp_path)) == sorted(["in.png", name])
    assert read_image(tmp_path / name).data.shape == (16, 16)


def test_temporary_name_fits_and_is_hidden(tmp_path, monkeypatch):
    seen = []
    original = nlm.io.image._encode

    def spy(tmp, *args):
        seen.append(Path(tmp).name)
        return original(tmp, *args)

    monkeypatch.setattr(nlm.io.image, "_encode", spy)
    name = "d" * 251 + ".tif"
    write_image(tmp_path / name, grey())
    (tmp,) = seen
    assert tmp.startswith(".d") and tmp.endswith(".part.tif") and len(os.fsencode(tmp)) <= 255
    assert listing(tmp_path) == [name]


@pytest.mark.parametrize("command", ["denoise", "noise", "psnr"])
def test_fifo_input_is_refused_without_hanging(tmp_path, command):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    write_image(good, grey())
    args = {"denoise": [fifo, tmp_path / "o.png"], "noise": [fifo, tmp_path / "o.png"],
            "psnr": [good, fifo]}[command]
    proc = subprocess.run(
        [sys.executable, "-m", "nlm", command, *map(str, args)],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert "named pipe" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(listing(tmp_path)) == ["good.png", "x.png"]


def test_read_image_refuses_non_regular_files(tmp_path):
    fifo = tmp_path / "p.tif"
    os.mkfifo(fifo)
    probe = (
        "import sys; from nlm.io import read_image, ImageIOError\n"
        "try:\n    read_image(sys.argv[1])\nexcept ImageIOError as exc:\n    print(exc)\n"
    )
    # in a subprocess: a reader that opens the FIFO blocking would hang here
    proc = subprocess.run([sys.executable, "-c", probe, str(fifo)], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert "is a named pipe (FIFO), not a regular file" in proc.stdout, proc.stdout + proc.stderr
    os.symlink("/dev/null", tmp_path / "null.png")
    with pytest.raises(ImageIOError, match="character device"):
        read_image(tmp_path / "null.png")


def test_device_and_fifo_outputs_are_refused(src, tmp_path):
    fifo = tmp_path / "o.png"
    os.mkfifo(fifo)
    failed(run("denoise", src, fifo, "--overwrite"), 2, "named pipe")
    os.symlink("/dev/null", tmp_path / "null.png")
    failed(run("denoise", src, tmp_path / "null.png", "--overwrite"), 2, "character device")
    with pytest.raises(ImageIOError, match="not a regular file"):
        write_image(fifo, grey(), overwrite=True)
    assert sorted(listing(tmp_path)) == ["in.png", "null.png", "o.png"]


def test_symlink_loop_and_directory_inputs(tmp_path):
    os.symlink(tmp_path / "loop.png", tmp_path / "loop.png")
    failed(run("denoise", tmp_path / "loop.png", tmp_path / "o.png"), 2, "symbolic links")
    (tmp_path / "d.png").mkdir()
    failed(run("denoise", tmp_path / "d.png", tmp_path / "o.png"), 2, "is a directory")


def test_suffix_with_a_path_separator_is_refused(src, tmp_path):
    failed(run("denoise", src, "-o", tmp_path / "out", "--suffix", "/../../x"), 2, "path separator")
    assert listing(tmp_path) == ["in.png"]


def test_unwritable_output_directory_exits_1_and_leaves_nothing(src, tmp_path, monkeypatch):
    """(Root ignores file modes, so the refusal is simulated at ``os.open``.)"""
    real_open = os.open

    def read_only(path, flags, *args):
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(nlm.io.image.os, "open", read_only)
    before = digest(src)
    failed(run("denoise", src, tmp_path / "o.png", *FAST), 1, "cannot write: Permission denied")
    assert listing(tmp_path) == ["in.png"] and digest(src) == before


def test_output_onto_input_with_overwrite_replaces_it_atomically(src, tmp_path):
    result = run("denoise", src, src, *FAST, "--overwrite", "--sigma", "20")
    assert result.exit_code == 0, result.output
    assert listing(tmp_path) == ["in.png"]
    assert read_image(src).data.dtype == np.uint8


# --------------------------------------------------------------------------- #
# option values
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("option", ["--h", "--sigma", "--looks"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "infinity"])
def test_non_finite_h_and_sigma_are_usage_errors(src, tmp_path, option, value):
    failed(run("denoise", src, tmp_path / "o.png", option, value), 2, option)
    assert listing(tmp_path) == ["in.png"]


@pytest.mark.parametrize("option", ["--var", "--looks"])
def test_non_finite_noise_options_are_usage_errors(src, tmp_path, option):
    extra = ["--model", "gamma"] if option == "--looks" else []
    failed(run("noise", src, tmp_path / "o.png", option, "nan", *extra), 2, option)


def test_huge_finite_h_is_not_refused_as_too_small(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, grey().astype(np.float32))
    result = run("denoise", path, tmp_path / "o.tif", *FAST, "--h", "1e300", "--sigma", "0")
    assert "too small" not in result.output and "Traceback" not in result.output
    assert result.exit_code == 0, result.output  # huge h: the window mean, not refused
    out = read_image(tmp_path / "o.tif").data
    assert out.dtype == np.float32 and np.isfinite(out).all()


def test_warnings_never_come_before_the_error_line(src, tmp_path, monkeypatch):
    def noisy_failure(*args, **kwargs):
        np.float32(1e300)  # RuntimeWarning: overflow encountered in cast
        warnings.warn("a library warning", UserWarning, stacklevel=2)
        raise ValueError("h is out of range")

    monkeypatch.setattr("nlm.denoisers.means.denoise_nl_means", noisy_failure)
    result = failed(run("denoise", src, tmp_path / "o.png", *FAST), 1, "h is out of range")
    assert result.stderr.startswith("Error:")
    assert "warning:" not in result.stderr.lower() and "overflow" not in result.stderr


def test_warnings_of_a_successful_run_come_after_the_report(src, tmp_path, monkeypatch):
    real = nlm.denoise_nl_means

    def warns(*args, **kwargs):
        warnings.warn("something to know", UserWarning, stacklevel=2)
        return real(*args, **kwargs)

    monkeypatch.setattr("nlm.denoisers.means.denoise_nl_means", warns)
    result = run("denoise", src, tmp_path / "o.png", *FAST)
    assert result.exit_code == 0
    assert result.stderr.strip() == "warning: something to know"
    quiet = run("denoise", src, tmp_path / "o2.png", *FAST, "-q")
    assert quiet.exit_code == 0 and quiet.output == ""


OPTION_VALUES = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "0", "-0", "1e-320", "1e300", "1e999", "", " ", "x",
                     "0x10", "1_000", "--", "3", "5", "-1", "2.5"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.text(max_size=6),
)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(["--h", "--sigma", "--patch-size", "--patch-distance", "--max-pixels"]),
       value=OPTION_VALUES)
def test_any_option_value_gives_a_result_or_one_clean_error(tmp_path, option, value):
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    src = work / "in.png"
    write_image(src, grey((9, 11)))
    args = ["denoise", src, work / "o.png", option, value]
    if option not in ("--patch-size", "--patch-distance"):
        args += FAST
    if option == "--patch-distance":
        args += ["--patch-size", "3"]
    result = run(*args)
    assert "Traceback" not in result.output
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert result.exit_code in (0, 1, 2), result.output
    hidden = [n for n in listing(work) if n.startswith(".")]
    assert hidden == []
    if result.exit_code == 0:
        out = read_image(work / "o.png").data
        assert out.shape == (9, 11) and out.dtype == np.uint8
    else:
        assert listing(work) == ["in.png"]
        assert result.stderr.rstrip().splitlines()[-1].startswith("Error:")


# --------------------------------------------------------------------------- #
# data: extreme integers, pages, transparency
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64])
def test_integer_extremes_survive_the_cli_exactly(tmp_path, dtype):
    info = np.iinfo(dtype)
    for value in (info.max, info.min):
        path = tmp_path / f"v{value}.tif"
        tifffile.imwrite(path, np.full((12, 12), value, dtype))
        out = tmp_path / f"o{value}.tif"
        result = run("denoise", path, out, *FAST)
        assert result.exit_code == 0, result.output
        assert "warning:" not in result.stderr.lower(), result.stderr
        back = read_image(out).data
        assert back.dtype == dtype and (back == value).all(), (value, back.ravel()[:3])


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64])
@settings(max_examples=40, deadline=None, derandomize=True)
@given(values=st.lists(st.floats(allow_nan=False, width=64), min_size=1, max_size=12),
       single=st.booleans())
def test_from_float_rounds_and_clips_exactly_without_warnings(dtype, values, single):
    info = np.iinfo(dtype)
    with np.errstate(over="ignore"):
        data = np.array(values, np.float64).astype(np.float32 if single else np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = from_float(data, dtype)
    assert out.dtype == dtype
    for value, got in zip(data.tolist(), out.tolist()):
        if value == float("inf"):
            want = info.max
        elif value == float("-inf"):
            want = info.min
        else:
            want = min(max(round(value), info.min), info.max)  # Python: exact, half to even
        assert got == want, (value, got, want)


def test_from_float_clips_integer_input_between_any_two_types():
    big = np.array([0, 2**64 - 1, 2**63], np.uint64)
    np.testing.assert_array_equal(from_float(big, np.int8), [0, 127, 127])
    signed = np.array([-(2**63), -5, 2**62], np.int64)
    np.testing.assert_array_equal(from_float(signed, np.uint16), [0, 0, 65535])
    np.testing.assert_array_equal(from_float(signed, np.uint64), [0, 0, 2**62])


def test_tiff_pages_written_one_at_a_time_are_a_stack(tmp_path):
    pages = [grey((10, 12), seed=k) for k in range(3)]
    path = tmp_path / "pages.tif"
    for page in pages:
        tifffile.imwrite(path, page, append=True)
    image = read_image(path)
    assert image.stack and image.data.shape == (3, 10, 12)
    np.testing.assert_array_equal(image.data, np.stack(pages))
    failed(run("denoise", path, tmp_path / "o.tif", *FAST), 1, "stack of 3 images", "--volume")
    result = run("denoise", path, tmp_path / "o.tif", *FAST, "--volume", "--sigma", "10")
    assert result.exit_code == 0, result.output
    out = read_image(tmp_path / "o.tif")
    assert out.stack and out.data.shape == (3, 10, 12)


def test_tiff_pages_of_different_sizes_are_refused(tmp_path):
    path = tmp_path / "mixed.tif"
    tifffile.imwrite(path, grey((10, 12)), append=True)
    tifffile.imwrite(path, grey((20, 8)), append=True)
    with pytest.raises(ImageIOError, match="2 images of different sizes"):
        read_image(path)
    for volume in ([], ["--volume"]):
        failed(run("denoise", path, tmp_path / "o.tif", *volume), 1, "different sizes")
    assert listing(tmp_path) == ["mixed.tif"]


def test_tiff_pages_of_different_types_are_refused(tmp_path):
    path = tmp_path / "mixed.tif"
    tifffile.imwrite(path, grey((10, 12)), append=True)
    tifffile.imwrite(path, grey((10, 12), np.uint16), append=True)
    with pytest.raises(ImageIOError, match="different sizes or types"):
        read_image(path)


def _png_with_key(tmp_path, data, key, **kwargs):
    path = tmp_path / "key.png"
    Image.fromarray(data).save(path, transparency=key, **kwargs)
    return path


def test_grey_png_transparency_key_becomes_alpha_and_survives(tmp_path):
    data = grey((16, 16))
    key = int(data[3, 4])
    path = _png_with_key(tmp_path, data, key)
    image = read_image(path)
    assert image.mode == "LA" and any("tRNS" in n for n in image.notes)
    np.testing.assert_array_equal(image.data[..., 0], data)
    np.testing.assert_array_equal(image.data[..., 1], np.where(data == key, 0, 255))
    result = run("denoise", path, tmp_path / "o.png", *FAST)
    assert result.exit_code == 0 and "transparency key" in result.stderr
    out = read_image(tmp_path / "o.png")
    assert out.mode == "LA"
    np.testing.assert_array_equal(out.data[..., 1], image.data[..., 1])


def test_rgb_and_16_bit_png_transparency_keys(tmp_path):
    rgb = grey((8, 8, 3))
    key = tuple(int(v) for v in rgb[1, 2])
    image = read_image(_png_with_key(tmp_path, rgb, key))
    assert image.mode == "RGBA"
    np.testing.assert_array_equal(image.data[..., 3], np.where((rgb == key).all(-1), 0, 255))
    g16 = grey((8, 8), np.uint16)
    image = read_image(_png_with_key(tmp_path, g16, int(g16[0, 0])))
    assert image.mode == "LA" and image.data.dtype == np.uint16
    assert image.data[0, 0, 1] == 0 and image.data[..., 1].max() == 65535


def _png(width, height, depth, colour, rows, extra=b""):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_16_bit_rgb_png_transparency_key_in_own_decoder(tmp_path):
    pixels = np.array([[[1, 2, 3], [4, 5, 6]]], ">u2")
    rows = b"".join(b"\0" + row.tobytes() for row in pixels)
    trns = struct.pack(">HHH", 4, 5, 6)
    extra = struct.pack(">I", 6) + b"tRNS" + trns + struct.pack(">I", zlib.crc32(b"tRNS" + trns))
    (tmp_path / "k.png").write_bytes(_png(2, 1, 16, 2, rows, extra))
    image = read_image(tmp_path / "k.png")
    assert image.mode == "RGBA"
    np.testing.assert_array_equal(image.data[0, :, 3], [65535, 0])


def test_low_bit_depth_grey_key_is_scaled_like_the_pixels(tmp_path):
    # 4-bit grey: samples 0..15 read as 0..255 (x17); key 3 marks value 51
    samples = np.array([[0, 3, 15, 3]], np.uint8)
    packed = bytes([(samples[0, 0] << 4) | samples[0, 1], (samples[0, 2] << 4) | samples[0, 3]])
    trns = struct.pack(">H", 3)
    extra = struct.pack(">I", 2) + b"tRNS" + trns + struct.pack(">I", zlib.crc32(b"tRNS" + trns))
    (tmp_path / "g4.png").write_bytes(_png(4, 1, 4, 0, b"\0" + packed, extra))
    image = read_image(tmp_path / "g4.png")
    assert image.mode == "LA"
    np.testing.assert_array_equal(image.data[0], [[0, 255], [51, 0], [255, 255], [51, 0]])


# --------------------------------------------------------------------------- #
# decompression bombs and memory
# --------------------------------------------------------------------------- #
def test_png16_bomb_is_refused_from_its_header(tmp_path):
    rows = b"\0" * 7  # far less data than the header claims
    (tmp_path / "bomb.png").write_bytes(_png(12000, 12000, 16, 2, rows))
    t0 = time.perf_counter()
    with pytest.raises(ImageIOError, match="144,000,000 pixels, more than the limit"):
        read_image(tmp_path / "bomb.png")
    assert time.perf_counter() - t0 < 1
    failed(run("denoise", tmp_path / "bomb.png", tmp_path / "o.png"), 1, "--max-pixels")
    # raising the limit reaches the decoder, which finds the data short
    with pytest.raises(ImageIOError, match="truncated PNG data"):
        read_image(tmp_path / "bomb.png", max_pixels=0)


def test_png16_inflation_is_bounded_by_the_header(tmp_path):
    pixels = np.arange(12, dtype=">u2").reshape(2, 2, 3)
    rows = b"".join(b"\0" + row.tobytes() for row in pixels) + b"\0" * 10_000_000
    (tmp_path / "long.png").write_bytes(_png(2, 2, 16, 2, rows))
    np.testing.assert_array_equal(read_image(tmp_path / "long.png").data, pixels)


@pytest.mark.parametrize("name", ["big.png", "big.tif", "big.gif"])
def test_pixel_limit_applies_to_every_reader(tmp_path, monkeypatch, name):
    path = tmp_path / name
    data = grey((40, 50))
    if name.endswith(".tif"):
        tifffile.imwrite(path, np.stack([data, data]))
        pixels = 4000
    else:
        Image.fromarray(data).save(path)
        pixels = 2000
    with pytest.raises(ImageIOError, match=f"more than the limit of {pixels - 1:,}"):
        read_image(path, max_pixels=pixels - 1)
    assert read_image(path, max_pixels=pixels).data.size >= pixels
    assert read_image(path, max_pixels=0).data.size >= pixels
    monkeypatch.setenv("NLM_MAX_PIXELS", str(pixels - 1))
    with pytest.raises(ImageIOError, match="more than the limit"):
        read_image(path)
    failed(run("psnr", path, path), 1, "more than the limit")
    assert run("psnr", path, path, "--max-pixels", "0").exit_code == 0
    monkeypatch.setenv("NLM_MAX_PIXELS", "lots")
    failed(run("psnr", path, path), 2, "NLM_MAX_PIXELS")
    with pytest.raises(ImageIOError, match="NLM_MAX_PIXELS"):
        read_image(path)


def test_pixel_limit_counts_pages_written_one_at_a_time(tmp_path):
    path = tmp_path / "pages.tif"
    for k in range(3):
        tifffile.imwrite(path, grey((10, 10), seed=k), append=True)
    assert read_image(path, max_pixels=300).data.shape == (3, 10, 10)
    with pytest.raises(ImageIOError, match="300 pixels, more than the limit of 299"):
        read_image(path, max_pixels=299)


def test_max_pixels_is_validated():
    with pytest.raises(ValueError, match="max_pixels"):
        read_image("x.png", max_pixels=-1)
    with pytest.raises(TypeError, match="max_pixels"):
        read_image("x.png", max_pixels=1.5)


def test_out_of_memory_anywhere_is_one_error_line(src, tmp_path, monkeypatch):
    """Before the fix the NaN check after reading ran outside the handler."""
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(nlm.io, "to_float", no_memory)  # where the command line looks it up
    failed(run("denoise", src, tmp_path / "o.png", *FAST), 1, "not enough memory")
    monkeypatch.undo()
    monkeypatch.setattr(psnr_command, "read_input", no_memory)  # where nlm psnr looks it up
    failed(run("psnr", src, src), 1, "not enough memory")
    assert listing(tmp_path) == ["in.png"]


def test_unexpected_errors_are_one_line_and_debuggable(src, tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise AttributeError("'NoneType' object has no attribute 'shape'")

    monkeypatch.setattr("nlm.denoisers.means.denoise_nl_means", bug)
    failed(run("denoise", src, tmp_path / "o.png", *FAST), 1, "unexpected AttributeError", "NLM_DEBUG")
    monkeypatch.setenv("NLM_DEBUG", "1")
    result = run("denoise", src, tmp_path / "o.png", *FAST)
    assert isinstance(result.exception, AttributeError)


# --------------------------------------------------------------------------- #
# interruptions
# --------------------------------------------------------------------------- #
def test_partial_files_are_removed_by_the_signal_cleanup(tmp_path, monkeypatch):
    seen = []

    def encode_then_signal(tmp, *args):
        Path(tmp).write_bytes(b"half")
        seen.append(tmp)
        nlm.io.image.remove_partial_files()  # what the SIGTERM handler does
        assert not os.path.exists(tmp)
        raise KeyboardInterrupt

    monkeypatch.setattr(nlm.io.image, "_encode", encode_then_signal)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "o.png", grey())
    assert seen and listing(tmp_path) == [] and not nlm.io._atomic._PARTIAL


def test_unraisable_messages_are_quiet_only_after_an_interruption(monkeypatch):
    shown = []
    monkeypatch.setattr(sys, "__unraisablehook__", shown.append)
    monkeypatch.setitem(runtime.run_state, "signal", signal.SIGINT)
    runtime.quiet_unraisable("ignored")
    assert shown == []
    monkeypatch.setitem(runtime.run_state, "signal", None)
    runtime.quiet_unraisable("shown")
    assert shown == ["shown"]


def test_ignored_signals_stay_ignored(src, tmp_path):
    """``nohup nlm ...`` must survive SIGHUP: a signal ignored on entry is left alone."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    seen = []
    try:
        def spy(*args, **kwargs):
            seen.append(signal.getsignal(signal.SIGHUP))
            raise ValueError("stop here")

        import nlm.denoisers.means as means

        nlm_denoise = means.denoise_nl_means
        means.denoise_nl_means = spy  # the function the in-memory job calls
        try:
            failed(run("denoise", src, tmp_path / "o.png", *FAST), 1, "stop here")
        finally:
            means.denoise_nl_means = nlm_denoise
        assert seen == [signal.SIG_IGN]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def _default_signals():
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def test_signals_during_the_write_leave_nothing(tmp_path):
    """SIGINT, SIGTERM, SIGHUP while the output is being written (three runs at once)."""
    src = tmp_path / "big.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(src, rng.integers(0, 65535, (1400, 1400, 3), dtype=np.uint16), photometric="rgb")
    before = digest(src)
    runs = {}
    for sig in ("SIGINT", "SIGTERM", "SIGHUP"):
        out = tmp_path / sig
        out.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-m", "nlm", "denoise", str(src), str(out / "o.png"),
             "--patch-size", "1", "--patch-distance", "1", "--sigma", "1", "--h", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
            preexec_fn=_default_signals,  # even if this test runs under nohup
        )
        runs[sig] = (proc, out)
    deadline = time.monotonic() + 120
    pending = dict(runs)
    while pending and time.monotonic() < deadline:
        for sig, (proc, out) in list(pending.items()):
            if any(n.endswith(".part.png") for n in os.listdir(out)):
                proc.send_signal(getattr(signal, sig))
                del pending[sig]
            elif proc.poll() is not None:
                pytest.fail(f"{sig}: the run ended before its write was seen: {proc.stderr.read()}")
        time.sleep(0.001)
    assert not pending, "no write seen in time"
    for sig, (proc, out) in runs.items():
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 128 + getattr(signal, sig), (sig, proc.returncode, stderr)
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
        assert stderr.strip() == f"Error: interrupted by {sig}; no partial output was left", stderr
        assert listing(out) == [], (sig, listing(out))
    assert digest(src) == before


# --------------------------------------------------------------------------- #
# fuzzing the readers: truncated and mutated files of every supported kind
# --------------------------------------------------------------------------- #
def _seed_files(tmp_path):
    rng = np.random.default_rng(1)
    g = rng.integers(0, 255, (12, 10), dtype=np.uint8)
    rgb = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
    files = {}

    def pil(name, im, fmt, **kw):
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        files[name] = buf.getvalue()

    pil("g.png", Image.fromarray(g), "png")
    pil("rgb.png", Image.fromarray(rgb), "png")
    pil("key.png", Image.fromarray(g), "png", transparency=int(g[0, 0]))
    pil("pal.png", Image.fromarray(rgb).quantize(8), "png")
    pil("g16.png", Image.fromarray(g.astype(np.uint16) * 257), "png")
    frames = [Image.fromarray(rgb).quantize(8), Image.fromarray(rgb[::-1]).quantize(8)]
    buf = io.BytesIO()
    frames[0].save(buf, "gif", save_all=True, append_images=frames[1:])
    files["anim.gif"] = buf.getvalue()
    pil("a.bmp", Image.fromarray(rgb), "bmp")
    pil("a.jpg", Image.fromarray(rgb), "jpeg")
    pil("a.webp", Image.fromarray(rgb), "webp", lossless=True)
    for name, data, mode in [("rgb16.png", rgb.astype(np.uint16) * 250, "RGB"),
                             ("la16.png", np.stack([g, g], -1).astype(np.uint16) * 3, "LA")]:
        write_image(tmp_path / name, data, mode)
        files[name] = (tmp_path / name).read_bytes()
        (tmp_path / name).unlink()
    for name, arr, kw in [("u8.tif", g, {}), ("f32.tif", g.astype(np.float32) / 7, {}),
                          ("rgb.tif", rgb, {"photometric": "rgb"}),
                          ("z.tif", rgb, {"photometric": "rgb", "compression": "zlib"}),
                          ("stack.tif", np.stack([g, g, g]), {"photometric": "minisblack"}),
                          ("i64.tif", g.astype(np.int64) << 40, {}),
                          ("be.tif", g.astype(">f4"), {"byteorder": ">"})]:
        buf = io.BytesIO()
        tifffile.imwrite(buf, arr, **kw)
        files[name] = buf.getvalue()
    return files


def _mutate(raw, rng):
    raw = bytearray(raw)
    how = int(rng.integers(0, 4))
    if how == 0:  # truncated
        return bytes(raw[: int(rng.integers(0, len(raw)))])
    if how == 1:  # bytes changed anywhere
        for _ in range(int(rng.integers(1, 8))):
            raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
    elif how == 2:  # bytes inserted
        at = int(rng.integers(0, len(raw)))
        raw[at:at] = rng.integers(0, 256, int(rng.integers(1, 40))).astype(np.uint8).tobytes()
    else:  # header changed
        for _ in range(int(rng.integers(1, 4))):
            raw[int(rng.integers(0, min(len(raw), 64)))] = int(rng.integers(0, 256))
    return bytes(raw)


def test_fuzzed_files_are_read_or_refused_in_one_line(tmp_path):
    files = _seed_files(tmp_path)
    rng = np.random.default_rng(20261125)
    names = sorted(files)
    outcomes = {"read": 0, "refused": 0}
    t0 = time.perf_counter()
    for k in range(len(names) * 24):
        name = names[k % len(names)]
        path = tmp_path / f"f{k}_{name}"
        path.write_bytes(_mutate(files[name], rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                image = read_image(path, max_pixels=10**6)
        except ImageIOError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            outcomes["refused"] += 1
        else:
            assert image.data.size > 0 and image.mode in ("L", "LA", "RGB", "RGBA", "C")
            assert image.data.shape[-1 if image.mode != "L" else 0] > 0
            outcomes["read"] += 1
        path.unlink()
    assert outcomes["read"] > 20 and outcomes["refused"] > 100, outcomes
    assert time.perf_counter() - t0 < 60


def test_fuzzed_files_through_the_cli(tmp_path):
    files = _seed_files(tmp_path)
    rng = np.random.default_rng(7)
    for k, name in enumerate(["g.png", "rgb16.png", "z.tif", "anim.gif", "a.jpg", "be.tif"]):
        raw = files[name]
        path = tmp_path / f"t{k}_{name}"
        path.write_bytes(raw[: len(raw) * 2 // 3] if k % 2 else _mutate(raw, rng))
        out = tmp_path / f"o{k}.tif"
        result = run("denoise", path, out, *FAST, "--volume" if name == "anim.gif" else "-q")
        assert "Traceback" not in result.output
        assert result.exit_code in (0, 1), result.output
        if result.exit_code:
            failed(result, 1, path.name)
            assert not out.exists()
    assert not [n for n in listing(tmp_path) if n.startswith(".")]


def test_tiff_with_a_circular_ifd_chain_does_not_hang(tmp_path):
    buf = io.BytesIO()
    tifffile.imwrite(buf, grey((4, 4)))
    raw = bytearray(buf.getvalue())
    # point the (last) next-IFD offset back at the first IFD
    first = struct.unpack("<I", raw[4:8])[0]
    count = struct.unpack("<H", raw[first : first + 2])[0]
    raw[first + 2 + 12 * count : first + 6 + 12 * count] = struct.pack("<I", first)
    (tmp_path / "loop.tif").write_bytes(bytes(raw))
    t0 = time.perf_counter()
    try:
        read_image(tmp_path / "loop.tif")
    except ImageIOError:
        pass
    assert time.perf_counter() - t0 < 10


# --------------------------------------------------------------------------- #
# odd formats, odd shapes, odd values
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "name, data, kwargs, message",
    [
        ("nan.tif", np.full((12, 12), np.nan, np.float32), {}, "NaN or infinite"),
        ("inf.tif", np.full((12, 12), np.inf, np.float64), {}, "NaN or infinite"),
        ("cplx.tif", np.ones((12, 12), np.complex64), {}, "complex"),
        ("five.tif", np.zeros((2, 2, 2, 12, 12), np.uint8), {"metadata": {"axes": "TZCYX"}, "imagej": True}, "in.tif"),
        ("bool.tif", np.zeros((12, 12), bool), {}, None),
        ("f16.tif", np.linspace(0, 1, 144, dtype=np.float16).reshape(12, 12), {}, None),
        ("be.tif", np.arange(144, dtype=">u2").reshape(12, 12), {"byteorder": ">"}, None),
        ("chans.tif", np.zeros((7, 12, 12), np.float32), {"metadata": {"axes": "CYX"}}, None),
    ],
)
def test_odd_tiffs(tmp_path, name, data, kwargs, message):
    path = tmp_path / "in.tif"
    try:
        tifffile.imwrite(path, data, **kwargs)
    except Exception:
        pytest.skip(f"tifffile cannot write {name}")
    result = run("denoise", path, tmp_path / "o.tif", *FAST, "--sigma", "1")
    if message is None:
        assert result.exit_code == 0, result.output
        assert read_image(tmp_path / "o.tif").data.shape == read_image(path).data.shape
    else:
        assert result.exit_code in (1, 2), result.output
        failed(result, result.exit_code, message)
        assert sorted(listing(tmp_path)) == ["in.tif"]


def test_broken_stdout_pipe_is_not_a_traceback(tmp_path):
    src = tmp_path / "in.png"
    write_image(src, grey())
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run(
        [sys.executable, "-m", "nlm", "denoise", str(src), str(tmp_path / "o.png"), *FAST],
        stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    os.close(write_end)
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 141)
    assert (tmp_path / "o.png").exists()  # the image was written before the report
