"""Path handling of the command line, in one place: inputs, outputs, batch jobs.

Missing, unreadable or special files, names the system cannot take, outputs
that exist or are the input: each is a usage error (exit 2) raised here,
before anything is read.
"""

import glob
import os
from pathlib import Path

import click

_GLOB_CHARS = set("*?[")


def _readable_ext(path):
    from nlm.io import READ_EXTENSIONS

    return Path(path).suffix.lower() in READ_EXTENSIONS


class _Unknown:
    """What :func:`_stat` returns when the path cannot be examined (permissions)."""

    st_mode = 0o100000  # looks like a regular file; the real access reports the error


_UNKNOWN = _Unknown()


def _stat(path, hint):
    """``os.stat(path)``, or None when nothing is there; a name the system cannot
    take (too long, a symlink loop) is a usage error."""
    import errno

    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            longest = max((len(os.fsencode(part)) for part in Path(path).parts), default=0)
            raise click.BadParameter(
                f"{_short(path)}: file name too long ({longest} bytes in one name, "
                f"{len(os.fsencode(str(path)))} in all)",
                param_hint=hint,
            ) from None
        if exc.errno == errno.ELOOP:
            raise click.BadParameter(
                f"{_short(path)}: too many levels of symbolic links", param_hint=hint
            ) from None
        return _UNKNOWN  # e.g. permission denied: reading or writing reports it (exit 1)


