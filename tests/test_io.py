"""Tests of nlm.io: lossless reading/writing, dtype rules, atomic writes."""

import os
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from PIL import Image

from nlm.io import ImageIOError, from_float, read_image, to_float, write_image
from nlm.io import image as nio

RNG_SEED = 1234


def _rng():
    return np.random.default_rng(RNG_SEED)


def _random(shape, dtype, rng=None):
    rng = rng or _rng()
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    return (rng.standard_normal(shape) * 1000 - 300).astype(dtype)


def _listdir(path):
    return sorted(p.name for p in path.iterdir())


# --------------------------------------------------------------------------- #
# round trips
# --------------------------------------------------------------------------- #
PNG_CASES = [
    (dtype, shape, mode)
    for dtype in (np.uint8, np.uint16)
    for shape, mode in [((9, 7), "L"), ((9, 7, 2), "LA"), ((9, 7, 3), "RGB"), ((9, 7, 4), "RGBA")]
]


@pytest.mark.parametrize("dtype,shape,mode", PNG_CASES)
def test_png_round_trip_is_exact(tmp_path, dtype, shape, mode):
    data = _random(shape, dtype)
    write_image(tmp_path / "a.png", data)
    image = read_image(tmp_path / "a.png")
    assert image.data.dtype == dtype
    assert image.mode == mode
    assert not image.stack
    np.testing.assert_array_equal(image.data, data)
    assert image.notes == ()


TIFF_CASES = [
    (dtype, shape, mode, stack)
    for dtype in (np.uint8, np.uint16, np.int16, np.int32, np.float16, np.float32, np.float64)
    for shape, mode, stack in [
        ((9, 7), "L", False),
        ((9, 7, 2), "LA", False),
        ((9, 7, 3), "RGB", False),
        ((9, 7, 4), "RGBA", False),
        ((9, 7, 5), "C", False),
        ((9, 7, 3), "C", False),
        ((4, 9, 7), "L", True),
        ((3, 9, 7, 4), "RGBA", True),
        ((3, 9, 7, 2), "C", True),
    ]
]


@pytest.mark.parametrize("dtype,shape,mode,stack", TIFF_CASES)
def test_tiff_round_trip_is_exact(tmp_path, dtype, shape, mode, stack):
    data = _random(shape, dtype)
    write_image(tmp_path / "a.tif", data, mode, stack=stack)
    image = read_image(tmp_path / "a.tif")
    assert image.data.dtype == dtype
    assert (image.mode, image.stack) == (mode, stack)
    np.testing.assert_array_equal(image.data, data)


def test_float32_tiff_keeps_values_outside_unit_range(tmp_path):
    data = np.array([[-5.5, 0.0, 1.0], [2.5, 1e6, -1e-7]], np.float32)
    write_image(tmp_path / "f.tiff", data)
    out = read_image(tmp_path / "f.tiff").data
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, data)


def test_mode_inferred_from_channel_count(tmp_path):
    write_image(tmp_path / "a.tif", _random((5, 6, 4), np.uint8))
    assert read_image(tmp_path / "a.tif").mode == "RGBA"
    write_image(tmp_path / "b.tif", _random((5, 6, 2), np.uint8))
    assert read_image(tmp_path / "b.tif").mode == "LA"


# --------------------------------------------------------------------------- #
# 16-bit colour PNG (own codec, Pillow would drop the low byte)
# --------------------------------------------------------------------------- #
def test_png16_colour_is_valid_png_for_other_readers(tmp_path):
    data = np.array([[[0x1234, 0xABCD, 0xFFFF], [0, 1, 0x8000]]], np.uint16)
    write_image(tmp_path / "c.png", data)
    with Image.open(tmp_path / "c.png") as im:
        im.load()  # Pillow checks the structure and CRCs; it keeps 8 bits
        assert im.size == (2, 1)
        np.testing.assert_array_equal(np.asarray(im), data >> 8)


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _png16_with_filters(data, filters):
    """A 16-bit PNG whose row y uses filter type filters[y] (PNG spec 9.2)."""
    height, width, channels = data.shape
    ctype = {2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    raw = data.astype(">u2").reshape(height, -1).view(np.uint8).astype(int)
    body = bytearray()
    prev = [0] * raw.shape[1]
    for y in range(height):
        row, f = list(raw[y]), filters[y]
        out = []
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][f]
            out.append((x - pred) % 256)
        body.append(f)
        body.extend(out)
        prev = row

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, ctype, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(body)))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels,mode", [(2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_png16_decoder_handles_every_filter_type(tmp_path, channels, mode):
    data = _random((10, 6, channels), np.uint16)
    (tmp_path / "f.png").write_bytes(_png16_with_filters(data, [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]))
    image = read_image(tmp_path / "f.png")
    assert image.mode == mode and image.data.dtype == np.uint16
    np.testing.assert_array_equal(image.data, data)


