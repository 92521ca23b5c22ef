"""The command line on a ``dask.distributed`` cluster: the client's life and its failures."""


import click

from nlm.cli import options as opts


class Cluster:
    """Context: a dask.distributed client for --scheduler / --workers, or nothing.

    While it is open, :class:`nlm.cli.cluster_guard.Guard` watches the scheduler:
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

        from nlm.cli import cluster_guard

        self.logs = cluster_guard.QuietLogs(echo=(lambda line: click.echo(line, err=True)) if self.verbose else None)
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
                    preload=["nlm.cli.worker_preload"],
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
                cluster_guard.quiet_loop(owner.loop)
        # a question to the scheduler every second at most (a fraction of short timeouts)
        poll = min(1.0, max(0.1, self.timeout / 4))
        self.guard = cluster_guard.Guard(self.client, self.where, self.timeout, poll=poll).start()
        return self

    def submit(self, *args, **kwargs):
        return self.client.submit(*args, **kwargs)

    def failure(self, exc):
        """The message of a run that failed because the cluster was lost, or None."""
        if self.client is None or isinstance(exc, (KeyboardInterrupt, click.exceptions.Exit, click.Abort,
                                                   click.UsageError, BatchLost)):
            return None
        from nlm.cli import cluster_guard

        return cluster_guard.failure(exc, self.guard, self.where)

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
        if client is None and cluster is None:
            return  # no cluster was used (the usual, in-memory run): nothing to close or collect
        limit = min(self.timeout, 10.0)
        for closing in (client, cluster):
            if closing is None:
                continue
            try:
                closing.close(timeout=limit)
            except BaseException:  # noqa: BLE001 - closing a lost cluster may fail; nothing to do about it
                pass
        gc.collect()  # tasks of an interrupted gather are reported now, under the quiet handlers


def remove_leftovers(outputs):
    """Remove the temporary files that dead workers left next to ``outputs``."""
    from nlm.io.image import leftover_partial_files

    for output in outputs:
        for leftover in leftover_partial_files(output):
            try:
                leftover.unlink()
            except OSError:
                pass


class BatchLost(click.ClickException):
    """A batch stopped because its cluster was lost; its message says what was written."""
