"""What every image module of :mod:`nlm.io` shares: :class:`ImageData` (pixels and
what they mean), :class:`ImageIOError` (the one error of reading and writing),
the channel count of each mode, a path's extension, and the guard against
decompression bombs that each decoder applies to the size its header claims.

The rules these serve are in :mod:`nlm.io.image`'s documentation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path

import numpy as np

__all__ = ["CHANNELS", "ImageData", "ImageIOError", "check_pixels", "extension"]

#: the channel count of each mode but ``C`` (whose count is the data's last axis)
CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


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
    nodata : float or None
        The file's no-data value (a TIFF's GDAL_NODATA tag 42113; may be
        NaN), or None.
    """

    data: np.ndarray
    mode: str
    stack: bool = False
    path: Path | None = None
    notes: tuple = field(default=())
    nodata: float | None = None

    @property
    def has_alpha(self) -> bool:
        """True when the last channel is alpha (modes ``LA`` and ``RGBA``)."""
        return self.mode in ("LA", "RGBA")

    @property
    def channel_axis(self) -> int | None:
        """``-1`` when there is a channel axis, else ``None``."""
        return None if self.mode == "L" else -1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """The shape without the channel axis: ``([Z,] Y, X)``."""
        return self.data.shape if self.mode == "L" else self.data.shape[:-1]

    def split_alpha(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``(colour, alpha)``; ``alpha`` is None without an alpha channel.

        ``colour`` of an ``LA`` image has no channel axis (it is grey).
        """
        if not self.has_alpha:
            return self.data, None
        colour = self.data[..., :-1]
        if self.mode == "LA":
            colour = colour[..., 0]
        return colour, self.data[..., -1]

    def without_pixels(self) -> ImageData:
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


def extension(path: str | PathLike) -> str:
    """``path``'s extension in lower case, with its dot (``""`` when it has none)."""
    return Path(path).suffix.lower()


def check_pixels(path: str | PathLike, shape: Iterable[int], limit: int) -> None:
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
