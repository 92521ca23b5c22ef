"""Lossless image reading and writing for the ``nlm`` command line.

Reading goes through :mod:`tifffile` for TIFF and :mod:`imageio.v3` (Pillow)
for the other formats; writing produces PNG or TIFF only, both lossless.  The
rules below are the whole contract; the command line documents them in
``docs/cli.md``.

Layout
------
:func:`read_image` returns the pixels as stored, in the axis order
``([Z,] Y, X[, C])``: an optional leading stack axis (pages of a multi-page
TIFF, frames of an animated GIF), then rows and columns, then an optional
trailing channel axis.  :attr:`ImageData.mode` says what the channels are:

========  ===============================================================
``L``     grey, no channel axis
``LA``    grey + alpha (2 channels, alpha last)
``RGB``   colour (3 channels)
``RGBA``  colour + alpha (4 channels, alpha last)
``C``     ``n`` generic channels (multi-channel TIFF), none of them alpha
========  ===============================================================

Data types
----------
* The stored data type is kept: ``uint8`` stays ``uint8``, ``uint16`` stays
  ``uint16``, ``float32`` stays ``float32``, and so do the other integer and
  float types TIFF can hold.  Values are never rescaled.
* Conversions made on reading, each recorded in :attr:`ImageData.notes`:
  palette (indexed-colour) PNG/GIF/BMP images become ``RGB`` ``uint8``, or
  ``RGBA`` when the palette has transparency; 1-bit images become ``uint8``
  with black 0 and white 255; a grey or RGB PNG with a ``tRNS`` colour key
  becomes ``LA``/``RGBA`` with alpha 0 exactly where the pixel equals the key
  (the key would not survive filtering; the alpha channel does).
* TIFF pages written one at a time (one series each) form one stack when
  they all have the same shape, data type and colour layout; pages that
  differ are refused (never silently reduced to the first page).
  Reduced-resolution pages (thumbnails, pyramid levels) are ignored.
* Refused on reading, with a message saying what to do: CMYK, Lab, YCbCr and
  other colour spaces, palette TIFFs, MinIsWhite grey TIFFs (other than 1-bit),
  complex numbers, interlaced 16-bit colour PNG, TIFFs with more than one
  stack axis or with both a sample and a channel axis; anything that is not a
  regular file (a FIFO is refused, not waited on); files whose header claims
  more than ``max_pixels`` pixels (:data:`MAX_PIXELS` by default, checked
  before decoding: a guard against decompression bombs).
* :func:`to_float` gives the working float array *in the image's own value
  range* (``uint8`` becomes ``float32`` values 0..255, not 0..1):
  8- and 16-bit integers and ``float16`` become ``float32``; 32- and 64-bit
  integers become ``float64``; ``float32`` and ``float64`` are kept.
* :func:`from_float` converts back: integer types are rounded to the nearest
  integer (half to even) and clipped to the type's range, exactly for every
  integer type (64-bit ones included, whose maximum float64 cannot hold);
  float types are cast without clipping.

Formats written
---------------
* PNG: ``uint8`` or ``uint16``, modes ``L``, ``LA``, ``RGB``, ``RGBA``, one
  image (no stack), encoded by this module (adaptive row filters, zlib
  level 6).  16-bit colour PNG is also decoded here because Pillow silently
  reduces it to 8 bits.
* TIFF: every data type, mode and stack above (uncompressed; alpha marked as
  unassociated alpha so that it reads back as alpha).
* Anything else (JPEG, which is lossy, BMP, GIF, ...) is refused.

Every write goes to a temporary file ``.NAME.XXXXXXXX.part.EXT`` in the
destination directory (NAME shortened to fit the file system's name limit)
that is then renamed into place, so a failed or interrupted write leaves no
partial file, and an existing file is only replaced when ``overwrite=True``.
A program ending on a signal calls :func:`remove_partial_files` from its
handler.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = [
    "MAX_PIXELS",
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "ImageData",
    "ImageIOError",
    "check_writable",
    "file_kind",
    "from_float",
    "read_image",
    "remove_partial_files",
    "to_float",
    "write_image",
]

#: file extensions :func:`read_image` accepts (lower case)
READ_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
#: file extensions :func:`write_image` accepts (lower case)
WRITE_EXTENSIONS = (".png", ".tif", ".tiff")

_TIFF_EXTENSIONS = (".tif", ".tiff")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


class ImageIOError(ValueError):
    """An image cannot be read or written; the message says why, in one line."""


@dataclass(frozen=True)
class ImageData:
    """Pixels read from a file, and what they mean.

    Attributes
    ----------
    data : numpy.ndarray
        The pixels, axes ``([Z,] Y, X[, C])``, in the stored data type.
    mode : str
        ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"`` or ``"C"`` (see module doc).
    stack : bool
        True when ``data`` has a leading stack axis (a 3-D volume).
    path : pathlib.Path or None
        Where it was read from.
    notes : tuple of str
        Conversions made on reading (palette to RGB, 1-bit to uint8, ...).
    """

    data: np.ndarray
    mode: str
    stack: bool = False
    path: Path | None = None
    notes: tuple = field(default=())

    @property
    def has_alpha(self) -> bool:
        """True when the last channel is alpha (modes ``LA`` and ``RGBA``)."""
        return self.mode in ("LA", "RGBA")

    @property
    def channel_axis(self):
        """``-1`` when there is a channel axis, else ``None``."""
        return None if self.mode == "L" else -1

    @property
    def spatial_shape(self) -> tuple:
        """The shape without the channel axis: ``([Z,] Y, X)``."""
        return self.data.shape if self.mode == "L" else self.data.shape[:-1]

    def split_alpha(self):
        """Return ``(colour, alpha)``; ``alpha`` is None without an alpha channel.

        ``colour`` of an ``LA`` image has no channel axis (it is grey).
        """
        if not self.has_alpha:
            return self.data, None
        colour = self.data[..., :-1]
        if self.mode == "LA":
            colour = colour[..., 0]
        return colour, self.data[..., -1]

    def without_pixels(self) -> "ImageData":
        """This image's description without its pixels, so that they can be freed.

        ``data`` becomes a read-only zero-stride array of the same shape and
        dtype (it takes no memory and reads as zeros); ``mode``, ``stack``,
        ``path`` and ``notes`` are kept, and so are :meth:`describe`,
        :attr:`spatial_shape` and the other properties.
        """
        return replace(self, data=np.broadcast_to(np.zeros((), self.data.dtype), self.data.shape))

    def describe(self) -> str:
        """One-line summary, e.g. ``"512x512 RGB uint8"`` or ``"12x64x64 L float32 stack"``."""
        shape = "x".join(str(n) for n in self.spatial_shape)
        kind = self.mode if self.mode != "C" else f"{self.data.shape[-1]}-channel"
        text = f"{shape} {kind} {self.data.dtype}"
        return text + (" stack" if self.stack else "")


# --------------------------------------------------------------------------- #
# dtype conversions
# --------------------------------------------------------------------------- #
def to_float(data, out=None):
    """Convert pixels to a float array in their own value range.

    Parameters
    ----------
    data : numpy.ndarray
        Integer or float pixels (bool is accepted and becomes 0/1).
    out : numpy.ndarray, optional
        Where to write the result: ``data``'s shape and the float type below,
        in native byte order (a float32/float64 ``data`` is then copied into
        it).  The command
        line converts into a buffer it can lend to the filter afterwards
        (:func:`nlm.ops._nlm_kernels.scratch`).

    Returns
    -------
    numpy.ndarray
        ``float32`` for 8- and 16-bit integers, bool, ``float16`` and
        ``float32``; ``float64`` for 32- and 64-bit integers and ``float64``
        (so that every integer value stays exact).  Values are not rescaled:
        a ``uint8`` 200 becomes 200.0.  A ``float32``/``float64`` input is
        returned as is (no copy) without ``out``; with ``out``, ``out``.

    Raises
    ------
    ImageIOError
        For data types that are not integer, bool or real float.
    ValueError
        If ``out`` does not have ``data``'s shape and the float type.
    """
    data = np.asarray(data)
    kind = data.dtype.kind
    if kind == "b" or (kind in "iuf" and data.dtype.itemsize <= 2):
        ftype = np.float32
    elif kind in "iu" or (kind == "f" and data.dtype.itemsize > 8):
        ftype = np.float64
    elif kind == "f":
        ftype = None  # float32/float64: as it is
    else:
        raise ImageIOError(f"unsupported pixel data type {data.dtype}")
    if out is None:
        return data if ftype is None else data.astype(ftype)
    want = data.dtype.newbyteorder("=") if ftype is None else np.dtype(ftype)
    if out.shape != data.shape or out.dtype != want:
        raise ValueError(f"out must have shape {data.shape} and dtype {want}, got {out.shape} {out.dtype}")
    np.copyto(out, data, casting="unsafe")  # what astype does
    return out


def from_float(data, dtype):
    """Convert float results back to the original pixel data type.

    Parameters
    ----------
    data : numpy.ndarray
        Float values in the original value range (as made by :func:`to_float`).
    dtype : numpy.dtype or type
        The data type to return.

    Returns
    -------
    numpy.ndarray
        For an integer ``dtype``: ``data`` rounded to the nearest integer
        (half to even) and clipped to the type's range, then cast.  For a float
        ``dtype``: ``data`` cast without clipping.

    Raises
    ------
    ImageIOError
        When ``data`` holds NaN and ``dtype`` is an integer type.
    """
    dtype = np.dtype(dtype)
    data = np.asarray(data)
    if dtype.kind in "iu":
        nan = f"result holds NaN, which {dtype} cannot store"
        if data.ndim == 0:
            if data.dtype.kind == "f" and np.isnan(data):
                raise ImageIOError(nan)
            return _round_clip(data, dtype)
        out = np.empty(data.shape, dtype)
        # in slabs of about 2^20 values along the first axis, so that the
        # temporaries (NaN mask, rounded floats) stay a few MiB
        rows = max(1, (1 << 20) // max(1, data[:1].size))
        for i in range(0, data.shape[0], rows):
            slab = data[i : i + rows]
            if slab.dtype.kind == "f" and np.isnan(slab).any():
                raise ImageIOError(nan)
            out[i : i + rows] = _round_clip(slab, dtype)
        return out
    if dtype.kind == "b":
        return data >= 0.5
    return data.astype(dtype, copy=False)


def _round_clip(data, dtype):
    """Round half to even and clip to ``dtype``'s range, exactly, without warnings.

    ``float(2**63 - 1)`` is ``2**63``, which does not fit ``int64``: clipping to
    ``float(info.max)`` and casting overflows.  The values are clipped to the
    largest float below the type's bound and those beyond it set afterwards.
    """
    info = np.iinfo(dtype)
    if data.dtype.kind not in "fiub":
        data = data.astype(np.float64)
    if data.dtype.kind in "iub":
        if data.dtype.kind == "b":
            data = data.astype(np.uint8)
        have = np.iinfo(data.dtype)  # bounds both types hold: no overflow in clip
        return np.clip(data, max(info.min, have.min), min(info.max, have.max)).astype(dtype)
    if dtype.itemsize >= 4 and data.dtype.itemsize < 8:
        data = data.astype(np.float64)
    rounded = np.rint(data)
    ftype = rounded.dtype.type
    hi, lo = ftype(info.max), ftype(info.min)
    if int(hi) > info.max:  # the bound rounds up: clip just below it
        hi = np.nextafter(hi, ftype(0))
    if int(lo) < info.min:
        lo = np.nextafter(lo, ftype(0))
    out = np.clip(rounded, lo, hi).astype(dtype)
    if int(hi) < info.max:
        out[rounded > hi] = info.max
    if int(lo) > info.min:
        out[rounded < lo] = info.min
    return out


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #
def _ext(path) -> str:
    return Path(path).suffix.lower()


def read_image(path, *, stack_ok=True, max_pixels=None) -> ImageData:
    """Read an image file without losing anything.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, TIFF, JPEG, BMP, GIF or WebP file (by extension).
    stack_ok : bool, optional
        When False, a file holding several images (multi-page TIFF, animated
        GIF) raises :class:`ImageIOError` instead of being returned as a stack.
    max_pixels : int, optional
        Refuse files holding more pixels than this (all pages together,
        channels not counted), checked from the header before anything is
        decoded, so that a small file cannot claim gigabytes (a
        "decompression bomb").  ``None``: the environment variable
        ``NLM_MAX_PIXELS`` if set, else :data:`MAX_PIXELS`; ``0``: no limit.

    Returns
    -------
    ImageData
        Pixels in the stored data type, axes ``([Z,] Y, X[, C])``.

    Raises
    ------
    ImageIOError
        The file is missing, a directory or another non-regular file (a FIFO,
        a device), empty, unreadable, corrupt, of an unsupported extension,
        larger than ``max_pixels``, or holds pixels this module refuses (see
        the module documentation).  The message is one line and names the
        file.
    """
    path = Path(path)
    ext = _ext(path)
    if ext not in READ_EXTENSIONS:
        raise ImageIOError(
            f"{path}: unsupported extension {ext or '(none)'!r}; "
            f"readable: {', '.join(READ_EXTENSIONS)}"
        )
    limit = _pixel_limit(max_pixels)
    size, head = _open_regular(path)
    if size == 0:
        raise ImageIOError(f"{path}: file is empty")
    try:
        with _quiet_readers():
            if ext in _TIFF_EXTENSIONS:
                image = _read_tiff(path, limit)
            elif head.startswith(_PNG_SIGNATURE) and _png16_colour(head):
                image = _read_png16(path, limit)
            else:
                image = _read_pillow(path, ext, limit, head)
    except ImageIOError:
        raise
    except MemoryError:
        raise ImageIOError(f"{path}: not enough memory to read it") from None
    except OSError as exc:
        if exc.errno is None or not exc.strerror:
            raise ImageIOError(f"{path}: cannot read as an image: {_reason(exc, ext)}") from None
        raise ImageIOError(f"{path}: cannot read: {exc.strerror}") from None
    except Exception as exc:  # every reader error becomes one line
        raise ImageIOError(f"{path}: cannot read as an image: {_reason(exc, ext)}") from None
    if image.data.size == 0:
        raise ImageIOError(f"{path}: image has no pixels")
    if image.stack and not stack_ok:
        raise ImageIOError(f"{path}: holds a stack of {image.data.shape[0]} images")
    return image


#: default limit of :func:`read_image` on the pixels of one file (all pages,
#: channels not counted): 2**27, e.g. 11585 x 11585, or 512 x 512 x 512
MAX_PIXELS = 2**27


def _pixel_limit(max_pixels):
    if max_pixels is None:
        env = os.environ.get("NLM_MAX_PIXELS", "").strip()
        if not env:
            return MAX_PIXELS
        try:
            max_pixels = int(env)
        except ValueError:
            raise ImageIOError(
                f"NLM_MAX_PIXELS={env!r} is not a whole number (0 for no limit)"
            ) from None
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise TypeError(f"max_pixels must be an int, got {type(max_pixels).__name__}")
    if max_pixels < 0:
        raise ValueError(f"max_pixels must be >= 0 (0: no limit), got {max_pixels}")
    return int(max_pixels)


def _check_pixels(path, shape, limit):
    """Refuse an image whose header claims more than ``limit`` pixels."""
    count = 1
    for n in shape:
        count *= int(n)
    if limit and count > limit:
        size = "x".join(str(int(n)) for n in shape) + " is" if len(shape) > 1 else "holds"
        raise ImageIOError(
            f"{path}: {size} {count:,} pixels, more than the limit of {limit:,} "
            "(a guard against decompression bombs); if the image is genuine, raise "
            "the limit: --max-pixels N, NLM_MAX_PIXELS=N or max_pixels=N (0: none)"
        )


_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode):
    """Name the kind of a non-regular file from its ``st_mode`` (for messages)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    for test, name in _FILE_KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path):
    """Return ``(size, first 64 bytes)`` of a regular file; refuse anything else.

    The file is opened without blocking, so a FIFO named ``x.png`` is refused
    instead of waiting for a writer forever.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise ImageIOError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageIOError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageIOError(f"{path}: is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise ImageIOError(
                f"{path}: is {file_kind(info.st_mode)}, not a regular file; give an image file"
            )
        head = os.read(fd, 64)
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return info.st_size, head


#: what the readers say when the data stops short of what the header promises
_TRUNCATION_SIGNS = ("failed to read", "truncated", "mmap length is greater than file size", "unexpected end",
                     "end of file", "EOF")


def _reason(exc, ext):
    """A reader's exception as a short one-line reason."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if any(k in reason for k in ("Could not find a backend", "cannot identify image file",
                                 "can not handle the given uri",
                                 "error occurred while initializing plugin")):
        reason = f"not a recognised {ext[1:].upper()} file (corrupt or of another type)"
    elif any(k in reason for k in _TRUNCATION_SIGNS):
        reason = f"the file is truncated or corrupt ({reason})"
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return reason


