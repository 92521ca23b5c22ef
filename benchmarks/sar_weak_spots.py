"""SAR gamma speckle off the public set: zero backgrounds (against BM3D-log) and homogeneous-area means.

Run from the repository root::

    python -m benchmarks.sar_weak_spots            # both parts (a few minutes on 2 cores)
    python -m benchmarks.sar_weak_spots --quick    # smoke run (two small images, one seed)
    python -m benchmarks.sar_weak_spots --part zeros|means

Noise: ``y = x s``, ``s ~ Gamma(L, 1/L)`` (unit mean, never clipped;
:class:`nlm.noise.Gamma`), seeded per image and seed.  PSNR (data range 1)
of the output clipped to [0, 1] against the clean image.

**Part 1, zero backgrounds (L = 1, looks given).**  Images with a large
exactly-zero background, as MRI slices and masked scenes have: the T1
coronal slice ``t1_coronal_slice.npy`` shipped with dipy (256 x 256, 79 %
zeros), slice 12 of the first EPI volume of nibabel's ``example4d`` (128 x
96, 59 %), scikit-image's Shepp-Logan phantom resized to 256 x 256 (57 %),
and the camera (halved) inside a disc of radius 90 on zeros (61 %).  Gamma
speckle multiplies, so the background stays exactly zero in ``y``.
Methods: ``denoise_nl_bayes(y, looks=1)``, ``denoise_nl_means(y,
noise=Gamma(1))`` and the anchor **BM3D-log**: ``bm3d.bm3d`` on ``z =
log(max(y, f))`` at the log-gamma noise std ``sqrt(psi_1(L))``, then ``exp(.
- (psi(L) - log L))`` (the mean of ``log s``, so homogeneous areas keep
their mean), and 0 where ``y = 0`` (``y = 0`` exactly where ``x = 0``, which
the anchor may use as the filters do).  ``f = 2^-8 max(y)`` fills the zeros
(and the rare positive values below it) in the log domain, as the public-set
harness (``benchmarks/psnr.py``, ``bm3d-true``) does; filling them with the
smallest positive value instead measured 0.0 to 0.6 dB lower for BM3D on
these images (zeros restored either way), so the anchor takes the stronger.

**Part 2, homogeneous-area means (L = 1, 2, 4).**  Scenes with large
homogeneous areas of different levels (no SAR data ships with the project):
piecewise-constant "cartoons" of scikit-image's astronaut, coffee, chelsea
and camera (Felzenszwalb segments, ``scale=2000, min_size=1500``, of the
grey image, halved when wider than 400, each replaced by its mean, clipped
to [0.02, 1]), used as intensities and squared (amplitude -> intensity: a
wider dynamic range, dark areas beside bright ones), and the camera and moon
themselves (areas of local std below 2 % of the local mean).  Areas: the
segments eroded by 6 pixels, at least 800 pixels.  For every area, the
denoised mean against the noisy mean (the filter's own bias: the error a
SAR user sees against the multilook mean of the area; the noisy mean itself
is off the clean one by about ``1 / sqrt(L N)``) and against the clean mean;
max and mean of the absolute errors over all areas, seeds 0 and 1, and the
fraction above 2 %.

Both parts print the anchors and the errors measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

THREADS = 2


# --------------------------------------------------------------------- images
def _package_file(pkg, *parts):
    import importlib

    try:
        mod = importlib.import_module(pkg)
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(mod.__file__), *parts)
    return path if os.path.exists(path) else None


def t1_slice():
    """dipy's T1 coronal slice (256 x 256), in [0, 1]; None if dipy is absent."""
    path = _package_file("dipy", "data", "files", "t1_coronal_slice.npy")
    if path is None:
        return None
    a = np.load(path).astype(np.float64)
    return (a - a.min()) / (a.max() - a.min())


def epi_slice():
    """Slice 12 of nibabel's ``example4d`` first volume (128 x 96), over its max; None if absent."""
    path = _package_file("nibabel", "tests", "data", "example4d.nii.gz")
    if path is None:
        return None
    import nibabel

    v = np.asarray(nibabel.load(path).dataobj, dtype=np.float64)[..., 12, 0]
    return v / v.max()


