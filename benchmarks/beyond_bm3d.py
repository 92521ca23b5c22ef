"""NL-Bayes (with its NL-Ridge pass) against BM3D on the field's standard Gaussian benchmark (issue 22).

Run from the repository root::

    python -m benchmarks.beyond_bm3d                       # Set12 and BSD68, sigma 15 / 25 / 50, then colour
    python -m benchmarks.beyond_bm3d --sets Set12 --sigmas 25 --limit 4
    python -m benchmarks.beyond_bm3d --sets none --colour  # colour only

Protocol: clean / 255, ``y = x + N(0, (sigma/255)^2)`` unclipped, noise from
``numpy.random.default_rng(i)`` for the i-th image of a set (the same noise
for every method), PSNR of the output clipped to [0, 1] against the clean
image.  Methods, run one after the other on the same noisy image in this
process (after a warm-up call): ``nlm`` blind (the default call, noise model
estimated; ``num_threads`` 2), ``nlm`` with the true sigma, ``nlm`` blind
without the NL-Ridge pass (``ridge=0``: the NL-Bayes of before), and
``bm3d.bm3d`` at the true sigma (``bm3d.bm3d_rgb`` for colour).  Prints, per
set and sigma, the means, the difference to BM3D, the worst image, the times
and the speed ratio, then the issue's bars (met or not) and the published
rows (marked as published).

The grey sets are read from ``../shared/data/<set>`` (``--data``); a set
that is absent, or a missing ``bm3d`` package, is skipped with a message.
Colour: scikit-image's astronaut, coffee, chelsea, rocket (``--colour``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

#: published averages (Set12, BSD68) at sigma 15 / 25 / 50, from the papers' tables (REFERENCES.md, section 8)
PUBLISHED = {
    "BM3D": ((32.37, 29.97, 26.72), (31.07, 28.57, 25.62)),
    "NL-Bayes (IPOL)": ((32.25, 29.88, 26.45), (31.16, 28.70, 25.58)),
    "NL-Ridge": ((32.46, 30.00, 26.73), (31.20, 28.67, 25.67)),
    "WNNM": ((32.70, 30.26, 27.05), (31.37, 28.83, 25.87)),
    "LIChI": ((32.71, 30.24, 26.81), (31.41, 28.86, 25.72)),
    "DnCNN (learned)": ((32.86, 30.44, 27.18), (31.73, 29.23, 26.23)),
}
COLOUR = ("astronaut", "coffee", "chelsea", "rocket")
#: the issue's bars
MARGIN = 0.2  # mean above BM3D, dB
WORST = -0.2  # no image further below BM3D, dB
KNOWN = 0.05  # known sigma no worse than blind by more, dB
SPEED = 5.0  # times faster than bm3d.bm3d over the whole benchmark, blind


def _psnr(clean, out):
    from nlm.metrics import psnr

    return psnr(clean, np.clip(out, 0.0, 1.0), data_range=1.0)


def _load_set(folder, limit):
    import imageio.v3 as iio

    files = sorted(f for f in os.listdir(folder) if f.lower().endswith((".png", ".tif", ".bmp", ".jpg")))
    out = []
    for f in files[:limit]:
        a = iio.imread(os.path.join(folder, f))
        if a.ndim == 3:
            a = a[..., 0]
        out.append((os.path.splitext(f)[0], a.astype(np.float64) / 255.0))
    return out


def _load_colour(limit):
    from skimage import data

    out = []
    for name in COLOUR[:limit]:
        a = getattr(data, name)()
        out.append((name, a[..., :3].astype(np.float64) / 255.0))
    return out


def _timed(fn, y):
    t = time.perf_counter()
    out = fn(y)
    return out, time.perf_counter() - t


def _methods(colour, threads, sigma, which):
    import bm3d

    from nlm import denoise_nl_bayes

    ca = -1 if colour else None
    m = {}
    if "blind" in which:
        m["nlm blind"] = lambda y: denoise_nl_bayes(y, channel_axis=ca, num_threads=threads)
    if "known" in which:
        m["nlm known"] = lambda y: denoise_nl_bayes(y, sigma=sigma, channel_axis=ca, num_threads=threads)
    if "off" in which:
        m["nlm ridge=0"] = lambda y: denoise_nl_bayes(y, channel_axis=ca, num_threads=threads, ridge=0)
    if colour:
        m["bm3d"] = lambda y: bm3d.bm3d_rgb(y, sigma_psd=sigma)
    else:
        m["bm3d"] = lambda y: bm3d.bm3d(y, sigma_psd=sigma)
    return m


def _save_cache(cache):
    import json

    tmp = cache["_file"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump({k: v for k, v in cache.items() if k != "_file"}, f)
    os.replace(tmp, cache["_file"])


def run_set(name, images, sigmas, threads, which, colour=False, cache=None):
    """Rows ``(set, sigma, method, image, psnr, seconds)`` of every method on every image and sigma.

    ``cache``: a dict of BM3D's ``(psnr, seconds)`` per ``set|sigma|image|seed`` (``--bm3d-cache``),
    read and filled in; None: BM3D runs on every image.
    """
    rows = []
    for s in sigmas:
        methods = _methods(colour, threads, s / 255.0, which)
        for i, (img_name, clean) in enumerate(images):
            y = clean + (s / 255.0) * np.random.default_rng(i).standard_normal(clean.shape)
            for key, fn in methods.items():
                ck = f"{name}|{s:g}|{img_name}|{i}"
                if key == "bm3d" and cache is not None and ck in cache:
                    rows.append((name, s, key, img_name, *cache[ck]))
                    continue
                out, sec = _timed(fn, y)
                rows.append((name, s, key, img_name, _psnr(clean, out), sec))
                if key == "bm3d" and cache is not None:
                    cache[ck] = [rows[-1][4], sec]
                    cache_file = cache.get("_file")
                    if cache_file:
                        _save_cache(cache)
            line = "  ".join(f"{r[2]} {r[4]:.2f} ({r[5]:.1f}s)" for r in rows[-len(methods):])
            print(f"  {name} sigma {s:g} {img_name}: {line}", flush=True)
    return rows


def summarise(rows, published=True):
    """Print the table per set and sigma and the bars; return True when every bar that was run is met."""
    ok = True
    sets = list(dict.fromkeys(r[0] for r in rows))
    tot = {}
    print()
    print("| set | sigma | method | mean PSNR | vs BM3D | worst image vs BM3D | s total | BM3D s / s |")
    print("|---|---|---|---|---|---|---|---|")
    for st in sets:
        for s in sorted({r[1] for r in rows if r[0] == st}):
            sel = [r for r in rows if r[0] == st and r[1] == s]
            b = {r[3]: r for r in sel if r[2] == "bm3d"}
            bsec = sum(r[5] for r in b.values())
            for key in dict.fromkeys(r[2] for r in sel):
                mine = [r for r in sel if r[2] == key]
                mean = np.mean([r[4] for r in mine])
                diff = [r[4] - b[r[3]][4] for r in mine]
                sec = sum(r[5] for r in mine)
                tot.setdefault(key, 0.0)
                tot[key] += sec
                worst = min(zip(diff, (r[3] for r in mine)))
                print(f"| {st} | {s:g} | {key} | {mean:.2f} | {np.mean(diff):+.3f} | {worst[0]:+.2f} ({worst[1]}) "
                      f"| {sec:.1f} | {bsec / sec:.1f}x |")
    print()
    print("Bars (issue 22):")
    for st in sets:
        for s in sorted({r[1] for r in rows if r[0] == st}):
            sel = [r for r in rows if r[0] == st and r[1] == s]
            b = {r[3]: r[4] for r in sel if r[2] == "bm3d"}
            blind = {r[3]: r[4] for r in sel if r[2] == "nlm blind"}
            if not blind:
                continue
            d = np.array([blind[k] - b[k] for k in blind])
            margin = MARGIN
            met = d.mean() >= margin
            ok &= bool(met)
            print(f"  {st} sigma {s:g}: blind mean {d.mean():+.3f} dB vs BM3D (bar +{margin}) "
                  f"{'MET' if met else 'NOT MET'}", end="")
            if st != "colour":
                w = d.min() >= WORST
                ok &= bool(w)
                print(f"; worst image {d.min():+.2f} (bar {WORST}) {'MET' if w else 'NOT MET'}", end="")
            known = {r[3]: r[4] for r in sel if r[2] == "nlm known"}
            if known:
                kd = np.mean([known[k] - blind[k] for k in known])
                k_ok = kd >= -KNOWN
                ok &= bool(k_ok)
                print(f"; known - blind {kd:+.3f} (bar -{KNOWN}) {'MET' if k_ok else 'NOT MET'}", end="")
            print()
    if "nlm blind" in tot and "bm3d" in tot:
        ratio = tot["bm3d"] / tot["nlm blind"]
        met = ratio >= SPEED
        ok &= bool(met)
        print(f"  speed over the whole run: bm3d {tot['bm3d']:.1f} s, nlm blind {tot['nlm blind']:.1f} s: "
              f"{ratio:.1f}x faster (bar {SPEED:g}x) {'MET' if met else 'NOT MET'}")
    if published:
        print()
        print("Published averages (from the papers' tables, not measured here), Set12 / BSD68 at 15 / 25 / 50:")
        for k, (a, b) in PUBLISHED.items():
            print(f"  {k:16s} Set12 {' / '.join(f'{v:.2f}' for v in a)}   BSD68 {' / '.join(f'{v:.2f}' for v in b)}")
    return ok


def _limits(text):
    """``--limit``: None, ``N`` (every set) or ``SET=N,...`` -> {set or None: N}."""
    if text is None:
        return {}
    out = {}
    for part in str(text).split(","):
        if not part.strip():
            continue
        name, _, n = part.rpartition("=")
        try:
            out[name.strip() or None] = int(n)
        except ValueError:
            raise SystemExit(f"beyond_bm3d: --limit wants N or SET=N,..., got {text!r}") from None
    return out


def build_parser():
    from benchmarks import shared_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=shared_data(),
                    help="folder holding Set12/ and BSD68/ (default ../shared/data)")
    ap.add_argument("--sets", default="Set12,BSD68", help="comma-separated grey sets, or 'none'")
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--colour", action="store_true", help="also the colour images at sigma 25 / 50")
    ap.add_argument("--colour-sigmas", default="25,50")
    ap.add_argument("--limit", default=None,
                    help="the first N images of each set: N, or per set SET=N,... (e.g. BSD68=10; colour=N too)")
    ap.add_argument("--methods", default="blind,known,off",
                    help="nlm variants besides bm3d: blind, known (true sigma), off (ridge=0)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bm3d-cache", default=None, metavar="FILE",
                    help="JSON file of BM3D's PSNR and time per (set, sigma, image, seed), read and updated: "
                         "for experiments only (the speed ratio then compares times of different runs); "
                         "keep it out of the repository")
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        import bm3d  # noqa: F401
    except ImportError:
        print("beyond_bm3d: the bm3d package is missing (pip install -e '.[bench]'); skipped")
        return 0
    limits = _limits(args.limit)
    sigmas = [float(s) for s in args.sigmas.split(",") if s.strip()]
    which = {w.strip() for w in args.methods.split(",") if w.strip()}
    # warm-up: Numba compiled or loaded from its cache, outside the timings
    from nlm import denoise_nl_bayes

    rng = np.random.default_rng(0)
    for s in sigmas:
        denoise_nl_bayes(0.5 + s / 255 * rng.standard_normal((48, 48)), num_threads=args.threads)
    denoise_nl_bayes(0.5 + 0.1 * rng.standard_normal((48, 48, 3)), channel_axis=-1, num_threads=args.threads)
    cache = None
    if args.bm3d_cache:
        import json

        cache = {}
        if os.path.exists(args.bm3d_cache):
            with open(args.bm3d_cache) as f:
                cache = json.load(f)
        cache["_file"] = args.bm3d_cache
        print(f"beyond_bm3d: BM3D cached in {args.bm3d_cache} ({len(cache) - 1} entries): "
              "the speed ratio compares times of different runs")
    rows = []
    sets = [] if args.sets.strip().lower() == "none" else [s.strip() for s in args.sets.split(",") if s.strip()]
    for st in sets:
        folder = os.path.join(args.data, st)
        if not os.path.isdir(folder):
            print(f"beyond_bm3d: {folder} is absent; {st} skipped")
            continue
        images = _load_set(folder, limits.get(st, limits.get(None)))
        rows += run_set(st, images, sigmas, args.threads, which, cache=cache)
    if args.colour:
        cs = [float(s) for s in args.colour_sigmas.split(",") if s.strip()]
        images = _load_colour(limits.get("colour", limits.get(None)))
        rows += run_set("colour", images, cs, args.threads, which, colour=True, cache=cache)
    if not rows:
        print("beyond_bm3d: nothing was run")
        return 0
    summarise(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
