"""Denoising quality benchmark: PSNR of ``nlm`` against scikit-image, OpenCV and BM3D.

Run from the repository root::

    python -m benchmarks.psnr                 # full default run (speckle)
    python -m benchmarks.psnr --quick         # small smoke run (seconds)
    python -m benchmarks.psnr --images DIR    # your own images
    python -m benchmarks.psnr --model gamma              # SAR: L = 1, 4, 16, unclipped
    python -m benchmarks.psnr --model gaussian           # sigma 10, 25, 50 (of 255)
    nlm bench ...                             # the same, through the CLI

Every clean image (grey, in [0, 1]) gets seeded synthetic noise
(:func:`nlm.noise.add_noise`, by default scikit-image's speckle with
``var`` 0.01, 0.04 and 0.1, seed 0), then each method denoises it and is
scored by PSNR (and SSIM) against the clean image, after clipping its output
to [0, 1] (the same for every method).

Methods (each only when its package is installed; others are skipped with a
note):

========================  =============================================================
``nlm-blind``             this toolkit's blind default: :func:`nlm.denoisers.speckle.denoise_speckle`
                          for speckle/gamma noise, :func:`nlm.denoise_nl_means` with
                          ``h=None`` for Gaussian noise. No oracle.
``nlm-speckle-oracle``    the speckle mode with ``h = f * sigma_t`` (``sigma_t`` =
                          :func:`nlm.denoisers.speckle.speckle_sigma`), ``f`` oracle-tuned.
``nlm-oracle``            the Gaussian filter :func:`nlm.denoise_nl_means` on the noisy
                          image, patch 7, distance 11, ``h = f * s``, ``sigma = s``.
``skimage-oracle``        ``skimage.restoration.denoise_nl_means`` (fast mode, patch 7,
                          distance 11), ``h = f * s``, ``sigma = s``; the anchor.
``skimage-08``            the same with ``h = 0.8 s`` (its docstring's advice).
``skimage-default``       the same with all its documented defaults (``h = 0.1``).
``opencv-oracle``         ``cv2.fastNlMeansDenoising`` on the uint8 image, template 7,
                          search window 23 (= distance 11), ``h = f * 255 s``.
``nlm-means-auto``        :func:`nlm.denoise_nl_means` with ``noise="auto"`` (model estimated).
``nlm-bayes-blind``       :func:`nlm.denoise_nl_bayes`, fully blind (``noise="auto"``); the
                          estimated parameter (L, var, sigma) goes to the CSV and report.
``nlm-bayes-known``       :func:`nlm.denoise_nl_bayes` with the true noise model given.
``bm3d-true``             (gamma, gaussian) ``bm3d.bm3d`` at the true noise level: Gaussian
                          sigma; gamma: on ``log y`` at ``sqrt(psi_1(L))``, then
                          ``exp(. - (psi(L) - log L))``. The anchor of the NL-Bayes targets.
``bm3d-oracle``           ``bm3d.bm3d`` with ``sigma_psd = f * s`` on the image, and
                          with ``f * s_log`` on ``log(y)`` (then ``exp`` and mean
                          debiasing): the better of the two domains is kept.
========================  =============================================================

``s`` is each image's wavelet noise estimate (:func:`nlm.estimate_sigma`, the
same estimator as scikit-image's); it underestimates signal-dependent noise,
which is why the factors ``f`` are searched.

Oracle grids (fair by construction): every oracle method searches the same
multiplicative grid of factors ``f`` applied to its own natural noise-level
parameter, ``f = 2^(k/4)``, ``k = -8 .. 6`` (0.25 ... 2.83, 15 values). BM3D
takes about 8 s per 512x512 call on 2 cores, so it searches the coarse grid
``f = 2^(k/2)``, ``k = -2 .. 3`` (every other point, 0.5 ... 2.83) in each
domain; it is still about 95% of the 20-minute full default run. The
search is a hill climb on the grid from ``f = 1`` (the PSNR curves are
unimodal in ``f``), and the CSV records whether the best factor sat on an
edge of the grid. ``--quick`` uses ``f`` in {0.71, 1, 1.41} and BM3D
``f = 1``.

Outputs in ``--out`` (default ``bench-out/``): ``psnr.md`` (mean PSNR/SSIM
per level with the difference to the ``skimage-oracle`` anchor measured in
the same run, wall times and their ratio to the anchor's, per-image tables),
``psnr.csv`` (one row per image, level and method) and, when matplotlib is
installed, ``psnr_vs_level.png`` and ``crops.png``.

Wall times are of one call at the chosen parameter, measured in this process
one method at a time (Numba kernels are compiled before timing), with the
input each method takes natively: float32 for ``nlm`` and scikit-image,
uint8 for OpenCV, float64 for BM3D.
"""