def phantom():
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    p = resize(shepp_logan_phantom(), (256, 256), order=1, anti_aliasing=True)
    p[p < 1e-3] = 0.0
    return np.clip(p, 0.0, 1.0)


def camera_disc():
    from skimage import data, img_as_float

    c = img_as_float(data.camera())[::2, ::2]
    yy, xx = np.mgrid[:256, :256]
    return np.where((yy - 128) ** 2 + (xx - 128) ** 2 <= 90**2, c, 0.0)


ZERO_IMAGES = {"t1": t1_slice, "epi": epi_slice, "phantom": phantom, "camera_disc": camera_disc}


def _grey(name):
    from skimage import data, img_as_float
    from skimage.color import rgb2gray

    a = getattr(data, name)()
    return np.asarray(rgb2gray(a) if a.ndim == 3 else img_as_float(a), dtype=np.float64)


def cartoon(name, power=1.0):
    """Felzenszwalb segments of a public image replaced by their means: ``(x, labels)``."""
    from scipy import ndimage
    from skimage.segmentation import felzenszwalb

    g = _grey(name)
    if max(g.shape) > 400:
        g = g[::2, ::2]
    seg = felzenszwalb(g, scale=2000, sigma=0.8, min_size=1500)
    means = ndimage.mean(g, seg, np.arange(seg.max() + 1))
    return np.clip(means[seg] ** power, 0.02, 1.0), seg


def areas(x, seg=None, erode=6, min_area=800):
    """Homogeneous areas (bool masks): the segments, or the areas of local std < 2 % of the local mean."""
    from scipy import ndimage

    if seg is None:
        m = ndimage.uniform_filter(x, 9)
        v = ndimage.uniform_filter(x * x, 9) - m * m
        seg, _ = ndimage.label(np.sqrt(np.maximum(v, 0.0)) < 0.02 * np.maximum(m, 1e-3))
    out = []
    for k in range(seg.max() + 1):
        r = ndimage.binary_erosion(seg == k, iterations=erode)
        if r.sum() >= min_area:
            out.append(r)
    return out


def scenes(quick=False):
    names = ("astronaut", "camera") if quick else ("astronaut", "coffee", "chelsea", "camera")
    out = {}
    for n in names:
        for p in (1, 2):
            x, seg = cartoon(n, p)
            out[f"{n}-cartoon{'^2' if p == 2 else ''}"] = (x, areas(x, seg))
    if not quick:
        for n in ("camera", "moon"):
            x = np.clip(_grey(n), 0.02, 1.0)
            out[n] = (x, areas(x))
    return out


# -------------------------------------------------------------------- methods
def bm3d_log(y, looks):
    """The BM3D-log anchor (module docstring): log, BM3D at sqrt(psi_1(L)), exp, debias, zeros kept."""
    import bm3d
    from scipy.special import digamma, polygamma

    s = float(np.sqrt(polygamma(1, looks)))
    bias = float(digamma(looks) - np.log(looks))
    z = np.log(np.maximum(y, 2.0**-8 * float(y.max())))
    u = np.exp(bm3d.bm3d(z, sigma_psd=s) - bias)
    return np.where(y > 0, u, 0.0)


def nl_bayes(y, looks):
    from nlm import denoise_nl_bayes

    return denoise_nl_bayes(y.astype(np.float32), looks=looks, num_threads=THREADS)


def nl_means(y, looks):
    from nlm import denoise_nl_means
    from nlm.noise import Gamma

    return denoise_nl_means(y.astype(np.float32), noise=Gamma(looks), num_threads=THREADS)


def psnr(clean, out):
    from nlm.metrics import psnr as _psnr

    return _psnr(clean, np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0), data_range=1.0)


def _noisy(x, looks, seed):
    from nlm.noise import Gamma

    return Gamma(looks).sample(x, seed=seed)


