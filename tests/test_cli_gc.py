"""The ``nlm`` script runs with Python's garbage collector paused (issue 19), and long runs resume it.

:func:`nlm.cli.app.run` (the installed script, ``cli:run``) turns the cyclic
collector off for the command and freezes what the run made before the
process exits; batches, tiled runs, videos, clusters and benchmarks turn it
back on as they start (:func:`nlm.cli.runtime.resume_gc`).
"""

import configparser
import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from nlm.cli import runtime, tiled_job
from nlm.io import read_image, write_image

ROOT = Path(cli.__file__).resolve().parent
FAST = ["--patch-size", "3", "--patch-distance", "3", "-q"]


def _noisy(shape=(40, 48), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]] / max(shape)
    clean = 0.3 + 0.4 * np.sin(5 * xx) * np.cos(3 * yy) ** 2
    return np.clip(np.rint(255 * (clean + rng.normal(0, 0.08, shape))), 0, 255).astype(np.uint8)


@pytest.fixture
def paused(monkeypatch):
    """The state ``run`` leaves for the command: the collector off, and marked as paused by ``run``;
    records whether the collector was on when each image's job started."""
    seen = []
    real = tiled_job.denoise_file

    def spy(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(tiled_job, "denoise_file", spy)
    was = gc.isenabled()
    gc.disable()
    runtime.run_state["gc_paused"] = True
    try:
        yield seen
    finally:
        runtime.run_state["gc_paused"] = False
        if was:
            gc.enable()


def test_the_installed_script_is_run():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["options.entry_points"]["console_scripts"].strip() == "nlm = cli:run"
    assert "run()" in (ROOT / "nlm" / "__main__.py").read_text()


def test_one_image_runs_with_the_collector_paused(paused, tmp_path):
    write_image(tmp_path / "in.png", _noisy())
    result = CliRunner().invoke(cli.main, ["denoise", str(tmp_path / "in.png"), str(tmp_path / "out.png"), *FAST])
    assert result.exit_code == 0, result.output
    assert paused == [False]
    assert not gc.isenabled() and runtime.run_state["gc_paused"]


def test_a_batch_resumes_the_collector(paused, tmp_path):
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, _noisy(seed=len(name)))
    result = CliRunner().invoke(cli.main, ["denoise", str(tmp_path / "a.png"), str(tmp_path / "b.png"),
                                           "-o", str(tmp_path / "out"), *FAST])
    assert result.exit_code == 0, result.output
    assert paused == [True, True]
    assert gc.isenabled() and not runtime.run_state["gc_paused"]


def test_a_tiled_run_resumes_the_collector(paused, tmp_path):
    write_image(tmp_path / "in.tif", _noisy((96, 80)))  # TIFFs over the memory budget go tile by tile
    result = CliRunner().invoke(cli.main, ["denoise", str(tmp_path / "in.tif"), str(tmp_path / "out.tif"),
                                           "--memory-limit", "1K", "--tile-size", "64", *FAST])
    assert result.exit_code == 0, result.output
    assert paused == []  # tiles: not the in-memory job
    assert gc.isenabled() and not runtime.run_state["gc_paused"]


def test_without_run_nothing_changes(tmp_path):
    """In-process callers (tests, other programs) keep their collector as it is."""
    write_image(tmp_path / "in.png", _noisy())
    assert gc.isenabled()
    result = CliRunner().invoke(cli.main, ["denoise", str(tmp_path / "in.png"), str(tmp_path / "out.png"), *FAST])
    assert result.exit_code == 0, result.output
    assert gc.isenabled()
    runtime.resume_gc()  # nothing to resume
    assert gc.isenabled()


RUN_PROBE = textwrap.dedent(
    """
    import gc, sys
    import cli
    sys.argv = ["nlm", *sys.argv[1:]]
    try:
        cli.run()
    except SystemExit as exc:
        print("EXIT", exc.code, "ENABLED", gc.isenabled(), "FROZEN", gc.get_freeze_count() > 1000)
    """
)


@pytest.mark.parametrize("args, code", [([], 0), (["--patch-size", "0"], 2), (["--sigma", "nan"], 2)])
def test_run_exits_with_the_command_code_and_freezes(tmp_path, args, code):
    write_image(tmp_path / "in.png", _noisy())
    dst = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-c", RUN_PROBE, "denoise", str(tmp_path / "in.png"), str(dst),
                           "-q", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert f"EXIT {code} ENABLED True FROZEN True" in proc.stdout, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert dst.exists() == (code == 0)
    if code == 0:
        assert read_image(dst).data.shape == (40, 48)


def test_a_video_resumes_the_collector(paused, tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "clip.tif", np.stack([_noisy((24, 20), seed=k) for k in range(4)]),
                     photometric="minisblack")
    result = CliRunner().invoke(cli.main, ["denoise", str(tmp_path / "clip.tif"), str(tmp_path / "out.tif"),
                                           "--time-axis", "0", "--temporal-radius", "1", *FAST])
    assert result.exit_code == 0, result.output
    assert paused == []  # frames: not the image job
    assert gc.isenabled() and not runtime.run_state["gc_paused"]