import argparse
import csv
import importlib
import os
import platform
import sys
import time
from dataclasses import dataclass, field

import numpy as np

BUILTIN = ("camera", "astronaut", "coins", "moon", "brick", "text")
QUICK_BUILTIN = ("camera", "coins")
QUICK_SIZE = 64
DEFAULT_LEVELS = {
    "speckle": (0.01, 0.04, 0.1),
    "gamma": (1.0, 4.0, 16.0),  # looks L (variance 1/L), unclipped SAR intensity
    "gaussian": ((10 / 255) ** 2, (25 / 255) ** 2, (50 / 255) ** 2),
}
GRID = tuple(2.0 ** (k / 4) for k in range(-8, 7))
BM3D_GRID = tuple(2.0 ** (k / 2) for k in range(-2, 4))
QUICK_GRID = tuple(2.0 ** (k / 2) for k in (-1, 0, 1))
QUICK_BM3D_GRID = (1.0,)
ANCHOR = "skimage-oracle"
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
LOG_FLOOR = 2.0**-8


# --------------------------------------------------------------------- images


def _to_grey_unit(img, name):
    """Grey float64 image in [0, 1] from any 2-D grey/RGB(A) array."""
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.util import img_as_float

    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        if img.shape[-1] == 4:
            img = rgba2rgb(img)
        img = rgb2gray(img)
    if img.ndim == 3 and img.shape[-1] in (1, 2):  # grey (+ alpha)
        img = img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D grey or RGB image, got shape {img.shape}")
    if img.dtype == np.bool_ or np.issubdtype(img.dtype, np.integer):
        img = img_as_float(img)
    img = img.astype(np.float64)
    if not np.isfinite(img).all():
        raise ValueError(f"{name}: image has NaN or Inf values")
    lo, hi = float(img.min()), float(img.max())
    if lo < 0 or hi > 1:  # float data of another range: min-max normalise
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img


def load_images(spec=None, *, quick=False):
    """Return ``{name: grey float64 image in [0, 1]}``.

    ``spec``: None (the scikit-image set), a comma-separated list of
    ``skimage.data`` names, or a directory whose image files are all used.
    ``quick``: two built-in images (or the folder's), centre-cropped to 64x64.
    """
    from skimage import data

    images = {}
    if spec is not None and os.path.isdir(spec):
        files = sorted(
            f
            for f in os.listdir(spec)
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        )
        if not files:
            raise ValueError(f"--images {spec}: the folder holds no image file {IMAGE_EXTENSIONS}")
        import imageio.v3 as iio

        for f in files:
            images[os.path.splitext(f)[0]] = _to_grey_unit(iio.imread(os.path.join(spec, f)), f)
    else:
        if spec is None:
            names = QUICK_BUILTIN if quick else BUILTIN
        else:
            names = tuple(n.strip() for n in spec.split(",") if n.strip())
        for n in names:
            loader = getattr(data, n, None)
            if loader is None or not callable(loader) or n.startswith("_"):
                raise ValueError(
                    f"--images: {n!r} is neither a folder nor a skimage.data image "
                    f"(e.g. {', '.join(BUILTIN)})"
                )
            images[n] = _to_grey_unit(loader(), n)
    if quick:
        images = {k: _centre_crop(v, QUICK_SIZE) for k, v in images.items()}
    for k, v in images.items():
        if min(v.shape) < 8:
            raise ValueError(f"image {k!r} is too small ({v.shape}); need at least 8x8")
    return images


def _centre_crop(img, size):
    h, w = img.shape
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return np.ascontiguousarray(img[top : top + size, left : left + size])


# -------------------------------------------------------------------- methods


