"""The model ``estimate_noise(noise="auto")`` chooses on the 2-D test sets, before and after a change.

Run from the repository root (Set12 / BSD68 in ``../shared/data``, or
``--images DIR``)::

    python -m benchmarks.noise_choice --save before.json      # record the choices of this checkout
    python -m benchmarks.noise_choice --save after.json       # ... after the change
    python -m benchmarks.noise_choice --compare before.json after.json   # count changes, PSNR of the changed
    python -m benchmarks.noise_choice --accuracy before.json after.json  # per condition: models, std ratios

Every clean grey image (``/ 255``) gets seeded noise of each condition below
(Gaussian unclipped and clipped, Poisson-Gaussian unclipped and clipped,
scikit-image's speckle, gamma speckle; one draw per image and condition,
seed = the image's index) and the estimator's choice is recorded: the model's
name and parameters.  ``--compare`` counts the choices that changed (name, or
a parameter by more than 1e-9 relative) and, for each changed case, denoises
the noisy image with :func:`nlm.denoise_nl_bayes` under both recorded models
(the models passed explicitly, so one checkout scores both) and prints the
PSNR of each (clean range 1, output clipped to [0, 1]) and the mean
difference.  ``--accuracy`` prints, per condition and recording, the
models chosen (counts) and the ratio of the estimated to the true noise std
at intensities 0.2, 0.5 and 0.8 (the unclipped level functions ``a + b x +
c x^2``; mean, median, min and max over the images at 0.5, and the RMS of
the log ratio over all three).  The estimator is ``O(N)``: recording ~1000 choices takes a few
minutes on 2 cores; only the changed cases are denoised.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

from benchmarks import shared_data

DATA = shared_data()


def conditions():
    """name -> model of the noise added (unclipped Gaussian as ``Gaussian(s)``, the test sets' protocol)."""
    from nlm.noise import Gamma, Gaussian, PoissonGaussian, Speckle

    out = {}
    for s in (5, 15, 25, 50):
        out[f"gauss{s}"] = Gaussian(s / 255)
    for s in (15, 50):
        out[f"gauss{s}-clip"] = Gaussian(s / 255, clip=True)
    out["pg0.01-0"] = PoissonGaussian(0.01, 0.0)
    out["pg0.003-0.02"] = PoissonGaussian(0.003, 0.02)
    out["pg0.01-0.01-clip"] = PoissonGaussian(0.01, 0.01, clip=True)
    for v in (0.01, 0.04, 0.1):
        out[f"speckle{v:g}"] = Speckle(v)
    out["gamma4"] = Gamma(4)
    return out


def images(dirs):
    import imageio.v3 as iio

    paths = []
    for d in dirs:
        paths += sorted(glob.glob(os.path.join(d, "*.png")))
    for p in paths:
        img = iio.imread(p)
        if img.ndim == 3:
            img = img[..., :3].mean(axis=-1)
        yield os.path.relpath(p, os.path.dirname(os.path.dirname(p))), np.asarray(img, np.float64) / 255.0


def _describe(model):
    return {"name": model.name, "a": float(model.a), "b": float(model.b), "c": float(model.c),
            "repr": repr(model), "model": _params(model)}


def _params(model):
    d = {"class": type(model).__name__}
    for k in ("sigma", "gain", "var", "looks"):
        if hasattr(model, k):
            d[k] = float(getattr(model, k))
    d["bounds"] = None if model.bounds is None else [float(b) for b in model.bounds]
    return d


def _rebuild(p):
    from nlm.noise import Gamma, Gaussian, PoissonGaussian, Rician, Speckle

    clip = False if p["bounds"] is None else tuple(None if not np.isfinite(b) else b for b in p["bounds"])
    cls = p["class"]
    if cls == "Gaussian":
        return Gaussian(p["sigma"], clip=clip)
    if cls == "PoissonGaussian":
        return PoissonGaussian(p["gain"], p["sigma"], clip=clip)
    if cls == "Speckle":
        return Speckle(p["var"], clip=clip)
    if cls == "Gamma":
        return Gamma(p["looks"])
    return Rician(p["sigma"])


def noisy(clean, model, seed):
    return model.sample(clean, seed=seed)


def record(dirs, out):
    from nlm.noise import estimate_noise

    conds = conditions()
    rows = {}
    t = time.perf_counter()
    for i, (name, clean) in enumerate(images(dirs)):
        for cname, model in conds.items():
            y = noisy(clean, model, i)
            rows[f"{name}|{cname}"] = _describe(estimate_noise(y)) | {"index": i}
    with open(out, "w") as f:
        json.dump(rows, f, indent=0)
    print(f"{len(rows)} choices recorded in {time.perf_counter() - t:.0f} s -> {out}")


def _same(a, b):
    if a["name"] != b["name"]:
        return False
    return all(abs(a[k] - b[k]) <= 1e-9 * max(abs(a[k]), abs(b[k]), 1e-300) for k in ("a", "b", "c"))


def compare(before, after, dirs, threads=2):
    from nlm import denoise_nl_bayes
    from nlm.metrics import psnr

    with open(before) as f:
        b = json.load(f)
    with open(after) as f:
        a = json.load(f)
    keys = [k for k in b if k in a]
    changed = [k for k in keys if not _same(b[k], a[k])]
    names = {}
    for k in keys:
        names.setdefault(b[k]["name"] + " -> " + a[k]["name"], 0)
        names[b[k]["name"] + " -> " + a[k]["name"]] += 1
    print(f"{len(changed)} of {len(keys)} choices changed; name transitions: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(names.items())))
    if not changed:
        return
    conds = conditions()
    clean_of = dict(images(dirs))
    diffs = []
    for k in changed:
        img, cname = k.split("|")
        clean = clean_of[img]
        y = noisy(clean, conds[cname], b[k]["index"])
        ps = []
        for rec in (b[k], a[k]):
            out = denoise_nl_bayes(y, noise=_rebuild(rec["model"]), num_threads=threads)
            ps.append(psnr(clean, np.clip(out, 0.0, 1.0), data_range=1.0))
        diffs.append(ps[1] - ps[0])
        print(f"  {k}: {b[k]['repr']} {ps[0]:.2f} dB -> {a[k]['repr']} {ps[1]:.2f} dB ({ps[1] - ps[0]:+.3f})",
              flush=True)
    d = np.array(diffs)
    print(f"changed cases: PSNR after - before: mean {d.mean():+.3f} dB, min {d.min():+.3f}, max {d.max():+.3f}, "
          f"{np.count_nonzero(d < -0.005)} worse by > 0.005 dB")


def accuracy(paths):
    """Per condition and recording: the models chosen and the estimated / true std at x = 0.2, 0.5, 0.8."""
    conds = conditions()
    xs = np.array([0.2, 0.5, 0.8])
    for path in paths:
        with open(path) as f:
            rec = json.load(f)
        for folder in sorted({k.split("|")[0].split("/")[0] for k in rec}):
            print(f"{path}: {folder}")
            _accuracy_rows({k: v for k, v in rec.items() if k.split("|")[0].split("/")[0] == folder}, conds, xs)


def _accuracy_rows(rec, conds, xs):
    """One line per condition: the models chosen in ``rec`` and the estimated / true std."""
    for cname, model in conds.items():
        rows = [v for k, v in rec.items() if k.split("|")[-1] == cname]
        if not rows:
            continue
        true = model.a + model.b * xs + model.c * xs * xs
        r = np.array([np.sqrt(np.maximum(v["a"] + v["b"] * xs + v["c"] * xs * xs, 0.0) / true) for v in rows])
        names = {}
        for v in rows:
            names[v["name"]] = names.get(v["name"], 0) + 1
        with np.errstate(divide="ignore"):
            rms = float(np.sqrt(np.mean(np.log(r) ** 2)))
        print(f"  {cname:17s} {model.name:9s} " + ", ".join(f"{k} {n}" for k, n in sorted(names.items()))
              + f" | std ratio at 0.5: mean {r[:, 1].mean():.4f} median {np.median(r[:, 1]):.4f} "
              f"min {r[:, 1].min():.3f} max {r[:, 1].max():.3f} | RMS log ratio {rms:.4f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", nargs="+", default=[os.path.join(DATA, "Set12"), os.path.join(DATA, "BSD68")],
                    help="folders of grey PNGs (default: Set12 and BSD68 in ../shared/data)")
    ap.add_argument("--save", help="record this checkout's choices to a JSON file")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two recordings")
    ap.add_argument("--accuracy", nargs="+", metavar="FILE",
                    help="per condition: models chosen and estimated / true std of each recording")
    args = ap.parse_args(argv)
    if args.accuracy and not (args.save or args.compare):
        accuracy(args.accuracy)
        return 0
    if not any(os.path.isdir(d) for d in args.images):
        print(f"no image folder found ({args.images})")
        return 0
    if args.save:
        record(args.images, args.save)
    if args.compare:
        compare(*args.compare, args.images)
    if args.accuracy:
        accuracy(args.accuracy)
    if not (args.save or args.compare or args.accuracy):
        ap.error("give --save FILE, --compare BEFORE AFTER and/or --accuracy FILE ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
