"""Smoke test of the speed benchmark (benchmarks/speed.py): it runs and reports the bars."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

speed = pytest.importorskip("benchmarks.speed")


def test_quick_run_prints_table_psnr_and_bars(capsys):
    speed.main(["--quick", "--repeat", "1"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| 512x512 grey"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 8
    assert float(cells[1]) > 0 and float(cells[2]) > 0
    assert "PSNR 512x512 grey" in out
    # the filter's quality on the benchmark image is what it was before the speed work
    p32 = float(out.split("nlm float32 ")[1].split(" dB")[0])
    assert abs(p32 - speed.PSNR_BEFORE) <= 0.05
    assert "bars (512x512 grey):" in out


def test_formatting_of_missing_anchors():
    nan = float("nan")
    assert speed._s(nan) == "n/a" and speed._x(nan, 2) == "n/a"
    assert speed._s(0.5) == "0.5000" and speed._x(3.14159, 2) == "3.14x"
