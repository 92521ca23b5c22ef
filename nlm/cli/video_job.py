"""The video job: a clip (or a TIFF stack along ``--time-axis``) streamed through the temporal filter."""

import sys
import time
from pathlib import Path

import click

from nlm.cli.paths import same_file
from nlm.cli.report import fmt_num


def is_video_job(src, dst, time_axis):
    from nlm.io.budget import is_video_path

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


def _bayes_geometry(patch_size, patch_distance, temporal_radius):
    """CLI values -> (patch_size, search_radius, temporal_radius) for denoise_frames_bayes."""
    if isinstance(patch_size, tuple) and len(patch_size) != 2:
        raise click.BadParameter(
            f"video NL-Bayes takes 1 value or 2 (step 1, step 2): spatial sides, the patches are 2 frames deep; "
            f"got {len(patch_size)}",
            param_hint="'--patch-size'",
        )
    dist = patch_distance
    if isinstance(dist, tuple):
        if len(dist) != 3 or dist[1] != dist[2]:
            raise click.BadParameter(
                "video NL-Bayes takes 1 value (the spatial search radius) or 3 (t,y,x) with y = x",
                param_hint="'--patch-distance'",
            )
        if temporal_radius is not None and temporal_radius != dist[0]:
            raise click.UsageError(
                f"--temporal-radius {temporal_radius} contradicts --patch-distance "
                f"{','.join(map(str, dist))} (its first value is the temporal radius); give one of them"
            )
        temporal_radius, dist = dist[0], dist[1]
    return patch_size, dist, temporal_radius


def _bayes_video(src, dst, info, frames, params, patch, dist, radius, work_dtype, dtype, overwrite, quiet, t0):
    """The video job with --method bayes: :func:`nlm.denoisers.video_bayes.denoise_frames_bayes`, streamed."""
    from nlm.denoisers.video_bayes import denoise_frames_bayes

    used = {}

    def stream():
        return denoise_frames_bayes(frames, noise=params.noise, sigma=params.sigma, looks=params.looks,
                                    temporal_radius=radius, patch_size=patch, search_radius=dist,
                                    dtype=work_dtype, info=used)

    count, elapsed = _write_frames(src, dst, info, stream, dtype, label=f"Denoising {src.name} (NL-Bayes)",
                                   overwrite=overwrite, quiet=quiet)
    if not quiet:
        given = "given" if params.sigma is not None or params.looks is not None else "estimated on the first frames"
        lines = [
            f"{src} ({info.describe()}) -> {dst}",
            f"  frames          {count} at {float(info.fps):.4g} fps",
            "  method          NL-Bayes on space-time patches (2 frames deep), search along the motion",
        ]
        if "model" in used:
            lines += [
                f"  noise           {used['model']!r} ({given}; sigma {fmt_num(used['sigma255'])} of 255)",
            ]
        if "patch_size" in used:
            lines += [
                f"  temporal radius {used['temporal_radius']} ({2 * used['temporal_radius'] + 1} frames searched)",
                f"  patch size      {used['patch_size'][0]} / {used['patch_size'][1]} (steps 1 / 2)",
                f"  search radius   {used['search_radius']} around the motion ({used['motion']})",
                f"  passes          {used['passes']}",
            ]
        lines.append(f"  time            {elapsed:.2f} s filter ({count / max(elapsed, 1e-9):.2f} frames/s), "
                     f"{time.perf_counter() - t0:.2f} s in all")
        click.echo("\n".join(lines))


def _write_frames(src, dst, info, stream, dtype, *, label, overwrite, quiet):
    """Write the float frames of ``stream()`` into ``dst`` as ``dtype``, with a progress bar.

    Returns (frames written, seconds).  The output is written atomically: on
    any error (a truncated clip, a library error, no memory, a signal) the
    writer is aborted and nothing is left.
    """
    from nlm.io import ImageIOError, from_float
    from nlm.io.video import FrameWriter, TruncatedVideoError

    try:
        writer = FrameWriter(dst, info, overwrite=overwrite)
    except ImageIOError as exc:
        raise click.ClickException(str(exc)) from None
    count, t1 = 0, time.perf_counter()
    total = info.frames if info.frames else None
    bar = click.progressbar(
        length=total or 0,
        label=label,
        file=sys.stderr,
        hidden=quiet or total is None,
        item_show_func=lambda _: f"{count} frames, {count / max(time.perf_counter() - t1, 1e-9):.2f} fps",
    )
    try:
        with bar:
            for out in stream():
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
    except (ImageIOError, ValueError, TypeError, ImportError) as exc:
        writer.abort()
        text = str(exc)
        raise click.ClickException(text if text.startswith((f"{src}:", f"{dst}:")) else f"{src}: {text}") from None
    except MemoryError:
        writer.abort()
        raise click.ClickException(f"{src}: not enough memory") from None
    except BaseException:
        writer.abort()
        raise
    return count, time.perf_counter() - t1


