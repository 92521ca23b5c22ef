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
A frame directory written by nlm holds its frames and a marker file
(:data:`FRAMES_MARKER`); ``overwrite`` replaces such a directory and nothing
else (:func:`check_frames_output`).

A clip that decodes to fewer frames than its container declares, whose
decoding fails part-way, or in which ffmpeg reports damage, raises
:class:`TruncatedVideoError` saying how many frames were decoded
(``allow_truncated``: a warning, and the frames as they decode).
ffmpeg's log messages never reach the terminal: they go to the ``logging``
logger ``nlm.io.video`` (level ERROR, text ``ffmpeg [component]: message``),
which has a ``NullHandler``; the command line shows them with ``--verbose``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nlm.io._atomic import set_mode
from nlm.io._imagedata import ImageIOError
from nlm.io.budget import VIDEO_EXTENSIONS, is_video_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from numpy.typing import ArrayLike

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "FrameWriter",
    "open_frames",
    "is_video_path",
    "output_kind",
    "check_frames_output",
    "FRAMES_MARKER",
    "TruncatedVideoError",
]

#: where ffmpeg's log messages go (see the module docstring)
logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: the marker file nlm writes into a PNG frame directory: what ``overwrite`` may replace
FRAMES_MARKER = ".nlm-frames.json"
#: ffmpeg's words for a file cut short (Matroska, MP4 and others)
_ENDED = re.compile(r"ended prematurely|truncat|partial file|unexpected end", re.IGNORECASE)
_FRAME_NAME = re.compile(r"frame_[0-9]{6,}\.png")

_TIFF = (".tif", ".tiff")
#: frames per second written when the source has none (TIFF stacks, PNG sequences)
DEFAULT_FPS = Fraction(25)


def output_kind(path: str | os.PathLike) -> str | None:
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
    def shape(self) -> tuple[int, ...]:
        """Shape of one frame."""
        return (self.height, self.width) + ((self.channels,) if self.channels > 1 else ())

    def describe(self) -> str:
        n = "?" if self.frames is None else self.frames  # from the container: may be approximate
        kind = "grey" if self.channels == 1 else "RGB"
        return (
            f"{n} frames {self.width}x{self.height} {kind} {np.dtype(self.dtype).name} "
            f"at {float(self.fps):.4g} fps, {self.source}"
        )


class TruncatedVideoError(ImageIOError):
    """A clip that ends before its declared length or fails to decode part-way.

    Attributes: ``decoded`` (frames decoded before the end or the failure) and
    ``declared`` (the container's frame count, or None).
    """

    def __init__(self, message: str, decoded: int, declared: int | None) -> None:
        super().__init__(message)
        self.decoded = decoded
        self.declared = declared


def _import_av():
    try:
        import av
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImageIOError('reading and writing video needs PyAV: pip install "nlm[video]"') from None
    # ERROR: PyAV's exceptions then carry ffmpeg's last error message; repeats
    # kept: a message identical to one of an earlier clip still says this one ended early
    av.logging.set_level(av.logging.ERROR)
    av.logging.set_skip_repeated(False)
    return av


@contextlib.contextmanager
def _ffmpeg_logs(av):
    """Capture ffmpeg's log messages (all threads: the decoders' own threads
    log too) instead of PyAV's default route, ``logging`` without a handler,
    which Python's last-resort handler prints to stderr; yield the list of
    messages and pass them on to :data:`logger` at the end."""
    # Capture(local=False) is process-wide: concurrent readers in several
    # threads may see each other's messages, never lose them.
    capture = av.logging.Capture(local=False)
    caught = capture.__enter__()
    try:
        yield caught
    finally:
        capture.__exit__(None, None, None)
        for level, name, message in caught:
            logger.log(av.logging.adapt_level(level), "ffmpeg%s: %s", f" [{name}]" if name else "", message.strip())


def _duration_tag(text):
    """Seconds of a Matroska ``DURATION`` tag (``HH:MM:SS.nnnnnnnnn``), or None."""
    m = re.fullmatch(r"\s*([0-9]+):([0-9]{2}):([0-9]{2}(?:\.[0-9]*)?)\s*", text or "")
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else None


def _one_line(exc):
    """PyAV's message in one line, without its errno and the file name it repeats."""
    text = " ".join(str(exc).split())
    text = re.sub(r"^\[Errno -?[0-9]+\] ", "", text)
    return re.sub(r": '[^']*'(;|$)", r"\1", text, count=1)


