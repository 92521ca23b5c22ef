"""Images larger than memory: lazy tile reading and tile-by-tile writing.

The command line uses this module when an image is larger than its memory
budget, when the input or output is a zarr store, or when it runs on a dask
cluster.  Reading gives a lazy ``dask.array.Array`` in the layout of
:func:`nlm.io.read_image` (``([Z,] Y, X[, C])``, the stored dtype):

* TIFF whose pixels are stored contiguously and uncompressed (what most
  writers do for big scans): each block is read with a short-lived memory map
  of just that region, so resident memory stays at the blocks in flight;
* any other TIFF (tiled, compressed, strips): through tifffile's zarr store
  (``tifffile.imread(path, aszarr=True)``), which decodes only the TIFF
  tiles/strips a block touches;
* zarr (a ``.zarr`` directory holding an array) and OME-Zarr (a group with
  ``multiscales`` metadata: the full-resolution level, axes from the
  metadata, channels moved last).

Readers are small picklable objects holding the path, so dask.distributed
workers open the file themselves (the file must be visible to them).

Writing (:func:`write_tiled`) computes the result one band of tiles at a
time and writes each band as it comes: a tiled BigTIFF (``.tif``/``.tiff``)
or an OME-Zarr group (``.zarr``, NGFF 0.4, zarr format 2, one resolution
level).  As for :func:`nlm.io.write_image`, the output goes to a temporary
file or directory next to the destination that is renamed into place only
when complete, and an existing output is only replaced with
``overwrite=True``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlm.io._imagedata import ImageData
from nlm.io.budget import (
    ZARR_EXTENSIONS,
    _short,
    default_memory_limit,
    in_memory_bytes,
    is_zarr_path,
    parse_size,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    import dask.array as da

__all__ = [
    "ZARR_EXTENSIONS",
    "default_memory_limit",
    "in_memory_bytes",
    "is_zarr_path",
    "open_lazy",
    "parse_size",
    "write_tiled",
]

_TIFF = (".tif", ".tiff")


# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #
class _TiffReader:
    """Picklable region reader of the first series of a TIFF, in stored axis order."""

    def __init__(self, path):
        import tifffile

        self.path = str(path)
        with tifffile.TiffFile(self.path) as tif:
            if not tif.series:
                from nlm.io._imagedata import ImageIOError

                why = " (its first page is missing or corrupt)" if not len(tif.pages) else ""
                raise ImageIOError(f"{self.path}: TIFF holds no image{why}")
            series = tif.series[0]
            self.shape = tuple(series.shape)
            self.axes = series.axes
            self.dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
            self.offset = series.dataoffset  # None unless contiguous and uncompressed
            page = series.keyframe if hasattr(series, "keyframe") else tif.pages[0]
            self.photometric = int(page.photometric)
            self.extrasamples = tuple(int(e) for e in (page.extrasamples or ()))
            from nlm.io._tiff import check_tiff_size, gdal_nodata

            self.nodata = gdal_nodata(page)

            check_tiff_size(self.path, series, page)
        self.ndim = len(self.shape)
        self._store = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_store"] = None
        return state

    def __dask_tokenize__(self):
        st = os.stat(self.path)
        return ("nlm-tiff", self.path, st.st_mtime_ns, st.st_size)

    def __getitem__(self, index):
        with _reading(self.path, index, "TIFF"):
            if self.offset is not None:
                # a map of just this call's lifetime: pages do not accumulate in RSS
                mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=self.shape)
                try:
                    return np.array(mm[index], dtype=self.dtype.newbyteorder("="))
                finally:
                    mm._mmap.close()
                    del mm
            if self._store is None:
                import tifffile
                import zarr

                self._store = zarr.open(tifffile.imread(self.path, aszarr=True), mode="r")
            return np.asarray(self._store[index])


class _ZarrReader:
    """Picklable region reader of one array of a zarr store (``level`` inside a group, or the store)."""

    def __init__(self, path, level, node):
        self.path, self.level = str(path), level
        self.shape, self.dtype, self.ndim = tuple(node.shape), np.dtype(node.dtype), node.ndim
        self.chunks = tuple(node.chunks)
        self._node = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_node"] = None
        return state

    def __dask_tokenize__(self):
        return ("nlm-zarr", self.path, self.level, self.shape, self.chunks, str(self.dtype),
                os.stat(self.path).st_mtime_ns)

    def __getitem__(self, index):
        with _reading(self.path, index, "zarr"):
            if self._node is None:
                import zarr

                node = zarr.open(self.path, mode="r")
                self._node = node if self.level is None else node[self.level]
            return np.asarray(self._node[index])


def _region(index):
    """A block's index as ``[0:64, 128:192]`` for messages."""
    index = index if isinstance(index, tuple) else (index,)
    parts = []
    for i in index:
        if isinstance(i, slice):
            parts.append(f"{'' if i.start is None else i.start}:{'' if i.stop is None else i.stop}")
        else:
            parts.append(str(i))
    return f"[{', '.join(parts)}]"


