"""Hostile clusters (issue 18): a real loopback dask scheduler and worker killed mid-run.

A lost worker or scheduler ends ``nlm denoise --scheduler`` with one ``Error:``
line naming what was lost (exit 1), within ``--cluster-timeout`` (plus the
time to notice it), with no traceback, no output and no temporary file left
behind; SIGTERM and SIGINT on a ``--workers`` run print no traceback and
leave no process behind.  Every process here listens on 127.0.0.1 only and is
ended by its own PID.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import cli

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

TIMEOUT = 3  # --cluster-timeout of the runs below
SLACK = 20  # seconds allowed beyond it for nlm to notice, clean up and exit on a busy machine


def _default_signals():
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def _spawn(args, **kwargs):
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_signals, **kwargs,
    )


def _end(proc):
    """End one process this test started, by its PID."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


@pytest.fixture
def loopback(tmp_path):
    """A ``dask scheduler`` and one ``dask worker`` (no nanny) on 127.0.0.1: (address, scheduler, worker)."""
    info = tmp_path / "scheduler.json"
    scheduler = _spawn([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                        "--port", "0", "--no-dashboard", "--scheduler-file", str(info)])
    procs = [scheduler]
    try:
        deadline = time.monotonic() + 60
        while not (info.exists() and info.stat().st_size) and time.monotonic() < deadline:
            assert scheduler.poll() is None, scheduler.communicate()
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = _spawn([sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny",
                         "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--name", "w0"])
        procs.append(worker)
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        yield address, scheduler, worker
    finally:
        for proc in reversed(procs):
            _end(proc)


def _noisy(path, side=2048):
    rng = np.random.default_rng(18)
    tifffile.imwrite(path, rng.integers(0, 256, (side, side), dtype=np.uint8))