def _open_video(path, allow_truncated):
    av = _import_av()
    try:
        with _ffmpeg_logs(av):
            container = av.open(str(path))
    except Exception as exc:  # every reader error becomes one line
        raise ImageIOError(f"{path}: cannot read as a video: {_one_line(exc)}") from None
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
    frames = int(stream.frames) if stream.frames else None  # MP4, AVI, ...: the count itself
    slack = 0  # frames a complete clip may lack against the declared count
    if frames is None:  # Matroska, WebM: from the video track's duration, else the container's
        seconds = _duration_tag(stream.metadata.get("DURATION"))
        if seconds is None and len(container.streams) == 1 and container.duration:
            seconds = container.duration / 1e6  # no other track (audio) that may last longer
        if seconds is not None:
            frames = round(seconds * float(fps)) or None
            slack = (frames or 0) // 100  # a variable frame rate makes the average rate approximate
        elif container.duration:  # for the progress bar only: another track may last longer
            frames, slack = round(container.duration / 1e6 * float(fps)) or None, None
    info = VideoInfo(
        int(ctx.width), int(ctx.height), 1 if grey else 3, np.dtype(np.uint8 if bits <= 8 else np.uint16),
        fps, frames, f"{stream.codec_context.name} {fmt.name if fmt is not None else '?'}",
    )

    def broken(count, what):
        """The clip ended early, or failed or was damaged part-way, after ``count`` frames."""
        text = f"{path}: {what}; {count} frame{'s' if count != 1 else ''} decoded"
        if frames:
            text += f" of the {frames} its container declares"
        if not allow_truncated:
            raise TruncatedVideoError(text, count, frames)
        warnings.warn(f"{text}; only those are used (allow_truncated)", stacklevel=3)

    def gen():
        count, ended, damaged = 0, [], []
        try:
            decoder = container.decode(stream)
            while True:
                try:
                    with _ffmpeg_logs(av) as caught:
                        frame = next(decoder, None)
                        array = None if frame is None else frame.to_ndarray(format=target)
                except Exception as exc:
                    broken(count, f"cannot decode frame {count} (corrupt or truncated): {_one_line(exc)}")
                    return
                for _level, name, message in caught:  # ERROR or worse: what is not the end is damage
                    text = f"ffmpeg{f' [{name}]' if name else ''}: {message.strip()}"
                    if _ENDED.search(message):
                        ended.append(text)
                    elif not damaged:
                        damaged.append(text)
                        if not allow_truncated:
                            broken(count, f"corrupt ({text})")
                if array is None:
                    break
                count += 1
                yield array
            if damaged:
                warnings.warn(
                    f"{path}: corrupt ({damaged[0]}); its {count} frames are used as ffmpeg decoded them, "
                    "the damage concealed (allow_truncated)", stacklevel=2,
                )
            if ended:
                broken(count, f"truncated ({ended[0]})")
            elif frames and slack is not None and count < frames - slack:
                broken(count, "truncated or corrupt: it ended early")
        finally:
            container.close()

    return info, gen()


def _open_tiff(path, time_axis):
    import tifffile

    from nlm.io.image import _quiet_readers  # tifffile's log lines: errors are raised instead

    try:
        with _quiet_readers():
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
        t = 0
        try:
            if ax == 0 and len(pages) == shape[0] and all(p is not None for p in pages):
                for page in pages:  # one page per frame: streamed
                    with _quiet_readers():
                        frame = np.asarray(page.asarray()).reshape(rest)
                    yield frame
                    t += 1
            else:
                with _quiet_readers():
                    data = np.stack([p.asarray() for p in pages]) if len(tif.series) > 1 else series.asarray()
                for t in range(shape[ax]):
                    yield np.take(data, t, axis=ax)
        except (ImageIOError, GeneratorExit):
            raise
        except Exception as exc:
            raise ImageIOError(
                f"{path}: cannot read frame {t} of {shape[ax]} (corrupt or truncated); "
                f"{t} frame{'s' if t != 1 else ''} read: {_one_line(exc)}"
            ) from None
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
    fps = DEFAULT_FPS
    try:  # a sequence nlm wrote keeps its clip's frame rate
        with open(Path(path) / FRAMES_MARKER, encoding="utf-8") as fh:
            fps = Fraction(json.loads(fh.read(65536))["fps"])
        if not 0 < fps < 10**6:
            fps = DEFAULT_FPS
    except (OSError, ValueError, TypeError, KeyError, ZeroDivisionError):
        pass
    info = VideoInfo(first.shape[1], first.shape[0], C, first.dtype, fps, len(files), "PNG sequence")

    def gen():
        for f in files:
            yield read_image(f).data

    return info, gen()