def test_png16_interlaced_refused(tmp_path):
    blob = bytearray(_png16_with_filters(_random((2, 2, 3), np.uint16), [0, 0]))
    blob[28] = 1  # interlace method byte of IHDR
    blob[29:33] = struct.pack(">I", zlib.crc32(bytes(blob[12:29])) & 0xFFFFFFFF)
    (tmp_path / "i.png").write_bytes(bytes(blob))
    with pytest.raises(ImageIOError, match="interlaced"):
        read_image(tmp_path / "i.png")


def test_png16_truncated_data_refused(tmp_path):
    blob = _png16_with_filters(_random((8, 8, 3), np.uint16), [0] * 8)
    (tmp_path / "t.png").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ImageIOError, match="t.png"):
        read_image(tmp_path / "t.png")


# --------------------------------------------------------------------------- #
# conversions on reading
# --------------------------------------------------------------------------- #
def test_palette_png_becomes_rgb(tmp_path):
    grey = _random((6, 5), np.uint8)
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    image = read_image(tmp_path / "p.png")
    assert image.mode == "RGB" and image.data.dtype == np.uint8
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    np.testing.assert_array_equal(image.data, expected)
    assert any("palette" in n for n in image.notes)


def test_palette_png_with_transparency_becomes_rgba(tmp_path):
    rgb = _random((6, 5, 3), np.uint8)
    pal = Image.fromarray(rgb).quantize(8)
    pal.save(tmp_path / "t.png", transparency=0)
    image = read_image(tmp_path / "t.png")
    assert image.mode == "RGBA"
    alpha = image.data[..., 3]
    np.testing.assert_array_equal(alpha == 0, np.asarray(pal) == 0)
    assert any("RGBA" in n for n in image.notes)


def test_one_bit_png_becomes_uint8_0_255(tmp_path):
    bits = _random((6, 5), np.uint8) > 127
    Image.fromarray(bits).save(tmp_path / "b.png")
    image = read_image(tmp_path / "b.png")
    assert image.mode == "L" and image.data.dtype == np.uint8
    np.testing.assert_array_equal(image.data, np.where(bits, 255, 0))
    assert any("1-bit" in n for n in image.notes)


def test_one_bit_tiff_min_is_white_keeps_white_white(tmp_path):
    bits = _random((6, 5), np.uint8) > 127
    tifffile.imwrite(tmp_path / "b.tif", bits, photometric="miniswhite")
    image = read_image(tmp_path / "b.tif")
    # MinIsWhite: stored 0 is white; after conversion white is 255
    np.testing.assert_array_equal(image.data, np.where(bits, 0, 255))


def test_planar_rgb_tiff_is_read_channels_last(tmp_path):
    planar = _random((3, 6, 5), np.uint16)
    tifffile.imwrite(tmp_path / "p.tif", planar, photometric="rgb", planarconfig="separate")
    image = read_image(tmp_path / "p.tif")
    assert image.mode == "RGB" and image.data.shape == (6, 5, 3)
    np.testing.assert_array_equal(image.data, np.moveaxis(planar, 0, -1))