@contextlib.contextmanager
def _quiet_readers():
    """Silence the readers' warnings and log lines: errors are raised instead."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _read_pillow(path, ext, limit, head) -> ImageData:
    import imageio.v3 as iio

    # Pillow only: with PyAV installed, imageio would otherwise offer non-images to ffmpeg
    props = iio.improps(path, extension=ext, plugin="pillow")
    shape = props.shape
    if props.is_batch:
        _check_pixels(path, shape[:3], limit)
    else:
        _check_pixels(path, shape[:2], limit)
    meta = iio.immeta(path, extension=ext, plugin="pillow")
    pil_mode = meta.get("mode")
    notes = []
    read_mode = None
    if pil_mode in ("P", "PA"):
        read_mode = "RGBA" if (pil_mode == "PA" or "transparency" in meta) else "RGB"
        notes.append(f"palette image converted to {read_mode} uint8")
    elif pil_mode in ("CMYK", "LAB", "HSV", "RGBa", "La", "RGBX"):
        raise ImageIOError(
            f"{path}: colour mode {pil_mode} is not supported; convert it to RGB first"
        )
    data = iio.imread(path, extension=ext, mode=read_mode, plugin="pillow")
    stack = bool(props.is_batch) and data.shape[0] > 1
    if props.is_batch and not stack:
        data = data[0]
    if data.dtype == bool:
        data = data.astype(np.uint8) * np.uint8(255)
        notes.append("1-bit image converted to uint8 (black 0, white 255)")
    if data.dtype.kind == "c":
        raise ImageIOError(f"{path}: complex pixels are not supported")
    ndim = data.ndim - stack
    if ndim == 3 and data.shape[-1] == 1:
        data, ndim = data[..., 0], 2
    if ndim == 2:
        mode = "L"
    elif ndim == 3 and data.shape[-1] in (2, 3, 4):
        mode = {2: "LA", 3: "RGB", 4: "RGBA"}[data.shape[-1]]
    else:
        raise ImageIOError(f"{path}: unexpected image shape {data.shape}")
    if read_mode is None and mode in ("L", "RGB") and head.startswith(_PNG_SIGNATURE):
        key = _png_colour_key(path)
        if key is not None:
            data, mode = _key_to_alpha(data, mode, key)
            notes.append(f"transparency key (tRNS) converted to an alpha channel ({mode})")
    return ImageData(np.ascontiguousarray(data), mode, stack, path, tuple(notes))


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


def _png_colour_key(path):
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


def _key_to_alpha(data, mode, key):
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


def _tiff_keyframe(series, tif):
    return series.keyframe if hasattr(series, "keyframe") else tif.pages[0]


def _check_tiff_size(path, series, page):
    """Refuse a TIFF whose header places pixel data beyond the end of the file.

    Checked from the header alone, before any pixel is read or any limit is
    applied: the contiguous data of ``series``, else the strips or tiles of
    its first ``page`` (later pages fail when they are read).  A header
    that promises 100000x100000 pixels over 256 bytes of data is a
    truncated file, and is said to be one.
    """
    if series.dataoffset is not None:
        end = int(series.dataoffset) + int(np.prod(series.shape, dtype=object)) * np.dtype(series.dtype).itemsize
    else:
        end = max((int(o) + int(c) for o, c in zip(page.dataoffsets, page.databytecounts) if c), default=0)
    size = os.path.getsize(path)
    if end > size:
        shape = "x".join(map(str, series.shape))
        raise ImageIOError(
            f"{path}: the file is truncated: its header describes {shape} {np.dtype(series.dtype).name} pixels "
            f"ending at byte {end}, but the file holds {size} bytes"
        )


def _read_tiff(path, limit) -> ImageData:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        # counting the pages first walks the whole IFD chain, which detects a
        # circular chain; building the series without it can loop forever
        len(tif.pages)
        # reduced-resolution copies (thumbnails, pyramid levels) are not images
        series = [s for s in tif.series if not _tiff_keyframe(s, tif).is_reduced]
        if not series:
            why = " (its first page is missing or corrupt)" if not len(tif.pages) else ""
            raise ImageIOError(f"{path}: TIFF holds no image{why}")
        described = []
        for s in series:
            page = _tiff_keyframe(s, tif)
            described.append(
                (
                    tuple(s.shape),
                    s.axes,
                    np.dtype(s.dtype),
                    int(page.photometric),
                    tuple(int(e) for e in (page.extrasamples or ())),
                )
            )
        _check_tiff_size(path, series[0], _tiff_keyframe(series[0], tif))
        spatial = [[n for n, a in zip(d[0], d[1]) if a not in "SC"] for d in described]
        if len(spatial) == 1:
            _check_pixels(path, spatial[0], limit)
        else:  # pages written one at a time: their pixels add up
            _check_pixels(path, [sum(int(np.prod(s, dtype=object)) for s in spatial)], limit)
        shape, axes, dtype, photometric, extrasamples = described[0]
        if len(series) > 1:
            # pages written one at a time (one series each): a stack when they match
            if any(d != described[0] for d in described[1:]):
                kinds = ", ".join(
                    f"{'x'.join(map(str, d[0]))} {d[2]}" for d in described[:4]
                ) + (", ..." if len(described) > 4 else "")
                raise ImageIOError(
                    f"{path}: holds {len(series)} images of different sizes or types "
                    f"({kinds}); nlm reads one image or a stack of equal pages: "
                    "split the file into one image per file first"
                )
            if any(a not in "YXSC" and n > 1 for n, a in zip(shape, axes)):
                raise ImageIOError(
                    f"{path}: holds {len(series)} stacks ({axes} {shape}); "
                    "only one stack axis is supported"
                )
            data = np.stack([s.asarray() for s in series])
            axes = "I" + axes
        else:
            data = series[0].asarray()
    notes = []
    if data.dtype.kind == "c":
        raise ImageIOError(f"{path}: complex pixels are not supported")
    # photometric: 0 MinIsWhite, 1 MinIsBlack, 2 RGB, 3 palette, 5 CMYK, 6 YCbCr, 8 Lab
    if photometric == 3:
        raise ImageIOError(
            f"{path}: palette (indexed-colour) TIFF is not supported; convert it to RGB first"
        )
    if photometric == 0 and data.dtype != bool:
        raise ImageIOError(
            f"{path}: MinIsWhite grey TIFF is not supported; save it as MinIsBlack first"
        )
    if photometric not in (0, 1, 2):
        raise ImageIOError(
            f"{path}: TIFF colour space (photometric {photometric}) is not supported; "
            "convert it to grey or RGB first"
        )
    if data.dtype == bool:
        if photometric == 0:
            data = ~data
        data = data.astype(np.uint8) * np.uint8(255)
        notes.append("1-bit image converted to uint8 (black 0, white 255)")

    if len(axes) != data.ndim or "Y" not in axes or "X" not in axes:
        raise ImageIOError(f"{path}: unexpected TIFF layout {axes} {data.shape}")
    # drop every singleton axis except Y and X
    keep = [i for i, a in enumerate(axes) if a in "YX" or data.shape[i] > 1]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    channel_axes = [a for a in axes if a in "SC"]
    stack_axes = [a for a in axes if a not in "YXSC"]
    if len(channel_axes) > 1:
        raise ImageIOError(f"{path}: TIFF with both samples and channels ({axes}) is not supported")
    if len(stack_axes) > 1:
        raise ImageIOError(
            f"{path}: TIFF with axes {axes} has more than one stack axis; "
            "only one (pages, Z or time) is supported"
        )
    order = [axes.index(a) for a in stack_axes] + [axes.index("Y"), axes.index("X")]
    order += [axes.index(a) for a in channel_axes]
    data = np.ascontiguousarray(data.transpose(order))
    if not channel_axes:
        mode = "L"
    else:
        n = data.shape[-1]
        alpha = channel_axes[0] == "S" and extrasamples[-1:] in ((1,), (2,))
        if photometric == 2 and n == 3:
            mode = "RGB"
        elif photometric == 2 and n == 4 and alpha:
            mode = "RGBA"
        elif photometric == 1 and n == 2 and alpha:
            mode = "LA"
        else:
            mode = "C"
    return ImageData(data, mode, bool(stack_axes), path, tuple(notes))


# --------------------------------------------------------------------------- #
# 16-bit colour PNG (Pillow reduces it to 8 bits, so it is coded here)
# --------------------------------------------------------------------------- #
_PNG_COLOUR_TYPES = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}


def _png16_colour(head) -> bool:
    """True for a 16-bit PNG with channels (colour types 2, 4, 6)."""
    if len(head) < 26 or head[12:16] != b"IHDR":
        return False
    return head[24] == 16 and head[25] in (2, 4, 6)


def _read_png16(path, limit) -> ImageData:
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
    _check_pixels(path, (height, width), limit)
    if interlace:
        raise ImageIOError(
            f"{path}: interlaced 16-bit colour PNG is not supported; save it non-interlaced or as TIFF"
        )
    mode = _PNG_COLOUR_TYPES[ctype]
    channels = _CHANNELS[mode]
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
        data, mode = _key_to_alpha(data, mode, struct.unpack(">HHH", trns[:6]))
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


def _write_png(fh, data, mode):
    """Encode ``uint8``/``uint16`` pixels, modes L, LA, RGB, RGBA, as a PNG.

    Non-interlaced, adaptive filtering per row, zlib level 6, streamed in
    bands of rows so that the memory used stays a few times one band.
    """
    height, width = data.shape[:2]
    ctype = {v: k for k, v in _PNG_COLOUR_TYPES.items()}[mode]
    depth = 8 * data.dtype.itemsize
    rows = np.ascontiguousarray(data, dtype=">u2" if depth == 16 else np.uint8)
    rows = rows.reshape(height, -1).view(np.uint8)
    bpp = _CHANNELS[mode] * data.dtype.itemsize
    fh.write(_PNG_SIGNATURE)
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


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #
def check_writable(path, data, mode, *, stack=False):
    """Check that ``path``'s format can store ``data`` losslessly.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its extension picks the format.
    data : numpy.ndarray or None
        The pixels, axes ``([Z,] Y, X[, C])``; ``None`` checks the extension only.
    mode : str or None
        ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"`` or ``"C"``.
    stack : bool, optional
        True when ``data`` has a leading stack axis.

    Raises
    ------
    ImageIOError
        With a message naming the problem and the format to use instead.
    """
    ext = _ext(path)
    if ext not in WRITE_EXTENSIONS:
        if ext in (".jpg", ".jpeg", ".webp"):
            why = f"{ext} is lossy"
        elif ext in READ_EXTENSIONS:
            why = f"{ext} is not a supported output format"
        else:
            why = f"unsupported extension {ext or '(none)'!r}"
        raise ImageIOError(f"{path}: {why}; write .png or .tif")
    if data is None:
        return
    dtype = np.dtype(data.dtype)
    if ext == ".png":
        if dtype not in (np.uint8, np.uint16):
            raise ImageIOError(
                f"{path}: PNG stores only uint8 or uint16, not {dtype}; "
                "write .tif to keep the values as they are"
            )
        if stack:
            raise ImageIOError(f"{path}: PNG holds one image, not a stack; write .tif")
        if mode not in _CHANNELS:
            raise ImageIOError(
                f"{path}: PNG holds grey, grey+alpha, RGB or RGBA, not "
                f"{data.shape[-1]} channels; write .tif"
            )
    elif dtype.kind not in "uif":
        raise ImageIOError(f"{path}: cannot store {dtype} pixels")


def write_image(path, data, mode=None, *, stack=False, overwrite=False):
    """Write pixels losslessly and atomically.

    The pixels go to a temporary file in the destination directory, which is
    then renamed to ``path``; on any error (or interruption) the temporary file
    is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ``.png``, ``.tif`` or ``.tiff`` file.
    data : numpy.ndarray
        Pixels, axes ``([Z,] Y, X[, C])``, written in their data type.
    mode : str, optional
        ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"`` or ``"C"``; by default
        inferred from the channel count (1: L, 2: LA, 3: RGB, 4: RGBA).
    stack : bool, optional
        True when ``data`` has a leading stack axis.
    overwrite : bool, optional
        Replace an existing file.  Without it an existing ``path`` raises
        :class:`ImageIOError`, also when it appears while writing.

    Raises
    ------
    ImageIOError
        Unsupported format for this data (see :func:`check_writable`), an
        existing file without ``overwrite``, or an operating-system error.
    """
    path = Path(path)
    data = np.asarray(data)
    if mode is None:
        spatial = 3 if stack else 2
        mode = "L" if data.ndim == spatial else {2: "LA", 3: "RGB", 4: "RGBA"}.get(data.shape[-1], "C")
    check_writable(path, data, mode, stack=stack)
    target = _stat_or_none(path, "cannot write")
    if target is not None:
        if stat.S_ISDIR(target.st_mode):
            raise ImageIOError(f"{path}: is a directory")
        if not stat.S_ISREG(target.st_mode):
            raise ImageIOError(
                f"{path}: is {file_kind(target.st_mode)}, not a regular file; not replacing it"
            )
        if not overwrite:
            raise ImageIOError(f"{path}: already exists (use overwrite to replace it)")
    directory = path.parent if str(path.parent) else Path(".")
    parent = _stat_or_none(directory, "cannot write")
    if parent is None or not stat.S_ISDIR(parent.st_mode):
        raise ImageIOError(f"{path}: directory {directory} does not exist")
    atomic_write(path, lambda tmp: _encode(tmp, data, mode, stack, _ext(path)), overwrite)


def atomic_write(path, encode, overwrite):
    """Call ``encode(tmp)`` on a registered temporary file next to ``path``, then rename it into place.

    The temporary file is synced and given the permissions a new ``path``
    would have; on any error or interruption it is removed (and
    :func:`remove_partial_files` removes it on a signal) and ``path`` is left
    as it was.  Without ``overwrite`` an existing ``path`` (also one
    appearing meanwhile) raises :class:`ImageIOError`.  Errors of ``encode``
    become :class:`ImageIOError` unless they are one already.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    tmp = _create_temporary(path, directory)
    try:
        encode(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _set_mode(tmp, path)
        _commit(tmp, path, overwrite)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, ImageIOError):
            raise
        if isinstance(exc, OSError):
            raise ImageIOError(f"{path}: cannot write: {exc.strerror or exc}") from None
        if isinstance(exc, Exception):
            raise ImageIOError(f"{path}: cannot write: {exc}") from None
        raise
    finally:
        _PARTIAL.discard(tmp)


