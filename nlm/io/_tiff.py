"""TIFF through :mod:`tifffile` (imported when first used): the reader of
:func:`nlm.io.image.read_image` (pages written one at a time joined into a
stack, reduced-resolution pages ignored, the layout reduced to
``([Z,] Y, X[, C])`` and refused where it has no lossless meaning), the check
that a header does not promise more bytes than the file holds (also used by
:mod:`nlm.io.tiled`), and the writer (uncompressed; alpha marked as
unassociated alpha).
"""

from __future__ import annotations

import os
from os import PathLike
from typing import TYPE_CHECKING

import numpy as np

from nlm.io._imagedata import ImageData, ImageIOError, check_pixels

if TYPE_CHECKING:  # tifffile itself is imported when first used
    from tifffile import TiffPage, TiffPageSeries

__all__ = ["check_tiff_size", "read_tiff", "write_tiff"]


def _tiff_keyframe(series, tif):
    return series.keyframe if hasattr(series, "keyframe") else tif.pages[0]


def check_tiff_size(path: str | PathLike, series: TiffPageSeries, page: TiffPage) -> None:
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


def read_tiff(path: str | PathLike, limit: int) -> ImageData:
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
        check_tiff_size(path, series[0], _tiff_keyframe(series[0], tif))
        spatial = [[n for n, a in zip(d[0], d[1]) if a not in "SC"] for d in described]
        if len(spatial) == 1:
            check_pixels(path, spatial[0], limit)
        else:  # pages written one at a time: their pixels add up
            check_pixels(path, [sum(int(np.prod(s, dtype=object)) for s in spatial)], limit)
        shape, axes, dtype, photometric, extrasamples = described[0]
        nodata = gdal_nodata(_tiff_keyframe(series[0], tif))
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
    return ImageData(data, mode, bool(stack_axes), path, tuple(notes), nodata)


#: TIFF tag of GDAL's no-data value (an ASCII number)
GDAL_NODATA = 42113


def gdal_nodata(page: TiffPage) -> float | None:
    """The GDAL_NODATA value (tag 42113) of a TIFF page, or None (absent or not a number)."""
    tag = page.tags.get(GDAL_NODATA)
    if tag is None:
        return None
    value = tag.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        return float(str(value).strip().strip("\x00").strip())
    except ValueError:
        return None


def write_tiff(path: str | PathLike, data: np.ndarray, mode: str, stack: bool) -> None:
    """Write ``data`` (axes ``([Z,] Y, X[, C])``, mode ``L``, ``LA``, ``RGB``, ``RGBA`` or
    ``C``) as an uncompressed TIFF at ``path``; alpha is marked as unassociated alpha."""
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
    tifffile.imwrite(path, data, **kwargs)
