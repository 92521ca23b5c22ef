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
  with black 0 and white 255.
* Refused on reading, with a message saying what to do: CMYK, Lab, YCbCr and
  other colour spaces, palette TIFFs, MinIsWhite grey TIFFs (other than 1-bit),
  complex numbers, interlaced 16-bit colour PNG, TIFFs with more than one
  stack axis or with both a sample and a channel axis.
* :func:`to_float` gives the working float array *in the image's own value
  range* (``uint8`` becomes ``float32`` values 0..255, not 0..1):
  8- and 16-bit integers and ``float16`` become ``float32``; 32- and 64-bit
  integers become ``float64``; ``float32`` and ``float64`` are kept.
* :func:`from_float` converts back: integer types are rounded to the nearest
  integer (half to even) and clipped to the type's range; float types are cast
  without clipping.

Formats written
---------------
* PNG: ``uint8`` or ``uint16``, modes ``L``, ``LA``, ``RGB``, ``RGBA``, one
  image (no stack).  16-bit colour PNG is encoded and decoded by this module
  because Pillow silently reduces it to 8 bits.
* TIFF: every data type, mode and stack above (uncompressed; alpha marked as
  unassociated alpha so that it reads back as alpha).
* Anything else (JPEG, which is lossy, BMP, GIF, ...) is refused.

Every write goes to a temporary file in the destination directory that is
then renamed into place, so a failed or interrupted write leaves no partial
file, and an existing file is only replaced when ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "READ_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "ImageData",
    "ImageIOError",
    "check_writable",
    "from_float",
    "read_image",
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

    def describe(self) -> str:
        """One-line summary, e.g. ``"512x512 RGB uint8"`` or ``"12x64x64 L float32 stack"``."""
        shape = "x".join(str(n) for n in self.spatial_shape)
        kind = self.mode if self.mode != "C" else f"{self.data.shape[-1]}-channel"
        text = f"{shape} {kind} {self.data.dtype}"
        return text + (" stack" if self.stack else "")


# --------------------------------------------------------------------------- #
# dtype conversions
# --------------------------------------------------------------------------- #
def to_float(data):
    """Convert pixels to a float array in their own value range.

    Parameters
    ----------
    data : numpy.ndarray
        Integer or float pixels (bool is accepted and becomes 0/1).

    Returns
    -------
    numpy.ndarray
        ``float32`` for 8- and 16-bit integers, bool, ``float16`` and
        ``float32``; ``float64`` for 32- and 64-bit integers and ``float64``
        (so that every integer value stays exact).  Values are not rescaled:
        a ``uint8`` 200 becomes 200.0.  A ``float32``/``float64`` input is
        returned as is (no copy).

    Raises
    ------
    ImageIOError
        For data types that are not integer, bool or real float.
    """
    data = np.asarray(data)
    kind = data.dtype.kind
    if kind == "b" or (kind in "iu" and data.dtype.itemsize <= 2):
        return data.astype(np.float32)
    if kind in "iu":
        return data.astype(np.float64)
    if kind == "f":
        if data.dtype.itemsize < 4:
            return data.astype(np.float32)
        if data.dtype.itemsize > 8:
            return data.astype(np.float64)
        return data
    raise ImageIOError(f"unsupported pixel data type {data.dtype}")


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
        if data.dtype.kind == "f" and np.isnan(data).any():
            raise ImageIOError(f"result holds NaN, which {dtype} cannot store")
        info = np.iinfo(dtype)
        return np.clip(np.rint(data), info.min, info.max).astype(dtype)
    if dtype.kind == "b":
        return data >= 0.5
    return data.astype(dtype, copy=False)


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #
def _ext(path) -> str:
    return Path(path).suffix.lower()