@dataclass
class Outcome:
    output: np.ndarray
    psnr: float
    param_name: str = ""
    param: float = float("nan")
    factor: float = float("nan")
    edge: bool = False
    evals: int = 1
    seconds: float = 0.0
    search_seconds: float = 0.0


@dataclass
class Method:
    key: str
    label: str
    requires: tuple = ()
    oracle: bool = False
    models: tuple = ("speckle", "gamma", "gaussian")
    run: object = field(default=None, repr=False)


def _clip01(u):
    return np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)


def _score(clean, out):
    from nlm.metrics import psnr

    return psnr(clean, _clip01(out), data_range=1.0)


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def hill_climb(evaluate, grid, start=None):
    """Maximise ``evaluate(f)[0]`` over the sorted ``grid`` by a hill climb.

    Starts at the grid point nearest 1 (or ``start``), evaluates both
    neighbours, moves to the best, and stops at a local maximum.
    ``evaluate(f)`` returns ``(score, payload)``. Returns
    ``(best_index, {index: (score, payload, seconds)})``.
    """
    grid = list(grid)
    if start is None:
        start = int(np.argmin([abs(np.log(f)) for f in grid]))
    cache = {}

    def ev(i):
        if i not in cache:
            (score, payload), dt = _timed(evaluate, grid[i])
            cache[i] = (score, payload, dt)
        return cache[i][0]

    i = start
    ev(i)
    while True:
        cands = [j for j in (i - 1, i + 1) if 0 <= j < len(grid)]
        for j in cands:
            ev(j)
        best = max([i] + cands, key=lambda j: cache[j][0])
        if best == i:
            return i, cache
        i = best


def _oracle(clean, denoise, base, grid, param_name):
    """Oracle-tune ``denoise(param)`` with ``param = f * base`` over ``grid``."""

    def evaluate(f):
        out, dt = _timed(denoise, f * base)
        return _score(clean, out), (out, dt)

    best, cache = hill_climb(evaluate, grid)
    score, (out, dt), _ = cache[best]
    return Outcome(
        output=out,
        psnr=score,
        param_name=param_name,
        param=grid[best] * base,
        factor=grid[best],
        edge=len(grid) > 1 and best in (0, len(grid) - 1),
        evals=len(cache),
        seconds=dt,
        search_seconds=sum(c[2] for c in cache.values()),
    )


def _blind(clean, denoise, param_name="", param=float("nan")):
    out, dt = _timed(denoise)
    return Outcome(out, _score(clean, out), param_name, param, float("nan"), False, 1, dt, dt)


def _sigma(y):
    from nlm import estimate_sigma

    return max(float(estimate_sigma(y)), 1e-6)


def run_nlm_blind(clean, y, ctx):
    from nlm import denoise_nl_means
    from nlm.denoisers.speckle import H_FACTORS, denoise_speckle, speckle_sigma

    y32 = y.astype(np.float32)
    if ctx["model"] == "gaussian":
        return _blind(clean, lambda: denoise_nl_means(y32), "h", float("nan"))
    h = H_FACTORS["sqrt"] * speckle_sigma(y32)
    return _blind(clean, lambda: denoise_speckle(y32), "h (sqrt domain)", h)


def run_nlm_speckle_oracle(clean, y, ctx):
    from nlm.denoisers.speckle import denoise_speckle, speckle_sigma

    y32 = y.astype(np.float32)
    base = max(speckle_sigma(y32), 1e-6)
    return _oracle(clean, lambda h: denoise_speckle(y32, h=h), base, ctx["grid"], "h (sqrt domain)")


def run_nlm_oracle(clean, y, ctx):
    from nlm import denoise_nl_means

    y32 = y.astype(np.float32)
    s = _sigma(y)
    return _oracle(clean, lambda h: denoise_nl_means(y32, 7, 11, h=h, sigma=s), s, ctx["grid"], "h")


def run_skimage_oracle(clean, y, ctx):
    from skimage.restoration import denoise_nl_means

    y32 = y.astype(np.float32)
    s = _sigma(y)
    return _oracle(
        clean,
        lambda h: denoise_nl_means(y32, 7, 11, h=h, fast_mode=True, sigma=s),
        s,
        ctx["grid"],
        "h",
    )


