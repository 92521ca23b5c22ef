"""The PNG codec of :mod:`nlm.io.image`: its own encoder (adaptive row
filters, zlib level 6, streamed in bands of rows), its own decoder of 16-bit
colour PNG (Pillow silently reduces it to 8 bits; the row unfiltering is the
Numba kernel of :mod:`nlm.io._png_kernels`), and the ``tRNS`` colour key, read
from the file's head and turned into an alpha channel for any PNG decoder.
"""

from __future__ import annotations

import os
import struct
import zlib
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import numpy as np

from nlm.io._imagedata import CHANNELS, ImageData, ImageIOError, check_pixels

__all__ = ["PNG_SIGNATURE", "colour_key", "key_to_alpha", "png16_colour", "read_png16", "write_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}


def _png_chunks(raw):
    """Yield ``(type, body)`` of each chunk of PNG bytes ``raw`` (after the signature)."""
    pos = 8
    while pos + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        ctype = raw[pos + 4 : pos + 8]
        body = raw[pos + 8 : pos + 8 + length]
        if len(body) != length:
            raise ImageIOError("truncated PNG")
        yield ctype, body
        if ctype == b"IEND":
            return
        pos += 12 + length


def colour_key(path: str | PathLike) -> int | tuple[int, int, int] | None:
    """The tRNS colour key of a grey or RGB PNG, scaled as the decoder scales pixels.

    Returns ``None`` without a key, an int for grey, a 3-tuple for RGB.  The
    chunk must precede the image data, so only the head of the file is read.
    """
    with open(path, "rb") as fh:
        fh.seek(8)
        ihdr = trns = None
        while True:
            header = fh.read(8)
            if len(header) < 8:
                break
            (length,) = struct.unpack(">I", header[:4])
            ctype = header[4:]
            if ctype in (b"IDAT", b"IEND"):
                break
            if ctype in (b"IHDR", b"tRNS") and length <= 64:
                body = fh.read(length)
                fh.seek(4, os.SEEK_CUR)
                if ctype == b"IHDR" and length == 13:
                    ihdr = struct.unpack(">IIBBBBB", body)
                elif ctype == b"tRNS":
                    trns = body
            else:
                fh.seek(length + 4, os.SEEK_CUR)
    if ihdr is None or trns is None:
        return None
    depth, colour = ihdr[2], ihdr[3]
    mask = (1 << depth) - 1
    scale = 255 // mask if depth < 8 else 1  # 1, 2, 4 bits are expanded to 0..255
    if colour == 0 and len(trns) >= 2:
        return (struct.unpack(">H", trns[:2])[0] & mask) * scale
    if colour == 2 and len(trns) >= 6:
        return tuple((v & mask) * scale for v in struct.unpack(">HHH", trns[:6]))
    return None


def key_to_alpha(data: np.ndarray, mode: str, key: int | tuple[int, int, int]) -> tuple[np.ndarray, str]:
    """Turn a colour key into an alpha channel: 0 where the pixel equals it, else opaque."""
    top = np.iinfo(data.dtype).max if data.dtype.kind in "ui" else 1
    if mode == "L":
        transparent = data == key
    else:
        transparent = np.all(data == np.asarray(key, dtype=data.dtype), axis=-1)
        data = data[..., :3]
    alpha = np.where(transparent, 0, top).astype(data.dtype)
    if mode == "L":
        return np.stack([data, alpha], axis=-1), "LA"
    return np.concatenate([data, alpha[..., None]], axis=-1), "RGBA"


def png16_colour(head) -> bool:
    """True for a 16-bit PNG with channels (colour types 2, 4, 6)."""
    if len(head) < 26 or head[12:16] != b"IHDR":
        return False
    return head[24] == 16 and head[25] in (2, 4, 6)


def read_png16(path: str | PathLike, limit: int) -> ImageData:
    raw = Path(path).read_bytes()
    idat, ihdr, trns = [], None, None
    try:
        for ctype, body in _png_chunks(raw):
            if ctype == b"IHDR" and len(body) == 13:
                ihdr = struct.unpack(">IIBBBBB", body)
            elif ctype == b"tRNS":
                trns = body
            elif ctype == b"IDAT":
                idat.append(body)
    except ImageIOError:
        raise ImageIOError(f"{path}: truncated PNG") from None
    if ihdr is None or not idat:
        raise ImageIOError(f"{path}: corrupt PNG (no header or no image data)")
    width, height, depth, ctype, _, _, interlace = ihdr
    if depth != 16 or ctype not in (2, 4, 6) or not 0 < width < 2**31 or not 0 < height < 2**31:
        raise ImageIOError(f"{path}: corrupt PNG header")
    check_pixels(path, (height, width), limit)
    if interlace:
        raise ImageIOError(
            f"{path}: interlaced 16-bit colour PNG is not supported; save it non-interlaced or as TIFF"
        )
    mode = _PNG_COLOUR_TYPES[ctype]
    channels = CHANNELS[mode]
    bpp = 2 * channels
    stride = width * bpp
    expected = height * (stride + 1)
    try:
        # bounded: a stream that inflates to more than the header says is cut off
        buf = zlib.decompressobj().decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise ImageIOError(f"{path}: corrupt PNG data ({exc})") from None
    if len(buf) < expected:
        raise ImageIOError(f"{path}: truncated PNG data")
    rows = np.frombuffer(buf, np.uint8, expected).reshape(height, stride + 1)
    from nlm.io._png_kernels import png_unfilter

    out, bad = png_unfilter(rows, bpp)
    if bad >= 0:
        raise ImageIOError(f"{path}: corrupt PNG (filter type {rows[bad, 0]} in row {bad})")
    data = out.view(">u2").astype(np.uint16).reshape(height, width, channels)
    notes = ()
    if mode == "RGB" and trns is not None and len(trns) >= 6:
        data, mode = key_to_alpha(data, mode, struct.unpack(">HHH", trns[:6]))
        notes = ("transparency key (tRNS) converted to an alpha channel (RGBA)",)
    return ImageData(data, mode, False, Path(path), notes)


def _png_chunk(ctype, body):
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _png_filter_rows(raw, bpp, up):
    """Filter PNG scanlines, each with the filter that gives the smallest sum
    of absolute (signed) bytes, libpng's heuristic.

    ``up`` is the (unfiltered) row above the first one, zeros at the top.
    Returns the rows with their filter-type byte in front.
    """
    raw16 = raw.astype(np.int16)
    b = np.concatenate([up[None].astype(np.int16), raw16[:-1]])
    a = np.zeros_like(raw16)
    a[:, bpp:] = raw16[:, :-bpp]
    c = np.zeros_like(raw16)
    c[:, bpp:] = b[:, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    candidates = np.stack([raw16, raw16 - a, raw16 - b, raw16 - ((a + b) >> 1), raw16 - paeth])
    candidates = (candidates & 0xFF).astype(np.uint8)
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
    best = cost.argmin(axis=0)
    rows = candidates[best, np.arange(raw.shape[0])]
    return np.concatenate([best.astype(np.uint8)[:, None], rows], axis=1)


def write_png(fh: BinaryIO, data: np.ndarray, mode: str) -> None:
    """Encode ``uint8``/``uint16`` pixels, modes L, LA, RGB, RGBA, as a PNG.

    Non-interlaced, adaptive filtering per row, zlib level 6, streamed in
    bands of rows so that the memory used stays a few times one band.
    """
    height, width = data.shape[:2]
    ctype = {v: k for k, v in _PNG_COLOUR_TYPES.items()}[mode]
    depth = 8 * data.dtype.itemsize
    rows = np.ascontiguousarray(data, dtype=">u2" if depth == 16 else np.uint8)
    rows = rows.reshape(height, -1).view(np.uint8)
    bpp = CHANNELS[mode] * data.dtype.itemsize
    fh.write(PNG_SIGNATURE)
    fh.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, 0)))
    band = max(1, (4 << 20) // max(1, rows.shape[1]))
    packer = zlib.compressobj(6)
    up = np.zeros(rows.shape[1], np.uint8)
    pending = []
    for start in range(0, height, band):
        chunk = rows[start : start + band]
        pending.append(packer.compress(_png_filter_rows(chunk, bpp, up).tobytes()))
        up = chunk[-1]
        if sum(map(len, pending)) >= (1 << 20):
            fh.write(_png_chunk(b"IDAT", b"".join(pending)))
            pending = []
    pending.append(packer.flush())
    fh.write(_png_chunk(b"IDAT", b"".join(pending)))
    fh.write(_png_chunk(b"IEND", b""))
