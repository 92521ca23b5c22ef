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

Where the rest lives
--------------------
This module holds the entry points (:func:`read_image`, :func:`write_image`,
:func:`check_writable`), the limits and refusals they share, and the Pillow
reader of the formats other than TIFF and 16-bit colour PNG.  The rest stands
beside it: :mod:`nlm.io._imagedata` (:class:`ImageData`,
:class:`ImageIOError`, the pixel-count guard), :mod:`nlm.io.convert`
(:func:`to_float`, :func:`from_float`), :mod:`nlm.io._png` (the PNG codec),
:mod:`nlm.io._tiff` (TIFF reading and writing) and :mod:`nlm.io._atomic`
(temporary files, atomic replace, :func:`remove_partial_files`).  Their
public names are importable from here, as they always were.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

# ImageData, ImageIOError, to_float, from_float, remove_partial_files, atomic_write and
# leftover_partial_files are defined beside this module and handed on from here
from nlm.io._atomic import atomic_write, leftover_partial_files, remove_partial_files, stat_or_none  # noqa: F401
from nlm.io._imagedata import CHANNELS, ImageData, ImageIOError, check_pixels, extension
from nlm.io._png import PNG_SIGNATURE, colour_key, key_to_alpha, png16_colour, read_png16, write_png
from nlm.io._tiff import read_tiff, write_tiff
from nlm.io.convert import from_float, to_float

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


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #
def read_image(path: str | os.PathLike, *, stack_ok: bool = True, max_pixels: int | None = None) -> ImageData:
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
    ext = extension(path)
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
                image = read_tiff(path, limit)
            elif head.startswith(PNG_SIGNATURE) and png16_colour(head):
                image = read_png16(path, limit)
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


_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
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
        check_pixels(path, shape[:3], limit)
    else:
        check_pixels(path, shape[:2], limit)
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
    if read_mode is None and mode in ("L", "RGB") and head.startswith(PNG_SIGNATURE):
        key = colour_key(path)
        if key is not None:
            data, mode = key_to_alpha(data, mode, key)
            notes.append(f"transparency key (tRNS) converted to an alpha channel ({mode})")
    return ImageData(np.ascontiguousarray(data), mode, stack, path, tuple(notes))


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #
def check_writable(path: str | os.PathLike, data: np.ndarray | None, mode: str | None, *, stack: bool = False) -> None:
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
    ext = extension(path)
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
        if mode not in CHANNELS:
            raise ImageIOError(
                f"{path}: PNG holds grey, grey+alpha, RGB or RGBA, not "
                f"{data.shape[-1]} channels; write .tif"
            )
    elif dtype.kind not in "uif":
        raise ImageIOError(f"{path}: cannot store {dtype} pixels")


def write_image(
    path: str | os.PathLike,
    data: ArrayLike,
    mode: str | None = None,
    *,
    stack: bool = False,
    overwrite: bool = False,
) -> None:
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
    target = stat_or_none(path, "cannot write")
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
    parent = stat_or_none(directory, "cannot write")
    if parent is None or not stat.S_ISDIR(parent.st_mode):
        raise ImageIOError(f"{path}: directory {directory} does not exist")
    atomic_write(path, lambda tmp: _encode(tmp, data, mode, stack, extension(path)), overwrite)


def _encode(tmp, data, mode, stack, ext):
    if ext == ".png":
        with open(tmp, "wb") as fh:
            write_png(fh, data, mode)
        return
    write_tiff(tmp, data, mode, stack)