def run_skimage_08(clean, y, ctx):
    from skimage.restoration import denoise_nl_means

    y32 = y.astype(np.float32)
    s = _sigma(y)
    return _blind(
        clean, lambda: denoise_nl_means(y32, 7, 11, h=0.8 * s, fast_mode=True, sigma=s), "h", 0.8 * s
    )


def run_skimage_default(clean, y, ctx):
    from skimage.restoration import denoise_nl_means

    y32 = y.astype(np.float32)
    return _blind(clean, lambda: denoise_nl_means(y32), "h", 0.1)


def run_opencv_oracle(clean, y, ctx):
    import cv2

    y8 = np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)
    s = _sigma(y) * 255

    def denoise(h):
        out = cv2.fastNlMeansDenoising(y8, None, h=float(h), templateWindowSize=7, searchWindowSize=23)
        return out.astype(np.float64) / 255

    oc = _oracle(clean, denoise, s, ctx["grid"], "h (0..255)")
    return oc


def run_bm3d_oracle(clean, y, ctx):
    import bm3d

    s = _sigma(y)
    direct = _oracle(clean, lambda sg: bm3d.bm3d(y, sigma_psd=sg), s, ctx["bm3d_grid"], "sigma_psd")
    floor = LOG_FLOOR * max(float(y.max()), 1e-12)
    z = np.log(np.maximum(y, floor))
    s_log = _sigma(z)

    def log_domain(sg):
        u = np.exp(bm3d.bm3d(z, sigma_psd=sg))
        return u * (y.mean() / u.mean())

    logd = _oracle(clean, log_domain, s_log, ctx["bm3d_grid"], "sigma_psd (log)")
    best = direct if direct.psnr >= logd.psnr else logd
    best.evals = direct.evals + logd.evals
    best.search_seconds = direct.search_seconds + logd.search_seconds
    best.edge = best.edge
    return best


def _estimated(model):
    """(parameter name, value) of an estimated noise model, for the CSV."""
    if model.name == "gamma":
        return "L (estimated)", model.looks
    if model.name == "speckle":
        return "var (estimated)", model.var
    if model.name == "poisson":
        return "gain (estimated)", model.gain
    return "sigma (estimated)", model.sigma


def run_nlm_bayes_blind(clean, y, ctx):
    from nlm import denoise_nl_bayes

    y32 = y.astype(np.float32)
    out, dt = _timed(lambda: denoise_nl_bayes(y32, return_model=True))
    name, value = _estimated(out[1])
    return Outcome(out[0], _score(clean, out[0]), name, value, float("nan"), False, 1, dt, dt)


def _true_model(ctx):
    from nlm.noise import Gamma, Gaussian, Speckle

    level = ctx["level"]
    if ctx["model"] == "gamma":
        return Gamma(level)
    if ctx["model"] == "speckle":
        return Speckle(level)
    return Gaussian(level**0.5, clip=True)  # the noisy images are clipped to [0, 1]


def run_nlm_bayes_known(clean, y, ctx):
    from nlm import denoise_nl_bayes

    y32 = y.astype(np.float32)
    return _blind(clean, lambda: denoise_nl_bayes(y32, noise=_true_model(ctx)), "model given", float("nan"))


def run_nlm_means_auto(clean, y, ctx):
    from nlm import denoise_nl_means

    y32 = y.astype(np.float32)
    return _blind(clean, lambda: denoise_nl_means(y32, noise="auto"), "noise=auto", float("nan"))


def run_bm3d_true(clean, y, ctx):
    """BM3D at the true noise level: Gaussian sigma; gamma: on log y at
    sqrt(psi_1(L)), debiased by psi(L) - log L."""
    import bm3d
    from scipy.special import digamma, polygamma

    level = ctx["level"]
    if ctx["model"] == "gaussian":
        return _blind(clean, lambda: bm3d.bm3d(y, sigma_psd=level**0.5), "sigma_psd (true)", level**0.5)
    L = level
    s_log = float(np.sqrt(polygamma(1, L)))
    bias = float(digamma(L) - np.log(L))
    floor = LOG_FLOOR * max(float(y.max()), 1e-12)

    def log_domain():
        z = np.log(np.maximum(y, floor))
        return np.exp(bm3d.bm3d(z, sigma_psd=s_log) - bias)

    return _blind(clean, log_domain, "sigma_psd (log, true)", s_log)


