"""Peak memory of the in-memory path, measured (VmHWM) in a fresh subprocess."""

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
import numpy as np
from nlm import denoise_nl_means, estimate_sigma

def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024

denoise_nl_means(np.random.default_rng(0).random((64, 64), dtype=np.float32), h=0.1)  # compile / load
img = np.random.default_rng(1).random((4000, 4000), dtype=np.float32)
img += 0  # touch every page
base = hwm()
if sys.argv[1] == 'sigma':
    estimate_sigma(img)
else:
    denoise_nl_means(img, patch_size=5, patch_distance=5, h=0.1, sigma=0.1)
print(json.dumps((hwm() - base) / img.nbytes))
"""


def _extra(what):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, what], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_estimate_sigma_makes_no_float64_copy():
    # a float64 copy alone would be 2x the float32 image; here: the |d| buffer
    # (0.5x), the finiteness mask (0.25x) and a few MB of slabs
    assert _extra("sigma") < 1.25


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_filter_peak_memory():
    # padded copy (1x) + numerators and denominators (2x) + band overflow rows
    assert _extra("filter") < 3.5


@pytest.mark.parametrize("shape", [(1,), (2,), (7,), (1, 5), (5, 1), (37, 53), (4, 5, 6), (17, 3, 9)])
def test_slabs_do_not_change_the_estimate(shape):
    import numpy as np

    from nlm.noise.estimate import _detail_abs, _dwt_detail

    a = np.random.default_rng(len(shape)).normal(size=shape).astype(np.float32)
    whole = np.asarray(a, dtype=np.float64)
    for axis in range(whole.ndim):
        whole = _dwt_detail(whole, axis)
    whole = np.abs(whole[whole != 0])
    for block_bytes in (1, 64, 1 << 22):
        got = _detail_abs(a, block_bytes=block_bytes)
        assert np.array_equal(got, whole)
