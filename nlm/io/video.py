"""Streamed, lossless reading and writing of video clips and frame stacks.

Readers yield one frame at a time (an ``(H, W)`` or ``(H, W, 3)`` uint8 or
uint16 array), writers take one frame at a time, so a clip of any length
passes through in bounded memory.

* Video files (``.mp4``, ``.mkv``, ``.avi``, ``.mov``, ``.webm``, ...) are
  read with PyAV (``pip install "nlm[video]"``; its wheels carry their own
  ffmpeg), imported only when a video is opened.  Grey formats decode to
  ``gray``/``gray16le``, all others to ``rgb24``/``rgb48le`` (16 bits when
  the source has more than 8 bits per component).
* ``.mkv`` output is FFV1 (lossless) in Matroska: ``gray``, ``gray16le``,
  ``bgr0`` (8-bit colour) or ``rgb48le``, at the input's frame rate.
* A directory is a PNG frame sequence (``frame_000000.png``, ...), 8 or 16 bits.
* ``.tif``/``.tiff`` is a TIFF stack, one page per frame (``T x H x W (x C)``);
  a stack whose time axis is not the first is read whole (``time_axis``).

Outputs are written under a temporary name beside the target and renamed
into place when complete (:class:`FrameWriter`); a failed run leaves nothing.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from nlm.io.image import ImageIOError, _set_mode

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "FrameWriter",
    "open_frames",
    "is_video_path",
    "output_kind",
]

#: extensions read as video (through PyAV)
VIDEO_EXTENSIONS = (
    ".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv", ".y4m",
)
_TIFF = (".tif", ".tiff")
#: frames per second written when the source has none (TIFF stacks, PNG sequences)
DEFAULT_FPS = Fraction(25)


def is_video_path(path):
    """True for a file name with a video extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def output_kind(path):
    """``"mkv"``, ``"tiff"`` or ``"frames"`` (a directory); ``None`` for other names."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".mkv":
        return "mkv"
    if ext in _TIFF:
        return "tiff"
    if p.is_dir() or not ext:
        return "frames"
    return None


@dataclass(frozen=True)
class VideoInfo:
    """What a frame source holds.

    Attributes: ``width``, ``height``, ``channels`` (1 or 3), ``dtype``
    (uint8 or uint16), ``fps`` (a Fraction), ``frames`` (count, or None when
    the container does not say), ``source`` (a short description).
    """

    width: int
    height: int
    channels: int
    dtype: np.dtype
    fps: Fraction
    frames: object
    source: str

    @property
    def shape(self):
        """Shape of one frame."""
        return (self.height, self.width) + ((self.channels,) if self.channels > 1 else ())

    def describe(self):
        n = "?" if self.frames is None else self.frames  # from the container: may be approximate
        kind = "grey" if self.channels == 1 else "RGB"
        return f"{n} frames {self.width}x{self.height} {kind} {np.dtype(self.dtype).name} at {float(self.fps):.4g} fps, {self.source}"


def _import_av():
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImageIOError('reading and writing video needs PyAV: pip install "nlm[video]"') from None
    av.logging.set_level(av.logging.ERROR)
    return av


def _open_video(path):
    av = _import_av()
    try:
        container = av.open(str(path))
    except Exception as exc:  # every reader error becomes one line
        raise ImageIOError(f"{path}: cannot read as a video: {' '.join(str(exc).split())}") from None
    if not container.streams.video:
        container.close()
        raise ImageIOError(f"{path}: holds no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    fmt = ctx.format
    comps = [c for c in fmt.components if not getattr(c, "is_alpha", False)] if fmt is not None else []
    grey = fmt is not None and (len(comps) == 1 or fmt.name.startswith(("gray", "ya")))
    bits = max((c.bits for c in comps), default=8)
    target = ("gray" if grey else "rgb24") if bits <= 8 else ("gray16le" if grey else "rgb48le")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = Fraction(rate) if rate else DEFAULT_FPS
    frames = int(stream.frames) if stream.frames else None
    if frames is None and container.duration:  # Matroska: from the duration
        frames = round(container.duration / 1e6 * float(fps)) or None
    info = VideoInfo(
        int(ctx.width), int(ctx.height), 1 if grey else 3, np.dtype(np.uint8 if bits <= 8 else np.uint16),
        fps, frames, f"{stream.codec_context.name} {fmt.name if fmt is not None else '?'}",
    )

    def gen():
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format=target)
        except ImageIOError:
            raise
        except Exception as exc:
            raise ImageIOError(f"{path}: cannot decode: {' '.join(str(exc).split())}") from None
        finally:
            container.close()

    return info, gen()


def _open_tiff(path, time_axis):
    import tifffile

    try:
        tif = tifffile.TiffFile(str(path))
        series = tif.series[0]
        shape, dtype = tuple(series.shape), np.dtype(series.dtype)
        pages = list(series.pages) if hasattr(series, "pages") else []
        if len(tif.series) > 1 and all(s.shape == series.shape and s.dtype == series.dtype for s in tif.series):
            # one series per page (written frame by frame): the pages are the frames
            pages = [s.pages[0] for s in tif.series]
            shape = (len(pages),) + shape
    except Exception as exc:
        raise ImageIOError(f"{path}: cannot read as a TIFF stack: {' '.join(str(exc).split())}") from None
    nd = len(shape)
    if nd < 3:
        tif.close()
        raise ImageIOError(f"{path}: holds a single 2-D image {shape}, not a stack of frames")
    ax = time_axis % nd if -nd <= time_axis < nd else None
    if ax is None:
        tif.close()
        raise ImageIOError(f"{path}: time axis {time_axis} is out of range for a stack of shape {shape}")
    if dtype.kind not in "uif":
        tif.close()
        raise ImageIOError(f"{path}: pixel type {dtype} is not supported")
    rest = shape[:ax] + shape[ax + 1 :]
    if len(rest) not in (2, 3) or (len(rest) == 3 and rest[-1] not in (1, 3, 4)):
        tif.close()
        raise ImageIOError(
            f"{path}: frames of shape {rest} (stack {shape}, time axis {ax}) are not H x W or H x W x C"
        )
    C = rest[2] if len(rest) == 3 else 1
    info = VideoInfo(rest[1], rest[0], C, dtype, DEFAULT_FPS, shape[ax], f"TIFF stack {shape}, time axis {ax}")

    def gen():
        try:
            if ax == 0 and len(pages) == shape[0] and all(p is not None for p in pages):
                for page in pages:  # one page per frame: streamed
                    yield np.asarray(page.asarray()).reshape(rest)
            else:
                data = np.stack([p.asarray() for p in pages]) if len(tif.series) > 1 else series.asarray()
                for t in range(shape[ax]):
                    yield np.take(data, t, axis=ax)
        finally:
            tif.close()

    return info, gen()


def _open_png_dir(path):
    from nlm.io.image import read_image

    files = sorted(f for f in Path(path).iterdir() if f.suffix.lower() == ".png" and not f.name.startswith("."))
    if not files:
        raise ImageIOError(f"{path}: directory holds no PNG frames")
    first = read_image(files[0]).data
    C = first.shape[2] if first.ndim == 3 else 1
    info = VideoInfo(first.shape[1], first.shape[0], C, first.dtype, DEFAULT_FPS, len(files), "PNG sequence")

    def gen():
        for f in files:
            yield read_image(f).data

    return info, gen()


def open_frames(path, time_axis=None):
    """Open a clip, TIFF stack or PNG sequence for streaming.

    Parameters
    ----------
    path : str or Path
        A video file (:data:`VIDEO_EXTENSIONS`), a ``.tif``/``.tiff`` stack or
        a directory of PNG frames.
    time_axis : int or None
        TIFF stacks only: the axis of time (default 0).

    Returns
    -------
    (VideoInfo, iterator of ndarray)
        The iterator yields the frames in order and closes the file at its
        end.

    Raises
    ------
    ImageIOError
        Unreadable input, no video stream, unsupported frames.
    """
    p = Path(path)
    if p.is_dir():
        return _open_png_dir(p)
    if p.suffix.lower() in _TIFF:
        return _open_tiff(p, 0 if time_axis is None else int(time_axis))
    if time_axis not in (None, 0):
        raise ImageIOError(f"{path}: --time-axis applies to TIFF stacks; a video's frames are its time axis")
    return _open_video(p)


class FrameWriter:
    """Write frames one at a time to ``.mkv`` (FFV1), a ``.tif`` stack or a PNG directory.

    Everything goes to a temporary name beside ``path``; :meth:`commit`
    renames it into place (replacing an existing output only with
    ``overwrite``), :meth:`abort` removes it.  Use as a context manager: an
    exception aborts.

    Parameters
    ----------
    path : str or Path
    info : VideoInfo
        Frame shape, channels, dtype and frame rate of the output.
    overwrite : bool
    """

    def __init__(self, path, info, *, overwrite=False):
        self.path = Path(path)
        self.kind = output_kind(self.path)
        if self.kind is None:
            raise ImageIOError(f"{path}: write video as .mkv (FFV1), a .tif stack, or a directory of PNG frames")
        if self.path.exists() and not overwrite:
            raise ImageIOError(f"{path}: already exists; pass --overwrite to replace it")
        self.info = info
        self.overwrite = overwrite
        self.count = 0
        dtype = np.dtype(info.dtype)
        if dtype not in (np.uint8, np.uint16) and self.kind != "tiff":
            raise ImageIOError(
                f"{path}: {dtype} frames need a .tif output (FFV1 and PNG hold 8- and 16-bit integers)"
            )
        parent = self.path.parent if str(self.path.parent) else Path(".")
        stem = f".{self.path.name}.tmp-"
        if self.kind == "frames":
            self.tmp = Path(tempfile.mkdtemp(prefix=stem, dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=stem, suffix=self.path.suffix, dir=parent)
            os.close(fd)
            self.tmp = Path(name)
        try:
            self._open()
        except Exception:
            self._remove_tmp()
            raise

    def _open(self):
        info = self.info
        if self.kind == "mkv":
            av = _import_av()
            self._av = av
            self.container = av.open(str(self.tmp), "w", format="matroska")
            fps = Fraction(info.fps).limit_denominator(1 << 16)
            stream = self.container.add_stream("ffv1", rate=fps)
            stream.width, stream.height = info.width, info.height
            sixteen = np.dtype(info.dtype) == np.uint16
            grey = info.channels == 1
            stream.pix_fmt = ("gray16le" if sixteen else "gray") if grey else ("rgb48le" if sixteen else "bgr0")
            stream.codec_context.time_base = 1 / fps
            self.time_base = 1 / fps
            self.stream = stream
            self.src_fmt = ("gray16le" if sixteen else "gray") if grey else ("rgb48le" if sixteen else "rgb24")
        elif self.kind == "tiff":
            import tifffile

            self.tiff = tifffile.TiffWriter(str(self.tmp), bigtiff=True)

    def write(self, frame):
        """Append one frame (the shape and dtype of ``info``)."""
        frame = np.ascontiguousarray(frame)
        if frame.shape != self.info.shape and not (self.info.channels == 1 and frame.shape == self.info.shape + (1,)):
            raise ImageIOError(f"frame of shape {frame.shape}, expected {self.info.shape}")
        if self.kind == "mkv":
            vf = self._av.VideoFrame.from_ndarray(frame.reshape(self.info.shape), format=self.src_fmt)
            vf.pts = self.count
            vf.time_base = self.time_base
            for packet in self.stream.encode(vf):
                self.container.mux(packet)
        elif self.kind == "tiff":
            photometric = "rgb" if self.info.channels in (3, 4) else "minisblack"
            self.tiff.write(frame, photometric=photometric, contiguous=False)
        else:
            from nlm.io.image import write_image

            write_image(self.tmp / f"frame_{self.count:06d}.png", frame)
        self.count += 1

    def _close(self):
        if self.kind == "mkv":
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
        elif self.kind == "tiff":
            self.tiff.close()

    def _remove_tmp(self):
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            try:
                self.tmp.unlink()
            except FileNotFoundError:
                pass

    def commit(self):
        """Finish the stream and move it into place."""
        self._close()
        # mkstemp/mkdtemp make private (0600/0700) entries: give the output
        # the permissions a new file or folder would have, as image outputs do
        _set_mode(self.tmp, self.path, 0o777 if self.tmp.is_dir() else 0o666)
        if self.kind == "frames" and self.path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=self.tmp.parent))
            os.replace(self.path, old / "x")
            os.replace(self.tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.path)

    def abort(self):
        """Drop everything written."""
        try:
            if self.kind == "mkv":
                self.container.close()
            elif self.kind == "tiff":
                self.tiff.close()
        except Exception:
            pass
        self._remove_tmp()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False
