"""benchmarks/gpu.py runs: it skips cleanly without a device, and ``--smoke`` runs every row's code.

The smoke run uses Numba's CUDA simulator (tests/conftest.py) on tiny inputs: the times mean nothing,
the point is that the benchmark's code (CPU rows, GPU rows, the NL-Bayes row and its anchors' "not
installed" lines) runs on a machine without a GPU.
"""

import importlib.util
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import gpu  # noqa: E402
from nlm.ops import _cuda_device as dev  # noqa: E402


def test_without_a_device_it_says_so_and_exits_0(monkeypatch, capsys):
    monkeypatch.setattr(dev, "_STATUS", (False, "no CUDA GPU or driver was found"))
    assert gpu.main([]) == 0
    out = capsys.readouterr().out
    assert "no CUDA device present (no CUDA GPU or driver was found)" in out
    assert "NL-Bayes 512^2 <= 40 ms" in out and "NOT YET MEASURED" in out


@pytest.mark.skipif(importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed")
def test_smoke_runs_every_row(monkeypatch, capsys):
    ok, why = dev.cuda_status()
    if not ok:
        pytest.skip(f"no GPU backend: {why}")
    from nlm.ops import _cuda_nlm

    monkeypatch.setattr(_cuda_nlm, "BLOCK_SIM", (8, 8))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        assert gpu.main(["--smoke"]) == 0
    finally:
        sys.setswitchinterval(old)
    out = capsys.readouterr().out
    for row in ("nlm cpu", "nlm cuda", "nl-bayes cpu", "nl-bayes cuda", "bm3d-cupy", "bm3d-triton"):
        assert row in out
    # the GPU rows agree with the CPU rows (the simulator: to rounding)
    diffs = [float(line.split("max |gpu - cpu|")[1].split()[0]) for line in out.splitlines() if "max |gpu" in line]
    assert len(diffs) == 3 and max(diffs) < 1e-5