METHODS = (
    Method("nlm-blind", "nlm speckle mode (blind default)", (), False, run=run_nlm_blind),
    Method("nlm-means-auto", "nlm NLM, noise model estimated (noise='auto')", (), False, run=run_nlm_means_auto),
    Method("nlm-bayes-blind", "nlm NL-Bayes, blind (noise='auto')", (), False, run=run_nlm_bayes_blind),
    Method("nlm-bayes-known", "nlm NL-Bayes, true noise model given", (), False, run=run_nlm_bayes_known),
    Method(
        "bm3d-true",
        "BM3D at the true sigma (gamma: log domain, sqrt(psi_1(L)), debiased)",
        ("bm3d",),
        False,
        ("gamma", "gaussian"),
        run=run_bm3d_true,
    ),
    Method(
        "nlm-speckle-oracle",
        "nlm speckle mode (oracle h)",
        (),
        True,
        ("speckle", "gamma"),
        run=run_nlm_speckle_oracle,
    ),
    Method("nlm-oracle", "nlm Gaussian NLM (oracle h)", (), True, run=run_nlm_oracle),
    Method("skimage-oracle", "scikit-image NLM (oracle h)", ("skimage",), True, run=run_skimage_oracle),
    Method("skimage-08", "scikit-image NLM (h = 0.8 sigma_est)", ("skimage",), False, run=run_skimage_08),
    Method("skimage-default", "scikit-image NLM (defaults, h = 0.1)", ("skimage",), False, run=run_skimage_default),
    Method("opencv-oracle", "OpenCV NLM (oracle h)", ("cv2",), True, run=run_opencv_oracle),
    Method("bm3d-oracle", "BM3D (oracle sigma, direct or log)", ("bm3d",), True, run=run_bm3d_oracle),
)
METHOD_KEYS = tuple(m.key for m in METHODS)


def _label(m, model):
    if m.key == "nlm-blind" and model == "gaussian":
        return "nlm (blind default, h = auto)"
    return m.label


def _available(module):
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc}"
    return None


def _level_label(model, level):
    return f"L={level:g}" if model == "gamma" else f"var={level:g}"


def _noisy(clean, model, level, seed):
    from nlm.noise import add_noise

    if model == "gamma":  # SAR intensity is not clipped
        return add_noise(clean, "gamma", looks=level, seed=seed, clip=False)
    return add_noise(clean, model, var=level, seed=seed)


def _warm_up(methods):
    """Compile the Numba kernels before anything is timed."""
    rng = np.random.default_rng(0)
    y = np.clip(0.5 + 0.1 * rng.standard_normal((32, 32)), 0, 1)
    from nlm import denoise_nl_bayes, denoise_nl_means
    from nlm.denoisers.speckle import denoise_speckle

    for dt in (np.float32, np.float64):
        denoise_nl_bayes(y.astype(dt), sigma=0.05)
        denoise_nl_means(y.astype(dt), 7, 11, h=0.1, sigma=0.05)
        denoise_nl_means(y.astype(dt), 5, 11, h=0.1, sigma=0.05)
        denoise_speckle(y.astype(dt))


# -------------------------------------------------------------------- reports


