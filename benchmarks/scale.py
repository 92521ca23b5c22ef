"""Scaling benchmark: tiled (dask) vs untiled time and memory, and the out-of-core command line.

    python benchmarks/scale.py                      # 4096^2 tiled vs untiled, then 20000^2 out of core
    python benchmarks/scale.py --big 0              # only the 4096^2 part
    python benchmarks/scale.py --big 40000 --size 0 # only a 40000^2 out-of-core run

Part 1: a 4096^2 float32 image filtered in memory (``denoise_nl_means`` on the
NumPy array, all Numba threads) and as a dask array of several chunk sizes
(dask's threaded scheduler, one kernel thread per tile).  Each configuration
runs in a fresh subprocess (the kernels are loaded from Numba's cache first);
its time is the median of ``--repeat`` runs and its memory the peak RSS
(VmHWM) above the process's RSS once the image is loaded, as a multiple of
the float32 image.  Ratios are against the untiled run of the same
invocation, so a shared or busy machine affects both sides alike.

Part 2: a ``--big``^2 uint8 noisy TIFF (made in blocks, deleted afterwards
unless ``--keep``) through ``nlm denoise IN OUT --h 12 --sigma 20`` with the
default memory limit, i.e. out of core.  Prints the wall time and the
command's peak RSS (``ru_maxrss`` of the child), then checks the output on
three 1024^2 crops (corner, centre, far edge) against the in-memory filter of
the crop plus its halo.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np
import nlm

def rss(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

size, chunk, repeat = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
nlm.denoise_nl_means(np.random.default_rng(0).random((64, 64), dtype=np.float32), h=0.1)  # load kernels
rng = np.random.default_rng(1)
y, x = np.mgrid[0:size, 0:size]
img = (((np.sin(x / 40.0) * np.cos(y / 60.0)) > 0) * 0.5 + 0.25).astype(np.float32)
img += rng.normal(0, 0.08, img.shape).astype(np.float32)
del x, y
kw = dict(patch_size=7, patch_distance=11, h=0.05, sigma=0.08)
if chunk:
    import dask
    import dask.array as da
    dask.config.set(scheduler="threads")
    run = lambda: nlm.denoise_nl_means(da.from_array(img, chunks=chunk), **kw).compute()
    run()  # warm the scheduler
else:
    run = lambda: nlm.denoise_nl_means(img, **kw)
base = rss('VmRSS')
times = []
for _ in range(repeat):
    t = time.perf_counter(); out = run(); times.append(time.perf_counter() - t); del out
print(json.dumps(dict(time=float(np.median(times)), times=times, peak=(rss('VmHWM') - base) / img.nbytes)))
"""


def part_tiles(size, chunks, repeat):
    print(f"== {size}x{size} float32, patch 7, distance 11, {os.cpu_count()} CPUs, median of {repeat} ==")
    print(f"{'configuration':<26}{'time s':>9}{'vs untiled':>12}{'peak / image':>14}")
    base = None
    for chunk in [0, *chunks]:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(size), str(chunk), str(repeat)],
            capture_output=True, text=True, cwd=ROOT,
        )
        if proc.returncode:
            print(proc.stderr)
            raise SystemExit(1)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        base = base or r["time"]
        name = "untiled (NumPy)" if not chunk else f"dask, chunks {chunk}"
        print(f"{name:<26}{r['time']:>9.2f}{r['time'] / base:>11.2f}x{r['peak']:>13.2f}x")
    print("target: tiled within 1.2x of untiled")


def make_big(n, path):
    import tifffile

    out = tifffile.memmap(path, shape=(n, n), dtype=np.uint8, photometric="minisblack")
    x = np.arange(n)[None, :]
    for y0 in range(0, n, 1000):
        y = np.arange(y0, min(n, y0 + 1000))[:, None]
        rng = np.random.default_rng(y0)
        clean = ((np.sin(x / 50.0) * np.cos(y / 70.0)) > 0) * 120.0 + 60
        out[y0 : y0 + len(y)] = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    out.flush()
    del out


def check_crops(src, dst, n, h, sigma, crop=1024, patch=7, distance=11):
    import tifffile
    import zarr

    from nlm import denoise_nl_means
    from nlm.io import from_float, to_float

    halo = distance + patch // 2
    inp = zarr.open(tifffile.imread(src, aszarr=True), mode="r")
    with tifffile.TiffFile(dst) as tif:
        out = zarr.open(tif.series[0].aszarr(), mode="r")
        worst, differing, total = 0, 0, 0
        for y0, x0 in [(0, 0), (n // 2 - crop // 2, n // 2 - crop // 2), (n - crop, n - crop)]:
            a0, a1 = max(0, y0 - halo), min(n, y0 + crop + halo)
            b0, b1 = max(0, x0 - halo), min(n, x0 + crop + halo)
            block = to_float(np.asarray(inp[a0:a1, b0:b1]))
            ref = denoise_nl_means(block, patch, distance, h=h, sigma=sigma, preserve_range=True)
            ref = from_float(ref[y0 - a0 : y0 - a0 + crop, x0 - b0 : x0 - b0 + crop], np.uint8)
            got = np.asarray(out[y0 : y0 + crop, x0 : x0 + crop])
            d = np.abs(got.astype(int) - ref)
            worst, differing, total = max(worst, int(d.max())), differing + int((d > 0).sum()), total + d.size
    return worst, differing / total


def part_big(n, keep, workdir):
    free = os.statvfs(workdir)
    need = 2 * n * n + (1 << 30)
    if free.f_bavail * free.f_frsize < need:
        print(f"== {n}x{n}: skipped, needs {need / 2**30:.1f} GiB free in {workdir} ==")
        return
    src, dst = Path(workdir) / f"scale_{n}.tif", Path(workdir) / f"scale_{n}_dn.tif"
    try:
        t = time.perf_counter()
        make_big(n, src)
        print(f"== {n}x{n} uint8 TIFF ({src.stat().st_size / 2**20:.0f} MiB, made in {time.perf_counter() - t:.0f} s) ==")
        if dst.exists():
            dst.unlink()
        cmd = [sys.executable, "-m", "nlm", "denoise", str(src), str(dst), "--h", "12", "--sigma", "20", "-q"]
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if proc.returncode:
            print(proc.stdout, proc.stderr)
            raise SystemExit(1)
        print(f"nlm denoise --h 12 --sigma 20 (default --memory-limit): {wall:.1f} s, "
              f"peak RSS {peak / 2**30:.2f} GiB (target < 1.5 GiB), output {dst.stat().st_size / 2**20:.0f} MiB")
        worst, frac = check_crops(src, dst, n, 12.0, 20.0)
        print(f"3 crops of 1024^2 vs in-memory filter of crop + halo: max |diff| {worst} grey level(s), "
              f"{frac * 100:.4f} % of pixels differ (float32 rounding at .5)")
    finally:
        if not keep:
            for p in (src, dst):
                if p.exists():
                    p.unlink()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=4096, help="side of the tiled/untiled image (0: skip)")
    ap.add_argument("--chunks", default="512,1024,2048", help="chunk sides to try")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big", type=int, default=20000, help="side of the out-of-core image (0: skip)")
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    ap.add_argument("--keep", action="store_true", help="keep the big input and output")
    args = ap.parse_args(argv)
    print("note: timings on a shared machine are noisy; compare the ratios, not the seconds")
    if args.size:
        part_tiles(args.size, [int(c) for c in args.chunks.split(",") if c], args.repeat)
    if args.big:
        part_big(args.big, args.keep, args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
