"""Per-pixel noise maps and masks: the issue-20 target and the cost of the map/mask path.

    python -m benchmarks.noise_maps            # Set12-like public images (skimage camera, astronaut grey)
    python -m benchmarks.noise_maps --quick    # camera only
    python -m benchmarks.noise_maps --volume   # + 3-D NL-Bayes on a public MRI volume (dipy's aniso_vox)

Target (issue 20, "Noise map"): Gaussian noise whose std ramps from 0.02 to
0.2 across a 2-D image (left to right, [0, 1] data): with the map, both
denoisers must beat their blind scalar run (sigma estimated) by >= 1 dB.
Each row prints PSNR blind (the anchor, measured in the same run), with the
true map, with the map from ``estimate_noise(return_map=True)``, and the
gains.  A second table times ``denoise_nl_means`` on the same image with a
scalar sigma (the unchanged scalar kernel), a noise map and a mask (the
separate map/mask kernel), and prints the ratios against the scalar run.

``--volume`` adds the same ramp (0.02 -> 0.2 along x) on a 3-D volume (the
held-out T1 MRI ``aniso_vox`` of :mod:`benchmarks.bayes3d`, 24x58x58; a
synthetic phantom when dipy is missing) with 3-D NL-Bayes: blind (the
anchor: ``noise="auto"``, and the scalar Gaussian sigma estimated), with the
true map and with ``estimate_noise(return_map=True)``'s map; and times 3-D
NL-Bayes (1 thread, min of interleaved runs) with a scalar sigma, a
constant map, a mask and both, as ratios against the scalar run.
"""

import argparse
import time

import numpy as np

TARGET_DB = 1.0


def _images(quick):
    from skimage import color, data, img_as_float

    out = {"camera": img_as_float(data.camera())}
    if not quick:
        out["astronaut (grey)"] = color.rgb2gray(img_as_float(data.astronaut()))
        out["coins"] = img_as_float(data.coins())
    return out


def _psnr(clean, x):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(x, np.float64) - clean) ** 2)))


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="camera only")
    p.add_argument("--volume", action="store_true", help="also 3-D NL-Bayes on a public MRI volume")
    args = p.parse_args(argv)

    import numba

    from nlm import denoise_nl_bayes, denoise_nl_means, estimate_noise

    print(f"threads: {numba.get_num_threads()}; sigma ramp 0.02 -> 0.2 left to right; target: map >= blind + "
          f"{TARGET_DB:g} dB")
    print(f"{'image':18s} {'method':6s} {'blind':>7s} {'true map':>9s} {'est. map':>9s} {'gain true':>10s} "
          f"{'gain est':>9s}  target")
    rows = []
    for name, clean in _images(args.quick).items():
        rng = np.random.default_rng(0)
        H, W = clean.shape
        smap = np.tile(np.linspace(0.02, 0.2, W), (H, 1))
        noisy = clean + smap * rng.standard_normal(clean.shape)
        _, est = estimate_noise(noisy, return_map=True)
        err = float(np.median(np.abs(est / smap - 1)))
        for method, fn in (("means", denoise_nl_means), ("bayes", lambda x, **k: denoise_nl_bayes(x, **k))):
            blind = _psnr(clean, fn(noisy))
            true = _psnr(clean, fn(noisy, sigma=smap))
            esti = _psnr(clean, fn(noisy, sigma=est))
            ok = min(true, esti) - blind >= TARGET_DB
            rows.append(ok)
            print(f"{name:18s} {method:6s} {blind:7.2f} {true:9.2f} {esti:9.2f} {true - blind:+10.2f} "
                  f"{esti - blind:+9.2f}  {'met' if ok else 'NOT met'}")
        print(f"{'':18s} estimated map: median relative error {err:.3f}")

    # cost of the map / mask path (the scalar kernel is untouched)
    clean = _images(True)["camera"].astype(np.float32)
    noisy = (clean + 0.08 * np.random.default_rng(1).standard_normal(clean.shape)).astype(np.float32)
    smap = np.full(clean.shape, 0.08, np.float32)
    mask = np.ones(clean.shape, bool)
    mask[100:140, 200:300] = False
    cases = {
        "scalar sigma": lambda: denoise_nl_means(noisy, 7, 10, 0.05, sigma=0.08),
        "noise map": lambda: denoise_nl_means(noisy, 7, 10, 0.05, sigma=smap),
        "mask": lambda: denoise_nl_means(noisy, 7, 10, 0.05, sigma=0.08, mask=mask),
        "map + mask": lambda: denoise_nl_means(noisy, 7, 10, 0.05, sigma=smap, mask=mask),
    }
    print("\ndenoise_nl_means, 512x512 float32, patch 7, distance 10 (median of 3 after a warm-up)")
    base = None
    for label, fn in cases.items():
        fn()
        times = sorted(_timed(fn)[1] for _ in range(3))
        t = times[1]
        base = t if base is None else base
        print(f"  {label:14s} {t:7.3f} s  {t / base:6.1f}x scalar")
    if args.volume:
        rows += volume()
    print("\nall targets met" if all(rows) else "\nsome targets NOT met")


