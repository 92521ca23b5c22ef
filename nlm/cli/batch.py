"""Dispatch of ``nlm denoise``: one file or many, in memory, tile by tile, on a cluster or as video."""

import dataclasses
import sys
import time
from pathlib import Path

import click

from nlm.cli.cluster import BatchLost, remove_leftovers
from nlm.cli.image_job import denoise_file
from nlm.cli.paths import batch_jobs, check_input_file, check_output_file
from nlm.cli.report import describe_model, fmt_num, input_notes, report_lines
from nlm.cli.runtime import resume_gc
from nlm.cli.tiled_job import denoise_any, denoise_tiled, needs_tiles
from nlm.cli.video_job import denoise_video, is_video_job


def denoise_command(paths, params, out, scale, video, cluster):
    """Run ``nlm denoise`` on ``paths`` (:class:`~nlm.cli.params.FilterParams`,
    :class:`~nlm.cli.params.Outputs`, :class:`~nlm.cli.params.ScaleParams`,
    :class:`~nlm.cli.params.VideoParams`; ``cluster``: a :class:`~nlm.cli.cluster.Cluster`
    client or None)."""
    output_dir, suffix, ext, volume = out.output_dir, out.suffix, out.ext, out.volume
    overwrite, quiet, verbose = out.overwrite, out.quiet, out.verbose
    temporal_radius, time_axis = video.temporal_radius, video.time_axis
    if output_dir is None:
        if suffix or ext:
            raise click.UsageError("--suffix and --ext are for batch mode (-o OUTDIR)")
        if len(paths) != 2:
            raise click.UsageError(
                f"expected INPUT OUTPUT, or several inputs with -o OUTDIR; got {len(paths)} path(s)"
            )
        if is_video_job(paths[0], paths[1], time_axis):
            if volume:
                raise click.UsageError("--volume is for image stacks; a video is streamed frame by frame")
            if params.sigma_map or params.mask or params.noise_map_out:
                raise click.UsageError("--sigma-map, --mask and --noise-map-out are for images, not videos")
            if params.device == "cuda":
                raise click.UsageError("--device cuda is for images, not videos")
            resume_gc()  # a video: a run that may be long
            denoise_video(paths[0], paths[1], params, video, out)
            return
        if temporal_radius is not None:
            raise click.UsageError("--temporal-radius is for videos (and TIFF stacks with --time-axis)")
        if video.allow_truncated:
            raise click.UsageError("--allow-truncated is for videos")
        src = check_input_file(paths[0], "INPUT")
        dst = check_output_file(paths[1], [src], overwrite, "OUTPUT")
        rec = denoise_any(src, dst, params, volume=volume, overwrite=overwrite, scale=scale, quiet=quiet)
        if not quiet:
            for note in input_notes(rec, src):
                click.echo(note, err=True)
            click.echo("\n".join(report_lines(rec, params, verbose)))
        return

    if temporal_radius is not None or time_axis is not None or video.allow_truncated:
        raise click.UsageError(
            "--temporal-radius, --time-axis and --allow-truncated take one INPUT OUTPUT pair, not -o OUTDIR"
        )
    jobs = batch_jobs(paths, output_dir, suffix, ext, overwrite)
    resume_gc()  # a batch: long
    try:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{output_dir}: cannot create directory: {exc.strerror or exc}") from None
    records, errors = [], []
    t0 = time.perf_counter()
    bar = click.progressbar(
        jobs,
        label=f"Denoising {len(jobs)} image(s)",
        file=sys.stderr,
        item_show_func=lambda job: job[0].name if job else "",
        hidden=quiet,
    )
    local = dataclasses.replace(scale, cluster=False)
    with bar:
        if cluster is not None:
            # files that fit the memory budget: one task each on the cluster;
            # larger ones: their tiles on the cluster, driven from here
            big = [job for job in jobs if needs_tiles(job[0], job[1], local, params.method)]
            futures = [
                cluster.submit(denoise_file, src, dst, params, volume=volume, overwrite=overwrite,
                               max_pixels=scale.max_pixels, pure=False)
                for src, dst in jobs
                if (src, dst) not in big
            ]

            def lost(exc):
                """A lost cluster stops the batch: one error naming it, and what was written before."""
                message = cluster.failure(exc)
                if message is not None:
                    for future in futures:
                        future.cancel()
                    remove_leftovers(dst for _, dst in jobs)  # of workers killed while writing
                    failed = f", {len(errors)} had failed" if errors else ""
                    raise BatchLost(
                        f"{message}; {len(records)} of {len(jobs)} image(s) were written before{failed}, "
                        "the others were not"
                    ) from None

            for src, dst in big:
                try:
                    records.append(denoise_tiled(src, dst, params, volume=volume, overwrite=overwrite,
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
                    records.append(denoise_any(src, dst, params, volume=volume, overwrite=overwrite,
                                                scale=local, quiet=True))
                except click.ClickException as exc:
                    errors.append(exc.format_message())
    if not quiet:
        for rec in records:
            for note in input_notes(rec, rec["src"]):
                click.echo(note, err=True)
            if verbose:
                click.echo("\n".join(report_lines(rec, params, verbose)))
            else:
                model = f", noise {describe_model(rec['model'])}" if rec["model"] is not None else ""
                click.echo(
                    f"{rec['src']} -> {rec['dst']}: sigma {fmt_num(rec['sigma'], 4)} ({rec['sigma_source']}), "
                    f"h {fmt_num(rec['h'], 4)} ({rec['h_source']}){model}, {rec['timings']['filter']:.2f} s"
                )
        click.echo(
            f"denoised {len(records)} of {len(jobs)} image(s) into {output_dir} "
            f"in {time.perf_counter() - t0:.2f} s"
        )
    for message in errors:
        click.echo(f"Error: {message}", err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} of {len(jobs)} image(s) failed; no output was written for them")
