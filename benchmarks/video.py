"""Video denoising against OpenCV's Multi functions and ffmpeg's nlmeans.

    python benchmarks/video.py               # target case + grey/colour x Gaussian/speckle table
    python benchmarks/video.py --quick       # the target case only
    python benchmarks/video.py --clip my.mp4 # also time a real clip (no clean reference: fps only)

Synthetic clips: a slowly panning 512x512 crop (2 px right, 1 px down per
frame) of a still image (scikit-image's camera for grey, astronaut for colour,
upscaled), uint8, with Gaussian noise (sigma 20 on 0..255) or speckle
(``y = x + x n``, ``n ~ N(0, 0.04)``), seeded.

Methods, all at equal geometry (7x7 patches, 21x21 search window, 5 frames):

* ``nlm``: :func:`nlm.denoisers.video.denoise_frames` (``temporal_radius=2``; ``h``
  and ``sigma`` automatic, from the first frame), float32, rounded to uint8;
* OpenCV ``fastNlMeansDenoisingMulti`` (grey) / ``...ColoredMulti`` (colour,
  ``hColor = h``) with ``temporalWindowSize=5``, called once per frame (the
  window clipped at the clip's ends, where OpenCV needs it centred on the
  frame: 3 frames, then 1, as nlm's window); ``h`` is
  the best of a grid by PSNR on the middle frame (an oracle choice, in
  OpenCV's favour);
* ffmpeg's ``nlmeans`` filter (``p=7:r=21``; spatial only: it has no temporal
  window) through PyAV's bundled libavfilter, or an ``ffmpeg`` binary's if
  PyAV is missing; ``s`` the best of a grid likewise; n/a when neither exists.

Every figure is measured in this one run, on a machine that may be shared:
compare the ratios (same run), not the absolute times.  The target row is the
median of ``--repeat`` runs.
"""

import argparse
import shutil
import sys
import time
from fractions import Fraction

import numpy as np

T_RADIUS = 2
PATCH, DIST = 7, 10  # 7x7 patches, 21x21 window
#: the issue's bars: nlm fps / OpenCV Multi fps, and PSNR at least OpenCV's
BAR_SPEED = 3.0


def _still(colour, size):
    from skimage import data, transform

    img = data.astronaut() if colour else data.camera()
    big = int(size * 1.25)
    up = transform.resize(img, (big, big) + img.shape[2:], order=3, anti_aliasing=False)
    return np.clip(up, 0, 1)


