"""Smoke test of the video benchmark (benchmarks/video.py) on a tiny clip."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

pytest.importorskip("cv2")
pytest.importorskip("av")
video = pytest.importorskip("benchmarks.video")


def test_small_run_prints_target_table_and_per_frame_psnr(capsys):
    video.main(["--repeat", "1", "--frames", "6", "--size", "48"])
    out = capsys.readouterr().out
    assert "nlm / OpenCV fps:" in out and "bar >= 3x" in out
    rows = [line for line in out.splitlines() if line.startswith("| grey gaussian |")]
    assert [r.split("|")[2].strip() for r in rows] == ["noisy", "nlm", "OpenCV Multi", "ffmpeg nlmeans (spatial)",
                                                        "nlm NL-Bayes (--method bayes)"]
    assert all(float(r.split("|")[5]) > 0 for r in rows)
    frame_lines = [line for line in out.splitlines() if line.startswith("  colour speckle")]
    assert "colour speckle: best nlm" in out
    assert len(frame_lines) == 5 and all(len(line.split()[-6:]) == 6 for line in frame_lines)


def test_synthetic_clip_pans_and_is_seeded():
    clean, noisy = video.synthetic_clip(False, "gaussian", frames=3, size=32)
    assert clean.shape == noisy.shape == (3, 32, 32) and clean.dtype == noisy.dtype
    assert (clean[1][:-1, :-2] == clean[0][1:, 2:]).mean() > 0.99  # 2 px right, 1 px down per frame
    assert (video.synthetic_clip(False, "gaussian", frames=3, size=32)[1] == noisy).all()


def test_bayes_sections_print_their_bars(capsys):
    video.bayes_targets(frames=3, H=40, W=48, threads=1, levels=(20,))
    video.bayes_speed(frames=2, H=40, W=48, threads=1)
    out = capsys.readouterr().out
    assert "sigma 20: mean" in out and "vs per-frame NL-Bayes (bar +1.0)" in out
    assert out.count("| 20 | ") == 6
    assert "time video / per-frame:" in out and "bar <= 5x" in out


@pytest.mark.parametrize("kind", video.MOTION_KINDS)
def test_motion_clips_are_seeded_and_in_range(kind):
    a = video.motion_clip(kind, kind == "shake", frames=3, H=24, W=30)
    b = video.motion_clip(kind, kind == "shake", frames=3, H=24, W=30)
    assert a.shape[:3] == (3, 24, 30) and (a == b).all() and 0 <= a.min() and a.max() <= 1
    assert not np.allclose(a[0], a[1])  # it moves
    c8, n8 = video.noisy8(a, 20)
    assert c8.dtype == n8.dtype == np.uint8
