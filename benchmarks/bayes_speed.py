"""NL-Bayes speed and memory against ``bm3d.bm3d`` on a 512x512 grey image.

Run from the repository root::

    python -m benchmarks.bayes_speed            # camera 512x512, Gaussian sigma 25/255
    python -m benchmarks.bayes_speed --repeat 5

Both methods denoise the same float image (sigma known for both: BM3D's
``sigma_psd`` and NL-Bayes' ``sigma``; plus NL-Bayes fully blind) in this
process, one after the other, after a warm-up call (Numba compiled or loaded
from its cache).  Wall time: the median of ``--repeat`` calls (BM3D: of
``--bm3d-repeat`` calls); the speed-up is measured in the same run.  Peak
memory of NL-Bayes is measured in a fresh subprocess as the growth of the
resident set size (``VmRSS``, sampled every millisecond by a thread while the
call runs) over its value just before the call, divided by the size of the
float32 input (Linux only).  Prints one summary line and the issue's bars (met or not).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SIGMA = 25 / 255

_MEMORY_PROBE = r"""
import json, threading, time
import numpy as np
from skimage import data, img_as_float
from nlm import denoise_nl_bayes
from nlm.noise import Gaussian
clean = img_as_float(data.camera()).astype(np.float32)
y = Gaussian(SIGMA).sample(clean, seed=0)
denoise_nl_bayes(y[:48, :48], sigma=SIGMA)
def rss_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
base = rss_kib()
peak = [base]
done = threading.Event()
def poll():  # the kernels release the GIL, so this samples during the call
    while not done.is_set():
        peak[0] = max(peak[0], rss_kib())
        time.sleep(0.001)
t = threading.Thread(target=poll)
t.start()
out = denoise_nl_bayes(y, sigma=SIGMA)
done.set()
t.join()
peak[0] = max(peak[0], rss_kib())
print(json.dumps(dict(base_kib=base, peak_kib=peak[0], input_bytes=int(y.nbytes))))
""".replace("SIGMA", repr(SIGMA))


def _median_time(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def memory_ratio():
    """Peak RSS growth of one 512x512 NL-Bayes call / float32 input bytes (fresh process)."""
    res = subprocess.run([sys.executable, "-c", _MEMORY_PROBE], capture_output=True, text=True, check=True)
    info = json.loads(res.stdout.strip().splitlines()[-1])
    grow = max(info["peak_kib"] - max(info["base_kib"], 0), 0) * 1024
    return grow / info["input_bytes"], info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="NL-Bayes calls timed (median), default 3")
    p.add_argument("--bm3d-repeat", type=int, default=1, help="bm3d.bm3d calls timed (median), default 1")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probe")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.bm3d_repeat < 1:
        p.error("--repeat and --bm3d-repeat must be >= 1")

    from skimage import data, img_as_float

    from nlm import denoise_nl_bayes
    from nlm.metrics import psnr
    from nlm.noise import Gaussian

    clean = img_as_float(data.camera())
    y = Gaussian(SIGMA).sample(clean, seed=0)
    y32 = y.astype(np.float32)
    denoise_nl_bayes(y32[:48, :48], sigma=SIGMA)  # compile / load the cache
    t_known, o_known = _median_time(lambda: denoise_nl_bayes(y32, sigma=SIGMA), args.repeat)
    t_blind, o_blind = _median_time(lambda: denoise_nl_bayes(y32), args.repeat)
    try:
        import bm3d
    except ImportError:
        bm3d = None
    if bm3d is not None:
        t_bm3d, o_bm3d = _median_time(lambda: bm3d.bm3d(y, sigma_psd=SIGMA), args.bm3d_repeat)
        p_bm3d = psnr(clean, np.clip(o_bm3d, 0, 1))
    else:
        t_bm3d, p_bm3d = float("nan"), float("nan")
    ratio, info = (float("nan"), {}) if args.no_memory else memory_ratio()
    threads = os.environ.get("NUMBA_NUM_THREADS") or str(os.cpu_count())
    p_known = psnr(clean, np.clip(o_known, 0, 1))
    p_blind = psnr(clean, np.clip(o_blind, 0, 1))
    print(
        f"512x512 grey camera, Gaussian sigma 25/255, {threads} threads: "
        f"NL-Bayes {t_known:.2f} s ({p_known:.2f} dB; blind {t_blind:.2f} s, {p_blind:.2f} dB), "
        f"bm3d.bm3d {t_bm3d:.2f} s ({p_bm3d:.2f} dB): {t_bm3d / t_known:.1f}x faster "
        f"(blind {t_bm3d / t_blind:.1f}x); peak memory {ratio:.1f}x the float32 input"
    )
    speed_ok = t_bm3d / t_known >= 10
    mem_ok = ratio <= 10
    print(f"bar: >= 10x faster than bm3d.bm3d: {'met' if speed_ok else 'NOT met'}")
    print(f"bar: peak memory <= 10x the float32 input: {'met' if mem_ok else 'NOT met' if ratio == ratio else 'n/a'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