def _volume():
    """The held-out T1 MRI of benchmarks.bayes3d in [0, 1], or a smooth phantom with edges (no dipy)."""
    from benchmarks import bayes3d

    v = bayes3d.load("aniso_vox")
    if v is not None:
        return "aniso_vox", v
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in (24, 58, 58)], indexing="ij")
    v = 0.5 + 0.2 * np.sin(3 * x + 2 * y) * np.cos(2 * z) + 0.2 * ((x**2 + y**2 + z**2) < 0.4)
    return "phantom (no dipy)", v


def volume():
    """3-D NL-Bayes with the ramp's map vs blind (one verdict line), then the cost of the map/mask path."""
    import numba

    from nlm import denoise_nl_bayes, estimate_noise

    name, clean = _volume()
    Z, H, W = clean.shape
    smap = np.broadcast_to(np.linspace(0.02, 0.2, W), clean.shape).copy()
    noisy = clean + smap * np.random.default_rng(0).standard_normal(clean.shape)
    _, est = estimate_noise(noisy, return_map=True)

    def p(x):
        return _psnr(clean, np.clip(x, 0, 1))

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    auto = p(denoise_nl_bayes(noisy))
    scalar = p(denoise_nl_bayes(noisy, noise="gaussian"))
    true = p(denoise_nl_bayes(noisy, sigma=smap))
    esti = p(denoise_nl_bayes(noisy, sigma=est))
    blind = max(auto, scalar)
    ok = min(true, esti) - blind >= TARGET_DB
    print(f"\n3-D NL-Bayes, {name} {Z}x{H}x{W}, sigma ramp 0.02 -> 0.2 along x (PSNR of the output clipped "
          "to [0, 1])")
    print(f"  noisy {p(noisy):.2f}  blind auto {auto:.2f}  blind scalar {scalar:.2f}  true map {true:.2f} "
          f"({true - blind:+.2f})  est. map {esti:.2f} ({esti - blind:+.2f})  {'met' if ok else 'NOT met'}")

    x = (clean.astype(np.float32) + np.float32(0.05) * np.random.default_rng(1).standard_normal(clean.shape,
                                                                                               np.float32))
    flat = np.full(clean.shape, 0.05, np.float32)
    mask = np.ones(clean.shape, bool)
    mask[tuple(slice(n // 3, n // 3 + n // 4) for n in clean.shape)] = False
    cases = {
        "scalar sigma": dict(sigma=0.05),
        "noise map": dict(sigma=flat),
        "mask": dict(sigma=0.05, mask=mask),
        "map + mask": dict(sigma=flat, mask=mask),
    }
    times = {k: [] for k in cases}
    for r in range(6):  # interleaved, the first round a warm-up: min is robust on a shared machine
        for k, kw in cases.items():
            t = time.perf_counter()
            denoise_nl_bayes(x, num_threads=1, **kw)
            if r:
                times[k].append(time.perf_counter() - t)
    print(f"3-D NL-Bayes, {name} float32 sigma 0.05, 1 thread (min of 5 interleaved runs)")
    base = min(times["scalar sigma"])
    for k, ts in times.items():
        print(f"  {k:14s} {min(ts):7.3f} s  {min(ts) / base:6.2f}x scalar")
    return [ok]


if __name__ == "__main__":
    main()