class _reading:
    """Context: a failure to read a block of ``path`` becomes an ImageIOError saying so.

    Blocks are read while dask computes (the noise sample, the write), far
    from the code that opened the file: a corrupt zarr chunk, a TIFF cut
    short after it was opened or a disk error then says which file and which
    block, in one line, instead of the decoder's bare exception.
    """

    def __init__(self, path, index, kind):
        self.path, self.index, self.kind = path, index, kind

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from nlm.io.image import ImageIOError, _reason

        if exc is None or not isinstance(exc, Exception) or isinstance(exc, (ImageIOError, MemoryError)):
            return False
        where = f"{self.path}: cannot read the pixels {_region(self.index)}"
        if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
            raise ImageIOError(f"{where}: {exc.strerror}") from None
        reason = _reason(exc, ".tif" if self.kind == "TIFF" else ".zarr")
        if self.kind == "zarr" and not reason.startswith("the file is truncated"):
            reason = f"a chunk of the store is corrupt or unreadable ({reason})"
        elif self.kind == "TIFF" and not reason.startswith("the file is truncated"):
            reason = f"corrupt TIFF data ({reason})"
        raise ImageIOError(f"{where}: {reason}") from None


def _open_tiff(path, tile, volume):
    import dask.array as da

    from nlm.io._imagedata import ImageIOError

    reader = _TiffReader(path)
    axes, shape = reader.axes, reader.shape
    if reader.photometric not in (1, 2):
        raise ImageIOError(
            f"{path}: only grey (MinIsBlack) and RGB TIFFs are read tile by tile "
            f"(photometric {reader.photometric})"
        )
    if "Y" not in axes or "X" not in axes:
        raise ImageIOError(f"{path}: unexpected TIFF layout {axes} {shape}")
    data = da.from_array(
        reader,
        chunks=tuple(tile if a in "YX" else (1 if a not in "SC" else -1) for a in axes),
        lock=False,
        asarray=True,
        meta=np.empty((0,) * len(shape), reader.dtype.newbyteorder("=")),
    )
    # drop singleton axes except Y and X, as nlm.io does
    keep = [i for i, a in enumerate(axes) if a in "YX" or shape[i] > 1]
    data = data[tuple(slice(None) if i in keep else 0 for i in range(len(axes)))]
    axes = "".join(axes[i] for i in keep)
    channel = [a for a in axes if a in "SC"]
    stack = [a for a in axes if a not in "YXSC"]
    if len(channel) > 1 or len(stack) > 1:
        raise ImageIOError(f"{path}: TIFF axes {axes} are not supported tile by tile")
    order = [axes.index(a) for a in stack] + [axes.index("Y"), axes.index("X")] + [axes.index(a) for a in channel]
    data = data.transpose(order)
    if stack:
        data = data.rechunk({0: 1})
    if not channel:
        mode = "L"
    else:
        n = data.shape[-1]
        alpha = channel[0] == "S" and reader.extrasamples[-1:] in ((1,), (2,))
        mode = {(2, 3): "RGB", (2, 4): "RGBA", (1, 2): "LA"}.get((reader.photometric, n), "C")
        if mode in ("RGBA", "LA") and not alpha:
            mode = "C"
    return ImageData(data, mode, bool(stack), Path(path), (), reader.nodata)


