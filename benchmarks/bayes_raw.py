"""NL-Bayes on raw 8-bit and 16-bit photos against the same photos as float in [0, 1].

Run from the repository root::

    python -m benchmarks.bayes_raw                        # Set12, sigma 15 / 25 / 50 of 255
    python -m benchmarks.bayes_raw --set BSD68 --limit 12 --sigmas 25

Every image of the set (``../shared/data/<set>``, or ``--data DIR``) gets
Gaussian noise of sigma / 255 (``numpy.random.default_rng(i)`` for image
``i``) clipped to [0, 1], as an 8-bit camera does; the noisy image is stored
as uint8 (rounded ``y * 255``) and as uint16 (rounded ``y * 65535``).  Each is
denoised blind three ways by ``denoise_nl_bayes``: as float in [0, 1]
(``raw / 255`` or ``raw / 65535``) and raw with ``preserve_range=True`` (the
path of the command line, which works on the stored values).  Printed: mean
PSNR per path (against the clean image, output scaled to [0, 1] and clipped)
and the largest difference between a raw path and its float path, against
the issue-18 bar of 0.05 dB.  Before issue 18 the raw paths wrote almost black
images (clipping modelled at [0, 1] of 0..255 values).
"""

import argparse
import glob
import os
import time

import numpy as np

from benchmarks import shared_data


def _images(folder, limit):
    import imageio.v3 as iio

    paths = sorted(glob.glob(os.path.join(folder, "*.png")))[:limit]
    if not paths:
        raise SystemExit(f"no PNG images in {folder}")
    for p in paths:
        img = iio.imread(p)
        if img.ndim == 3:
            img = img[..., 0]
        yield os.path.basename(p), img.astype(np.float64) / 255.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="Set12")
    ap.add_argument("--data", default=None, help="folder of PNG images (default ../shared/data/<set>)")
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--limit", type=int, default=68)
    args = ap.parse_args(argv)
    folder = args.data or shared_data(args.set)
    from nlm import denoise_nl_bayes
    from nlm.metrics import psnr

    sigmas = [float(s) for s in args.sigmas.split(",")]
    worst = 0.0
    print(f"{'sigma':>6} {'images':>6} {'float':>8} {'uint8 raw':>10} {'d8':>7} {'uint16 raw':>11} {'d16':>7}  s")
    for s in sigmas:
        rows = []
        t0 = time.perf_counter()
        for i, (_name, clean) in enumerate(_images(folder, args.limit)):
            rng = np.random.default_rng(i)
            y = np.clip(clean + rng.normal(0.0, s / 255.0, clean.shape), 0.0, 1.0)
            r = []
            for top, dtype in ((255, np.uint8), (65535, np.uint16)):
                raw = np.round(y * top).astype(dtype)
                ref = denoise_nl_bayes(raw / float(top))
                out = denoise_nl_bayes(raw, preserve_range=True) / float(top)
                r += [psnr(clean, np.clip(ref, 0, 1)), psnr(clean, np.clip(out, 0, 1))]
            rows.append(r)
        a = np.array(rows)
        d8 = np.abs(a[:, 1] - a[:, 0]).max()
        d16 = np.abs(a[:, 3] - a[:, 2]).max()
        worst = max(worst, d8, d16)
        print(f"{s:6.0f} {len(a):6d} {a[:, 0].mean():8.2f} {a[:, 1].mean():10.2f} {d8:7.3f} {a[:, 3].mean():11.2f} "
              f"{d16:7.3f}  {time.perf_counter() - t0:.0f}")
    print("(float: the uint8 image as float in [0, 1]; d8/d16: largest |raw - float| per image, dB)")
    print(f"bar: raw 8/16-bit within 0.05 dB of the float path on every image: "
          f"{'met' if worst < 0.05 else 'NOT met'} (worst {worst:.3f} dB)")


if __name__ == "__main__":
    main()
