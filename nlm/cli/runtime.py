"""Process-wide state of a command line run: signals, log records, unexpected errors.

The bottom of :mod:`nlm.cli`: every other module of the command line may
import it; it imports none of them.
"""

import os
import sys

import click

SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class _Interrupted(KeyboardInterrupt):
    """Raised by the signal handler: SIGINT, SIGTERM or SIGHUP arrived."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


run_state = {"signal": None, "hook": None, "verbose": False}


#: loggers whose records the command line routes itself, never straight to
#: stderr: nlm's own (ffmpeg's messages come through ``nlm.io.video``) and
#: those of the libraries that read and write files
_LOGGERS = ("nlm", "tifffile")


class LogLines:
    """Context: the records of :data:`_LOGGERS` during a command.

    Without a handler of their own, a library's warning goes to Python's
    last-resort handler, which prints it on stderr in front of the
    ``Error:`` line (tifffile: ``<tifffile.TiffPages @8> invalid offset to
    first page``; ffmpeg: ``moov atom not found``).  Here they are printed
    as ``log: ...`` lines (``log: tifffile: ...`` for a library) with
    ``--verbose`` only, as they come, so the ``Error:`` line stays the last
    one, and dropped otherwise; the loggers are restored afterwards.
    ``run_state["verbose"]`` is read when a record comes (records may come
    from the filter's worker threads, where there is no click context).
    """

    def __init__(self):
        import logging

        class Echo(logging.Handler):
            def emit(handler, record):
                if not run_state["verbose"]:
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


def on_signal(signum, frame):
    """Remove partial outputs at once, then unwind (first signal only)."""
    io = sys.modules.get("nlm.io")
    if io is not None:
        io.remove_partial_files()
    if run_state["signal"] is None:
        run_state["signal"] = signum
        raise _Interrupted(signum)


def quiet_unraisable(unraisable):
    """After an interruption, objects torn down half-way (a reader plugin's
    ``__del__``) may fail; that is expected then and not worth a traceback."""
    if run_state["signal"] is None:
        sys.__unraisablehook__(unraisable)


def unexpected_error(exc):
    """An error nobody planned for (a bug): one line asking for a report; NLM_DEBUG=1 re-raises it."""
    if os.environ.get("NLM_DEBUG"):
        raise  # the exception being handled, with its traceback
    reason = " ".join(str(exc).split())[:300]
    raise click.ClickException(
        f"unexpected {type(exc).__name__}: {reason} (please report it; NLM_DEBUG=1 shows the traceback)"
    ) from None




def resume_gc():
    """Python's collector back on, for a run that may be long (a batch, tiles, a video, a cluster).

    :func:`nlm.cli.app.run` (the ``nlm`` script) starts with the collector
    off; a command that may run for hours calls this as it starts, so that
    its cyclic garbage is collected.  It does nothing where the collector
    was not turned off by ``run`` (the command run in-process by a test).
    """
    if run_state.get("gc_paused"):
        import gc

        run_state["gc_paused"] = False
        gc.enable()