def _fmt(v, nd=2):
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def _md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _mean(vals):
    vals = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def build_markdown(rows, settings, notes, methods, levels, images):
    """The markdown report from the result rows (dicts, as in the CSV)."""
    model = settings["model"]
    lv = [_level_label(model, l) for l in levels]
    keys = ["noisy"] + [m.key for m in methods]
    labels = {"noisy": "noisy input"}
    labels.update({m.key: _label(m, model) for m in methods})
    by = {}
    for r in rows:
        by[(r["method"], r["level"], r["image"])] = r
    anchor = ANCHOR if any(m.key == ANCHOR for m in methods) else None

    def mean_of(key, level, col):
        return _mean([by[(key, level, im)][col] for im in images if (key, level, im) in by])

    out = [f"# PSNR benchmark ({model} noise)", ""]
    out.append(
        f"Images: {', '.join(images)} | levels: {', '.join(lv)} | noise seed {settings['seed']} | "
        f"{settings['grid_note']}"
    )
    out.append(f"Machine: {settings['machine']}")
    out.append("")
    out.append(f"## Mean PSNR (dB) over {len(images)} images")
    out.append("")
    anchor_note = (
        f"Δ: difference to `{anchor}` ({labels[anchor]}), measured in the same run."
        if anchor
        else "(the anchor `skimage-oracle` was not run: no differences shown)"
    )
    header = ["method"] + [x for l in lv for x in (l, "Δ")] if anchor else ["method"] + lv
    table = []
    for k in keys:
        row = [f"{labels[k]} (`{k}`)" if k != "noisy" else labels[k]]
        for l in levels:
            m = mean_of(k, l, "psnr")
            row.append(_fmt(m))
            if anchor:
                a = mean_of(anchor, l, "psnr")
                row.append(_fmt(m - a) if k != anchor else "0")
        table.append(row)
    out += [anchor_note, "", _md_table(header, table), ""]

    out.append("## Mean SSIM")
    out.append("")
    table = [[labels[k]] + [_fmt(mean_of(k, l, "ssim"), 4) for l in levels] for k in keys]
    out += [_md_table(["method"] + lv, table), ""]

    out.append("## Wall time")
    out.append("")
    out.append(
        "Seconds for one call at the chosen parameter (mean over images and levels), its ratio "
        "to the anchor's call in the same run, and the total time of the oracle search."
    )
    out.append("")
    a_sec = _mean([r["seconds"] for r in rows if r["method"] == anchor]) if anchor else float("nan")
    bm3d_key = next((k for k in ("bm3d-true", "bm3d-oracle") if any(m.key == k for m in methods)), None)
    b_sec = _mean([r["seconds"] for r in rows if r["method"] == bm3d_key]) if bm3d_key else float("nan")
    table = []
    for m in methods:
        sec = _mean([r["seconds"] for r in rows if r["method"] == m.key])
        tot = sum(r["search_seconds"] for r in rows if r["method"] == m.key)
        evals = _mean([r["evals"] for r in rows if r["method"] == m.key])
        ratio = _fmt(sec / a_sec) + "x" if anchor and a_sec > 0 else "n/a"
        faster = _fmt(b_sec / sec, 1) + "x" if bm3d_key and sec > 0 else "n/a"
        table.append([labels[m.key], _fmt(sec, 3), ratio, faster, _fmt(evals, 1), _fmt(tot, 1)])
    header = ["method", "s / call", "vs anchor", f"speed-up vs `{bm3d_key}`" if bm3d_key else "vs BM3D",
              "evals / search", "total s"]
    out += [_md_table(header, table), ""]
    est = [r for r in rows if str(r["param_name"]).endswith("(estimated)")]
    if est:
        out += [
            "## Estimated noise parameters",
            "",
            "Blind NL-Bayes: the model's parameter as estimated, per image.",
            "",
        ]
        table = [[r["image"], _level_label(model, r["level"]), r["method"], r["param_name"], _fmt(r["param"], 4)]
                 for r in est]
        out += [_md_table(["image", "level", "method", "parameter", "value"], table), ""]

    out.append("## Per image (PSNR, dB)")
    for l, name in zip(levels, lv):
        out += ["", f"### {name}", ""]
        header = ["image"] + keys
        table = []
        for im in images:
            table.append([im] + [_fmt(by[(k, l, im)]["psnr"]) if (k, l, im) in by else "-" for k in keys])
        table.append(["**mean**"] + [_fmt(mean_of(k, l, "psnr")) for k in keys])
        out.append(_md_table(header, table))
    edges = [r for r in rows if r["grid_edge"]]
    out += ["", "## Notes", ""]
    if edges:
        out.append(
            "Best factor on an edge of the grid (the oracle may be better outside it): "
            + ", ".join(f"{r['method']}/{r['image']}/{r['level']:g} (f={r['factor']:.3g})" for r in edges)
        )
    for n in notes:
        out.append(f"- {n}")
    if not edges and not notes:
        out.append("- none")
    return "\n".join(out) + "\n"


CSV_FIELDS = (
    "image",
    "model",
    "level",
    "method",
    "label",
    "psnr",
    "ssim",
    "param_name",
    "param",
    "factor",
    "grid_edge",
    "evals",
    "seconds",
    "search_seconds",
)


