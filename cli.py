"""The ``nlm`` command line (click).

Heavy modules (NumPy, Numba, the filter) are imported inside the commands, so
``nlm --help`` answers quickly.  Reading and writing follow the lossless rules
of :mod:`nlm.io`; ``docs/cli.md`` is the user documentation.

Exit codes: 0 success; 1 a data or library error (unreadable or corrupt
input, a pixel type the output format cannot hold, a failed filter call);
2 a usage error (wrong arguments, an invalid option value, an existing output
without ``--overwrite``).  No output file is left behind by a failed run.
"""

import glob
import os
import sys
import time
from pathlib import Path

import click

from nlm import __version__
from nlm import _cli_options as opts

_GLOB_CHARS = set("*?[")


_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class _Interrupted(KeyboardInterrupt):
    """Raised by the signal handler: SIGINT, SIGTERM or SIGHUP arrived."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


_state = {"signal": None, "hook": None, "verbose": False}


#: loggers whose records the command line routes itself, never straight to
#: stderr: nlm's own (ffmpeg's messages come through ``nlm.io.video``) and
#: those of the libraries that read and write files
_LOGGERS = ("nlm", "tifffile")


class _LogLines:
    """Context: the records of :data:`_LOGGERS` during a command.

    Without a handler of their own, a library's warning goes to Python's
    last-resort handler, which prints it on stderr in front of the
    ``Error:`` line (tifffile: ``<tifffile.TiffPages @8> invalid offset to
    first page``; ffmpeg: ``moov atom not found``).  Here they are printed
    as ``log: ...`` lines (``log: tifffile: ...`` for a library) with
    ``--verbose`` only, as they come, so the ``Error:`` line stays the last
    one, and dropped otherwise; the loggers are restored afterwards.
    ``_state["verbose"]`` is read when a record comes (records may come
    from the filter's worker threads, where there is no click context).
    """

    def __init__(self):
        import logging

        class Echo(logging.Handler):
            def emit(handler, record):
                if not _state["verbose"]:
                    return
                try:
                    text = " ".join(record.getMessage().split())
                except Exception:  # noqa: BLE001 - a malformed record is not worth an error
                    text = " ".join(str(record.msg).split())
                if not record.name.startswith("nlm"):
                    text = f"{record.name}: {text}"
                click.echo(f"log: {text}", err=True)

        self.handler = Echo(logging.DEBUG)
        self.saved = []

    def __enter__(self):
        import logging

        for name in _LOGGERS:
            logger = logging.getLogger(name)
            self.saved.append((logger, logger.propagate))
            logger.addHandler(self.handler)
            logger.propagate = False
        return self

    def __exit__(self, *exc):
        for logger, propagate in self.saved:
            logger.removeHandler(self.handler)
            logger.propagate = propagate
        self.saved.clear()
        return False


def _on_signal(signum, frame):
    """Remove partial outputs at once, then unwind (first signal only)."""
    io = sys.modules.get("nlm.io")
    if io is not None:
        io.remove_partial_files()
    if _state["signal"] is None:
        _state["signal"] = signum
        raise _Interrupted(signum)


def _quiet_unraisable(unraisable):
    """After an interruption, objects torn down half-way (a reader plugin's
    ``__del__``) may fail; that is expected then and not worth a traceback."""
    if _state["signal"] is None:
        sys.__unraisablehook__(unraisable)


def _unexpected(exc):
    """An error nobody planned for (a bug): one line asking for a report; NLM_DEBUG=1 re-raises it."""
    if os.environ.get("NLM_DEBUG"):
        raise  # the exception being handled, with its traceback
    reason = " ".join(str(exc).split())[:300]
    raise click.ClickException(
        f"unexpected {type(exc).__name__}: {reason} (please report it; NLM_DEBUG=1 shows the traceback)"
    ) from None


class _Main(click.Group):
    """The ``nlm`` group: signals, out-of-memory and unexpected errors end in
    one ``Error:`` line, never a traceback."""

    def main(self, *args, **kwargs):
        import signal
        import threading

        _state["signal"] = None
        _state["verbose"] = False
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for name in _SIGNALS:
                num = getattr(signal, name, None)
                # a signal ignored on entry stays ignored (nohup, background jobs)
                if num is not None and signal.getsignal(num) is not signal.SIG_IGN:
                    handlers[num] = signal.signal(num, _on_signal)
            if sys.unraisablehook is not _quiet_unraisable:
                sys.unraisablehook = _quiet_unraisable
        try:
            with _LogLines():
                return super().main(*args, **kwargs)
        finally:
            if _state["signal"] is not None:
                import gc

                gc.collect()  # half-closed plugins go now, under the quiet hook
            for num, old in handlers.items():
                signal.signal(num, old)

    def invoke(self, ctx):
        import warnings

        # the filters stay as they are; log records go through _LogLines (in main)
        with warnings.catch_warnings(record=True) as caught:
            try:
                result = super().invoke(ctx)
            except KeyboardInterrupt as exc:
                import signal

                signum = getattr(exc, "signum", signal.SIGINT)
                io = sys.modules.get("nlm.io")
                if io is not None:
                    io.remove_partial_files()
                _state["signal"] = signum
                click.echo(
                    f"Error: interrupted by {signal.Signals(signum).name}; "
                    "no partial output was left",
                    err=True,
                )
                ctx.exit(128 + signum)
            except MemoryError:
                raise click.ClickException(
                    "not enough memory (try a smaller image or --patch-distance)"
                ) from None
            except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except OSError as exc:
                # the system refused (a full disk, a vanished file, permissions): not a bug of nlm
                if exc.errno is None or not exc.strerror or os.environ.get("NLM_DEBUG"):
                    _unexpected(exc)
                name = f"{exc.filename}: " if exc.filename else ""
                raise click.ClickException(f"{name}{exc.strerror}") from None
            except Exception as exc:
                _unexpected(exc)
        # warnings are shown after a successful run only, never before an error
        if not ctx.meta.get("nlm.quiet"):
            seen = set()
            for w in caught:
                text = f"warning: {' '.join(str(w.message).split())}"
                if text not in seen:
                    seen.add(text)
                    click.echo(text, err=True)
        return result


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nlm")
def main():
    """Non-local means denoising from the command line.

    \b
    Start with:
      nlm denoise samples/camera_speckle04.png camera_denoised.png
    """


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
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


def _check_input_file(path, hint):
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


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        try:
            return Path(a).resolve() == Path(b).resolve()
        except OSError:
            return False


def _check_output_file(path, inputs, overwrite, hint):
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
        if any(_same_file(p, i) for i in inputs):
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
            files.append(_check_input_file(p, "PATHS"))
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


def _batch_jobs(paths, output_dir, suffix, ext, overwrite):
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
                what = "is the input file" if _same_file(src, dst) else "already exists"
                raise click.BadParameter(
                    f"{_short(dst)}: {what}; pass --overwrite to replace it (or use --suffix)",
                    param_hint=hint,
                )
    else:
        for src, dst in jobs:
            _stat(dst, hint)  # a name too long is refused before anything is done
    return jobs


def _read(path, *, volume, max_pixels=None):
    """Read an image for a command; data problems become ClickException (exit 1)."""
    from nlm.io import ImageIOError, read_image

    try:
        image = read_image(path, max_pixels=max_pixels)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    if volume is not None:
        if image.stack and not volume:
            raise click.ClickException(
                f"{path}: holds a stack of {image.data.shape[0]} images "
                f"({image.describe()}); pass --volume to denoise it as one 3-D volume"
            )
        if volume and not image.stack:
            raise click.ClickException(
                f"{path}: --volume given, but it holds a single 2-D image ({image.describe()})"
            )
    return image


def _write(path, data, image, overwrite):
    from nlm.io import ImageIOError, write_image

    try:
        write_image(path, data, image.mode, stack=image.stack, overwrite=overwrite)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None


def _check_format(path, image):
    """Fail before computing when the output format cannot hold the result."""
    from nlm.io import ImageIOError, check_writable

    try:
        check_writable(path, image.data, image.mode, stack=image.stack)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None


def _reattach_alpha(result, alpha, mode):
    import numpy as np

    if alpha is None:
        return result
    if mode == "LA":
        return np.stack([result, alpha], axis=-1)
    return np.concatenate([result, alpha[..., None]], axis=-1)


def _check_patch_fits(src, params, image):
    """The library filters images smaller than the patch (clipped patch radius);
    the command line keeps refusing them, as its README section promises."""
    import nlm

    patch = params["patch_size"] or (3 if params["method"] == "bayes" else nlm.default_patch("gaussian")[0])
    spatial = tuple(image.spatial_shape)
    sides = patch if isinstance(patch, tuple) else (patch,) * len(spatial)
    if len(sides) == len(spatial) and any(p > n for p, n in zip(sides, spatial)):
        raise click.ClickException(f"{src}: patch_size={patch} is larger than the image (spatial shape {spatial})")
    return patch


def _denoise_file(src, dst, params, *, volume, overwrite, max_pixels=None):
    """Denoise one file into another; return a dict describing what was done."""
    try:
        return _denoise_one(src, dst, params, volume=volume, overwrite=overwrite, max_pixels=max_pixels)
    except MemoryError:
        raise click.ClickException(f"{src}: not enough memory to denoise it; nothing was written") from None


def _denoise_one(src, dst, params, *, volume, overwrite, max_pixels):
    import numpy as np

    import nlm
    from nlm.io import ImageIOError, from_float, to_float

    timings = {}
    t0 = time.perf_counter()
    image = _read(src, volume=volume, max_pixels=max_pixels)
    _check_format(dst, image)
    colour, alpha = image.split_alpha()
    channel_axis = -1 if colour.ndim > len(image.spatial_shape) else None
    dtype = colour.dtype
    # Memory (README, "Large images"): the float image goes into the first
    # C/(C+1) of a buffer whose last plane stays untouched (no memory) until
    # the filter, which is lent the whole buffer as its accumulators once it
    # has copied the image into its padded input; the decoded pixels are
    # freed as soon as they are converted.
    planes = colour.shape[-1] if channel_axis is not None else 1
    buffer = np.empty(colour.size + colour.size // planes, to_float(colour[:0]).dtype.newbyteorder("="))
    work = to_float(colour, out=buffer[: colour.size].reshape(colour.shape))
    alpha = None if alpha is None else alpha.copy()
    del colour
    image = image.without_pixels()
    if dtype.kind == "f" and not _all_finite(work):
        raise click.ClickException(f"{src}: image holds NaN or infinite values")
    _check_patch_fits(src, params, image)
    timings["read"] = time.perf_counter() - t0

    sigma, h = params["sigma"], params["h"]
    sigma_source, h_source = "given", "given"
    kwargs = dict(
        patch_size=params["patch_size"],
        patch_distance=params["patch_distance"],
        channel_axis=channel_axis,
        preserve_range=True,
    )
    t1 = time.perf_counter()
    model, model_source = None, None
    try:
        model, model_source = _noise_model(work, params, channel_axis)
    except (ValueError, TypeError) as exc:
        given = _given_noise_option(params)
        if given is not None:  # a model from the options that cannot exist (a variance that overflows)
            raise click.BadParameter(str(exc), param_hint=given) from None
        raise click.ClickException(f"{src}: cannot estimate the noise: {exc}") from None
    if params["method"] == "bayes":
        sigma_source, h_source = "not used", "not used by NL-Bayes"
        if model.name == "gaussian":
            sigma, sigma_source = model.sigma, model_source
        kwargs = dict(
            noise=model,
            patch_size=params["patch_size"],
            search_radius=params["patch_distance"],
            channel_axis=channel_axis,
            preserve_range=True,
        )
    elif model is not None and model.name != "gaussian":
        sigma_source = f"not used by the {model.name} model"
        if h is None:
            h_source = f"automatic, set by the {model.name} filter"
        # the speckle mode keeps its own blind parameters (transform domain)
        kwargs.update(h=h, noise="speckle" if model.name == "speckle" else model)
    else:
        try:
            if model is not None:
                sigma, sigma_source = model.sigma, model_source
            if sigma is None:
                sigma = float(nlm.estimate_sigma(work, channel_axis=channel_axis, average_sigmas=True))
                sigma_source = "estimated"
            if h is None:
                h = float(nlm.default_h(sigma))
                h_source = "automatic, from sigma"
                # no noise detected (sigma 0 or round-off): the smallest h whose
                # 1/h^2 the float type can hold leaves the image as it is
                h_min = float(np.finfo(work.dtype).eps) * max(1.0, abs(float(work.min())), abs(float(work.max())))
                if h < h_min:
                    h = h_min
                    h_source = "automatic; no noise detected"
        except (ValueError, TypeError) as exc:
            raise click.ClickException(f"{src}: cannot estimate the noise: {exc}") from None
        kwargs.update(h=h, sigma=sigma)
    timings["estimate"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    try:
        if params["method"] == "bayes":
            result = nlm.denoise_nl_bayes(work, **kwargs)
        elif "noise" in kwargs:  # a transformed model: the filter's input is not `work`
            result = nlm.denoise_nl_means(work, **kwargs)
        else:
            from nlm.ops._nlm_kernels import scratch

            with scratch(buffer):  # `work` may be overwritten: the result can be a view of `buffer`
                result = nlm.denoise_nl_means(work, **kwargs)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    except ImportError as exc:
        raise click.ClickException(f"{src}: this filter mode is not available: {exc}") from None
    except MemoryError:
        raise click.ClickException(f"{src}: not enough memory to denoise it") from None
    timings["filter"] = time.perf_counter() - t2
    if not _all_finite(result):
        raise click.ClickException(
            f"{src}: the filter produced NaN or infinite values with h {_num(h)} and sigma "
            f"{_num(sigma)} in {work.dtype}; nothing was written"
        )

    t3 = time.perf_counter()
    try:
        out = from_float(result, dtype)  # in bands: no second float image
    except ImageIOError as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    del result, work, buffer
    out = _reattach_alpha(out, alpha, image.mode)
    _write(dst, out, image, overwrite)
    timings["write"] = time.perf_counter() - t3
    return _record(src, dst, image, (sigma, sigma_source), (h, h_source), timings, t0, model=model,
                   model_source=model_source)


def _all_finite(a, block=1 << 22):
    """``np.isfinite(a).all()`` in slabs of the first axis (no image-sized mask)."""
    import numpy as np

    step = max(1, block // max(1, a[:1].size))
    return all(np.isfinite(a[i : i + step]).all() for i in range(0, max(1, a.shape[0]), step))


def _record(src, dst, image, sigma, h, timings, t0, **extra):
    """What one denoised file reports: ``sigma`` and ``h`` are (value, source) pairs."""
    return dict(
        src=src,
        dst=dst,
        image=image,
        sigma=sigma[0],
        sigma_source=sigma[1],
        h=h[0],
        h_source=h[1],
        timings=timings,
        total=time.perf_counter() - t0,
        **extra,
    )


def _noise_model(work, params, channel_axis):
    """The noise model of one image, in its stored units, and where it came from.

    ``(None, None)`` for the plain Gaussian NLM path (it estimates sigma
    itself, as it always has).
    """
    from nlm.noise import Gamma, Gaussian, estimate_noise

    noise, method = params["noise"], params["method"]
    if params["looks"] is not None:
        return Gamma(params["looks"]), "given"
    if noise == "gaussian" and method == "means":
        return None, None
    if params["sigma"] is not None and noise in ("gaussian", "auto"):
        return Gaussian(params["sigma"]), "given"
    return estimate_noise(work, noise, channel_axis=channel_axis), "estimated"


def _given_noise_option(params):
    """The option a given noise model comes from (``'--looks'``, ``'--sigma'``), or None when it is estimated."""
    if params["looks"] is not None:
        return "'--looks'"
    if params["sigma"] is not None and params["noise"] in ("gaussian", "auto") and not (
        params["noise"] == "gaussian" and params["method"] == "means"
    ):
        return "'--sigma'"
    return None


def _describe_model(model):
    if model is None:
        return "gaussian"
    if model.clip:  # observations clipped at the data's bounds (NL-Bayes accounts for it)
        lo, hi = (("none" if abs(b) == float("inf") else _num(b, 6)) for b in model.bounds)
        return _describe_model_params(model) + f", clipped to [{lo}, {hi}]"
    return _describe_model_params(model)


def _describe_model_params(model):
    if model.name == "gaussian":
        return f"gaussian, sigma {_num(model.sigma, 4)}"
    if model.name == "poisson":
        return f"poisson-gaussian, gain {_num(model.gain, 4)}, sigma {_num(model.sigma, 4)}"
    if model.name == "speckle":
        return f"speckle, variance {_num(model.var, 4)}"
    return f"gamma (SAR), L {_num(model.looks, 4)} looks"


def _needs_tiles(src, dst, scale):
    """Whether one file goes tile by tile: zarr in or out, a cluster, or too big for the budget."""
    from nlm.io import tiled as bigio

    if bigio.is_zarr_path(src) or bigio.is_zarr_path(dst) or scale["cluster"]:
        return True
    if Path(src).suffix.lower() not in (".tif", ".tiff"):
        return False
    from nlm.io import ImageIOError

    try:
        shape, dtype = bigio.header_shape(src)
    except ImageIOError as exc:  # a header that the data do not back (a truncated file)
        raise click.ClickException(str(exc)) from None
    except Exception:  # noqa: BLE001 - unreadable: let the normal reader report it
        return False
    return bigio.in_memory_bytes(shape, dtype) > scale["memory_limit"]


def _denoise_tiled(src, dst, params, *, volume, overwrite, scale, quiet):
    """Denoise one image tile by tile (dask): bounded memory, or on a cluster."""
    import numpy as np

    import nlm
    from nlm.io import tiled as bigio
    from nlm.io import ImageIOError, from_float, to_float
    from nlm.tiling import sample_regions

    timings = {}
    t0 = time.perf_counter()
    tile = scale["tile_size"]
    if Path(dst).suffix.lower() not in (".tif", ".tiff", ".zarr"):
        raise click.ClickException(
            f"{src}: is processed tile by tile (larger than --memory-limit, a zarr store, or on a "
            f"cluster), which writes .tif (tiled BigTIFF) or .zarr, not {Path(dst).suffix or 'no extension'}"
        )
    if params.get("method", "means") != "means":
        raise click.ClickException(
            f"{src}: --method {params['method']} does not run tile by tile from the command line (it is not "
            "exactly local); raise --memory-limit to denoise it in memory, or use denoise_nl_bayes on a dask "
            "array from Python"
        )
    if params["noise"] != "gaussian":
        raise click.ClickException(
            f"{src}: --noise {params['noise']} cannot run tile by tile (its debiasing needs the whole result); "
            "raise --memory-limit to denoise it in memory"
        )
    try:
        image = bigio.open_lazy(src, tile=tile, volume=volume)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    if image.stack and not volume:
        raise click.ClickException(
            f"{src}: holds a stack of {image.data.shape[0]} images ({image.describe()}); "
            "pass --volume to denoise it as one 3-D volume"
        )
    if volume and not image.stack:
        raise click.ClickException(f"{src}: --volume given, but it holds a single 2-D image ({image.describe()})")
    colour, alpha = image.split_alpha()
    nspatial = len(image.spatial_shape)
    channel_axis = -1 if colour.ndim > nspatial else None
    try:
        work_dtype = to_float(np.zeros(1, colour.dtype)).dtype
    except ImageIOError as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    work = colour.map_blocks(to_float, dtype=work_dtype, meta=np.empty((0,) * colour.ndim, work_dtype))
    patch = _check_patch_fits(src, params, image)
    timings["open"] = time.perf_counter() - t0

    sigma, h = params["sigma"], params["h"]
    sigma_source, h_source = "given", "given"
    t1 = time.perf_counter()
    try:
        if sigma is None:
            sigma = float(nlm.estimate_sigma(work, channel_axis=channel_axis, average_sigmas=True))
            sigma_source = "estimated from a sample of tiles"
        if h is None:
            h = float(nlm.default_h(sigma))
            h_source = "automatic, from sigma"
            regions = sample_regions(work, spatial_axes=range(nspatial))
            peak = max(max(abs(float(r.min())), abs(float(r.max()))) for r in regions)
            h_min = float(np.finfo(work_dtype).eps) * max(1.0, peak)
            if h < h_min:
                h, h_source = h_min, "automatic; no noise detected"
    except ImageIOError as exc:  # a block of the input cannot be read
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: cannot estimate the noise: {exc}") from None
    timings["estimate"] = time.perf_counter() - t1

    # working blocks of whole rows only while the blocks in flight (one per
    # core) stay well inside the memory limit (in_memory_bytes: the filter's
    # copies of a pixel; twice that for the margins and the chunks around it)
    import numba

    from nlm import tiling

    per_pixel = bigio.in_memory_bytes((1,), work_dtype) * 2 * numba.config.NUMBA_NUM_THREADS
    work_pixels = tiling.WORK_PIXELS
    tiling.WORK_PIXELS = min(work_pixels, max(1 << 16, scale["memory_limit"] // per_pixel))
    try:
        result = nlm.denoise_nl_means(
            work,
            patch,
            params["patch_distance"],
            h=h,
            sigma=sigma,
            channel_axis=channel_axis,
            preserve_range=True,
            num_threads=scale["threads_per_tile"],
        )
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    finally:
        tiling.WORK_PIXELS = work_pixels
    out_dtype = colour.dtype
    out = result.map_blocks(from_float, out_dtype, dtype=out_dtype, meta=np.empty((0,) * result.ndim, out_dtype))
    if alpha is not None:
        import dask.array as da

        a = alpha.rechunk(out.chunks[: alpha.ndim])
        out = da.stack([out, a], axis=-1) if image.mode == "LA" else da.concatenate(
            [out, a[..., None].rechunk(out.chunks[:-1] + ((1,),))], axis=-1
        )
    t2 = time.perf_counter()
    spatial = image.spatial_shape
    n_tiles = int(np.prod([-(-n // tile) for n in spatial[-2:]])) * (spatial[0] if image.stack else 1)
    bar = click.progressbar(length=n_tiles, label=f"{Path(src).name}: {n_tiles} tiles", file=sys.stderr,
                            hidden=quiet)
    try:
        with bar:
            bigio.write_tiled(dst, out, image.mode, stack=image.stack, tile=tile, overwrite=overwrite,
                              progress=bar.update)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}; nothing was written") from None
    except MemoryError:
        raise click.ClickException(f"{src}: not enough memory (try a smaller --tile-size)") from None
    timings["filter"] = time.perf_counter() - t2
    return _record(src, dst, image, (sigma, sigma_source), (h, h_source), timings, t0, tiles=n_tiles,
                   model=None, model_source=None)


def _denoise_any(src, dst, params, *, volume, overwrite, scale, quiet):
    if _needs_tiles(src, dst, scale):
        return _denoise_tiled(src, dst, params, volume=volume, overwrite=overwrite, scale=scale, quiet=quiet)
    return _denoise_file(src, dst, params, volume=volume, overwrite=overwrite, max_pixels=scale["max_pixels"])


class _Cluster:
    """Context: a dask.distributed client for --scheduler / --workers, or nothing.

    While it is open, :class:`nlm._cli_cluster.Guard` watches the scheduler:
    a scheduler that closes the connection, keeps silent for ``timeout``
    seconds or has no worker for that long, and workers that keep dying on a
    task end the run with one ``Error:`` line naming what was lost (exit 1);
    the output being written is removed by the writer as for any error.
    distributed's and asyncio's log records are kept off stderr (one line
    each with --verbose).  Closing is bounded in time, and a ``--workers``
    cluster's processes are stopped.
    """

    def __init__(self, address, workers, memory_limit, timeout=opts.CLUSTER_TIMEOUT, verbose=False):
        self.address, self.workers, self.memory_limit = address, workers, memory_limit
        self.timeout, self.verbose = float(timeout), verbose
        self.client = self.cluster = self.guard = self.logs = None
        self.where = address if address is not None else "the local cluster"

    def __enter__(self):
        if self.address is None and self.workers is None:
            return None
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise click.ClickException(
                "--scheduler and --workers need dask.distributed: pip install 'nlm[scale]'"
            ) from None
        import logging

        from nlm import _cli_cluster

        self.logs = _cli_cluster.QuietLogs(echo=(lambda line: click.echo(line, err=True)) if self.verbose else None)
        self.logs.__enter__()
        try:
            if self.address is not None:
                self.client = Client(self.address, timeout=self.timeout, set_as_default=True)
            else:
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    memory_limit=max(1 << 28, self.memory_limit // self.workers),
                    silence_logs=logging.WARNING if self.verbose else logging.CRITICAL,
                    # Ctrl-C reaches the whole process group: the workers leave it to nlm,
                    # which stops them, instead of each printing a KeyboardInterrupt traceback
                    preload=["nlm._cluster_worker"],
                )
                self.client = Client(self.cluster, timeout=self.timeout)
        except (OSError, TimeoutError, ValueError, RuntimeError) as exc:  # RuntimeError: a worker did not start
            self.__exit__(None, None, None)
            what = f"connect to {self.where}" if self.address is not None else f"start {self.where}"
            raise click.ClickException(f"cannot {what}: {' '.join(str(exc).split())[:200]}") from None
        except BaseException:
            self.__exit__(None, None, None)
            raise
        for owner in (self.client, self.cluster):
            if owner is not None:
                _cli_cluster.quiet_loop(owner.loop)
        # a question to the scheduler every second at most (a fraction of short timeouts)
        poll = min(1.0, max(0.1, self.timeout / 4))
        self.guard = _cli_cluster.Guard(self.client, self.where, self.timeout, poll=poll).start()
        return self

    def submit(self, *args, **kwargs):
        return self.client.submit(*args, **kwargs)

    def failure(self, exc):
        """The message of a run that failed because the cluster was lost, or None."""
        if self.client is None or isinstance(exc, (KeyboardInterrupt, click.exceptions.Exit, click.Abort,
                                                   click.UsageError, _BatchLost)):
            return None
        from nlm import _cli_cluster

        return _cli_cluster.failure(exc, self.guard, self.where)

    def check(self, exc):
        """Raise the cluster's ClickException when ``exc`` comes from a lost cluster."""
        message = self.failure(exc)
        if message is not None:
            raise click.ClickException(f"{message}; nothing was written") from None

    def __exit__(self, exc_type, exc, tb):
        message = self.failure(exc) if exc is not None else None
        try:
            if self.guard is not None:
                self.guard.stop()
            self._close()
        finally:
            if self.logs is not None:
                self.logs.__exit__(None, None, None)
                self.logs = None
        if message is not None:
            raise click.ClickException(f"{message}; nothing was written") from None
        if exc is None and self.guard is not None and self.guard.lost:
            import warnings

            lost = self.guard.lost
            warnings.warn(
                f"{len(lost)} dask worker(s) left during the run ({', '.join(lost)}); "
                "their tasks were run again",
                RuntimeWarning,
                stacklevel=2,
            )
        return False

    def _close(self):
        """Close the client and the local cluster, in bounded time, quietly."""
        import gc

        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        limit = min(self.timeout, 10.0)
        for closing in (client, cluster):
            if closing is None:
                continue
            try:
                closing.close(timeout=limit)
            except BaseException:  # noqa: BLE001 - closing a lost cluster may fail; nothing to do about it
                pass
        gc.collect()  # tasks of an interrupted gather are reported now, under the quiet handlers


def _remove_leftovers(outputs):
    """Remove the temporary files that dead workers left next to ``outputs``."""
    from nlm.io.image import leftover_partial_files

    for output in outputs:
        for leftover in leftover_partial_files(output):
            try:
                leftover.unlink()
            except OSError:
                pass


class _BatchLost(click.ClickException):
    """A batch stopped because its cluster was lost; its message says what was written."""


def _num(value, digits=6):
    return "-" if value is None else f"{value:.{digits}g}"


def _report(rec, params, verbose):
    lines = [
        f"{rec['src']} ({rec['image'].describe()}) -> {rec['dst']}",
        f"  sigma           {_num(rec['sigma'])} ({rec['sigma_source']})",
        f"  h               {_num(rec['h'])} ({rec['h_source']})",
        f"  method          {'non-local Bayes' if params['method'] == 'bayes' else 'non-local means'}",
        f"  patch size      {params['patch_size'] or 'automatic'}",
        f"  patch distance  {params['patch_distance'] or 'automatic'}",
        f"  noise model     {_describe_model(rec['model'])}"
        + (f" ({rec['model_source']})" if rec["model_source"] else ""),
        f"  time            {rec['timings']['filter']:.2f} s filter, {rec['total']:.2f} s in all",
    ]
    if rec["image"].has_alpha:
        lines.insert(1, "  alpha           passed through unchanged")
    if rec.get("tiles"):
        lines.insert(-1, f"  tiles           {rec['tiles']} (processed tile by tile)")
    if verbose:
        steps = ", ".join(f"{k} {v:.3f} s" for k, v in rec["timings"].items())
        lines.append(f"  steps           {steps}")
    return lines


def _notes(rec_or_image, src):
    image = rec_or_image["image"] if isinstance(rec_or_image, dict) else rec_or_image
    return [f"note: {src}: {n}" for n in image.notes]


# --------------------------------------------------------------------------- #
# video
# --------------------------------------------------------------------------- #
def _is_video_job(src, dst, time_axis):
    from nlm.io.video import is_video_path

    return time_axis is not None or is_video_path(src) or Path(dst).suffix.lower() == ".mkv"


def _video_geometry(patch_size, patch_distance, temporal_radius):
    """CLI values -> (patch_size, patch_distance, temporal_radius) for denoise_frames."""
    patch = 7 if patch_size is None else patch_size
    dist = 10 if patch_distance is None else patch_distance
    if isinstance(patch, tuple) and len(patch) not in (2, 3):
        raise click.BadParameter(
            f"a video takes 1, 2 (y,x) or 3 (t,y,x) values, got {len(patch)}", param_hint="'--patch-size'"
        )
    if isinstance(dist, tuple):
        if len(dist) not in (2, 3):
            raise click.BadParameter(
                f"a video takes 1, 2 (y,x) or 3 (t,y,x) values, got {len(dist)}", param_hint="'--patch-distance'"
            )
        if len(dist) == 3:
            if temporal_radius is not None and temporal_radius != dist[0]:
                raise click.UsageError(
                    f"--temporal-radius {temporal_radius} contradicts --patch-distance "
                    f"{','.join(map(str, dist))} (its first value is the temporal radius); give one of them"
                )
            temporal_radius, dist = dist[0], dist[1:]
    return patch, dist, temporal_radius


def _truncated(exc):
    """The error for a truncated or corrupt clip (nlm.io.video.TruncatedVideoError)."""
    return click.ClickException(f"{exc}; nothing was written (--allow-truncated denoises what decodes)")


def _denoise_video(src_arg, dst_arg, params, temporal_radius, time_axis, overwrite, quiet, verbose):
    """Stream a clip (or a TIFF stack along --time-axis) through the temporal filter."""
    import itertools

    import numpy as np

    import nlm
    from nlm.io import ImageIOError, from_float
    from nlm.denoisers.video import MAX_TEMPORAL_RADIUS, default_temporal_radius, denoise_frames, frame_sigma
    from nlm.io.video import FrameWriter, TruncatedVideoError, check_frames_output, output_kind

    src, dst = Path(src_arg), Path(dst_arg)
    if not src.exists():
        raise click.BadParameter(f"{src_arg}: no such file", param_hint="INPUT")
    kind = output_kind(dst)
    if kind is None:
        raise click.BadParameter(
            f"{dst_arg}: write a video as .mkv (FFV1, lossless), a .tif stack, or a directory of PNG frames",
            param_hint="OUTPUT",
        )
    if kind == "frames":  # never a directory that holds anything but nlm's own frames
        reason = check_frames_output(dst, overwrite, inputs=[src])
        if reason:
            raise click.BadParameter(reason, param_hint="OUTPUT")
    if dst.exists() and _same_file(src, dst):
        raise click.BadParameter(f"{dst_arg}: is the input; write the result elsewhere", param_hint="OUTPUT")
    if kind != "frames" and dst.is_dir():
        raise click.BadParameter(f"{dst_arg}: is a directory; give a {kind} file name", param_hint="OUTPUT")
    if dst.exists() and not overwrite:
        raise click.BadParameter(f"{dst_arg}: already exists; pass --overwrite to replace it", param_hint="OUTPUT")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"{dst_arg}: directory {parent} does not exist", param_hint="OUTPUT")
    if params["noise"] != "gaussian" or params["method"] != "means":
        raise click.UsageError("videos are denoised with --method means --noise gaussian only")
    patch, dist, radius = _video_geometry(params["patch_size"], params["patch_distance"], temporal_radius)

    from nlm.io.video import open_frames

    t0 = time.perf_counter()
    try:
        info, frames = open_frames(src, time_axis, allow_truncated=params["allow_truncated"])
        first = next(frames, None)
    except TruncatedVideoError as exc:
        raise _truncated(exc) from None
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    if first is None:
        raise click.ClickException(f"{src}: holds no frames")
    if radius is not None and radius > min(MAX_TEMPORAL_RADIUS, (info.frames or np.inf) - 1):
        frames.close()  # bounded by the clip (by MAX_TEMPORAL_RADIUS when its length is not declared)
        n = info.frames
        raise click.BadParameter(
            f"{radius} is longer than the clip: {src} has {n} frame{'s' if n > 1 else ''}, so at most {n - 1}"
            if n and n - 1 < MAX_TEMPORAL_RADIUS
            else f"{radius} is more than {MAX_TEMPORAL_RADIUS} (a window of {2 * MAX_TEMPORAL_RADIUS + 1} frames)",
            param_hint="'--temporal-radius'",
        )
    dtype = first.dtype
    work = first.astype(np.float64 if dtype.itemsize > 4 else np.float32)
    sigma, h = params["sigma"], params["h"]
    sigma_source = "given" if sigma is not None else "estimated on the first frame"
    if sigma is None:
        sigma = frame_sigma(work)
    h_source = "given" if h is not None else "automatic, from sigma"
    if h is None:
        h = max(float(nlm.default_h(sigma)), float(np.finfo(work.dtype).eps) * max(1.0, float(np.abs(work).max())))
    data_range = float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0
    radius_source = "given" if radius is not None else "from the noise level"
    if radius is None:
        radius = default_temporal_radius(sigma, data_range)
    try:
        writer = FrameWriter(dst, info, overwrite=overwrite)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    count, t1 = 0, time.perf_counter()
    total = info.frames if info.frames else None
    bar = click.progressbar(
        length=total or 0,
        label=f"Denoising {src.name}",
        file=sys.stderr,
        hidden=quiet or total is None,
        item_show_func=lambda _: f"{count} frames, {count / max(time.perf_counter() - t1, 1e-9):.2f} fps",
    )
    try:
        with bar:
            stream = denoise_frames(
                itertools.chain([first], frames), patch, dist, h, sigma, temporal_radius=radius,
                dtype=work.dtype,
            )
            for out in stream:
                writer.write(from_float(out, dtype))
                count += 1
                bar.update(1, count)
                if total is None and not quiet:
                    click.echo(f"\r{count} frames, {count / (time.perf_counter() - t1):.2f} fps", nl=False, err=True)
        if total is None and not quiet:
            click.echo(err=True)
        writer.commit()
    except TruncatedVideoError as exc:
        writer.abort()
        raise _truncated(exc) from None
    except (ImageIOError, ValueError, TypeError) as exc:
        writer.abort()
        text = str(exc)
        raise click.ClickException(text if text.startswith((f"{src}:", f"{dst}:")) else f"{src}: {text}") from None
    except MemoryError:
        writer.abort()
        raise click.ClickException(f"{src}: not enough memory") from None
    except BaseException:
        writer.abort()
        raise
    elapsed = time.perf_counter() - t1
    if not quiet:
        lines = [
            f"{src} ({info.describe()}) -> {dst}",
            f"  frames          {count} at {float(info.fps):.4g} fps",
            f"  sigma           {_num(sigma)} ({sigma_source})",
            f"  h               {_num(h)} ({h_source})",
            f"  temporal radius {radius} ({2 * radius + 1} frames, {radius_source})",
            f"  patch size      {patch}",
            f"  patch distance  {dist}",
            f"  time            {elapsed:.2f} s filter ({count / max(elapsed, 1e-9):.2f} frames/s), "
            f"{time.perf_counter() - t0:.2f} s in all",
        ]
        click.echo("\n".join(lines))


