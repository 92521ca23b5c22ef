"""Rician (magnitude MRI) noise: nlm's NLM and NL-Bayes against dipy's ``nlmeans(rician=True)``.

Run from the repository root (needs the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python -m benchmarks.rician                    # sigma 3 / 5 / 6 / 10 / 12 % of the range
    python -m benchmarks.rician --levels 5,10 --seeds 3

The volume is a real MRI volume that dipy ships in its wheel (``aniso_vox``,
58x58x24, anisotropic 4x4x5 mm voxels, values 0..2149; read with nibabel):
no download, and the benchmark says so and stops when dipy or nibabel is
missing.  It is a magnitude image with its own (weak) noise, taken as the
reference.  Rician noise of ``sigma`` = the given percentages of its range is
added (``nlm.noise.Rician(sigma).sample(clean, seed)``, seeds 0, 1, ...).

Methods, each timed:

* ``dipy``: ``dipy.denoise.nlmeans.nlmeans(noisy, sigma, patch_radius=1,
  block_radius=5, rician=True)`` at the TRUE sigma (the anchor);
* ``nlm NLM true`` / ``blind``: ``denoise_nl_means(noisy, patch_size=3,
  patch_distance=5, noise=...)`` in 3-D (dipy's patch and window), with
  ``Rician(sigma)`` or ``"rician"`` (sigma estimated from the volume);
* ``nlm Bayes true`` / ``blind``: ``denoise_nl_bayes`` on the 24 axial 2-D
  slices (3-D NL-Bayes is not there yet), with ``Rician(sigma)`` or the
  model estimated once from the whole volume (``estimate_noise(noisy,
  "rician")``, blind).

Printed per level (mean over the seeds): PSNR (data range: the reference's
range), the difference to dipy in the same run, the mean bias in
homogeneous tissue (reference voxels whose 3x3x3 neighbourhood has a std
below 20 % of its mean, and a mean above 2 % of the range: the volume has
its own noise and texture, so no stricter region is large enough; they lie
at 7 to 14 % of the range, SNR 0.6 to 4.6 at these levels): ``mean(out -
ref) / mean(ref)`` over them; the mean offset in the air (reference below 2
% of the range, eroded twice) in units of ``sigma`` (the Rician bias of the
noisy magnitude there is about ``1.25 sigma``); the estimated sigma (blind
rows) and the time.
"""

import argparse
import time

import numpy as np


def _volume():
    try:
        import nibabel as nib
        from dipy.data import get_fnames
    except ImportError as exc:
        raise SystemExit(f"benchmarks.rician needs dipy and nibabel (pip install -e '.[bench]'): {exc}") from None
    try:
        path = get_fnames(name="aniso_vox")
    except TypeError:  # older dipy: positional name
        path = get_fnames("aniso_vox")
    return np.asarray(nib.load(path).get_fdata(), dtype=np.float64)


def _masks(clean, rng):
    """Homogeneous tissue (3x3x3 std below 20 % of the local mean, mean above 2 % of the range) and the air."""
    from scipy.ndimage import binary_erosion, uniform_filter

    m = uniform_filter(clean, 3)
    sd = np.sqrt(np.maximum(uniform_filter(clean * clean, 3) - m * m, 0.0))
    return (sd < 0.2 * m) & (m > 0.02 * rng), binary_erosion(clean < 0.02 * rng, iterations=2)


def _bias(out, clean, mask):
    if not mask.any():
        return float("nan")
    return float(np.mean(out[mask] - clean[mask]) / np.mean(clean[mask]))


def _bayes_slices(noisy, model):
    from nlm import denoise_nl_bayes

    return np.stack([denoise_nl_bayes(noisy[:, :, k], noise=model) for k in range(noisy.shape[2])], axis=2)


def _run(method, noisy, sigma):
    """One method on one noisy volume (``sigma``: the true one, for the methods that are given it)."""
    from dipy.denoise.nlmeans import nlmeans

    from nlm import denoise_nl_means
    from nlm.noise import Rician, estimate_noise

    if method == "noisy":
        return noisy
    if method == "dipy true":
        return nlmeans(noisy, sigma, patch_radius=1, block_radius=5, rician=True)
    if method.startswith("nlm NLM"):
        return denoise_nl_means(noisy, patch_size=3, patch_distance=5,
                                noise=Rician(sigma) if method.endswith("true") else "rician")
    model = Rician(sigma) if method.endswith("true") else estimate_noise(noisy, "rician")
    return _bayes_slices(noisy, model)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="3,5,6,10,12", help="noise sigma in percent of the range")
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args(argv)
    clean = _volume()
    from dipy.denoise.nlmeans import nlmeans

    from nlm import denoise_nl_bayes, denoise_nl_means
    from nlm.metrics import psnr
    from nlm.noise import Rician, estimate_noise

    rng = float(clean.max() - clean.min())
    homog, air = _masks(clean, rng)
    print(f"volume aniso_vox {clean.shape}, range {rng:g}, homogeneous tissue voxels {int(homog.sum())} "
          f"(reference {np.percentile(clean[homog], 5):.0f}..{np.percentile(clean[homog], 95):.0f}), "
          f"air voxels {int(air.sum())}")

    # compile everything once, outside the timings
    warm = Rician(0.05 * rng).sample(clean[:20, :20, :8], seed=99)
    denoise_nl_means(warm, patch_size=3, patch_distance=5, noise=Rician(0.05 * rng))
    denoise_nl_bayes(warm[:, :, 0], noise=Rician(0.05 * rng))
    nlmeans(warm, 0.05 * rng, patch_radius=1, block_radius=5, rician=True)

    methods = ["noisy", "dipy true", "nlm NLM true", "nlm NLM blind", "nlm Bayes true", "nlm Bayes blind"]
    print(f"{'sigma':>6} {'method':<16} {'PSNR':>7} {'vs dipy':>8} {'bias':>7} {'air/sigma':>9} {'sigma est':>10} "
          f"{'time s':>7}")
    for level in (float(v) for v in args.levels.split(",")):
        sigma = level / 100.0 * rng
        acc = {m: [] for m in methods}
        for seed in range(args.seeds):
            noisy = Rician(sigma).sample(clean, seed=seed)
            est = estimate_noise(noisy, "rician")
            for m in methods:
                t = time.perf_counter()
                out = np.asarray(_run(m, noisy, sigma), dtype=np.float64)
                dt = time.perf_counter() - t
                acc[m].append((psnr(clean, out, data_range=rng), _bias(out, clean, homog),
                               float(np.mean(out[air] - clean[air])) / sigma,
                               est.sigma if "blind" in m else float("nan"), dt))
        ref = np.mean([r[0] for r in acc["dipy true"]])
        for m in methods:
            p, b, bl, s, dt = np.mean(np.array(acc[m]), axis=0)
            est = f"{s / rng * 100:9.2f}%" if np.isfinite(s) else f"{'':>10}"
            print(f"{level:5.0f}% {m:<16} {p:7.2f} {p - ref:+8.2f} {b * 100:+6.2f}% {bl:+9.3f} {est} {dt:7.2f}")


if __name__ == "__main__":
    main()