def write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in CSV_FIELDS})


def write_figures(out_dir, rows, settings, methods, levels, images, crops):
    """``psnr_vs_level.png`` and ``crops.png``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    model = settings["model"]
    keys = ["noisy"] + [m.key for m in methods]
    labels = {"noisy": "noisy input", **{m.key: _label(m, model) for m in methods}}
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = np.arange(len(levels))
    for k in keys:
        ys = [_mean([r["psnr"] for r in rows if r["method"] == k and r["level"] == l]) for l in levels]
        ax.plot(xs, ys, marker="o", label=labels[k], linestyle="--" if k == "noisy" else "-")
    ax.set_xticks(xs, [_level_label(model, l) for l in levels])
    ax.set_xlabel(f"{model} noise level")
    ax.set_ylabel(f"mean PSNR over {len(images)} images (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = os.path.join(out_dir, "psnr_vs_level.png")
    fig.savefig(p, dpi=120)
    plt.close(fig)
    paths.append(p)

    if crops:
        panels = list(crops["panels"].items())
        n = len(panels)
        cols = min(n, 5)
        nrows = (n + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 3.2 * nrows), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (title, (img, score)) in zip(axes.ravel(), panels):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title if score is None else f"{title}\n{score:.2f} dB", fontsize=7)
        fig.suptitle(f"{crops['image']}, {crops['level']} (centre crop)", fontsize=9)
        fig.tight_layout()
        p = os.path.join(out_dir, "crops.png")
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


# ----------------------------------------------------------------------- main


def _parse_levels(text, model):
    try:
        levels = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--levels: not a comma-separated list of numbers: {text!r}") from None
    if not levels or any(not np.isfinite(l) or l <= 0 for l in levels):
        raise argparse.ArgumentTypeError(f"--levels: every level must be a number > 0, got {text!r}")
    return levels


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.psnr",
        description="PSNR benchmark of nlm against scikit-image, OpenCV and BM3D on synthetic noise.",
    )
    p.add_argument(
        "--images",
        default=None,
        help="folder of images, or comma-separated skimage.data names "
        f"(default: {','.join(BUILTIN)}); colour images are converted to grey",
    )
    p.add_argument("--model", default="speckle", choices=("speckle", "gamma", "gaussian"), help="noise model")
    p.add_argument(
        "--levels",
        default=None,
        help="comma-separated noise levels: variance for speckle and gaussian (on the 0..1 scale), "
        "looks L for gamma (default speckle 0.01,0.04,0.1; gamma 1,4,16; gaussian the variances of "
        "sigma 10,25,50 of 255)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0, the same for every image)")
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated subset of: {','.join(METHOD_KEYS)} (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 64x64 crops of 2 images, one level, 3-point grids",
    )
    p.add_argument("--out", default="bench-out", help="output folder (default bench-out/)")
    p.add_argument("--no-figure", action="store_true", help="skip the matplotlib figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv=None):
    """Run the benchmark; ``argv`` as for :mod:`argparse` (None: ``sys.argv``).

    Returns 0 on success (``SystemExit`` with code 2 on bad arguments).
    """
    import click

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        levels = _parse_levels(args.levels, args.model) if args.levels else DEFAULT_LEVELS[args.model]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.methods:
        wanted = [k.strip() for k in args.methods.split(",") if k.strip()]
        bad = [k for k in wanted if k not in METHOD_KEYS]
        if bad or not wanted:
            parser.error(f"--methods: unknown {bad}; choose from {', '.join(METHOD_KEYS)}")
    else:
        wanted = list(METHOD_KEYS)
    if args.quick:
        levels = (levels[len(levels) // 2],)
    try:
        images = load_images(args.images, quick=args.quick)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))

    notes = []
    methods = []
    for m in METHODS:
        if m.key not in wanted:
            continue
        if args.model not in m.models:
            notes.append(f"`{m.key}` skipped: not defined for {args.model} noise")
            continue
        missing = [(r, _available(r)) for r in m.requires]
        missing = [(r, e) for r, e in missing if e]
        if missing:
            r, e = missing[0]
            notes.append(f"`{m.key}` skipped: `{r}` is not installed (pip install -e .[bench]) [{e}]")
            continue
        methods.append(m)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)

    grid, bgrid = (QUICK_GRID, QUICK_BM3D_GRID) if args.quick else (GRID, BM3D_GRID)
    ctx = {"model": args.model, "grid": grid, "bm3d_grid": bgrid}
    grid_note = (
        f"oracle grid f = {', '.join(f'{g:.3g}' for g in grid)} x each method's noise parameter "
        f"(BM3D: {', '.join(f'{g:.3g}' for g in bgrid)}), hill-climbed from f = 1"
    )
    settings = {
        "model": args.model,
        "seed": args.seed,
        "grid_note": grid_note,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"numpy {np.__version__}",
    }
    os.makedirs(args.out, exist_ok=True)
    _warm_up(methods)

    from nlm.metrics import ssim

    rows = []
    crops = None
    crop_image = next(iter(images))
    crop_level = levels[-1]
    total = len(images) * len(levels) * max(len(methods), 1)
    t0 = time.perf_counter()
    with click.progressbar(
        length=total,
        label="benchmark",
        file=sys.stderr if not args.no_progress else open(os.devnull, "w"),
        show_pos=True,
        item_show_func=lambda s: s,
    ) as bar:
        for level in levels:
            for name, clean in images.items():
                y = _noisy(clean, args.model, level, args.seed)
                ctx["level"] = float(level)
                base = {"image": name, "model": args.model, "level": float(level)}
                noisy_row = dict(
                    base,
                    method="noisy",
                    label="noisy input",
                    psnr=_score(clean, y),
                    ssim=ssim(clean, _clip01(y), data_range=1.0) if min(clean.shape) >= 7 else float("nan"),
                    param_name="",
                    param=float("nan"),
                    factor=float("nan"),
                    grid_edge=False,
                    evals=0,
                    seconds=0.0,
                    search_seconds=0.0,
                )
                rows.append(noisy_row)
                want_crop = name == crop_image and level == crop_level
                if want_crop:
                    crops = {
                        "image": name,
                        "level": _level_label(args.model, level),
                        "panels": {"clean": (clean, None), "noisy": (_clip01(y), noisy_row["psnr"])},
                    }
                for m in methods:
                    bar.update(0, f"{name} {_level_label(args.model, level)} {m.key}")
                    oc = m.run(clean, y, ctx)
                    out = _clip01(oc.output)
                    rows.append(
                        dict(
                            base,
                            method=m.key,
                            label=_label(m, args.model),
                            psnr=oc.psnr,
                            ssim=ssim(clean, out, data_range=1.0) if min(clean.shape) >= 7 else float("nan"),
                            param_name=oc.param_name,
                            param=float(oc.param),
                            factor=float(oc.factor),
                            grid_edge=bool(oc.edge),
                            evals=int(oc.evals),
                            seconds=float(oc.seconds),
                            search_seconds=float(oc.search_seconds),
                        )
                    )
                    if want_crop:
                        crops["panels"][m.key] = (out, oc.psnr)
                    bar.update(1, f"{name} {_level_label(args.model, level)} {m.key}")
    elapsed = time.perf_counter() - t0

    if crops:
        size = 128 if not args.quick else QUICK_SIZE
        crops["panels"] = {k: (_centre_crop(v[0], size), v[1]) for k, v in crops["panels"].items()}
    settings["grid_note"] += f" | total run {elapsed:.0f} s"
    fig_err = None if args.no_figure else _available("matplotlib")
    if fig_err:
        notes.append(f"figures skipped: matplotlib is not installed [{fig_err}]")
        print(f"note: {notes[-1]}", file=sys.stderr)
    md = build_markdown(rows, settings, notes, methods, levels, list(images))
    md_path = os.path.join(args.out, "psnr.md")
    csv_path = os.path.join(args.out, "psnr.csv")
    with open(md_path, "w") as fh:
        fh.write(md)
    write_csv(csv_path, rows)
    written = [md_path, csv_path]
    if not args.no_figure and not fig_err:
        written += write_figures(args.out, rows, settings, methods, levels, list(images), crops)
    print(md)
    print("wrote " + ", ".join(written), file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
