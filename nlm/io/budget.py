"""Memory budgets and the cheap path checks of the command line (no dask, no zarr).

The in-memory job asks these before it reads anything: whether a path is a
zarr store, how much memory an image needs in memory, the default budget
and the sizes users type (``--memory-limit 8G``).  They live apart from
:mod:`nlm.io.tiled` so that a run on an ordinary image does not import the
tiled reader and writer.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

__all__ = [
    "MAX_SIZE", "VIDEO_EXTENSIONS", "ZARR_EXTENSIONS", "default_memory_limit", "in_memory_bytes", "is_video_path",
    "is_zarr_path", "parse_size", "total_memory",
]

ZARR_EXTENSIONS = (".zarr",)


#: extensions read as video (through PyAV, :mod:`nlm.io.video`)
VIDEO_EXTENSIONS = (
    ".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv", ".y4m",
)


def is_video_path(path: str | os.PathLike) -> bool:
    """True for a file name with a video extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_zarr_path(path: str | os.PathLike) -> bool:
    """True for a path whose extension is ``.zarr``."""
    return Path(path).suffix.lower() in ZARR_EXTENSIONS


# --------------------------------------------------------------------------- #
# memory budget
# --------------------------------------------------------------------------- #
#: the largest size :func:`parse_size` accepts (1 EiB: far beyond any machine,
#: small enough for every byte count computed from it to stay exact)
MAX_SIZE = 1 << 60


def parse_size(text: str | int) -> int:
    """Bytes from ``"8G"``, ``"512MiB"``, ``"1.5 GB"``, ``"100000"`` (binary units).

    Raises
    ------
    ValueError
        For anything else, a size < 1 byte or one over :data:`MAX_SIZE` (1 EiB).
    """
    from decimal import Decimal

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?)(i?[bB])?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {_short(text)!r} (use e.g. 8G, 512M, 1.5GiB or bytes)")
    # exact decimal arithmetic: 400 digits neither overflow nor lose the comparison
    value = Decimal(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " ")
    if value < 1:
        raise ValueError(f"size must be at least 1 byte, got {_short(text)!r}")
    if value > MAX_SIZE:
        raise ValueError(f"size must be at most 1 EiB (1048576T), got {_short(text)!r}")
    return int(value)


def _short(text, most=40):
    """``text`` for a message: at most ``most`` characters."""
    text = str(text)
    return text if len(text) <= most else f"{text[:most - 10]}...{text[-7:]} ({len(text)} characters)"


def total_memory() -> int:
    """Physical memory of the machine in bytes (0 if unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def default_memory_limit() -> int:
    """A quarter of the machine's physical memory (4 GiB if unknown).

    A quarter leaves room for the rest of the machine and for the filter's
    own working set, which is about 4.5 float32 copies of the image.
    """
    total = total_memory()
    return total // 4 if total else 4 << 30


def in_memory_bytes(shape: tuple[int, ...], dtype: DTypeLike) -> int:
    """Peak memory of the in-memory command line path for an image.

    Five working-float copies of the image (the input, the padded copy, the
    numerator and denominator planes, the output): 4 bytes a value for 8- and
    16-bit data and float32, 8 for the rest.
    """
    dtype = np.dtype(dtype)
    work = 4 if (dtype.kind in "biu" and dtype.itemsize <= 2) or (dtype.kind == "f" and dtype.itemsize <= 4) else 8
    return 5 * work * int(np.prod(shape, dtype=np.int64))