# --------------------------------------------------------------------------- #
# nlm denoise
# --------------------------------------------------------------------------- #
@main.command(cls=opts.SectionedCommand, short_help="Denoise images (non-local means or non-local Bayes).")
@click.argument("paths", nargs=-1, metavar="INPUT OUTPUT | INPUT... -o OUTDIR")
@opts.filter_options
@opts.output_dir_opt
@click.option(
    "--suffix",
    default="",
    metavar="TEXT",
    cls=opts.SectionedOption,
    section="Input/output",
    help="Batch mode: add TEXT to each output name (a.png -> a_dn.png with --suffix _dn).",
)
@click.option(
    "--ext",
    type=click.Choice(["png", "tif", "tiff"]),
    default=None,
    cls=opts.SectionedOption,
    section="Input/output",
    help="Batch mode: output format. [default: the input's when it is PNG/TIFF, else png]",
)
@opts.volume_opt
@opts.video_options
@opts.overwrite_opt
@opts.max_pixels_opt
@opts.scale_options
@opts.verbosity_options
def denoise(paths, method, patch_size, patch_distance, h, sigma, noise, looks, output_dir, suffix, ext,
            volume, temporal_radius, time_axis, allow_truncated, overwrite, max_pixels, memory_limit, tile_size,
            scheduler, workers, cluster_timeout, quiet, verbose):
    """Denoise INPUT into OUTPUT, or many inputs into OUTDIR.

    \b
      nlm denoise noisy.png clean.png
      nlm denoise a.png b.tif -o out/
      nlm denoise photos/ -o out/ --suffix _dn
      nlm denoise 'scans/*.tif' -o out/ --volume
      nlm denoise clip.mp4 clean.mkv --temporal-radius 2
      nlm denoise stack.tif clean.tif --time-axis 0
      nlm denoise noisy.png clean.png --method bayes
      nlm denoise sar.tif clean.tif --method bayes --noise gamma --looks 4

    Videos (and TIFF stacks with --time-axis) are streamed frame by frame
    with a temporal window and written losslessly: FFV1 in .mkv, a .tif
    stack, or PNG frames into a directory.

    --method means (default) is non-local means; --method bayes is
    non-local Bayes (slower, best quality, 2-D images).  Both take every
    --noise model; what is estimated is printed.  The filter works on the
    values as stored (a uint8 image as 0..255), so --sigma and --h are in
    those units.  Without --sigma the noise level is estimated; without --h it
    is set from sigma.  The output has the input's
    data type: integers are rounded back (and clipped to the type's range),
    floats are kept.  Alpha is passed through unchanged.  Outputs are written
    to a temporary file and renamed into place; existing files (and the input)
    are only replaced with --overwrite.

    An image larger than --memory-limit (TIFF), a zarr / OME-Zarr input or
    output, and any run with --scheduler or --workers go tile by tile: read,
    filtered and written (tiled BigTIFF or OME-Zarr) one band of tiles at a
    time, with the same result.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    click.get_current_context().meta.update({"nlm.quiet": quiet, "nlm.verbose": verbose})
    _state["verbose"] = verbose  # for _LogLines, which may hear from threads without a click context
    if noise is None:
        noise = "gamma" if looks is not None else "auto" if method == "bayes" else "gaussian"
    if looks is not None and noise not in ("gamma", "auto"):
        raise click.BadParameter(f"is for SAR data (--noise gamma), not --noise {noise}", param_hint="'--looks'")
    if looks is not None:
        noise = "gamma"
    if sigma is not None and noise not in ("gaussian", "auto"):
        raise click.BadParameter(f"is not used with --noise {noise}", param_hint="'--sigma'")
    if method == "bayes" and h is not None:
        raise click.BadParameter("is not used with --method bayes", param_hint="'--h'")
    if method == "bayes":
        params = dict(patch_size=patch_size, patch_distance=patch_distance, h=None, sigma=sigma, noise=noise,
                      method=method, looks=looks)
    else:
        from nlm.denoisers.means import default_patch

        # auto: the library picks the estimated model's defaults
        default_size, default_distance = (None, None) if noise == "auto" else default_patch(noise)
        params = dict(
            patch_size=default_size if patch_size is None else patch_size,
            patch_distance=default_distance if patch_distance is None else patch_distance,
            h=h,
            sigma=sigma,
            noise=noise,
            method=method,
            looks=looks,
        )
    if scheduler is not None and workers is not None:
        raise click.UsageError("--scheduler and --workers exclude each other")
    given = click.get_current_context().get_parameter_source("cluster_timeout")
    if scheduler is None and workers is None and given is click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--cluster-timeout is for runs on a cluster (--scheduler or --workers)")
    if memory_limit is None:
        from nlm.io.tiled import default_memory_limit

        memory_limit = default_memory_limit()
    scale = dict(
        memory_limit=memory_limit,
        tile_size=tile_size,
        cluster=scheduler is not None or workers is not None,
        threads_per_tile=None,
        max_pixels=max_pixels,
    )
    video = dict(temporal_radius=temporal_radius, time_axis=time_axis, patch_size=patch_size,
                 patch_distance=patch_distance, allow_truncated=allow_truncated)
    if not quiet and scheduler is None and workers is None:
        _compile_note("bayes" if method == "bayes" else "nlm3d" if volume else "nlm")
    with _Cluster(scheduler, workers, memory_limit, cluster_timeout, verbose) as cluster:
        _denoise_command(paths, params, output_dir, suffix, ext, volume, overwrite, scale, cluster, video, quiet,
                         verbose)


def _compile_note(kind):
    """One stderr line when the filter's kernels are not in Numba's cache yet (they compile for seconds)."""
    from nlm.ops._jit_cache import compile_pending

    if compile_pending(kind):
        click.echo("compiling kernels (first run only)", err=True)


def _denoise_command(paths, params, output_dir, suffix, ext, volume, overwrite, scale, cluster, video, quiet,
                     verbose):
    temporal_radius, time_axis = video["temporal_radius"], video["time_axis"]
    patch_size, patch_distance = video["patch_size"], video["patch_distance"]
    if output_dir is None:
        if suffix or ext:
            raise click.UsageError("--suffix and --ext are for batch mode (-o OUTDIR)")
        if len(paths) != 2:
            raise click.UsageError(
                f"expected INPUT OUTPUT, or several inputs with -o OUTDIR; got {len(paths)} path(s)"
            )
        if _is_video_job(paths[0], paths[1], time_axis):
            if volume:
                raise click.UsageError("--volume is for image stacks; a video is streamed frame by frame")
            raw = dict(params, patch_size=patch_size, patch_distance=patch_distance,
                       allow_truncated=video["allow_truncated"])
            _denoise_video(paths[0], paths[1], raw, temporal_radius, time_axis, overwrite, quiet, verbose)
            return
        if temporal_radius is not None:
            raise click.UsageError("--temporal-radius is for videos (and TIFF stacks with --time-axis)")
        if video["allow_truncated"]:
            raise click.UsageError("--allow-truncated is for videos")
        src = _check_input_file(paths[0], "INPUT")
        dst = _check_output_file(paths[1], [src], overwrite, "OUTPUT")
        rec = _denoise_any(src, dst, params, volume=volume, overwrite=overwrite, scale=scale, quiet=quiet)
        if not quiet:
            for note in _notes(rec, src):
                click.echo(note, err=True)
            click.echo("\n".join(_report(rec, params, verbose)))
        return

    if temporal_radius is not None or time_axis is not None or video["allow_truncated"]:
        raise click.UsageError(
            "--temporal-radius, --time-axis and --allow-truncated take one INPUT OUTPUT pair, not -o OUTDIR"
        )
    jobs = _batch_jobs(paths, output_dir, suffix, ext, overwrite)
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{output_dir}: cannot create directory: {exc.strerror or exc}")
    records, errors = [], []
    t0 = time.perf_counter()
    bar = click.progressbar(
        jobs,
        label=f"Denoising {len(jobs)} image(s)",
        file=sys.stderr,
        item_show_func=lambda job: job[0].name if job else "",
        hidden=quiet,
    )
    local = dict(scale, cluster=False)
    with bar:
        if cluster is not None:
            # files that fit the memory budget: one task each on the cluster;
            # larger ones: their tiles on the cluster, driven from here
            big = [job for job in jobs if _needs_tiles(job[0], job[1], local)]
            futures = [
                cluster.submit(_denoise_file, src, dst, params, volume=volume, overwrite=overwrite,
                               max_pixels=scale["max_pixels"], pure=False)
                for src, dst in jobs
                if (src, dst) not in big
            ]

            def lost(exc):
                """A lost cluster stops the batch: one error naming it, and what was written before."""
                message = cluster.failure(exc)
                if message is not None:
                    for future in futures:
                        future.cancel()
                    _remove_leftovers(dst for _, dst in jobs)  # of workers killed while writing
                    failed = f", {len(errors)} had failed" if errors else ""
                    raise _BatchLost(
                        f"{message}; {len(records)} of {len(jobs)} image(s) were written before{failed}, "
                        "the others were not"
                    ) from None

            for src, dst in big:
                try:
                    records.append(_denoise_tiled(src, dst, params, volume=volume, overwrite=overwrite,
                                                  scale=scale, quiet=True))
                except click.ClickException as exc:
                    lost(exc)
                    errors.append(exc.format_message())
                bar.update(1, (src, dst))
            from distributed import as_completed

            for future in as_completed(futures):
                try:
                    records.append(future.result())
                except click.ClickException as exc:
                    lost(exc)
                    errors.append(exc.format_message())
                except Exception as exc:  # noqa: BLE001 - a worker failure: report it, go on
                    lost(exc)
                    errors.append(f"a worker failed: {type(exc).__name__}: {exc}")
                bar.update(1)
        else:
            for src, dst in bar:
                try:
                    records.append(_denoise_any(src, dst, params, volume=volume, overwrite=overwrite,
                                                scale=local, quiet=True))
                except click.ClickException as exc:
                    errors.append(exc.format_message())
    if not quiet:
        for rec in records:
            for note in _notes(rec, rec["src"]):
                click.echo(note, err=True)
            if verbose:
                click.echo("\n".join(_report(rec, params, verbose)))
            else:
                model = f", noise {_describe_model(rec['model'])}" if rec["model"] is not None else ""
                click.echo(
                    f"{rec['src']} -> {rec['dst']}: sigma {_num(rec['sigma'], 4)} ({rec['sigma_source']}), "
                    f"h {_num(rec['h'], 4)} ({rec['h_source']}){model}, {rec['timings']['filter']:.2f} s"
                )
        click.echo(
            f"denoised {len(records)} of {len(jobs)} image(s) into {output_dir} "
            f"in {time.perf_counter() - t0:.2f} s"
        )
    for message in errors:
        click.echo(f"Error: {message}", err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} of {len(jobs)} image(s) failed; no output was written for them")


# --------------------------------------------------------------------------- #
# nlm noise
# --------------------------------------------------------------------------- #
@main.command(cls=opts.SectionedCommand, short_help="Add seeded synthetic noise to an image.")
@click.argument("input_path", metavar="INPUT")
@click.argument("output_path", metavar="OUTPUT")
@click.option(
    "--model",
    type=click.Choice(["speckle", "gaussian", "gamma"]),
    default="speckle",
    show_default=True,
    cls=opts.SectionedOption,
    section="Noise",
    help="speckle: y = x + x*n (scikit-image's); gaussian: y = x + n; n ~ N(0, var). "
    "gamma: y = x*s, s ~ Gamma(L, 1/L) (SAR intensity with L looks).",
)
@click.option(
    "--var",
    type=opts.FiniteFloatRange(min=0, min_open=True),
    default=None,
    cls=opts.SectionedOption,
    section="Noise",
    help="Variance of n, on the [0, 1] intensity scale. [default: 0.01; gamma: 1/looks]",
)
@click.option(
    "--looks",
    type=opts.FiniteFloatRange(min=0, min_open=True),
    default=None,
    cls=opts.SectionedOption,
    section="Noise",
    help="Number of looks L (gamma model only).",
)
@opts.seed_opt
@opts.overwrite_opt
@opts.max_pixels_opt
@opts.verbosity_options
def noise(input_path, output_path, model, var, looks, seed, overwrite, max_pixels, quiet, verbose):
    """Add noise to INPUT and write OUTPUT (to make test images).

    \b
      nlm noise samples/camera.png noisy.png --model speckle --var 0.04 --seed 0

    The noise is added on the [0, 1] scale: unsigned integer images are divided
    by their type's maximum (255, 65535) first and rounded back after; float
    images must already lie in [0, 1].  The result is clipped to [0, 1], as
    scikit-image does.  Alpha is passed through; stacks are noised page by page.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    click.get_current_context().meta.update({"nlm.quiet": quiet, "nlm.verbose": verbose})
    _state["verbose"] = verbose  # for _LogLines, which may hear from threads without a click context
    if looks is not None and model != "gamma":
        raise click.BadParameter("is only used by --model gamma", param_hint="'--looks'")
    if model == "gamma" and looks is not None and var is not None:
        raise click.BadParameter("give --looks or --var for --model gamma, not both", param_hint="'--looks'")
    if seed < 0:
        raise click.BadParameter("must be >= 0", param_hint="'--seed'")
    src = _check_input_file(input_path, "INPUT")
    dst = _check_output_file(output_path, [src], overwrite, "OUTPUT")

    import numpy as np

    from nlm.io import from_float
    from nlm.noise import add_noise

    image = _read(src, volume=None, max_pixels=max_pixels)
    _check_format(dst, image)
    colour, alpha = image.split_alpha()
    if colour.dtype.kind == "i":
        raise click.ClickException(f"{src}: signed integer images are not supported by nlm noise")
    if model == "gamma" and looks is None and var is None:
        raise click.BadParameter("--model gamma needs --looks (or --var)", param_hint="'--looks'")
    try:
        noisy = add_noise(colour, model, var=var, looks=looks, seed=seed)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{src}: {exc}") from None
    if colour.dtype.kind == "u":
        out = from_float(noisy * np.iinfo(colour.dtype).max, colour.dtype)
    else:
        out = from_float(noisy, colour.dtype)
    _write(dst, _reattach_alpha(out, alpha, image.mode), image, overwrite)
    if not quiet:
        for note in _notes(image, src):
            click.echo(note, err=True)
        if model == "gamma":
            amount = f"looks {looks:g}" if looks is not None else f"var {var:g}"
        else:
            amount = f"var {var if var is not None else 0.01:g}"
        click.echo(f"{src} ({image.describe()}) -> {dst}: {model} noise, {amount}, seed {seed}")


