"""Tiled NL-Bayes (a dask array) against the in-memory call: time, and the result bit for bit.

Run from the repository root::

    python -m benchmarks.bayes_tiled                  # 2048^2 Set12 mosaic, sigma 25, 2 threads
    python -m benchmarks.bayes_tiled --chunks 512,1024 --repeat 3 --sigma 50

The image is a mosaic of the Set12 images (``../shared/data/Set12``, 256 x 256
crops, cycled) of ``--size`` pixels a side, float32, with Gaussian noise of
``--sigma`` / 255 (``numpy.random.default_rng(0)``); sigma is given to both
runs.  In one process, with ``--threads`` Numba threads: ``denoise_nl_bayes``
on the NumPy array (``num_threads`` = all of them), then on the same image as
a dask array of each chunk size (dask's threaded scheduler with as many
workers; the library merges or splits chunks into working blocks within its
budget and picks the kernel threads per block).  After a warm-up, ``--repeat``
interleaved rounds (the order rotated each round); time: the median wall
time, and the process CPU time.  Printed per chunk size: the blocks, the
margins, the time against the in-memory one measured in the same run, and
the largest difference from the in-memory result (0: bit-identical).
"""

import argparse
import glob
import os
import statistics
import sys
import time

import numpy as np

from benchmarks import shared_data


def mosaic(size, folder):
    import imageio.v3 as iio

    tiles = []
    for p in sorted(glob.glob(os.path.join(folder, "*.png"))):
        img = iio.imread(p)
        img = img[..., 0] if img.ndim == 3 else img
        tiles.append(img[:256, :256].astype(np.float32) / 255.0)
    if not tiles:
        raise SystemExit(f"no PNG images in {folder}")
    n = -(-size // 256)
    rows = [np.concatenate([tiles[(i * n + j) % len(tiles)] for j in range(n)], axis=1) for i in range(n)]
    return np.concatenate(rows, axis=0)[:size, :size]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--sigma", type=float, default=25.0, help="noise std on the 0..255 scale")
    ap.add_argument("--chunks", default="1024,2048", help="dask chunk sides, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--data", default=shared_data("Set12"))
    args = ap.parse_args(argv)
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import dask
    import dask.array as da

    import nlm
    from nlm import tiling
    from nlm.denoisers import bayes_passes, bayes_setup
    from nlm.metrics import psnr

    clean = mosaic(args.size, args.data)
    sigma = args.sigma / 255.0
    noisy = (clean + np.random.default_rng(0).normal(0, sigma, clean.shape)).astype(np.float32)
    chunks = [int(c) for c in args.chunks.split(",") if c]

    def in_memory():
        return nlm.denoise_nl_bayes(noisy, sigma=sigma, num_threads=args.threads)

    def tiled(c):
        lazy = nlm.denoise_nl_bayes(da.from_array(noisy, chunks=c), sigma=sigma)
        with dask.config.set(scheduler="threads", num_workers=args.threads):
            return lazy.compute(), lazy.numblocks

    nlm.denoise_nl_bayes(noisy[:96, :96], sigma=sigma)  # compile / load the kernels
    runs = [("in memory", None)] + [(f"chunks {c}", c) for c in chunks]
    wall = {name: [] for name, _ in runs}
    cpu = {name: [] for name, _ in runs}
    results, blocks = {}, {}
    for r in range(args.repeat):
        for name, c in runs[r % len(runs):] + runs[: r % len(runs)]:
            t0, c0 = time.perf_counter(), time.process_time()
            if c is None:
                out = in_memory()
            else:
                out, blocks[name] = tiled(c)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            results[name] = out
    ref = results["in memory"]
    prm = bayes_setup._parameters(noisy[None], noisy.dtype, "gaussian", sigma, None, False, None, None, None, None)
    margins = bayes_passes.tile_margin(prm)
    base = statistics.median(wall["in memory"])
    print(f"NL-Bayes {args.size}x{args.size} float32, sigma {args.sigma:g}, {args.threads} threads, "
          f"{args.repeat} rounds; margins {margins[0]} rows / {margins[1]} columns per side "
          f"(radius {prm['radius']}, later passes {prm['radius2']}/{prm['radius3']}, "
          f"patches {prm['p1']}/{prm['p2']}, {prm['passes']} passes); "
          f"PSNR {psnr(clean, ref, data_range=1.0):.2f} dB")
    print(f"{'run':>12} {'blocks':>8} {'wall s':>8} {'cpu s':>8} {'x in-memory':>12} {'max |diff|':>11}")
    worst = 0.0
    for name, _c in runs:
        w, t = statistics.median(wall[name]), statistics.median(cpu[name])
        diff = float(np.abs(results[name].astype(np.float64) - ref).max())
        worst = max(worst, diff)
        nb = "x".join(str(b) for b in blocks.get(name, (1, 1)))
        print(f"{name:>12} {nb:>8} {w:8.2f} {t:8.2f} {w / base:12.2f} {diff:11.3g}")
    print(f"(working blocks: nlm.tiling budget of {tiling.bayes._BAYES_WORK_PIXELS} values, whole rows when they fit)")
    print(f"bar: tiles bit-identical to the in-memory result: {'met' if worst == 0 else 'NOT met'}")


if __name__ == "__main__":
    main()