def read_image(path, *, stack_ok=True) -> ImageData:
    """Read an image file without losing anything.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG, TIFF, JPEG, BMP, GIF or WebP file (by extension).
    stack_ok : bool, optional
        When False, a file holding several images (multi-page TIFF, animated
        GIF) raises :class:`ImageIOError` instead of being returned as a stack.

    Returns
    -------
    ImageData
        Pixels in the stored data type, axes ``([Z,] Y, X[, C])``.

    Raises
    ------
    ImageIOError
        The file is missing, a directory, empty, unreadable, corrupt, of an
        unsupported extension, or holds pixels this module refuses (see the
        module documentation).  The message is one line and names the file.
    """
    path = Path(path)
    ext = _ext(path)
    if ext not in READ_EXTENSIONS:
        raise ImageIOError(
            f"{path}: unsupported extension {ext or '(none)'!r}; "
            f"readable: {', '.join(READ_EXTENSIONS)}"
        )
    if not path.exists():
        raise ImageIOError(f"{path}: no such file")
    if path.is_dir():
        raise ImageIOError(f"{path}: is a directory, not an image file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise ImageIOError(f"{path}: file is empty")
    try:
        with _quiet_readers():
            if ext in _TIFF_EXTENSIONS:
                image = _read_tiff(path)
            elif head.startswith(_PNG_SIGNATURE) and _png16_colour(head):
                image = _read_png16(path)
            else:
                image = _read_pillow(path, ext)
    except ImageIOError:
        raise
    except MemoryError:
        raise ImageIOError(f"{path}: not enough memory to read it") from None
    except Exception as exc:  # every reader error becomes one line
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if any(s in reason for s in ("Could not find a backend", "cannot identify image file", "can not handle the given uri")):
            reason = f"not a recognised {ext[1:].upper()} file (corrupt or of another type)"
        if len(reason) > 200:
            reason = reason[:200] + "..."
        raise ImageIOError(f"{path}: cannot read as an image: {reason}") from None
    if image.data.size == 0:
        raise ImageIOError(f"{path}: image has no pixels")
    if image.stack and not stack_ok:
        raise ImageIOError(f"{path}: holds a stack of {image.data.shape[0]} images")
    return image


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


def _read_pillow(path, ext) -> ImageData:
    import imageio.v3 as iio

    # Pillow only: with PyAV installed, imageio would otherwise offer non-images to ffmpeg
    props = iio.improps(path, extension=ext, plugin="pillow")
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
    return ImageData(np.ascontiguousarray(data), mode, stack, path, tuple(notes))


def _read_tiff(path) -> ImageData:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ImageIOError(f"{path}: TIFF holds no image")
        series = tif.series[0]
        page = series.keyframe if hasattr(series, "keyframe") else tif.pages[0]
        photometric = int(page.photometric)
        extrasamples = tuple(int(e) for e in (page.extrasamples or ()))
        axes = series.axes
        data = series.asarray()
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


def _read_png16(path) -> ImageData:
    raw = Path(path).read_bytes()
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        ctype = raw[pos + 4 : pos + 8]
        chunk = raw[pos + 8 : pos + 8 + length]
        if len(chunk) != length:
            raise ImageIOError(f"{path}: truncated PNG")
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", chunk)
        elif ctype == b"IDAT":
            idat.append(chunk)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        raise ImageIOError(f"{path}: corrupt PNG (no header or no image data)")
    width, height, depth, ctype, _, _, interlace = ihdr
    if interlace:
        raise ImageIOError(
            f"{path}: interlaced 16-bit colour PNG is not supported; save it non-interlaced or as TIFF"
        )
    mode = _PNG_COLOUR_TYPES[ctype]
    channels = _CHANNELS[mode]
    bpp = 2 * channels
    stride = width * bpp
    try:
        buf = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise ImageIOError(f"{path}: corrupt PNG data ({exc})") from None
    if len(buf) < height * (stride + 1):
        raise ImageIOError(f"{path}: truncated PNG data")
    rows = np.frombuffer(buf, np.uint8, height * (stride + 1)).reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prior = np.zeros(stride, np.uint8)
    for y in range(height):
        ftype, line = rows[y, 0], rows[y, 1:]
        if ftype == 0:
            cur = line.copy()
        elif ftype == 1:
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).ravel()
        elif ftype == 2:
            cur = line + prior
        elif ftype in (3, 4):
            cur = _unfilter_slow(ftype, line, prior, bpp)
        else:
            raise ImageIOError(f"{path}: corrupt PNG (filter type {ftype})")
        out[y] = cur
        prior = cur
    data = out.view(">u2").astype(np.uint16).reshape(height, width, channels)
    return ImageData(data, mode, False, Path(path), ())


def _unfilter_slow(ftype, line, prior, bpp):
    cur = bytearray(line.tobytes())
    up = prior.tobytes()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if ftype == 3:
            cur[i] = (cur[i] + ((a + b) >> 1)) & 0xFF
        else:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


def _png_chunk(ctype, body):
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _write_png16(fh, data, mode):
    height, width = data.shape[:2]
    ctype = {v: k for k, v in _PNG_COLOUR_TYPES.items()}[mode]
    rows = data.astype(">u2").reshape(height, -1).view(np.uint8)
    filtered = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)
    fh.write(_PNG_SIGNATURE)
    fh.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, ctype, 0, 0, 0)))
    fh.write(_png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), 6)))
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
    if path.is_dir():
        raise ImageIOError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise ImageIOError(f"{path}: already exists (use overwrite to replace it)")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ImageIOError(f"{path}: directory {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".part" + _ext(path), dir=directory)
    except OSError as exc:
        raise ImageIOError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        os.close(fd)
        _encode(tmp, data, mode, stack, _ext(path))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _set_mode(tmp, path)
        _commit(tmp, path, overwrite)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, ImageIOError):
            raise
        if isinstance(exc, OSError):
            raise ImageIOError(f"{path}: cannot write: {exc.strerror or exc}") from None
        if isinstance(exc, Exception):
            raise ImageIOError(f"{path}: cannot write: {exc}") from None
        raise


def _set_mode(tmp, path):
    """Give the temporary file the permissions a new file (or ``path``) would have."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
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
        if path.exists():
            raise ImageIOError(f"{path}: already exists (use overwrite to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def _encode(tmp, data, mode, stack, ext):
    if ext == ".png":
        if data.dtype == np.uint16 and mode != "L":
            with open(tmp, "wb") as fh:
                _write_png16(fh, data, mode)
            return
        import imageio.v3 as iio

        iio.imwrite(tmp, data, extension=".png")
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
