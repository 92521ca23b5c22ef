"""Smoke test of benchmarks/sar_weak_spots.py (the homogeneous-area part; the zero-background part needs bm3d)."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

sar = pytest.importorskip("benchmarks.sar_weak_spots")


def test_quick_means_part_prints_its_table(capsys):
    assert sar.main(["--quick", "--part", "means"]) == 0
    out = capsys.readouterr().out
    assert "| 1 | NLM gamma |" in out and "| 1 | NL-Bayes |" in out


def test_zero_images_have_exact_zero_backgrounds():
    for name in ("phantom", "camera_disc"):
        x = sar.ZERO_IMAGES[name]()
        assert 0.5 < np.mean(x == 0) < 0.7 and x.max() <= 1.0


def test_bm3d_log_anchor_keeps_zeros():
    pytest.importorskip("bm3d")
    x = sar.camera_disc()[::4, ::4]
    y = sar._noisy(x, 1.0, 0)
    out = sar.bm3d_log(y, 1.0)
    assert (out[x == 0] == 0).all() and sar.psnr(x, out) > sar.psnr(x, y) + 3