def _open_zarr(path, tile):
    import dask.array as da
    import zarr

    from nlm.io._imagedata import ImageIOError

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - any zarr error becomes one line
        raise ImageIOError(f"{path}: cannot open as zarr: {' '.join(str(exc).split())[:200]}") from None
    kind, axes, level = "zarr", None, None
    nodata = zarr_nodata(node.attrs)
    if not hasattr(node, "shape"):  # a group: OME-Zarr multiscales
        level, axes = _ome_level(dict(node.attrs), path)
        try:
            node = node[level]
        except Exception:  # noqa: BLE001 - KeyError, or zarr's own for a broken array
            node = None
        if not hasattr(node, "shape"):
            raise ImageIOError(
                f"{path}: malformed OME-Zarr: its metadata names the level {level!r}, which is not an array "
                "in the store"
            )
        kind = "ome-zarr"
        level_nodata = zarr_nodata(node.attrs)
        nodata = level_nodata if level_nodata is not None else nodata
    if node.ndim < 2:
        raise ImageIOError(f"{path}: a {node.ndim}-D zarr array is not an image (at least y and x are needed)")
    reader = _ZarrReader(path, level, node)
    arr = da.from_array(reader, chunks=reader.chunks, lock=False, asarray=True,
                        meta=np.empty((0,) * reader.ndim, reader.dtype))
    nd = arr.ndim
    if axes is None or len(axes) != nd:
        axes = ["z", "y", "x"][-nd:] if nd <= 3 else None
        if axes is None:
            raise ImageIOError(f"{path}: a {nd}-D zarr array needs OME-Zarr axes metadata")
    axes = [a.lower() for a in axes]
    keep = [i for i, a in enumerate(axes) if a in ("y", "x") or arr.shape[i] > 1]
    arr = arr[tuple(slice(None) if i in keep else 0 for i in range(nd))]
    axes = [axes[i] for i in keep]
    channel = [a for a in axes if a == "c"]
    stack = [a for a in axes if a not in ("y", "x", "c")]
    if len(stack) > 1 or "y" not in axes or "x" not in axes:
        raise ImageIOError(f"{path}: zarr axes {axes} are not supported (one of z/t at most, then y, x, c)")
    order = [axes.index(a) for a in stack] + [axes.index("y"), axes.index("x")] + [axes.index(a) for a in channel]
    arr = arr.transpose(order)
    if arr.dtype.kind not in "biuf":
        raise ImageIOError(f"{path}: unsupported pixel data type {arr.dtype}")
    chunks = [tile if i in (len(stack), len(stack) + 1) else (1 if stack and i == 0 else -1) for i in range(arr.ndim)]
    arr = arr.rechunk(tuple(chunks))
    mode = "L" if not channel else {3: "RGB"}.get(arr.shape[-1], "C")
    return ImageData(arr, mode, bool(stack), Path(path), (f"read as {kind}",) if kind != "zarr" else (), nodata)


#: attributes of a zarr array (or an OME-Zarr group) read as its no-data value, first found wins
NODATA_ATTRIBUTES = ("nodata", "no_data", "_FillValue", "missing_value")


def zarr_nodata(attrs) -> float | None:
    """The no-data value of a zarr array or group from its attributes (see :data:`NODATA_ATTRIBUTES`), or None.

    The array's ``fill_value`` is deliberately not used: zarr gives every
    numeric array one (0 by default), which would mask every black pixel.
    A value that is not a number (or a list of one) is ignored.
    """
    try:
        attrs = dict(attrs)
    except Exception:  # noqa: BLE001 - unreadable attributes: no no-data value
        return None
    for key in NODATA_ATTRIBUTES:
        if key in attrs:
            value = attrs[key]
            if isinstance(value, (list, tuple)) and len(value) == 1:
                value = value[0]
            if isinstance(value, bool):
                return None
            try:
                return float(value)
            except (TypeError, ValueError):
                return None
    return None


def _ome_level(attrs, path):
    """(path of the full-resolution level, axis names) from OME-Zarr group attributes, checked."""
    from nlm.io._imagedata import ImageIOError

    ome = attrs.get("ome")
    ms = attrs.get("multiscales") or (ome.get("multiscales") if isinstance(ome, dict) else None)
    if not ms:
        raise ImageIOError(f"{path}: zarr group without OME-Zarr 'multiscales' metadata")

    def malformed(what):
        return ImageIOError(f"{path}: malformed OME-Zarr metadata: {what}")

    if not isinstance(ms, list) or not isinstance(ms[0], dict):
        raise malformed("'multiscales' must be a list of objects")
    datasets = ms[0].get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise malformed("the first multiscale has no 'datasets'")
    level = datasets[0].get("path") if isinstance(datasets[0], dict) else None
    if not isinstance(level, str) or not level:
        raise malformed("the first dataset has no 'path'")
    axes = ms[0].get("axes", [])
    if not isinstance(axes, list):
        raise malformed("'axes' must be a list")
    names = [a.get("name") if isinstance(a, dict) else a for a in axes]
    if not all(isinstance(n, str) and n for n in names):
        raise malformed(f"every axis needs a name, got {_short(repr(axes), 80)}")
    return level, names


