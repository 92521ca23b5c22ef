"""The command line on a dask.distributed cluster: failing cleanly and in bounded time.

:class:`Guard` watches the scheduler from a thread while the command runs:
when the scheduler stops answering, or has had no worker, for ``timeout``
seconds, it records what was lost and cancels the client's pending futures,
so that the command's ``dask.compute`` / ``as_completed`` returns instead of
waiting forever.  :func:`failure` turns what a run raised into one sentence
naming what was lost (``None`` when the error is not the cluster's).
:class:`QuietLogs` keeps the log records of ``distributed``, ``asyncio`` and
``tornado`` off stderr (one line each, no traceback, with ``--verbose``).

This module imports nothing from dask at import time.
"""

import asyncio
import logging
import threading
import time

#: loggers whose records a cluster run routes through :class:`QuietLogs`
LOGGERS = ("distributed", "asyncio", "tornado")

#: the reason given to futures cancelled by :class:`Guard`
CANCEL_REASON = "nlm-cluster-lost"


class QuietLogs(logging.Handler):
    """While entered: the records of :data:`LOGGERS` (warnings and above) are
    printed as one line each with ``echo`` (no traceback), or dropped."""

    def __init__(self, echo=None):
        super().__init__(logging.WARNING)
        self.echo = echo
        self._saved = {}

    def emit(self, record):
        if self.echo is None:
            return
        try:
            parts = [" ".join(str(record.getMessage()).split("\n", 1)[0].split())]
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                parts.append(": ".join(filter(None, (type(exc).__name__, " ".join(str(exc).split())[:200]))))
            text = "; ".join(filter(None, parts)) or "(no message)"
            self.echo(f"cluster log: {record.name}: {record.levelname.lower()}: {text[:400]}")
        except Exception:  # noqa: BLE001 - a log line must never fail the run
            pass

    def __enter__(self):
        # distributed's configuration gives some child loggers (distributed.client)
        # handlers of their own: those are routed too
        names = [
            name
            for name, logger in list(logging.Logger.manager.loggerDict.items())
            if isinstance(logger, logging.Logger) and logger.handlers and name.split(".")[0] in LOGGERS
        ]
        for name in dict.fromkeys([*LOGGERS, *names]):
            logger = logging.getLogger(name)
            self._saved[name] = (list(logger.handlers), logger.propagate)
            logger.handlers = [self]
            logger.propagate = False
        return self

    def __exit__(self, *exc):
        for name, (handlers, propagate) in self._saved.items():
            logger = logging.getLogger(name)
            logger.handlers = handlers
            logger.propagate = propagate
        self._saved.clear()
        return False


def quiet_loop(loop):
    """Send the exceptions an asyncio loop would print (``Task exception was
    never retrieved`` after an interrupted gather) to the ``asyncio`` logger
    at debug level, without a traceback."""
    asyncio_loop = getattr(loop, "asyncio_loop", loop)

    def handler(_loop, context):
        exc = context.get("exception")
        logging.getLogger("asyncio").debug(
            "%s%s", context.get("message", "unhandled exception"), f" ({type(exc).__name__})" if exc else ""
        )

    try:
        asyncio_loop.set_exception_handler(handler)
    except (AttributeError, RuntimeError):
        pass