#: temporary files being written (full paths), for :func:`remove_partial_files`
_PARTIAL = set()


def remove_partial_files():
    """Delete the temporary files of writes in progress; safe in a signal handler.

    :func:`write_image` removes its temporary file itself when an exception
    (``KeyboardInterrupt`` included) interrupts it.  A program that ends on
    another signal (SIGTERM, SIGHUP) calls this from its handler; the command
    line does.  Every temporary file is registered *before* it is created, so
    none escapes.
    """
    for tmp in list(_PARTIAL):
        _remove(tmp)


def _remove(tmp):
    try:
        os.unlink(tmp)
    except OSError:
        pass


def _stat_or_none(path, what):
    """``os.stat(path)``, or None when nothing is there; other errors in one line."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ImageIOError(f"{path}: {what}: {exc.strerror or exc}") from None


def _name_max(directory):
    try:
        return int(os.pathconf(directory, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _temporary_stem(path, directory):
    """STEM of the temporary names of ``path``: its stem, cut to fit the name limit."""
    fixed = len(os.fsencode(f"..{'0' * 8}.part{_ext(path)}"))
    stem = os.fsencode(path.stem)[: max(0, _name_max(directory) - fixed)]
    while stem and 0x80 <= stem[-1] < 0xC0:  # drop a cut UTF-8 sequence
        stem = stem[:-1]
    if stem and stem[-1] >= 0xC0:
        stem = stem[:-1]
    return os.fsdecode(stem)


def leftover_partial_files(path):
    """Temporary files of writes of ``path`` that another process left (``.STEM.XXXXXXXX.part.EXT``).

    A process killed while writing (a dask worker, SIGKILL) cannot remove its
    temporary file; whoever sent it the work can, with this list.  Files this
    process is writing itself are not listed.
    """
    import re

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(
        rf"\.{re.escape(_temporary_stem(path, directory))}\.[0-9a-f]{{8}}\.part{re.escape(_ext(path))}"
    )
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [directory / name for name in names if pattern.fullmatch(name)]
    return [p for p in found if str(p) not in _PARTIAL]


def _create_temporary(path, directory):
    """Create ``DIR/.STEM.XXXXXXXX.part.EXT`` (registered first), shortening STEM
    so that the name fits the file system's limit (a legal 250-byte output
    name must not fail because its temporary name is longer)."""
    ext = _ext(path)
    stem = _temporary_stem(path, directory)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(directory / f".{stem}.{secrets.token_hex(4)}.part{ext}")
        _PARTIAL.add(tmp)
        try:
            os.close(os.open(tmp, flags, 0o600))
            return tmp
        except FileExistsError:
            _PARTIAL.discard(tmp)
        except BaseException as exc:
            _PARTIAL.discard(tmp)
            if isinstance(exc, OSError):
                raise ImageIOError(f"{path}: cannot write: {exc.strerror or exc}") from None
            raise
    raise ImageIOError(f"{path}: cannot write: no free temporary file name")


def _set_mode(tmp, path, new=0o666):
    """Give the temporary entry the permissions ``path`` has, or a new one
    (``new`` less the umask) would have."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = new & ~umask
    os.chmod(tmp, mode)