def open_lazy(path: str | os.PathLike, *, tile: int = 2048, volume: bool = False) -> ImageData:
    """Open a TIFF or zarr image lazily as a dask array in blocks of ``tile``.

    Returns
    -------
    nlm.io.ImageData
        Whose ``data`` is a ``dask.array.Array`` ``([Z,] Y, X[, C])``.

    Raises
    ------
    nlm.io.ImageIOError
        Unreadable or unsupported files, with a one-line message.
    """
    from nlm.io._imagedata import ImageIOError

    path = Path(path)
    if is_zarr_path(path):
        image = _open_zarr(path, tile)
    elif path.suffix.lower() in _TIFF:
        try:
            image = _open_tiff(path, tile, volume)
        except ImageIOError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ImageIOError(f"{path}: cannot read as a TIFF: {' '.join(str(exc).split())[:200]}") from None
    else:
        raise ImageIOError(f"{path}: only TIFF and zarr are read tile by tile")
    if image.data.size == 0:
        raise ImageIOError(f"{path}: image has no pixels")
    return image


def header_shape(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a TIFF's first series or a zarr image, from its header only."""
    if is_zarr_path(path):
        image = _open_zarr(Path(path), 2048)
        return image.data.shape, image.data.dtype
    reader = _TiffReader(path)
    return reader.shape, reader.dtype


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #
def _bands(shape, stack, tile):
    """(page, y0, y1) of every band of tiles, in file order."""
    pages = shape[0] if stack else 1
    rows = shape[1] if stack else shape[0]
    return [(p, y0, min(rows, y0 + tile)) for p in range(pages) for y0 in range(0, rows, tile)]


def _tiles_in(band_array, tile, stack):
    """Full-size (zero-padded) tiles of one computed band, left to right."""
    h, w = band_array.shape[:2]
    for x0 in range(0, w, tile):
        block = band_array[:, x0 : x0 + tile]
        if block.shape[0] != tile or block.shape[1] != tile:
            padded = np.zeros((tile, tile) + block.shape[2:], block.dtype)
            padded[: block.shape[0], : block.shape[1]] = block
            block = padded
        yield block


def _compute_band(result, page, y0, y1, stack, slabs=None):
    """One band of the result: ``result[page, y0:y1]`` (a stack) or ``result[y0:y1]``.

    ``slabs`` (a dict, for a stack): when the result is one chunk across its
    rows and columns, its pages are computed a chunk of pages at a time and
    kept there until the last page of the chunk is taken.  A block of a
    stack then runs once, not once per page (the block's output is what
    computing a single page of it materializes anyway, so memory does not
    grow).  Otherwise (or without ``slabs``) each band is computed alone.
    """
    import dask

    if stack and slabs is not None and len(result.chunks[1]) == 1 and len(result.chunks[2]) == 1:
        bounds = np.cumsum((0,) + tuple(result.chunks[0]))
        k = int(np.searchsorted(bounds, page, side="right")) - 1
        z0, z1 = int(bounds[k]), int(bounds[k + 1])
        if slabs.get("range") != (z0, z1):
            slabs.clear()  # the previous slab is done: free it before computing the next
            (slab,) = dask.compute(result[z0:z1])
            slabs.update(range=(z0, z1), data=np.asarray(slab))
        return slabs["data"][page - z0, y0:y1]
    region = result[page, y0:y1] if stack else result[y0:y1]
    (band,) = dask.compute(region)
    return np.asarray(band)


def write_tiled(
    path: str | os.PathLike,
    result: da.Array,
    mode: str,
    *,
    stack: bool = False,
    tile: int = 2048,
    overwrite: bool = False,
    progress: Callable[..., object] | None = None,
) -> None:
    """Compute a lazy result band by band and write it, atomically.

    Parameters
    ----------
    path : path
        ``.tif``/``.tiff`` (tiled BigTIFF, uncompressed) or ``.zarr``
        (OME-Zarr group, NGFF 0.4, one level, chunks of ``tile``).
    result : dask.array.Array
        ``([Z,] Y, X[, C])`` in the output dtype.
    mode : str
        ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"`` or ``"C"``.
    tile : int
        Tile side (a multiple of 16 for TIFF).
    progress : callable, optional
        Called with the number of tiles written after each band.

    Raises
    ------
    nlm.io.ImageIOError
        Existing output without ``overwrite``, an operating-system error (a
        full disk, permissions), a block of the input that cannot be read, or
        (TIFF) any other error of the computation, whose message it carries;
        zarr output lets the other errors of the computation propagate.  In
        every case nothing is left at ``path`` (an existing file there is
        untouched).
    """
    from nlm.io._atomic import atomic_write
    from nlm.io._imagedata import ImageIOError

    path = Path(path)
    if path.exists() and not overwrite:
        raise ImageIOError(f"{path}: already exists (use overwrite to replace it)")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ImageIOError(f"{path}: directory {directory} does not exist")
    bands = _bands(result.shape, stack, tile)
    per_band = -(-(result.shape[2] if stack else result.shape[1]) // tile)
    if is_zarr_path(path):
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".part.zarr", dir=directory))
        except OSError as exc:
            raise ImageIOError(f"{path}: cannot write: {exc.strerror or exc}") from None
        try:
            _write_ome_zarr(tmp, result, mode, stack, tile, bands, per_band, progress, name=path.name)
            _commit_dir(tmp, path, overwrite)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):  # a full disk, permissions, ...
                raise ImageIOError(f"{path}: cannot write: {exc.strerror or exc}") from None
            raise
        return
    atomic_write(path, lambda tmp: _write_tiff(tmp, result, mode, stack, tile, bands, per_band, progress), overwrite)