def _short(path, limit=120):
    """A path for a message: very long ones are cut in the middle."""
    text = str(path)
    if len(text) <= limit:
        return text
    return text[: limit // 2 - 2] + "..." + text[-(limit // 2 - 1):]


def check_input_file(path, hint):
    """Usage checks on one input path: exists, is a regular file, readable extension."""
    import stat

    from nlm.io import READ_EXTENSIONS, file_kind

    p = Path(path)
    info = _stat(p, hint)
    if info is None:
        raise click.BadParameter(f"{_short(path)}: no such file", param_hint=hint)
    if p.suffix.lower() == ".zarr":  # a zarr / OME-Zarr store (a directory), read tile by tile
        return p
    if stat.S_ISDIR(info.st_mode):
        raise click.BadParameter(
            f"{_short(path)}: is a directory, not an image file "
            "(to denoise every image in it: nlm denoise DIR -o OUTDIR)",
            param_hint=hint,
        )
    if not stat.S_ISREG(info.st_mode):
        raise click.BadParameter(
            f"{_short(path)}: is {file_kind(info.st_mode)}, not a regular file; give an image file",
            param_hint=hint,
        )
    if not _readable_ext(p):
        raise click.BadParameter(
            f"{_short(path)}: unsupported extension {p.suffix or '(none)'!r}; "
            f"readable: {', '.join(READ_EXTENSIONS)}",
            param_hint=hint,
        )
    return p


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        try:
            return Path(a).resolve() == Path(b).resolve()
        except OSError:
            return False


def check_output_file(path, inputs, overwrite, hint):
    """Usage checks on one output path (before any work is done)."""
    import stat

    from nlm.io import ImageIOError, check_writable, file_kind

    p = Path(path)
    zarr_out = p.suffix.lower() == ".zarr"
    info = _stat(p, hint)
    if info is _UNKNOWN:
        info = None  # cannot tell: the write reports it
    if info is not None and stat.S_ISDIR(info.st_mode) and not zarr_out:
        raise click.BadParameter(
            f"{_short(path)}: is a directory; give an output file name (or use -o DIR for a batch)",
            param_hint=hint,
        )
    try:
        if not zarr_out:
            check_writable(p, None, None)
    except ImageIOError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None
    parent = p.parent if str(p.parent) else Path(".")
    parent_info = _stat(parent, hint)
    if parent_info is None or (parent_info is not _UNKNOWN and not stat.S_ISDIR(parent_info.st_mode)):
        raise click.BadParameter(
            f"{_short(path)}: directory {_short(parent)} does not exist", param_hint=hint
        )
    if info is not None and not stat.S_ISREG(info.st_mode) and not (zarr_out and stat.S_ISDIR(info.st_mode)):
        raise click.BadParameter(
            f"{_short(path)}: is {file_kind(info.st_mode)}, not a regular file; "
            "give a file name to write",
            param_hint=hint,
        )
    if info is not None and not overwrite:
        if any(same_file(p, i) for i in inputs):
            raise click.BadParameter(
                f"{_short(path)}: is the input file; pass --overwrite to replace it", param_hint=hint
            )
        raise click.BadParameter(
            f"{_short(path)}: already exists; pass --overwrite to replace it", param_hint=hint
        )
    return p


def _expand_inputs(paths):
    """Batch inputs: files as given, directories' images, glob matches; sorted, unique."""
    import stat

    files = []
    for raw in paths:
        p = Path(raw)
        info = _stat(p, "PATHS")
        if info is not None and info is not _UNKNOWN and stat.S_ISDIR(info.st_mode):
            try:
                entries = list(p.iterdir())
            except OSError as exc:
                raise click.BadParameter(
                    f"{_short(raw)}: cannot list the directory: {exc.strerror or exc}",
                    param_hint="PATHS",
                ) from None
            found = sorted(
                f for f in entries if f.is_file() and not f.name.startswith(".") and _readable_ext(f)
            )
            if not found:
                raise click.BadParameter(f"{_short(raw)}: directory holds no readable image", param_hint="PATHS")
            files.extend(found)
        elif info is not None:
            files.append(check_input_file(p, "PATHS"))
        elif _GLOB_CHARS & set(raw):
            found = sorted(
                Path(f) for f in glob.glob(raw) if Path(f).is_file() and _readable_ext(f)
            )
            if not found:
                raise click.BadParameter(f"{_short(raw)}: matches no readable image", param_hint="PATHS")
            files.extend(found)
        else:
            raise click.BadParameter(f"{_short(raw)}: no such file or directory", param_hint="PATHS")
    unique, seen = [], set()
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def batch_jobs(paths, output_dir, suffix, ext, overwrite):
    """Pair every input with its output in ``output_dir``; all usage checks first."""
    import stat

    from nlm.io import WRITE_EXTENSIONS, file_kind

    if not paths:
        raise click.UsageError("no input given: nlm denoise INPUT... -o OUTDIR")
    if os.sep in suffix or (os.altsep and os.altsep in suffix):
        raise click.BadParameter("must not contain a path separator", param_hint="'--suffix'")
    inputs = _expand_inputs(paths)
    outdir = Path(output_dir)
    hint = "'-o' / '--output-dir'"
    jobs, targets = [], {}
    for src in inputs:
        out_ext = "." + ext if ext else src.suffix.lower()
        if out_ext not in WRITE_EXTENSIONS:
            out_ext = ".png"
        dst = outdir / f"{src.stem}{suffix}{out_ext}"
        key = os.path.realpath(dst)
        if key in targets:
            raise click.BadParameter(
                f"{targets[key]} and {src} would both be written to {dst}; "
                "use --suffix or --ext, or process them separately",
                param_hint="PATHS",
            )
        targets[key] = src
        jobs.append((src, dst))
    if _stat(outdir, hint) is not None:
        for src, dst in jobs:
            info = _stat(dst, hint)
            if info is None or info is _UNKNOWN:
                continue
            if stat.S_ISDIR(info.st_mode):
                raise click.BadParameter(f"{_short(dst)}: is a directory", param_hint=hint)
            if not stat.S_ISREG(info.st_mode):
                raise click.BadParameter(
                    f"{_short(dst)}: is {file_kind(info.st_mode)}, not a regular file", param_hint=hint
                )
            if not overwrite:
                what = "is the input file" if same_file(src, dst) else "already exists"
                raise click.BadParameter(
                    f"{_short(dst)}: {what}; pass --overwrite to replace it (or use --suffix)",
                    param_hint=hint,
                )
    else:
        for _src, dst in jobs:
            _stat(dst, hint)  # a name too long is refused before anything is done
    return jobs