def _when_writing(proc, directory, limit=120):
    """Wait until ``proc`` has started writing its output (a temporary file in ``directory``)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if any(".part" in name for name in os.listdir(directory)):
            return
        if proc.poll() is not None:
            pytest.fail(f"the run ended before its write was seen: {proc.communicate()}")
        time.sleep(0.02)
    pytest.fail("no write seen in time")


def _one_error_line(stderr):
    assert "Traceback" not in stderr and "Task exception" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), stderr
    return lines[0]


def _denoise_on(address, tmp_path):
    src = tmp_path / "in.tif"
    _noisy(src)
    out = tmp_path / "out"
    out.mkdir()
    proc = _spawn([sys.executable, "-m", "nlm", "denoise", str(src), str(out / "o.tif"), "--scheduler", address,
                   "--tile-size", "256", "--cluster-timeout", str(TIMEOUT), "-q"])
    _when_writing(proc, out)
    return proc, out


def _kill_mid_run(address, tmp_path, victim, sig=signal.SIGKILL):
    """Start a run on the cluster, signal ``victim`` once it writes: (exit code, Error line, seconds to exit, out)."""
    proc, out = _denoise_on(address, tmp_path)
    os.kill(victim.pid, sig)
    killed = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT + SLACK)
    finally:
        _end(proc)
    return proc.returncode, _one_error_line(stderr), time.monotonic() - killed, out


def test_worker_killed_mid_run(tmp_path, loopback):
    address, _, worker = loopback
    code, line, elapsed, out = _kill_mid_run(address, tmp_path, worker)
    assert code == 1, line
    assert f"scheduler at {address} lost its worker" in line, line
    assert "no worker was left for 3 s (--cluster-timeout)" in line, line
    assert "nothing was written" in line
    assert TIMEOUT - 1 <= elapsed <= TIMEOUT + SLACK, elapsed
    assert os.listdir(out) == []


def test_worker_stopped_mid_run(tmp_path, loopback):
    """A worker that hangs (SIGSTOP: no heartbeat) stays registered for minutes; nlm gives up after the timeout."""
    address, _, worker = loopback
    code, line, elapsed, out = _kill_mid_run(address, tmp_path, worker, signal.SIGSTOP)
    assert code == 1, line
    assert line.startswith("Error: the worker tcp://127.0.0.1:"), line
    assert line.endswith(f" of the dask scheduler at {address} stopped answering for 3 s (--cluster-timeout); "
                         "nothing was written"), line
    assert TIMEOUT - 1 <= elapsed <= TIMEOUT + SLACK, elapsed
    assert os.listdir(out) == []


def test_scheduler_killed_mid_run(tmp_path, loopback):
    address, scheduler, _ = loopback
    code, line, elapsed, out = _kill_mid_run(address, tmp_path, scheduler)
    assert code == 1, line
    assert line == f"Error: lost the connection to the dask scheduler at {address}; nothing was written", line
    assert elapsed <= TIMEOUT + SLACK, elapsed
    assert os.listdir(out) == []


def test_worker_killed_mid_batch(tmp_path, loopback):
    """A batch stops at the loss with one error that says what had been written, not one per file."""
    address, _, worker = loopback
    files = []
    for k in range(2):
        files.append(tmp_path / f"b{k}.tif")
        _noisy(files[-1])
    out = tmp_path / "out"
    out.mkdir()
    proc = _spawn([sys.executable, "-m", "nlm", "denoise", *map(str, files), "-o", str(out), "--scheduler", address,
                   "--memory-limit", "1K", "--tile-size", "256", "--cluster-timeout", str(TIMEOUT), "-q"])
    _when_writing(proc, out)
    # what a worker killed while writing a file of the batch leaves behind
    (out / ".b1.0123abcd.part.tif").write_bytes(b"II*\0")
    os.kill(worker.pid, signal.SIGKILL)
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT + SLACK)
    finally:
        _end(proc)
    assert proc.returncode == 1, stderr
    line = _one_error_line(stderr)
    assert line.startswith(f"Error: the dask scheduler at {address} lost its worker"), line
    assert line.endswith("; 0 of 2 image(s) were written before, the others were not"), line
    assert os.listdir(out) == []


def test_sigterm_on_a_scheduler_run(tmp_path, loopback):
    """No "Task exception was never retrieved" from the interrupted gather."""
    address, _, _ = loopback
    proc, out = _denoise_on(address, tmp_path)
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        _end(proc)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert _one_error_line(stderr) == "Error: interrupted by SIGTERM; no partial output was left"
    assert os.listdir(out) == []


def test_scheduler_without_workers_times_out(tmp_path, loopback):
    """A scheduler that has lost its only worker before the run: nlm does not wait for ever (in process)."""
    address, _, worker = loopback
    os.kill(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=30)
    src = tmp_path / "in.tif"
    _noisy(src, 200)
    t0 = time.monotonic()
    r = CliRunner().invoke(cli.main, ["denoise", str(src), str(tmp_path / "o.tif"), "--scheduler", address,
                                      "--cluster-timeout", "1", "--tile-size", "64"])
    assert r.exit_code == 1, r.output
    assert f"Error: the dask scheduler at {address} has no worker (none joined in" in r.output, r.output
    assert "Traceback" not in r.output
    assert time.monotonic() - t0 < 1 + SLACK
    assert sorted(os.listdir(tmp_path)) == ["in.tif", "scheduler.json"]


@pytest.mark.parametrize("sig, group", [("SIGTERM", False), ("SIGINT", True)])
def test_signals_on_a_local_cluster(tmp_path, sig, group):
    """SIGTERM to nlm, SIGINT to its whole process group (Ctrl-C): no traceback, no process left."""
    src = tmp_path / "in.tif"
    _noisy(src)
    out = tmp_path / "out"
    out.mkdir()
    proc = _spawn([sys.executable, "-m", "nlm", "denoise", str(src), str(out / "o.tif"), "--workers", "2",
                   "--tile-size", "256"], start_new_session=True)
    try:
        _when_writing(proc, out)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children  # the local cluster's processes
        if group:
            os.killpg(proc.pid, getattr(signal, sig))  # the session nlm leads holds nothing else
        else:
            proc.send_signal(getattr(signal, sig))
        _, stderr = proc.communicate(timeout=60)
    finally:
        _end(proc)
    assert proc.returncode == 128 + getattr(signal, sig), stderr
    assert "Traceback" not in stderr and "Task exception" not in stderr, stderr
    assert stderr.splitlines()[-1] == f"Error: interrupted by {sig}; no partial output was left", stderr
    assert os.listdir(out) == []
    _, alive = psutil.wait_procs(children, timeout=15)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, alive


def test_cluster_timeout_option(tmp_path):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, np.zeros((64, 64), np.uint8))
    for bad in ("0", "-1", "nan", "inf", "soon", "1e300"):
        r = CliRunner().invoke(cli.main, ["denoise", str(src), str(tmp_path / "o.tif"), "--workers", "1",
                                          "--cluster-timeout", bad])
        assert r.exit_code == 2 and "--cluster-timeout" in r.output, (bad, r.output)
    r = CliRunner().invoke(cli.main, ["denoise", str(src), str(tmp_path / "o.tif"), "--cluster-timeout", "5"])
    assert r.exit_code == 2 and "--cluster-timeout is for runs on a cluster" in r.output, r.output
    assert "--cluster-timeout" in CliRunner().invoke(cli.main, ["denoise", "--help"]).output


def test_killed_worker_is_named():
    """A task whose workers keep dying (dask's KilledWorker) is reported as such, in one sentence."""
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    from nlm.cli.cluster_guard import failure

    class Worker:
        address = "tcp://127.0.0.1:4242"

    try:
        try:
            raise KilledWorker("tile-1", Worker(), 3)
        except KilledWorker:
            raise ValueError("out.tif: cannot write") from None  # as the writer wraps it
    except ValueError as exc:
        message = failure(exc, None, "tcp://127.0.0.1:1")
    assert message.startswith("dask workers died 4 times while running one task (the last was tcp://127.0.0.1:4242)")
    lost = FutureCancelledError("k", "scheduler-connection-lost")
    assert failure(lost, None, "tcp://h:1") == "lost the connection to the dask scheduler at tcp://h:1"
    assert failure(ValueError("a user error"), None, "tcp://h:1") is None


def test_leftover_partial_files_are_only_those_of_the_output(tmp_path):
    import nlm.io._atomic as atomic

    names = [".b1.0123abcd.part.tif", ".b1.0123abcd.part.png", ".b10.0123abcd.part.tif", ".b1.xyz.part.tif",
             "b1.tif", ".b1.0123abcd.part.tif.keep", ".b1.ffffffff.part.tif"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    mine = str(tmp_path / ".b1.ffffffff.part.tif")
    atomic._PARTIAL.add(mine)  # a write of this process in progress: not a leftover
    try:
        found = atomic.leftover_partial_files(tmp_path / "b1.tif")
    finally:
        atomic._PARTIAL.discard(mine)
    assert [p.name for p in found] == [".b1.0123abcd.part.tif"]
    assert atomic.leftover_partial_files(tmp_path / "missing" / "b1.tif") == []