# ---------------------------------------------------------------------- parts
def part_zeros(seeds, quick=False):
    try:
        import bm3d  # noqa: F401
    except ImportError:
        print("part 1: bm3d is not installed (pip install -e '.[bench]'); skipped")
        return None
    names = ("epi", "camera_disc") if quick else tuple(ZERO_IMAGES)
    print(f"\n## Part 1: exactly-zero backgrounds, gamma L = 1 given, seeds {list(seeds)} (PSNR dB)\n")
    print("| image | zeros | BM3D-log | NL-Bayes | - BM3D-log | NLM gamma | - BM3D-log | noisy | NL-Bayes at x=0 |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in names:
        x = ZERO_IMAGES[name]()
        if x is None:
            print(f"| {name} | skipped: its package (dipy / nibabel) is not installed |")
            continue
        if quick:
            x = x[::2, ::2]
        r = []
        for seed in seeds:
            y = _noisy(x, 1.0, seed)
            b = nl_bayes(y, 1.0)
            r.append((psnr(x, bm3d_log(y, 1.0)), psnr(x, b), psnr(x, nl_means(y, 1.0)), psnr(x, y),
                      float(np.abs(b[x == 0]).max())))
        a, b, m, n, z = np.mean(r, axis=0)
        z = max(t[4] for t in r)
        rows.append((a, b, m))
        print(f"| {name} | {np.mean(x == 0):.0%} | {a:.2f} | {b:.2f} | {b - a:+.2f} | {m:.2f} | {m - a:+.2f} | "
              f"{n:.2f} | {z:.3g} |")
    if rows:
        a, b, m = np.mean(rows, axis=0)
        worst = min(rb - ra for ra, rb, _ in rows)
        print(f"| mean | | {a:.2f} | {b:.2f} | {b - a:+.2f} | {m:.2f} | {m - a:+.2f} | | |")
        print(f"\nNL-Bayes - BM3D-log: mean {b - a:+.2f} dB, worst image {worst:+.2f} dB")
    return rows


def part_means(seeds, quick=False, looks=(1.0, 2.0, 4.0)):
    sc = scenes(quick)
    if quick:
        sc = {k: (v[0][::2, ::2], [r[::2, ::2] for r in v[1]]) for k, v in sc.items()}
        sc = {k: v for k, v in sc.items() if v[1]}
    n_areas = sum(len(v[1]) for v in sc.values())
    print(f"\n## Part 2: homogeneous-area means, {len(sc)} scenes, {n_areas} areas, seeds {list(seeds)}\n")
    print("|err|: area mean of the output against the noisy area's mean (the filter's bias) and, in brackets, "
          "against the clean one\n")
    print("| L | method | PSNR | max err | mean err | areas > 2 % | signed mean |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for L in looks:
        for key, fn in (("NLM gamma", nl_means), ("NL-Bayes", nl_bayes)):
            ev, ec, ps = [], [], []
            for x, rs in sc.values():
                for seed in seeds:
                    y = _noisy(x, L, seed)
                    u = fn(y, L)
                    ps.append(psnr(x, u))
                    ev += [u[r].mean() / y[r].mean() - 1 for r in rs]
                    ec += [u[r].mean() / x[r].mean() - 1 for r in rs]
            ev, ec = np.array(ev), np.array(ec)
            summary[(L, key)] = (float(np.abs(ev).max()), float(np.mean(ps)))
            print(f"| {L:g} | {key} | {np.mean(ps):.2f} | {np.abs(ev).max():.2%} ({np.abs(ec).max():.2%}) | "
                  f"{np.abs(ev).mean():.2%} ({np.abs(ec).mean():.2%}) | {np.mean(np.abs(ev) > 0.02):.0%} | "
                  f"{ev.mean():+.2%} |")
    return summary


def build_parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks.sar_weak_spots", description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=("zeros", "means", "both"), default="both")
    p.add_argument("--quick", action="store_true", help="smoke run: two small images per part, one seed")
    p.add_argument("--seeds", default=None, help="comma-separated noise seeds (default 0,1,2 / 0,1)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else None
    if args.part in ("zeros", "both"):
        part_zeros(seeds or ((0,) if args.quick else (0, 1, 2)), args.quick)
    if args.part in ("means", "both"):
        part_means(seeds or ((0,) if args.quick else (0, 1)), args.quick, (1.0,) if args.quick else (1.0, 2.0, 4.0))
    print(f"\n{time.perf_counter() - t0:.0f} s, {THREADS} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
