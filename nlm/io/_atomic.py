"""Atomic writes: every output goes to a registered temporary file
``.STEM.XXXXXXXX.part.EXT`` next to it (STEM shortened to fit the file
system's name limit), is synced, given the permissions a new file would have
and renamed into place (no-clobber by a hard link unless overwriting).

The registry of temporary files in progress (:data:`_PARTIAL`) is what
:func:`remove_partial_files` empties from a signal handler;
:func:`leftover_partial_files` finds those another process left behind.
:mod:`nlm.io.image`, :mod:`nlm.io.tiled` and :mod:`nlm.io.video` write
through here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from os import PathLike
from pathlib import Path

from nlm.io._imagedata import ImageIOError, extension

__all__ = ["atomic_write", "leftover_partial_files", "remove_partial_files", "set_mode", "stat_or_none"]


def atomic_write(path: str | PathLike, encode: Callable[[str], object], overwrite: bool) -> None:
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
        set_mode(tmp, path)
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


def remove_partial_files() -> None:
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


def stat_or_none(path: str | PathLike, what: str) -> os.stat_result | None:
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
    fixed = len(os.fsencode(f"..{'0' * 8}.part{extension(path)}"))
    stem = os.fsencode(path.stem)[: max(0, _name_max(directory) - fixed)]
    while stem and 0x80 <= stem[-1] < 0xC0:  # drop a cut UTF-8 sequence
        stem = stem[:-1]
    if stem and stem[-1] >= 0xC0:
        stem = stem[:-1]
    return os.fsdecode(stem)


def leftover_partial_files(path: str | PathLike) -> list[Path]:
    """Temporary files of writes of ``path`` that another process left (``.STEM.XXXXXXXX.part.EXT``).

    A process killed while writing (a dask worker, SIGKILL) cannot remove its
    temporary file; whoever sent it the work can, with this list.  Files this
    process is writing itself are not listed.
    """
    import re

    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    pattern = re.compile(
        rf"\.{re.escape(_temporary_stem(path, directory))}\.[0-9a-f]{{8}}\.part{re.escape(extension(path))}"
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
    ext = extension(path)
    stem = _temporary_stem(path, directory)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(directory / f".{stem}.{os.urandom(4).hex()}.part{ext}")
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


def set_mode(tmp: str | PathLike, path: Path, new: int = 0o666) -> None:
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
        if stat_or_none(path, "cannot write") is not None:
            raise ImageIOError(f"{path}: already exists (use overwrite to replace it)") from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)