def synthetic_clip(colour, noise, frames=8, size=512, seed=0):
    """(clean uint8, noisy uint8) clips (T, H, W[, 3]): a panning crop plus noise."""
    still = _still(colour, size)
    clean = np.stack([still[t : t + size, 2 * t : 2 * t + size] for t in range(frames)])
    rng = np.random.default_rng(seed)
    if noise == "gaussian":
        noisy = clean + rng.normal(0, 20 / 255, clean.shape)
    else:
        noisy = clean + clean * rng.normal(0, np.sqrt(0.04), clean.shape)
    to8 = lambda a: np.clip(np.rint(a * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return to8(clean), to8(noisy)


def psnr(ref, x):
    mse = np.mean((ref.astype(np.float64) - x.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")


# --------------------------------------------------------------------------- #
# the three methods
# --------------------------------------------------------------------------- #
def run_nlm(noisy):
    from nlm.denoisers.video import denoise_frames

    out = denoise_frames(noisy.astype(np.float32), PATCH, DIST, temporal_radius=T_RADIUS)
    return np.stack([np.clip(np.rint(f), 0, 255).astype(np.uint8) for f in out])


def _cv_frame(noisy, i, h):
    """OpenCV's Multi for frame i: the window must be centred on the frame, so
    it is clipped at the clip's ends (3 frames, then 1), as nlm's is."""
    import cv2

    T = len(noisy)
    r = min(T_RADIUS, i, T - 1 - i)
    frames = [np.ascontiguousarray(f) for f in noisy[i - r : i + r + 1]]
    if noisy.ndim == 4:
        bgr = [f[..., ::-1].copy() for f in frames]
        out = cv2.fastNlMeansDenoisingColoredMulti(bgr, r, 2 * r + 1, None, h, h, PATCH, 2 * DIST + 1)
        return out[..., ::-1]
    return cv2.fastNlMeansDenoisingMulti(frames, r, 2 * r + 1, None, h, PATCH, 2 * DIST + 1)


def run_opencv(noisy, h):
    return np.stack([_cv_frame(noisy, i, h) for i in range(len(noisy))])


def _ffmpeg_pyav(noisy, s):
    import av

    colour = noisy.ndim == 4
    graph = av.filter.Graph()
    src = graph.add_buffer(width=noisy.shape[2], height=noisy.shape[1], format="rgb24" if colour else "gray",
                           time_base=Fraction(1, 25))
    nlm_f = graph.add("nlmeans", f"s={s}:p={PATCH}:r={2 * DIST + 1}")
    sink = graph.add("buffersink")
    src.link_to(nlm_f)
    nlm_f.link_to(sink)
    graph.configure()
    out = []
    for i, f in enumerate(noisy):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24" if colour else "gray")
        vf.pts = i
        graph.push(vf)
        out.append(graph.pull().to_ndarray(format="rgb24" if colour else "gray"))
    return np.stack(out)


def _ffmpeg_binary(noisy, s, exe):
    import subprocess

    colour = noisy.ndim == 4
    T, H, W = noisy.shape[:3]
    pix = "rgb24" if colour else "gray"
    cmd = [exe, "-v", "error", "-f", "rawvideo", "-pix_fmt", pix, "-s", f"{W}x{H}", "-i", "-",
           "-vf", f"nlmeans=s={s}:p={PATCH}:r={2 * DIST + 1}", "-f", "rawvideo", "-pix_fmt", pix, "-"]
    res = subprocess.run(cmd, input=noisy.tobytes(), capture_output=True, check=True)
    return np.frombuffer(res.stdout, np.uint8).reshape(noisy.shape)


def ffmpeg_backend():
    """A callable (noisy, s) -> denoised, and its name; (None, reason) when unavailable."""
    try:
        import av

        if "nlmeans" in av.filter.filters_available:
            return _ffmpeg_pyav, f"PyAV {av.__version__} libavfilter"
    except ImportError:
        pass
    exe = shutil.which("ffmpeg")
    if exe:
        return (lambda n, s: _ffmpeg_binary(n, s, exe)), exe
    return None, "no ffmpeg binary and no PyAV"


def _best(frame_fn, noisy, clean, grid):
    """The grid value with the best PSNR on the middle frame: ``frame_fn(noisy, i, v)``
    returns frame ``i`` denoised with the parameter ``v``."""
    k = len(noisy) // 2
    scores = {v: psnr(clean[k], frame_fn(noisy, k, v)) for v in grid}
    return max(scores, key=scores.get)


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


# --------------------------------------------------------------------------- #
def target(repeat, frames, size=512):
    """Grey 512x512, 5-frame window, 7x7 / 21x21: nlm fps against OpenCV Multi fps, same run."""
    import cv2

    from nlm import estimate_sigma

    clean, noisy = synthetic_clip(False, "gaussian", frames=frames, size=size)
    sigma = float(estimate_sigma(noisy[0].astype(np.float64)))
    h_cv = _best(_cv_frame, noisy, clean, [round(f * sigma, 1) for f in (0.4, 0.6, 0.8, 1.0, 1.3)])
    run_nlm(noisy[:3])  # compile
    tn, tc = [], []
    for _ in range(repeat):
        out_n, t = _timed(run_nlm, noisy)
        tn.append(t)
        out_c, t = _timed(run_opencv, noisy, h_cv)
        tc.append(t)
    fps_n, fps_c = frames / np.median(tn), frames / np.median(tc)
    pn = np.mean([psnr(c, o) for c, o in zip(clean, out_n)])
    pc = np.mean([psnr(c, o) for c, o in zip(clean, out_c)])
    pairs = np.median(np.array(tc) / np.array(tn))
    print(f"## Target: grey {size}x{size}, {frames} frames, temporal window 5, 7x7 patch, 21x21 window "
          f"(median of {repeat}; OpenCV {cv2.__version__}, h={h_cv} best of grid)")
    print()
    print("| method | fps | mean PSNR (dB) |")
    print("|---|---|---|")
    print(f"| noisy | - | {np.mean([psnr(c, o) for c, o in zip(clean, noisy)]):.2f} |")
    print(f"| nlm (auto h, R=2) | {fps_n:.2f} | {pn:.2f} |")
    print(f"| OpenCV fastNlMeansDenoisingMulti | {fps_c:.2f} | {pc:.2f} |")
    print()
    speed = fps_n / fps_c
    print(f"nlm / OpenCV fps: {speed:.2f}x (median of per-run ratios {pairs:.2f}x); "
          f"bar >= {BAR_SPEED:g}x: {'met' if speed >= BAR_SPEED else 'NOT met'}; "
          f"PSNR nlm - OpenCV: {pn - pc:+.2f} dB: {'met' if pn >= pc else 'NOT met'}")
    print()


def table(frames, size=512):
    import cv2  # noqa: F401

    from nlm import estimate_sigma

    ff, ff_name = ffmpeg_backend()
    print(f"## Synthetic clips: {size}x{size}, {frames} frames (ffmpeg nlmeans: {ff_name})")
    print()
    print("| clip | method | parameter | fps | mean PSNR (dB) |")
    print("|---|---|---|---|---|")
    per_frame = []
    for colour in (False, True):
        for noise in ("gaussian", "speckle"):
            name = f"{'colour' if colour else 'grey'} {noise}"
            clean, noisy = synthetic_clip(colour, noise, frames=frames, size=size)
            sigma = float(estimate_sigma(noisy[0].astype(np.float64), channel_axis=-1 if colour else None,
                                         average_sigmas=True))
            rows = [("noisy", "-", None, noisy)]
            run_nlm(noisy[:2])
            out, t = _timed(run_nlm, noisy)
            rows.append(("nlm", "auto h, R=2", frames / t, out))
            h = _best(_cv_frame, noisy, clean, [round(f * sigma, 1) for f in (0.4, 0.6, 0.8, 1.0, 1.3)])
            out, t = _timed(run_opencv, noisy, h)
            rows.append(("OpenCV Multi" + (" (Colored)" if colour else ""), f"h={h}", frames / t, out))
            if ff is not None:
                grid = sorted({round(min(max(f * sigma, 1.0), 30.0), 1) for f in (0.5, 0.75, 1.0, 1.5)})
                s = _best(lambda n, i, v: ff(n[i : i + 1], v)[0], noisy, clean, grid)
                out, t = _timed(ff, noisy, s)
                rows.append(("ffmpeg nlmeans (spatial)", f"s={s}", frames / t, out))
            else:
                rows.append(("ffmpeg nlmeans", "n/a", None, None))
            out, t = _timed(_video_bayes, noisy, None)
            rows.append(("nlm NL-Bayes (--method bayes)", "blind", frames / t, out))
            for method, param, fps, out in rows:
                if out is None:
                    print(f"| {name} | {method} | {param} | n/a | n/a |")
                    continue
                ps = [psnr(c, o) for c, o in zip(clean, out)]
                per_frame.append((name, method, ps))
                print(f"| {name} | {method} | {param} | {'-' if fps is None else f'{fps:.2f}'} | {np.mean(ps):.2f} |")
    print()
    best = {}
    for name, method, ps in per_frame:
        best.setdefault(name, {})[method] = np.mean(ps)
    for name, scores in best.items():
        cv = next(v for k, v in scores.items() if k.startswith("OpenCV"))
        ours = max(v for k, v in scores.items() if k.startswith("nlm"))
        print(f"{name}: best nlm {ours:.2f} dB vs OpenCV Multi (oracle h) {cv:.2f} dB: "
              f"{'met' if ours >= cv else 'NOT met'}")
    print()
    print("PSNR per frame (dB):")
    for name, method, ps in per_frame:
        print(f"  {name:16s} {method:28s} " + " ".join(f"{p:.2f}" for p in ps))
    print()


def real_clip(path, max_frames):
    from nlm.denoisers.video import denoise_frames
    from nlm.io.video import open_frames

    info, frames = open_frames(path)
    print(f"## Real clip: {path} ({info.describe()}), first {max_frames} frames; no clean reference: fps only")
    clip = []
    for f in frames:
        clip.append(f)
        if len(clip) >= max_frames:
            break
    frames.close()
    clip = np.stack(clip)
    data_max = float(np.iinfo(clip.dtype).max)
    t = time.perf_counter()
    n = sum(1 for _ in denoise_frames(clip.astype(np.float32), PATCH, DIST, temporal_radius=T_RADIUS))
    fps_n = n / (time.perf_counter() - t)
    print(f"nlm: {fps_n:.2f} fps")
    if clip.dtype == np.uint8:
        t = time.perf_counter()
        run_opencv(clip, 10.0 * data_max / 255)
        print(f"OpenCV Multi (h=10): {len(clip) / (time.perf_counter() - t):.2f} fps")
    print()


def memory(counts=(10, 40), size=(1080, 1920)):
    """Peak RSS of ``nlm denoise clip.mkv out.mkv`` on 1080p clips of several lengths.

    Grey FFV1 clips made here; 3x3 patches and a 5x5 window (time is not the
    point: the window of 2R + 1 = 5 frames, the decoder and the encoder are),
    each run in a fresh process, peak from ``VmHWM``.
    """
    import os
    import subprocess
    import tempfile

    import av

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys; from click.testing import CliRunner; import cli; "
        "r = CliRunner().invoke(cli.main, ['denoise', sys.argv[1], sys.argv[2], '--patch-size', '3', "
        "'--patch-distance', '2', '--temporal-radius', '2', '-q']); assert r.exit_code == 0, r.output; "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    H, W = size
    print(f"## Peak memory, {W}x{H} grey clips (FFV1 in, FFV1 out, temporal window 5)")
    print()
    print("| frames | seconds | peak RSS (MiB) |")
    print("|---|---|---|")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            src = os.path.join(tmp, f"c{n}.mkv")
            with av.open(src, "w") as c:
                st = c.add_stream("ffv1", rate=25)
                st.width, st.height, st.pix_fmt = W, H, "gray"
                base = rng.integers(0, 256, (H, W), dtype=np.uint8)
                for i in range(n):
                    f = av.VideoFrame.from_ndarray(np.roll(base, i, axis=1), format="gray")
                    f.pts = i
                    for p in st.encode(f):
                        c.mux(p)
                for p in st.encode(None):
                    c.mux(p)
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code, src, os.path.join(tmp, f"o{n}.mkv")],
                                 capture_output=True, text=True, cwd=root, check=True)
            print(f"| {n} | {time.perf_counter() - t:.1f} | {int(out.stdout.split()[-1]) / 1024:.0f} |")
    print()


# --------------------------------------------------------------------------- #
# motion clips for video NL-Bayes: panning, hand-held shake, a moving object
# --------------------------------------------------------------------------- #
MOTION_KINDS = ("pan", "shake", "object")


def _base(colour, H, W, margin):
    """A still of (H + 2 margin) x (W + 2 margin): scikit-image's camera / coffee, resized."""
    from skimage import data, transform

    img = data.coffee() if colour else data.camera()
    out = transform.resize(img, (H + 2 * margin, W + 2 * margin) + img.shape[2:], order=3, anti_aliasing=True)
    return np.clip(out, 0, 1)


def motion_clip(kind, colour, frames=10, H=144, W=176, seed=0):
    """A clean clip (T, H, W[, 3]) in [0, 1], float64, of one kind of motion.

    ``pan``: the camera pans 2 px right and 1 px down per frame (integer
    shifts of a still).  ``shake``: hand-held shake: sub-pixel translations
    of a still (a seeded random walk, steps of up to 1.5 px per axis, plus a
    slow drift), cubic interpolation.  ``object``: a still background and a
    textured object (a disc cut from another still, scikit-image's
    astronaut / coins) moving 3 px right and 2 px down per frame.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    m = 24 + 3 * frames
    base = _base(colour, H, W, m)
    out = []
    if kind == "pan":
        for t in range(frames):
            out.append(base[m + t : m + t + H, m + 2 * t - frames : m + 2 * t - frames + W])
    elif kind == "shake":
        pos = np.zeros(2)
        for _ in range(frames):
            shifted = [ndimage.shift(base[..., c] if colour else base, -pos, order=3, mode="reflect")
                       for c in range(3 if colour else 1)]
            a = np.stack(shifted, -1) if colour else shifted[0]
            out.append(a[m : m + H, m : m + W])
            pos = np.clip(pos + rng.uniform(-1.5, 1.5, 2) + (0.3, 0.5), -m + 2, m - 2)
    elif kind == "object":
        from skimage import data, transform

        src = data.astronaut() / 255.0 if colour else data.coins() / 255.0
        r = min(H, W) // 4
        obj = transform.resize(src[60:60 + 200, 150:150 + 200] if colour else src[80:180, 100:200],
                               (2 * r, 2 * r) + src.shape[2:], order=1, anti_aliasing=True)
        yy, xx = np.mgrid[-r:r, -r:r]
        disc = (yy**2 + xx**2) < r**2
        if colour:
            disc = disc[..., None]
        still = base[m : m + H, m : m + W]
        for t in range(frames):
            f = still.copy()
            y0, x0 = 8 + 2 * t, 8 + 3 * t
            y1, x1 = min(y0 + 2 * r, H), min(x0 + 2 * r, W)
            win = f[y0:y1, x0:x1]
            d = disc[: y1 - y0, : x1 - x0]
            f[y0:y1, x0:x1] = np.where(d, obj[: y1 - y0, : x1 - x0], win)
            out.append(f)
    else:
        raise ValueError(kind)
    return np.clip(np.stack(out), 0, 1)


def noisy8(clean, sigma, seed=0):
    """(clean uint8, noisy uint8): Gaussian noise of ``sigma`` (0..255) added, rounded and clipped to 8 bits."""
    rng = np.random.default_rng(seed)
    c8 = np.clip(np.rint(clean * 255), 0, 255)
    n8 = np.clip(np.rint(c8 + rng.normal(0, sigma, c8.shape)), 0, 255)
    return c8.astype(np.uint8), n8.astype(np.uint8)


#: the issue's bars for video NL-Bayes (dB on the mean over the clips at a level; per clip; time ratio)
BAR_VS_FRAME, BAR_VS_NLM, BAR_CLIP, BAR_TIME = 1.0, 1.5, 0.3, 5.0
LEVELS = (10, 20, 40)


def _u8(frames):
    return np.stack([np.clip(np.rint(f), 0, 255).astype(np.uint8) for f in frames])


def _per_frame_bayes(noisy, threads):
    from nlm import denoise_nl_bayes

    ax = -1 if noisy.ndim == 4 else None
    return _u8([denoise_nl_bayes(f, channel_axis=ax, preserve_range=True, num_threads=threads) for f in noisy])


def _video_nlm(noisy):
    from nlm.denoisers.video import denoise_frames

    return _u8(denoise_frames(noisy))  # library defaults: h and sigma from the first frame, R from sigma


def _video_bayes(noisy, threads):
    from nlm.denoisers.video_bayes import denoise_frames_bayes

    return _u8(denoise_frames_bayes(noisy, num_threads=threads))


def bayes_targets(frames=10, H=144, W=176, threads=2, levels=LEVELS):
    """Video NL-Bayes (blind) against per-frame 2-D NL-Bayes (blind) and nlm's video NLM (library
    defaults), on the six motion clips (grey / colour x pan / shake / object), 8-bit, clipped Gaussian noise."""
    import numba

    numba.set_num_threads(threads)
    print(f"## Video NL-Bayes: {frames} frames of {W}x{H}, 8-bit, Gaussian noise clipped, blind, {threads} threads")
    print()
    print("| sigma | clip | noisy | per-frame NL-Bayes | video NLM | video NL-Bayes | vs per-frame | vs NLM | "
          "time / per-frame |")
    print("|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for sigma in levels:
        gains_f, gains_n, ratios = [], [], []
        for colour in (False, True):
            for kind in MOTION_KINDS:
                clean, noisy = noisy8(motion_clip(kind, colour, frames=frames, H=H, W=W), sigma, seed=sigma)
                per, tf = _timed(_per_frame_bayes, noisy, threads)
                nl = _video_nlm(noisy)
                vb, tv = _timed(_video_bayes, noisy, threads)
                p = [np.mean([psnr(c, o) for c, o in zip(clean, x)]) for x in (noisy, per, nl, vb)]
                gains_f.append(p[3] - p[1])
                gains_n.append(p[3] - p[2])
                ratios.append(tv / tf)
                name = f"{'colour' if colour else 'grey'} {kind}"
                print(f"| {sigma} | {name} | {p[0]:.2f} | {p[1]:.2f} | {p[2]:.2f} | {p[3]:.2f} | "
                      f"{p[3] - p[1]:+.2f} | {p[3] - p[2]:+.2f} | {tv / tf:.2f}x |")
        mf, mn, worst = np.mean(gains_f), np.mean(gains_n), min(gains_f)
        ok = mf >= BAR_VS_FRAME and mn >= BAR_VS_NLM and worst >= BAR_CLIP
        verdicts.append(f"sigma {sigma}: mean {mf:+.2f} dB vs per-frame NL-Bayes (bar +{BAR_VS_FRAME}), "
                        f"{mn:+.2f} dB vs video NLM (bar +{BAR_VS_NLM}), worst clip {worst:+.2f} dB "
                        f"(bar +{BAR_CLIP}): {'met' if ok else 'NOT met'}")
    print()
    for v in verdicts:
        print(v)
    print()


def bayes_speed(frames=8, H=360, W=640, threads=2, sigma=20):
    """Frames per second at 640x360 grey, sigma 20: video NL-Bayes against per-frame 2-D NL-Bayes (same run)."""
    import numba

    numba.set_num_threads(threads)
    clean, noisy = noisy8(motion_clip("pan", False, frames=frames, H=H, W=W), sigma, seed=1)
    _per_frame_bayes(noisy[:1], threads)  # compile
    _video_bayes(noisy[:3], threads)
    per, tf = _timed(_per_frame_bayes, noisy, threads)
    vb, tv = _timed(_video_bayes, noisy, threads)
    pf = np.mean([psnr(c, o) for c, o in zip(clean, per)])
    pv = np.mean([psnr(c, o) for c, o in zip(clean, vb)])
    print(f"## Speed: {W}x{H} grey pan, sigma {sigma}, {frames} frames, {threads} threads")
    print()
    print("| method | frames/s | mean PSNR (dB) |")
    print("|---|---|---|")
    print(f"| per-frame 2-D NL-Bayes | {frames / tf:.2f} | {pf:.2f} |")
    print(f"| video NL-Bayes | {frames / tv:.2f} | {pv:.2f} |")
    print()
    verdict = "met" if tv / tf <= BAR_TIME else "NOT met"
    print(f"time video / per-frame: {tv / tf:.2f}x; bar <= {BAR_TIME:g}x: {verdict}")
    print()


def bayes_memory(counts=(20, 200), H=144, W=176):
    """Peak RSS of ``nlm denoise clip.mkv out.mkv --method bayes`` in a fresh process per clip length."""
    import os
    import subprocess
    import tempfile

    import av

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys; from click.testing import CliRunner; import cli; "
        "r = CliRunner().invoke(cli.main, ['denoise', sys.argv[1], sys.argv[2], '--method', 'bayes', '-q']); "
        "assert r.exit_code == 0, r.output; "
        "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    )
    print(f"## Peak memory of video NL-Bayes, {W}x{H} grey pan (FFV1 in and out, sigma 20)")
    print()
    print("| frames | seconds | peak RSS (MiB) |")
    print("|---|---|---|")
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            _, noisy = noisy8(motion_clip("pan", False, frames=n, H=H, W=W), 20, seed=2)
            src = os.path.join(tmp, f"c{n}.mkv")
            with av.open(src, "w") as c:
                st = c.add_stream("ffv1", rate=25)
                st.width, st.height, st.pix_fmt = W, H, "gray"
                for i, f in enumerate(noisy):
                    vf = av.VideoFrame.from_ndarray(f, format="gray")
                    vf.pts = i
                    for p in st.encode(vf):
                        c.mux(p)
                for p in st.encode(None):
                    c.mux(p)
            del noisy
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code, src, os.path.join(tmp, f"o{n}.mkv")],
                                 capture_output=True, text=True, cwd=root, check=True)
            peaks.append(int(out.stdout.split()[-1]) / 1024)
            print(f"| {n} | {time.perf_counter() - t:.1f} | {peaks[-1]:.0f} |")
    print()
    print(f"peak {counts[-1]} frames / {counts[0]} frames: {peaks[-1] / peaks[0]:.3f} "
          f"({'flat' if peaks[-1] <= 1.05 * peaks[0] else 'NOT flat'})")
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the target case only")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the target case (median)")
    ap.add_argument("--frames", type=int, default=8, help="frames of the synthetic clips")
    ap.add_argument("--size", type=int, default=512, help="side of the synthetic clips (the target is 512)")
    ap.add_argument("--clip", default=None, help="a real clip to time as well")
    ap.add_argument("--clip-frames", type=int, default=30)
    ap.add_argument("--memory", action="store_true", help="also the peak RSS on 1080p clips of 10 and 40 frames")
    ap.add_argument("--bayes", action="store_true", help="video NL-Bayes only: its targets, speed and memory")
    ap.add_argument("--bayes-frames", type=int, default=10, help="frames of the NL-Bayes motion clips")
    args = ap.parse_args(argv)
    import numba

    print(f"threads: {numba.get_num_threads()}, numba {numba.__version__}, python {sys.version.split()[0]}")
    print()
    if args.bayes:
        bayes_targets(args.bayes_frames)
        bayes_speed()
        bayes_memory()
        return
    target(args.repeat, args.frames, args.size)
    if not args.quick:
        table(args.frames, args.size)
    if args.memory:
        memory()
    if args.clip:
        real_clip(args.clip, args.clip_frames)


if __name__ == "__main__":
    main()