def open_frames(
    path: str | os.PathLike, time_axis: int | None = None, *, allow_truncated: bool = False
) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """Open a clip, TIFF stack or PNG sequence for streaming.

    Parameters
    ----------
    path : str or Path
        A video file (:data:`VIDEO_EXTENSIONS`), a ``.tif``/``.tiff`` stack or
        a directory of PNG frames.
    time_axis : int or None
        TIFF stacks only: the axis of time (default 0).
    allow_truncated : bool, keyword-only
        Video files: a clip that ends before the frame count its container
        declares, whose decoding fails part-way or in which ffmpeg reports
        damage (concealed by the decoder) yields the frames as they decode
        and warns (``UserWarning``) instead of raising
        :class:`TruncatedVideoError`.

    Returns
    -------
    (VideoInfo, iterator of ndarray)
        The iterator yields the frames in order and closes the file at its
        end.

    Raises
    ------
    ImageIOError
        Unreadable input, no video stream, unsupported frames; from the
        iterator, a truncated or corrupt clip (naming the frames decoded).
    """
    p = Path(path)
    if p.is_dir():
        return _open_png_dir(p)
    if p.suffix.lower() in _TIFF:
        return _open_tiff(p, 0 if time_axis is None else int(time_axis))
    if time_axis not in (None, 0):
        raise ImageIOError(f"{path}: --time-axis applies to TIFF stacks; a video's frames are its time axis")
    return _open_video(p, allow_truncated)


_MARKER_FORMAT = "nlm PNG frame sequence"