class Guard:
    """Watch the scheduler of ``client``; on a loss, record it and cancel the futures.

    Parameters
    ----------
    client : distributed.Client
    where : str
        How to name the scheduler in messages (its address, or "the local cluster").
    timeout : float
        Seconds without an answer from the scheduler, or without any worker,
        before the cluster counts as lost.
    poll : float
        Seconds between two questions to the scheduler.
    """

    def __init__(self, client, where, timeout, poll=0.5):
        self.client, self.where, self.timeout, self.poll = client, where, float(timeout), float(poll)
        self.reason = None  # what was lost, once it was
        self.seen = {}  # every worker seen (address -> address), in order
        self.lost = []  # workers seen that left, in order
        self.peak = 0
        self._beats = {}  # address -> (last_seen reported, monotonic time it last changed)
        self._answered = self._with_worker = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nlm-cluster-guard", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    # -- the watching thread ---------------------------------------------- #
    def _identity(self, timeout):
        loop = getattr(self.client.loop, "asyncio_loop", None)
        if loop is None or self.client.scheduler is None:
            raise OSError("the client has no event loop")
        future = asyncio.run_coroutine_threadsafe(self.client.scheduler.identity(n_workers=-1), loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def _run(self):
        self._answered = self._with_worker = time.monotonic()
        while not self._stop.wait(self.poll):
            if self.reason is None:
                try:
                    info = self._identity(min(self.timeout, 5.0))
                except Exception:  # noqa: BLE001 - no answer: counted in _observe
                    info = None
                if self._stop.is_set():
                    return
                self.reason = self._observe(info, time.monotonic())
            if self.reason is not None:
                self._cancel()  # again at every poll: futures submitted since then go too

    def _observe(self, info, now):
        """Update what is known from one answer of the scheduler (None: no answer); the reason of a loss, or None."""
        if info is None:
            if now - self._answered >= self.timeout:
                return f"the dask scheduler at {self.where} did not answer for {self.timeout:g} s (--cluster-timeout)"
            return None
        self._answered = now
        workers = info.get("workers") or {}
        for address, identity in workers.items():
            self.seen.setdefault(address, address)
            # a worker is alive while its heartbeats move its last_seen on (scheduler's clock, compared with itself)
            beat = (identity or {}).get("last_seen")
            if address not in self._beats or self._beats[address][0] != beat:
                self._beats[address] = (beat, now)
        gone = [a for a in self._beats if a not in workers]
        for address in gone:
            del self._beats[address]
            if address not in self.lost:
                self.lost.append(address)
        self.peak = max(self.peak, len(workers))
        silent = [a for a, (_, changed) in self._beats.items() if now - changed >= self.timeout]
        waited = f"{self.timeout:g} s (--cluster-timeout)"
        if workers and len(silent) == len(workers):  # every worker silent for the whole timeout
            what = f"the worker {silent[0]}" if len(silent) == 1 else f"all {len(silent)} workers ({', '.join(silent)})"
            return f"{what} of the dask scheduler at {self.where} stopped answering for {waited}"
        if workers:
            self._with_worker = now
            return None
        if now - self._with_worker < self.timeout:
            return None
        if not self.seen:
            return f"the dask scheduler at {self.where} has no worker (none joined in {waited})"
        names = self.lost or list(self.seen)
        what = "its worker" if len(names) == 1 else f"all {len(names)} of its workers"
        return f"the dask scheduler at {self.where} lost {what} ({', '.join(names)}); no worker was left for {waited}"

    def _cancel(self):
        client = self.client

        def cancel():
            for state in list(client.futures.values()):
                if state.status not in ("finished", "error", "cancelled"):
                    state.cancel(reason=CANCEL_REASON, msg=self.reason)

        try:
            client.loop.add_callback(cancel)
        except Exception:  # noqa: BLE001 - the loop is gone: nothing left to cancel
            pass


def _chain(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def failure(exc, guard, where):
    """One sentence naming what a cluster run lost, or None when ``exc`` is not the cluster's fault."""
    if guard is not None and guard.reason is not None:
        return guard.reason
    try:
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
        from distributed.scheduler import KilledWorker, NoValidWorkerError, NoWorkerError
    except ImportError:  # pragma: no cover - only called when distributed is there
        return None
    lost_scheduler = f"lost the connection to the dask scheduler at {where}"
    for e in _chain(exc):
        if isinstance(e, KilledWorker):
            last = getattr(e.last_worker, "address", e.last_worker)
            return (
                f"dask workers died {e.allowed_failures + 1} times while running one task (the last was {last}); "
                "out of memory? try a smaller --tile-size, or more memory per worker"
            )
        if isinstance(e, (NoValidWorkerError, NoWorkerError)):
            return f"the dask scheduler at {where} has no worker that can run the tiles"
        if isinstance(e, FutureCancelledError):
            if e.reason == CANCEL_REASON and e.msg:
                return e.msg
            if e.reason in ("scheduler-connection-lost", "client-closed", "client-closing"):
                return lost_scheduler
        if isinstance(e, CommClosedError):
            return lost_scheduler
    if guard is not None and getattr(guard.client, "status", "running") not in ("running", "newly-created"):
        return lost_scheduler  # the client lost its scheduler: whatever failed, that is why
    return None