def test_multipage_tiff_is_a_stack_and_singletons_are_squeezed(tmp_path):
    pages = _random((4, 6, 5), np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", pages, photometric="minisblack")
    image = read_image(tmp_path / "s.tif")
    assert image.stack and image.mode == "L" and image.spatial_shape == (4, 6, 5)
    with pytest.raises(ImageIOError, match="stack of 4"):
        read_image(tmp_path / "s.tif", stack_ok=False)
    tifffile.imwrite(tmp_path / "one.tif", pages[:1], photometric="minisblack")
    single = read_image(tmp_path / "one.tif")
    assert not single.stack and single.data.shape == (6, 5)


def test_animated_gif_is_a_stack(tmp_path):
    frames = _random((3, 6, 5), np.uint8)
    iio.imwrite(tmp_path / "m.gif", frames)
    image = read_image(tmp_path / "m.gif")
    assert image.stack and image.data.shape[:3] == (3, 6, 5)


def test_split_alpha():
    data = _random((4, 5, 4), np.uint8)
    colour, alpha = nio.ImageData(data, "RGBA").split_alpha()
    np.testing.assert_array_equal(colour, data[..., :3])
    np.testing.assert_array_equal(alpha, data[..., 3])
    grey, alpha = nio.ImageData(data[..., :2], "LA").split_alpha()
    assert grey.shape == (4, 5)
    np.testing.assert_array_equal(alpha, data[..., 1])
    rgb, none = nio.ImageData(data[..., :3], "RGB").split_alpha()
    assert none is None and rgb is not None


# --------------------------------------------------------------------------- #
# refused on reading
# --------------------------------------------------------------------------- #
def test_read_errors_name_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not a picture")
    (tmp_path / "junk.tif").write_bytes(b"II*\x00" + b"\xff" * 40)
    good = tmp_path / "good.png"
    write_image(good, _random((16, 16), np.uint8))
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:60])
    (tmp_path / "a.xyz").write_bytes(b"data")
    (tmp_path / "d.png").mkdir()
    cases = {
        "missing.png": "no such file",
        "empty.png": "empty",
        "text.png": "not a recognised PNG",
        "junk.tif": "cannot read|holds no image",
        "trunc.png": "cannot read",
        "a.xyz": "unsupported extension",
        "d.png": "directory",
    }
    for name, message in cases.items():
        with pytest.raises(ImageIOError, match=message) as info:
            read_image(tmp_path / name)
        assert name in str(info.value)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "writer,message",
    [
        (lambda p: Image.fromarray(_random((5, 5, 4), np.uint8), "CMYK").save(p.with_suffix(".jpg")), "CMYK"),
        (
            lambda p: tifffile.imwrite(
                p, _random((5, 5), np.uint8), photometric="palette",
                colormap=np.zeros((3, 256), np.uint16),
            ),
            "palette",
        ),
        (lambda p: tifffile.imwrite(p, _random((5, 5), np.uint8), photometric="miniswhite"), "MinIsWhite"),
        (lambda p: tifffile.imwrite(p, np.ones((5, 5), np.complex64)), "complex"),
        (lambda p: tifffile.imwrite(p, _random((2, 3, 5, 5), np.uint8), photometric="minisblack",
                                    metadata={"axes": "TZYX"}), "more than one stack axis"),
    ],
)
def test_unsupported_pixels_are_refused(tmp_path, writer, message):
    path = tmp_path / "x.tif"
    writer(path)
    target = path if path.exists() else path.with_suffix(".jpg")
    with pytest.raises(ImageIOError, match=message):
        read_image(target)


# --------------------------------------------------------------------------- #
# dtype rules
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "dtype,expected",
    [
        (np.uint8, np.float32), (np.int8, np.float32), (np.uint16, np.float32),
        (np.int16, np.float32), (np.uint32, np.float64), (np.int32, np.float64),
        (np.float16, np.float32), (np.float32, np.float32), (np.float64, np.float64),
        (np.bool_, np.float32),
    ],
)
def test_to_float_keeps_the_value_range(dtype, expected):
    data = np.array([[0, 1], [1, 0]], dtype) if dtype == np.bool_ else _random((3, 4), dtype)
    out = to_float(data)
    assert out.dtype == expected
    np.testing.assert_array_equal(out, data.astype(np.float64))  # no rescale


def test_to_float_refuses_complex():
    with pytest.raises(ImageIOError, match="complex"):
        to_float(np.ones(3, np.complex64))


def test_from_float_rounds_half_to_even_and_clips_integers():
    values = np.array([-3.0, 0.5, 1.5, 2.5, 254.49, 254.5, 255.5, 300.0])
    np.testing.assert_array_equal(from_float(values, np.uint8), [0, 0, 2, 2, 254, 254, 255, 255])
    np.testing.assert_array_equal(from_float(np.array([70000.0, -1.0]), np.uint16), [65535, 0])
    np.testing.assert_array_equal(from_float(np.array([-40000.0, 1.5]), np.int16), [-32768, 2])
    assert from_float(values, np.uint16).dtype == np.uint16


def test_from_float_keeps_float_values_unclipped():
    values = np.array([-3.25, 1e5, 0.5], np.float64)
    out = from_float(values, np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, values.astype(np.float32))


def test_from_float_refuses_nan_for_integers():
    with pytest.raises(ImageIOError, match="NaN"):
        from_float(np.array([np.nan, 1.0]), np.uint8)


