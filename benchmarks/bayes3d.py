"""NL-Bayes on volumes against BM4D and nlm's 3-D NLM, on public MRI volumes.

Run from the repository root (needs the ``bench`` extra: ``bm4d``, ``dipy``,
``nibabel``)::

    python -m benchmarks.bayes3d                  # sigma 3 / 6 / 12 % of the range
    python -m benchmarks.bayes3d --sigmas 2 5 10  # the issue's levels
    python -m benchmarks.bayes3d --set tuning     # the volumes the 3-D table was tuned on
    python -m benchmarks.bayes3d --speed          # + time on a 64x128x128 float32 volume

The volumes are real public data that ship inside two PyPI packages (nothing
is downloaded at run time and nothing is stored in this repository): from
``dipy`` (``dipy/data/files``) the T1 MRI ``aniso_vox`` (58x58x24, 4x4x5 mm)
and the diffusion b0 volume ``S0_10slices`` (128x128x10) and
``test_piesno`` (96x96x14); from ``nibabel`` (``nibabel/tests/data``) the
first EPI volume of ``example4d`` (128x96x24) and the T1 ``anatomical``
(33x41x25), and ``ascm_out_test`` (``ascm_out``: ``aniso_vox`` after dipy's
ASCM denoising, a smoother "clean" volume of the same head).  The 3-D
parameter table (:func:`nlm.denoisers.bayes.volume_parameters`)
was tuned on the *tuning* set (``S0_10slices``, ``test_piesno``,
``example4d``); the *held-out* set (``aniso_vox``, ``anatomical``, ``ascm_out``) was not
looked at while tuning and is the default.  A missing package skips its
volumes with a message.

Protocol: each volume is scaled to [0, 1] (min / max) and taken as clean;
``y = x + N(0, s^2)`` with ``s`` = the given percent of the range, unclipped,
one seeded draw per volume and level; PSNR (range 1) of the output clipped to
[0, 1].  BM4D (``bm4d.bm4d(y, s)``) gets the true ``s``; nlm's NL-Bayes and
3-D NLM (``denoise_nl_means``, ``sigma`` estimated and ``h`` from it) are
blind.  All three run in this process with 2 threads (BM4D's own threading
is what it is: it is a compiled library that uses its own threads), after a
warm-up call; times are wall-clock of one call.  The anchor (BM4D) is
measured in the same run; the difference is printed per volume and level and
on the mean.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

THREADS = 2

#: name -> (package, path inside it, index of the volume in a 4-D file or None)
VOLUMES = {
    "aniso_vox": ("dipy", "data/files/aniso_vox.nii.gz", None),
    "anatomical": ("nibabel", "tests/data/anatomical.nii", None),
    "ascm_out": ("dipy", "data/files/ascm_out_test.nii.gz", None),
    "S0_10slices": ("dipy", "data/files/S0_10slices.nii.gz", 0),
    "test_piesno": ("dipy", "data/files/test_piesno.nii.gz", None),
    "example4d": ("nibabel", "tests/data/example4d.nii.gz", 0),
}
SETS = {"heldout": ["aniso_vox", "anatomical", "ascm_out"], "tuning": ["S0_10slices", "test_piesno", "example4d"]}


def load(name):
    """The volume ``name`` as float64 in [0, 1], slices first ``(z, y, x)``; None (and a message) if absent."""
    pkg, rel, index = VOLUMES[name]
    try:
        import importlib

        import nibabel

        mod = importlib.import_module(pkg)
    except ImportError as exc:
        print(f"skipping {name}: {exc} (pip install -e '.[bench]')", file=sys.stderr)
        return None
    path = os.path.join(os.path.dirname(mod.__file__), *rel.split("/"))
    if not os.path.exists(path):
        print(f"skipping {name}: {path} is not in this {pkg} installation", file=sys.stderr)
        return None
    v = np.asarray(nibabel.load(path).dataobj, dtype=np.float64)
    if index is not None:
        v = v[..., index]
    v = np.ascontiguousarray(np.moveaxis(v, 2, 0))
    return (v - v.min()) / (v.max() - v.min())


def noisy(clean, pct, seed):
    rng = np.random.default_rng(seed)
    return clean + pct / 100 * rng.standard_normal(clean.shape)


def psnr(clean, out):
    from nlm.metrics import psnr as _psnr

    return _psnr(clean, np.clip(out, 0.0, 1.0), data_range=1.0)


def run_bayes(y, **kw):
    from nlm import denoise_nl_bayes

    return denoise_nl_bayes(y, num_threads=THREADS, **kw)


def run_nlm(y):
    from nlm import denoise_nl_means

    return denoise_nl_means(y, num_threads=THREADS)  # sigma estimated, h from it


def run_bm4d(y, s):
    import bm4d

    return bm4d.bm4d(y, s)


def timed(f, *a, **kw):
    t = time.perf_counter()
    out = f(*a, **kw)
    return out, time.perf_counter() - t


def speed(bm4d_ok):
    """Wall time of blind NL-Bayes and BM4D (true sigma) on one 64x128x128 float32 volume."""
    from scipy.ndimage import zoom

    base = load("example4d")
    if base is None:
        return
    clean = np.clip(zoom(base, [64 / base.shape[0], 1, 128 / base.shape[2]], order=1), 0, 1)
    y = noisy(clean, 5, 7).astype(np.float32)
    ob, tb = timed(run_bayes, y)
    line = f"speed 64x128x128 float32, sigma 5%: NL-Bayes {tb:.2f} s ({psnr(clean, ob):.2f} dB)"
    if bm4d_ok:
        o4, t4 = timed(run_bm4d, y, 0.05)
        line += f", BM4D {t4:.2f} s ({psnr(clean, o4):.2f} dB): NL-Bayes {t4 / tb:.1f}x faster"
    print(line, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sigmas", type=float, nargs="+", default=[3, 6, 12], help="noise std, percent of the range")
    ap.add_argument("--set", choices=["heldout", "tuning", "all"], default="heldout")
    ap.add_argument("--volumes", nargs="+", help="names (overrides --set)")
    ap.add_argument("--no-bm4d", action="store_true", help="skip BM4D (slow)")
    ap.add_argument("--speed", action="store_true",
                    help="also time a 64x128x128 float32 volume (example4d resampled), sigma 5 %%")
    args = ap.parse_args(argv)
    names = args.volumes or (SETS["heldout"] + SETS["tuning"] if args.set == "all" else SETS[args.set])
    vols = {n: v for n in names if (v := load(n)) is not None}
    if not vols:
        print("no volume available: pip install -e '.[bench]' (dipy, nibabel)")
        return 0
    bm4d_ok = not args.no_bm4d
    if bm4d_ok:
        try:
            import bm4d  # noqa: F401
        except ImportError:
            print("bm4d is not installed (pip install -e '.[bench]'): BM4D column skipped")
            bm4d_ok = False
    warm = noisy(np.full((12, 16, 16), 0.5), 5, 0)
    run_bayes(warm)
    run_nlm(warm)
    print(f"{'volume':<12} {'shape':<12} {'sigma%':>6} | {'noisy':>6} | {'BM4D':>6} {'s':>6} | "
          f"{'Bayes':>6} {'s':>6} {'vsBM4D':>7} | {'NLM':>6} {'s':>6} {'vsBM4D':>7}")
    rows = []
    for pct in args.sigmas:
        for k, (name, clean) in enumerate(vols.items()):
            y = noisy(clean, pct, seed=1000 * k + int(pct * 10))
            ob, tb = timed(run_bayes, y)
            on, tn = timed(run_nlm, y)
            pb, pn = psnr(clean, ob), psnr(clean, on)
            if bm4d_ok:
                o4, t4 = timed(run_bm4d, y, pct / 100)
                p4 = psnr(clean, o4)
            else:
                p4 = t4 = float("nan")
            rows.append((pct, name, p4, pb, pn, t4, tb, tn))
            shape = "x".join(map(str, clean.shape))
            print(f"{name:<12} {shape:<12} {pct:>6g} | {psnr(clean, y):6.2f} | {p4:6.2f} {t4:6.2f} | "
                  f"{pb:6.2f} {tb:6.2f} {pb - p4:+7.2f} | {pn:6.2f} {tn:6.2f} {pn - p4:+7.2f}", flush=True)
    if args.speed:
        speed(bm4d_ok)
    for label, members in (("held-out", SETS["heldout"]), ("tuning", SETS["tuning"])):
        if not any(x[1] in members for x in rows):
            continue
        print(f"mean over the {label} volumes:")
        for pct in args.sigmas:
            r = np.array([x[2:] for x in rows if x[0] == pct and x[1] in members])
            p4, pb, pn, t4, tb, tn = r.mean(axis=0)
            worst = (r[:, 1] - r[:, 0]).min()
            print(f"  sigma {pct:>4g}%: BM4D {p4:6.2f} ({t4:.2f} s) | NL-Bayes {pb:6.2f} ({tb:.2f} s) "
                  f"{pb - p4:+.2f} dB (worst volume {worst:+.2f}), {t4 / tb:.1f}x faster | "
                  f"NLM {pn:6.2f} ({tn:.2f} s) {pn - p4:+.2f} dB; NL-Bayes - NLM {pb - pn:+.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