def _commit(tmp, path, overwrite):
    if overwrite:
        os.replace(tmp, path)
        return
    # no-clobber: a hard link fails if path appeared meanwhile
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ImageIOError(f"{path}: already exists (use overwrite to replace it)") from None
    except OSError:  # file system without hard links
        if _stat_or_none(path, "cannot write") is not None:
            raise ImageIOError(f"{path}: already exists (use overwrite to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _encode(tmp, data, mode, stack, ext):
    if ext == ".png":
        with open(tmp, "wb") as fh:
            _write_png(fh, data, mode)
        return
    import tifffile

    kwargs = {}
    if mode == "L":
        kwargs = dict(photometric="minisblack", metadata={"axes": "ZYX" if stack else "YX"})
    elif mode in ("RGB", "RGBA"):
        kwargs = dict(photometric="rgb", planarconfig="contig")
        if mode == "RGBA":
            kwargs["extrasamples"] = ["unassalpha"]
        kwargs["metadata"] = {"axes": "ZYXS" if stack else "YXS"}
    elif mode == "LA":
        kwargs = dict(photometric="minisblack", planarconfig="contig", extrasamples=["unassalpha"])
        kwargs["metadata"] = {"axes": "ZYXS" if stack else "YXS"}
    else:  # generic channels: store channel-first pages, axes (Z)CYX
        data = np.moveaxis(data, -1, -3)
        kwargs = dict(photometric="minisblack", metadata={"axes": "ZCYX" if stack else "CYX"})
    tifffile.imwrite(tmp, data, **kwargs)