def _write_tiff(tmp, result, mode, stack, tile, bands, per_band, progress):
    import tifffile

    if mode == "L":
        kwargs = dict(photometric="minisblack", metadata={"axes": "ZYX" if stack else "YX"})
    elif mode in ("RGB", "RGBA"):
        kwargs = dict(photometric="rgb", planarconfig="contig", metadata={"axes": "ZYXS" if stack else "YXS"})
        if mode == "RGBA":
            kwargs["extrasamples"] = ["unassalpha"]
    elif mode == "LA":
        kwargs = dict(photometric="minisblack", planarconfig="contig", extrasamples=["unassalpha"],
                      metadata={"axes": "ZYXS" if stack else "YXS"})
    else:  # generic channels: contiguous samples, no colour meaning
        kwargs = dict(photometric="minisblack", planarconfig="contig", metadata={"axes": "ZYXS" if stack else "YXS"})

    def tiles():
        slabs = {}
        for page, y0, y1 in bands:
            band = _compute_band(result, page, y0, y1, stack, slabs)
            yield from _tiles_in(band, tile, stack)
            if progress is not None:
                progress(per_band)

    tifffile.imwrite(
        tmp,
        tiles(),
        shape=result.shape,
        dtype=result.dtype,
        tile=(tile, tile),
        bigtiff=True,
        **kwargs,
    )


def _write_ome_zarr(tmp, result, mode, stack, tile, bands, per_band, progress, name):
    import zarr

    channels = result.ndim - (3 if stack else 2)
    axes = ([{"name": "z", "type": "space"}] if stack else []) + [
        {"name": "y", "type": "space"},
        {"name": "x", "type": "space"},
    ]
    if channels:
        axes = [{"name": "c", "type": "channel"}] + axes
    group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": name,  # the final name, not the temporary directory's
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}],
        }
    ]
    shape = result.shape
    if channels:  # channels first in OME-Zarr
        shape = (shape[-1],) + shape[:-1]
    stack_axis = (1 if channels else 0) if stack else None
    chunks = tuple(1 if i == stack_axis else (tile if s > 1 else 1) for i, s in enumerate(shape))
    chunks = tuple(shape[0] if channels and i == 0 else c for i, c in enumerate(chunks))
    arr = group.create_array("0", shape=shape, chunks=chunks, dtype=result.dtype, fill_value=0)
    slabs = {}
    for page, y0, y1 in bands:
        band = _compute_band(result, page, y0, y1, stack, slabs)
        if channels:
            band = np.moveaxis(band, -1, 0)
            index = (slice(None), page, slice(y0, y1)) if stack else (slice(None), slice(y0, y1))
        else:
            index = (page, slice(y0, y1)) if stack else (slice(y0, y1),)
        arr[index] = band
        if progress is not None:
            progress(per_band)


def _commit_dir(tmp, path, overwrite):
    from nlm.io._imagedata import ImageIOError

    if path.exists() or path.is_symlink():
        if not overwrite:
            raise ImageIOError(f"{path}: already exists (use overwrite to replace it)")
        old = Path(tempfile.mkdtemp(prefix=f".{path.stem}.", suffix=".old", dir=path.parent))
        os.rmdir(old)
        os.rename(path, old)
        try:
            os.rename(tmp, path)
        except BaseException:
            os.rename(old, path)
            raise
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
        return
    os.rename(tmp, path)