def _within(inner, outer):
    """Real path ``inner`` is ``outer`` or lies below it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _not_nlm_frames(path, entries):
    """Why directory ``path`` holding ``entries`` is not a frame sequence nlm
    wrote (its marker and ``frame_NNNNNN.png`` files, nothing else), or None."""
    others = sorted(e for e in entries if e != FRAMES_MARKER and not _FRAME_NAME.fullmatch(e))
    if others:
        return f"holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''}"
    for name in sorted(entries):
        full = os.path.join(path, name)
        if os.path.islink(full) or not os.path.isfile(full):
            return f"holds {name}, which is not a plain file"
    if FRAMES_MARKER not in entries:
        return f"has no {FRAMES_MARKER}: its frames were not written by nlm"
    try:
        with open(os.path.join(path, FRAMES_MARKER), encoding="utf-8") as fh:
            marker = json.loads(fh.read(65536))
    except (OSError, ValueError):
        marker = None
    if not isinstance(marker, dict) or marker.get("format") != _MARKER_FORMAT:
        return f"has a {FRAMES_MARKER} that nlm did not write"
    return None


def check_frames_output(
    path: str | os.PathLike, overwrite: bool = False, inputs: Iterable[str | os.PathLike] = ()
) -> str | None:
    """Why ``path`` may not be written as a PNG frame directory, or None if it may.

    Refused: the current directory or one above it; a directory that is or
    holds one of ``inputs`` (real paths: symbolic links and ``..`` resolved);
    a symbolic link or an existing non-directory; an existing directory
    without ``overwrite``; with ``overwrite``, a directory that holds anything
    but a frame sequence nlm wrote (its ``frame_NNNNNN.png`` files and its
    marker :data:`FRAMES_MARKER`; an empty directory may be replaced too).

    Returns
    -------
    str or None
        A one-line reason naming ``path``.
    """
    real = os.path.realpath(path)
    if _within(os.path.realpath(os.getcwd()), real):
        return f"{path}: is the current directory or one above it; give a new directory for the frames"
    for src in inputs:
        if _within(os.path.realpath(src), real):
            if os.path.realpath(src) == real:
                return f"{path}: is the input; write the frames elsewhere"
            return f"{path}: holds the input {src}; write the frames to a new directory"
    if not os.path.lexists(path):
        return None
    if os.path.islink(path):
        return f"{path}: is a symbolic link; give the directory itself"
    if not os.path.isdir(path):
        return f"{path}: is a file, not a directory of frames; give a new directory for the frames"
    if not overwrite:
        return f"{path}: already exists; pass --overwrite to replace it"
    try:
        entries = os.listdir(path)
    except OSError as exc:
        return f"{path}: cannot list the directory: {exc.strerror or exc}"
    what = _not_nlm_frames(path, entries) if entries else None
    if what:
        return (
            f"{path}: {what}; --overwrite only replaces a frame directory written by nlm "
            "(give a new directory, or empty this one yourself)"
        )
    return None


def _remove_frame_dir(path):
    """Delete nlm's frames and marker in ``path``, then ``path`` if that emptied it."""
    for name in os.listdir(path):
        if name == FRAMES_MARKER or _FRAME_NAME.fullmatch(name):
            try:
                os.unlink(os.path.join(path, name))
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


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

    def __init__(self, path: str | os.PathLike, info: VideoInfo, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.kind = output_kind(self.path)
        if self.kind is None:
            raise ImageIOError(f"{path}: write video as .mkv (FFV1), a .tif stack, or a directory of PNG frames")
        if self.kind == "frames":
            reason = check_frames_output(self.path, overwrite)
            if reason:
                raise ImageIOError(reason)
            # the real path: a name through itself (out/../out) is gone once the old output moves away
            self.path = Path(os.path.realpath(self.path))
        elif self.path.is_dir():
            raise ImageIOError(f"{path}: is a directory; give a file name for the {self.kind} output")
        elif os.path.lexists(self.path) and not overwrite:
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

    @contextlib.contextmanager
    def _writing(self):
        """ffmpeg's log messages captured; a failed write is an ImageIOError naming the output."""
        logs = _ffmpeg_logs(self._av) if self.kind == "mkv" else contextlib.nullcontext()
        try:
            with logs:
                yield
        except (ImageIOError, MemoryError):
            raise
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _one_line(exc)
            raise ImageIOError(f"{self.path}: cannot write: {reason}") from None

    def _open(self):
        if self.kind == "mkv":
            self._av = _import_av()
        with self._writing():
            self._open_writer()

    def _open_writer(self):
        info = self.info
        if self.kind == "mkv":
            av = self._av
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

    def write(self, frame: ArrayLike) -> None:
        """Append one frame (the shape and dtype of ``info``)."""
        frame = np.ascontiguousarray(frame)
        if frame.shape != self.info.shape and not (self.info.channels == 1 and frame.shape == self.info.shape + (1,)):
            raise ImageIOError(f"frame of shape {frame.shape}, expected {self.info.shape}")
        with self._writing():
            self._write(frame)
        self.count += 1

    def _write(self, frame):
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

    def _close(self):
        with self._writing():
            self._close_writer()

    def _close_writer(self):
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

    def commit(self) -> None:
        """Finish the stream and move it into place; on failure remove what was written."""
        try:
            self._commit()
        except BaseException:
            self._remove_tmp()
            raise

    def _commit(self):
        self._close()
        # mkstemp/mkdtemp make private (0600/0700) entries: give the output
        # the permissions a new file or folder would have, as image outputs do
        set_mode(self.tmp, self.path, 0o777 if self.tmp.is_dir() else 0o666)
        if self.kind != "frames":
            os.replace(self.tmp, self.path)
            return
        marker = dict(format=_MARKER_FORMAT, frames=self.count, fps=str(Fraction(self.info.fps)),
                      width=self.info.width, height=self.info.height, channels=self.info.channels,
                      dtype=np.dtype(self.info.dtype).name)
        (self.tmp / FRAMES_MARKER).write_text(json.dumps(marker) + "\n")
        if not os.path.lexists(self.path):
            os.replace(self.tmp, self.path)
            return
        # again, just before: nothing but a previous frame sequence of nlm is replaced
        reason = check_frames_output(self.path, self.overwrite)
        if reason:
            raise ImageIOError(reason)
        old = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.old-", dir=self.tmp.parent))
        os.replace(self.path, old / "x")
        try:
            os.replace(self.tmp, self.path)
        except BaseException:
            os.replace(old / "x", self.path)
            os.rmdir(old)
            raise
        _remove_frame_dir(old / "x")
        try:
            os.rmdir(old)
        except OSError:
            warnings.warn(f"{self.path}: files that appeared in the old output meanwhile are kept in {old}",
                          stacklevel=2)

    def abort(self) -> None:
        """Drop everything written."""
        try:
            with self._writing():
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
