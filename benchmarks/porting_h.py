"""The effect of porting ``h`` from scikit-image's fast mode to nlm.

scikit-image's fast mode sums squared differences over ``(p - 1)^D`` patch
pixels but divides by ``p^D``, so its exponent is ``c (d^2 - 2 sigma^2) / h^2``
with ``c = ((p - 1) / p)^D`` and ``d^2`` the mean over those pixels; nlm's is
``(d^2 - 2 sigma^2) / h^2`` over ``p^D`` pixels.  The same weights therefore
need ``h_nlm = h_skimage * (p / (p - 1))^(D / 2)`` (``sigma`` unchanged).

This script measures PSNR against the clean image for camera (grey, [0, 1])
with Gaussian noise, scikit-image's fast mode at ``h = f sigma`` (its
docstring's suggestion is ``f = 0.8``; 0.6 and 1.0 around it), and nlm at the
same ``h`` and at the converted ``h``; plus the PSNR of nlm's results against
scikit-image's (how close the outputs are: higher is closer).

    python -m benchmarks.porting_h            # about a minute on 2 cores
"""

import argparse

import numpy as np


def conversion(patch_size, ndim):
    """Factor that turns a scikit-image fast-mode ``h`` into nlm's."""
    return (patch_size / (patch_size - 1)) ** (ndim / 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", default="0.05,0.1,0.2", help="noise standard deviations (of [0, 1])")
    parser.add_argument("--factors", default="0.6,0.8,1.0", help="h = factor * sigma for scikit-image")
    parser.add_argument("--patch-size", type=int, default=7)
    parser.add_argument("--patch-distance", type=int, default=11)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from skimage import data, img_as_float
    from skimage.metrics import peak_signal_noise_ratio as psnr
    from skimage.restoration import denoise_nl_means as sk_nlm

    from nlm import denoise_nl_means

    p, d = args.patch_size, args.patch_distance
    k = conversion(p, 2)
    clean = img_as_float(data.camera())
    rng = np.random.default_rng(args.seed)
    print(f"camera 512x512, float64, patch {p}, distance {d}; conversion h_nlm = {k:.4f} h_skimage")
    print(
        "| noise sigma | h / sigma (skimage) | noisy | skimage fast | nlm, same h | nlm, converted h"
        " | nlm (same h) vs skimage | nlm (converted) vs skimage |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in [float(v) for v in args.sigmas.split(",")]:
        noisy = clean + rng.normal(0, s, clean.shape)
        for f in [float(v) for v in args.factors.split(",")]:
            h = f * s
            ref = sk_nlm(noisy, p, d, h, True, s)
            same = denoise_nl_means(noisy, p, d, h, True, s)
            conv = denoise_nl_means(noisy, p, d, k * h, True, s)
            row = [psnr(clean, noisy, data_range=1), psnr(clean, ref, data_range=1),
                   psnr(clean, same, data_range=1), psnr(clean, conv, data_range=1),
                   psnr(ref, same, data_range=1), psnr(ref, conv, data_range=1)]
            print(f"| {s} | {f} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