# --------------------------------------------------------------------------- #
# nlm psnr
# --------------------------------------------------------------------------- #
@main.command(cls=opts.SectionedCommand, short_help="PSNR and SSIM of an image against a reference.")
@click.argument("reference_path", metavar="REFERENCE")
@click.argument("image_path", metavar="IMAGE")
@click.option(
    "--data-range",
    type=opts.FiniteFloatRange(min=0, min_open=True),
    default=None,
    cls=opts.SectionedOption,
    section="Metrics",
    help="Peak-to-peak range of the values. [default: the type's maximum for "
    "integers (255, 65535); 1 for floats in [0, 1]]",
)
@opts.max_pixels_opt
def psnr(reference_path, image_path, data_range, max_pixels):
    """Print the PSNR (dB) and SSIM of IMAGE against REFERENCE.

    Both must have the same size, channels and data type.  Alpha channels are
    left out of the comparison.  SSIM needs every side to be at least 7.
    """
    ref_p = _check_input_file(reference_path, "REFERENCE")
    img_p = _check_input_file(image_path, "IMAGE")

    from nlm import metrics

    ref = _read(ref_p, volume=None, max_pixels=max_pixels)
    img = _read(img_p, volume=None, max_pixels=max_pixels)
    if ref.mode != img.mode or ref.data.shape != img.data.shape:
        raise click.ClickException(
            f"{img_p} ({img.describe()}) does not match {ref_p} ({ref.describe()})"
        )
    if ref.data.dtype != img.data.dtype:
        raise click.ClickException(
            f"{ref_p} is {ref.data.dtype} but {img_p} is {img.data.dtype}; "
            "compare images of the same data type"
        )
    a, _ = ref.split_alpha()
    b, _ = img.split_alpha()
    channel_axis = -1 if a.ndim > len(ref.spatial_shape) else None
    try:
        value = metrics.psnr(a, b, data_range=data_range)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        similarity = f"{metrics.ssim(a, b, data_range=data_range, channel_axis=channel_axis):.4f}"
    except ValueError as exc:
        similarity = f"n/a ({exc})"
    click.echo(f"PSNR  {value:.2f} dB")
    click.echo(f"SSIM  {similarity}")


# --------------------------------------------------------------------------- #
# nlm bench
# --------------------------------------------------------------------------- #
@main.command(
    context_settings=dict(ignore_unknown_options=True, allow_extra_args=True, help_option_names=[]),
    add_help_option=False,
    short_help="Run the benchmark harness (source checkout only).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args):
    """Run benchmarks/psnr.py with ARGS (all of them, --help included)."""
    root = Path(__file__).resolve().parent
    if not (root / "benchmarks" / "psnr.py").is_file():
        raise click.ClickException(
            "nlm bench needs a source checkout of nlm (benchmarks/psnr.py is not "
            f"next to {Path(__file__).name}); clone the repository and pip install -e ."
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import psnr as harness

    status = harness.main(list(args))
    if status:
        sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    main()