def _truncated(exc):
    """The error for a truncated or corrupt clip (nlm.io.video.TruncatedVideoError)."""
    return click.ClickException(f"{exc}; nothing was written (--allow-truncated denoises what decodes)")


def denoise_video(src_arg, dst_arg, params, video, out):
    """Stream a clip (or a TIFF stack along --time-axis) through the temporal filter.

    ``params`` (:class:`~nlm.cli.params.FilterParams`): method, noise, ``h``,
    ``sigma``; the geometry comes from ``video`` (the options as given).
    """
    import itertools

    import numpy as np

    import nlm
    from nlm.denoisers.video import MAX_TEMPORAL_RADIUS, default_temporal_radius, denoise_frames, frame_sigma
    from nlm.io import ImageIOError
    from nlm.io.video import TruncatedVideoError, check_frames_output, output_kind

    temporal_radius, time_axis = video.temporal_radius, video.time_axis
    overwrite, quiet = out.overwrite, out.quiet
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
    if dst.exists() and same_file(src, dst):
        raise click.BadParameter(f"{dst_arg}: is the input; write the result elsewhere", param_hint="OUTPUT")
    if kind != "frames" and dst.is_dir():
        raise click.BadParameter(f"{dst_arg}: is a directory; give a {kind} file name", param_hint="OUTPUT")
    if dst.exists() and not overwrite:
        raise click.BadParameter(f"{dst_arg}: already exists; pass --overwrite to replace it", param_hint="OUTPUT")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"{dst_arg}: directory {parent} does not exist", param_hint="OUTPUT")
    if params.method == "means" and params.noise != "gaussian":
        raise click.UsageError(
            f"videos with --method means take --noise gaussian only; --method bayes takes --noise {params.noise}"
        )
    if params.method == "bayes":
        patch, dist, radius = _bayes_geometry(video.patch_size, video.patch_distance, temporal_radius)
    else:
        patch, dist, radius = _video_geometry(video.patch_size, video.patch_distance, temporal_radius)

    from nlm.io.video import open_frames

    t0 = time.perf_counter()
    try:
        info, frames = open_frames(src, time_axis, allow_truncated=video.allow_truncated)
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
    if params.method == "bayes":
        _bayes_video(src, dst, info, itertools.chain([first], frames), params, patch, dist, radius, work.dtype,
                     dtype, overwrite, quiet, t0)
        return
    sigma, h = params.sigma, params.h
    sigma_source = "given" if sigma is not None else "estimated on the first frame"
    if sigma is None:
        sigma = frame_sigma(work)
    h_source = "given" if h is not None else "automatic, from sigma"
    if h is None:
        from nlm.denoisers.means import min_h

        h = max(float(nlm.default_h(sigma)), min_h(work.dtype, np.abs(work).max()))
    data_range = float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0
    radius_source = "given" if radius is not None else "from the noise level"
    if radius is None:
        radius = default_temporal_radius(sigma, data_range)
    def stream():
        return denoise_frames(itertools.chain([first], frames), patch, dist, h, sigma, temporal_radius=radius,
                              dtype=work.dtype)

    count, elapsed = _write_frames(src, dst, info, stream, dtype, label=f"Denoising {src.name}",
                                   overwrite=overwrite, quiet=quiet)
    if not quiet:
        lines = [
            f"{src} ({info.describe()}) -> {dst}",
            f"  frames          {count} at {float(info.fps):.4g} fps",
            f"  sigma           {fmt_num(sigma)} ({sigma_source})",
            f"  h               {fmt_num(h)} ({h_source})",
            f"  temporal radius {radius} ({2 * radius + 1} frames, {radius_source})",
            f"  patch size      {patch}",
            f"  patch distance  {dist}",
            f"  time            {elapsed:.2f} s filter ({count / max(elapsed, 1e-9):.2f} frames/s), "
            f"{time.perf_counter() - t0:.2f} s in all",
        ]
        click.echo("\n".join(lines))