# --------------------------------------------------------------------------- #
# writing: format checks, overwrite, atomicity
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "name,data,mode,stack,message",
    [
        ("a.png", np.zeros((4, 4), np.float32), "L", False, "PNG stores only uint8 or uint16"),
        ("a.png", np.zeros((4, 4), np.int16), "L", False, "PNG stores only"),
        ("a.png", np.zeros((2, 4, 4), np.uint8), "L", True, "not a stack"),
        ("a.png", np.zeros((4, 4, 5), np.uint8), "C", False, "5 channels"),
        ("a.jpg", np.zeros((4, 4), np.uint8), "L", False, "lossy"),
        ("a.bmp", np.zeros((4, 4), np.uint8), "L", False, "not a supported output format"),
        ("a", np.zeros((4, 4), np.uint8), "L", False, "unsupported extension"),
    ],
)
def test_write_refuses_what_the_format_cannot_hold(tmp_path, name, data, mode, stack, message):
    with pytest.raises(ImageIOError, match=message):
        write_image(tmp_path / name, data, mode, stack=stack)
    assert _listdir(tmp_path) == []


def test_existing_file_is_kept_without_overwrite(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"precious")
    with pytest.raises(ImageIOError, match="already exists"):
        write_image(target, np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == b"precious"
    assert _listdir(tmp_path) == ["a.png"]
    write_image(target, np.full((4, 4), 7, np.uint8), overwrite=True)
    np.testing.assert_array_equal(read_image(target).data, 7)


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "a.tif"
    write_image(target, np.full((4, 4), 3, np.uint8))
    before = target.read_bytes()

    def broken(tmp, *args):
        with open(tmp, "wb") as fh:
            fh.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nio, "_encode", broken)
    with pytest.raises(ImageIOError, match="No space left"):
        write_image(target, np.zeros((4, 4), np.uint8), overwrite=True)
    with pytest.raises(ImageIOError, match="No space left"):
        write_image(tmp_path / "new.tif", np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == before
    assert _listdir(tmp_path) == ["a.tif"]


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    def interrupted(tmp, *args):
        with open(tmp, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(nio, "_encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    assert _listdir(tmp_path) == []


def test_file_appearing_during_write_is_not_clobbered(tmp_path, monkeypatch):
    target = tmp_path / "a.png"
    real = nio._encode

    def racing(tmp, *args):
        real(tmp, *args)
        target.write_bytes(b"someone else")

    monkeypatch.setattr(nio, "_encode", racing)
    with pytest.raises(ImageIOError, match="already exists"):
        write_image(target, np.zeros((4, 4), np.uint8))
    assert target.read_bytes() == b"someone else"
    assert _listdir(tmp_path) == ["a.png"]


def test_written_file_gets_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(umask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644


def test_write_into_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(ImageIOError, match="does not exist"):
        write_image(tmp_path / "nope" / "a.png", np.zeros((4, 4), np.uint8))
    assert _listdir(tmp_path) == []


@pytest.mark.parametrize("bpp", [1, 2, 6, 8])
def test_png_unfilter_kernel_matches_the_specification(bpp):
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from naive import png_unfilter as oracle

    from nlm.io._png_kernels import png_unfilter

    rng = np.random.default_rng(bpp)
    for height, width in [(1, bpp), (5, 3 * bpp), (9, 7 * bpp)]:
        rows = rng.integers(0, 256, (height, width + 1), dtype=np.uint8)
        rows[:, 0] = rng.integers(0, 5, height)
        out, bad = png_unfilter(rows, bpp)
        assert bad == -1
        np.testing.assert_array_equal(out, oracle(rows, bpp))
    rows[4, 0] = 9
    assert png_unfilter(rows, bpp)[1] == 4


@pytest.mark.parametrize("dtype, mode", [(np.uint8, "L"), (np.uint8, "RGB"), (np.uint16, "LA"),
                                         (np.uint16, "RGBA"), (np.uint16, "L")])
def test_written_png_is_read_exactly_by_pillow_too(tmp_path, dtype, mode):
    """The module's own PNG encoder (every filter type in use) against Pillow's decoder."""
    rng = np.random.default_rng(3)
    data = (np.add.outer(np.arange(37), np.arange(29)) * 3 % 200).astype(dtype)
    if mode != "L":
        data = np.stack([data + k for k in range(len(mode))], -1).astype(dtype)
    data[::5] = rng.integers(0, np.iinfo(dtype).max, data[::5].shape, dtype=dtype)
    write_image(tmp_path / "o.png", data, mode)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").data, data)
    if dtype == np.uint8 or mode == "L":
        with Image.open(tmp_path / "o.png") as im:
            np.testing.assert_array_equal(np.asarray(im), data)
