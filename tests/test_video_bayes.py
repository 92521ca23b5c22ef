"""Video NL-Bayes: the space-time kernel against its NumPy twin, the streamed passes, properties, API."""

import naive_bayes as naive
import numpy as np
import pytest

from nlm.denoisers import video_bayes as VB
from nlm.denoisers.bayes_setup import _colour_transform, _grid, _level_table
from nlm.denoisers.video_bayes import denoise_frames_bayes, video_bayes_parameters
from nlm.metrics import psnr
from nlm.noise import Gaussian
from nlm.ops import _bayes_video as K


def _rng(seed):
    return np.random.default_rng(seed)


def _flows(S, H, W, seed, scale=2.0):
    rng = _rng(seed)
    fwd = (rng.normal(0, scale, (S, H, W, 2)) + 0.5).astype(np.float32)
    bwd = (rng.normal(0, scale, (S, H, W, 2)) - 0.5).astype(np.float32)
    return fwd, bwd


def _clip(T=5, H=14, W=17, C=1, seed=0):
    """A smooth moving pattern plus noise, channel-first (C, T, H, W), in [0, 1]."""
    rng = _rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    frames = [0.5 + 0.3 * np.sin(0.5 * (x - t) + 0.3 * y + c) for t in range(T) for c in range(C)]
    clean = np.array(frames).reshape(T, C, H, W).transpose(1, 0, 2, 3)
    return np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)


# ------------------------------------------------------------------ kernels
def test_chain_matches_oracle():
    fwd, bwd = _flows(6, 11, 13, 1, scale=3.0)
    for t, qt, ri, rj, reach in [(0, 3, 0, 0, 10), (4, 1, 8, 9, 10), (2, 5, 5, 6, 3), (3, 3, 4, 4, 5),
                                 (5, 0, 10, 12, 1), (1, 2, 7, 0, 0)]:
        assert K.chain(fwd, bwd, t, qt, ri, rj, 1, reach) == naive.chain(fwd, bwd, t, qt, ri, rj, 1, reach)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, c_dist", [(1, 1), (3, 1), (3, 3)])
def test_vsearch_matches_oracle(dtype, C, c_dist):
    guide = _clip(5, 13, 11, C, seed=2).astype(dtype)
    guide[:, 1:3, 4:8, 2:6] = 0.5  # exact ties and distances of 0
    fwd, bwd = _flows(5, 13, 11, 3)
    p, pt, rad = 3, 2, 2
    for t, f_lo, f_hi, ri, rj, reach, n_sim, n_max, tau in [
        (0, 0, 2, 0, 0, 4, 6, 6, -1.0), (2, 0, 3, 5, 4, 3, 10, 30, 0.01), (3, 1, 3, 10, 8, 2, 4, 60, 0.05),
        (1, 0, 3, 4, 3, 0, 500, 500, -1.0), (2, 1, 3, 6, 0, 6, 1, 1, -1.0),
    ]:
        side = (f_hi - f_lo + 1) * (2 * rad + 1) ** 2
        cap = max(n_sim, n_max)
        dist, idx = np.empty(cap), np.empty(cap, dtype=np.int64)
        n = K.vsearch(guide, fwd, bwd, t, f_lo, f_hi, ri, rj, p, pt, rad, reach, c_dist, n_sim, n_max, tau, dist,
                      idx, np.empty(side), np.empty(side, dtype=np.int64), np.empty(side))
        want_d, want_i = naive.vsearch(guide, fwd, bwd, t, f_lo, f_hi, ri, rj, p, pt, rad, reach, c_dist, n_sim,
                                       n_max, tau)
        assert n == len(want_i)
        np.testing.assert_array_equal(idx[:n], want_i)
        np.testing.assert_allclose(dist[:n], want_d, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-12)


def _rings(noisy, guide):
    C, S, H, W = noisy.shape
    return (np.zeros((C, S, H, W)), np.zeros((S, H, W), np.float32), np.zeros((S, H - 2, W - 2), bool),
            np.zeros((C, S, H, W)), np.zeros((S, H, W)), np.zeros((S, H - 2, W - 2), bool))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, step1", [(1, True), (1, False), (3, True), (3, False), (2, False)])
def test_video_step_matches_oracle(dtype, C, step1):
    """A whole tiny clip, frame by frame, ring of 5 slots over 6 frames (it wraps), odd sizes."""
    T, H, W, p, pt, rad, R = 6, 15, 13, 3, 2, 2, 1
    full = _clip(T, H, W, C, seed=4)
    S = 2 * R + pt + 1
    fwd, bwd = _flows(S, H, W, 5, scale=1.5)
    nlf = Gaussian(0.08).coefficients
    nlf = np.array(nlf, dtype=np.float64)
    tmat = _colour_transform(C)
    rows, cols = _grid(H, p, 2), _grid(W, p, 2)
    noisy = np.zeros((C, S, H, W), dtype)
    guide = np.zeros((C, S, H, W), dtype)
    num, wgt, mask, num2, wgt2, mask2 = _rings(noisy, guide)
    smooth = np.clip(full * 0.5 + 0.25, 0, 1)
    outs = []
    for t in range(T - pt + 1):
        for f in range(t, min(t + R + pt, T)):  # frames entering the ring (as the streamed passes do)
            if f == t + R + pt - 1 or t == 0:
                s = f % S
                noisy[:, s] = full[:, f]
                guide[:, s] = full[:, f] if step1 else smooth[:, f]
                for a in (num, num2):
                    a[:, s] = 0
                for a in (wgt, wgt2, mask, mask2):
                    a[s] = 0
        f_lo, f_hi = max(t - R, 0), min(t + R, T - pt)
        args = (t, f_lo, f_hi, rows, cols, p, pt, rad, 2, 8, 16, 0.01, step1, nlf, tmat, 1.0, 1.05)
        K.video_step(noisy, noisy if step1 else guide, num, wgt, mask, fwd, bwd, *args)
        naive.video_step(noisy, noisy if step1 else guide, num2, wgt2, mask2, fwd, bwd, *args)
        np.testing.assert_array_equal(mask, mask2)
        np.testing.assert_array_equal(wgt, wgt2)
        np.testing.assert_allclose(num, num2, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-6)
        outs.append(wgt.sum())
    assert outs[-1] > 0


# ------------------------------------------------------------------ streamed passes
def _moving(T=6, H=30, W=34, C=None, sigma=12.0, seed=0):
    rng = _rng(seed)
    y, x = np.mgrid[0 : H + 20, 0 : W + 40]
    still = 120 + 60 * np.sin(0.35 * x) * np.cos(0.25 * y) + 40 * ((x // 8 + y // 8) % 2)
    if C:
        still = np.stack([still * (0.6 + 0.2 * c) for c in range(C)], -1)
    clean = np.stack([still[t : t + H, 2 * t : 2 * t + W] for t in range(T)])
    noisy = np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)
    return np.clip(clean, 0, 255), noisy


def test_threads_and_ring_do_not_change_the_result(monkeypatch):
    _, noisy = _moving(T=7, C=3)
    a = np.stack(list(denoise_frames_bayes(noisy, sigma=12.0, num_threads=1, dtype=np.float64)))
    b = np.stack(list(denoise_frames_bayes(noisy, sigma=12.0, num_threads=2, dtype=np.float64)))
    np.testing.assert_array_equal(a, b)
    init = VB._Pass.__init__
    monkeypatch.setattr(VB._Pass, "__init__", lambda self, *a, **k: init(self, *a, **dict(k, slots=64)))
    c = np.stack(list(denoise_frames_bayes(noisy, sigma=12.0, num_threads=2, dtype=np.float64)))
    np.testing.assert_array_equal(a, c)


def test_denoises_and_beats_frame_by_frame():
    from nlm import denoise_nl_bayes

    clean, noisy = _moving(T=6, H=40, W=44, sigma=20.0)
    out = np.stack(list(denoise_frames_bayes(noisy, num_threads=2)))
    per = np.stack([denoise_nl_bayes(f, preserve_range=True) for f in noisy])
    p_out, p_per, p_in = (psnr(clean, a, data_range=255) for a in (out, per, noisy.astype(float)))
    assert p_out > p_in + 6
    assert p_out > p_per


@pytest.mark.parametrize("C", [None, 3])
def test_constant_and_noise_free(C):
    flat = np.full((5, 20, 23) + ((C,) if C else ()), 0.4, dtype=np.float32)
    out = np.stack(list(denoise_frames_bayes(flat, sigma=0.05)))
    np.testing.assert_allclose(out, 0.4, atol=1e-6)
    _, noisy = _moving(T=4, C=C)
    out = np.stack(list(denoise_frames_bayes(noisy, sigma=0.0)))
    np.testing.assert_array_equal(out, noisy.astype(np.float32))


def test_float32_close_to_float64():
    _, noisy = _moving(T=5)
    x = noisy.astype(np.float64) / 255
    a = np.stack(list(denoise_frames_bayes(x.astype(np.float32), sigma=12 / 255, motion="none")))
    b = np.stack(list(denoise_frames_bayes(x, sigma=12 / 255, motion="none", dtype=np.float64)))
    assert a.dtype == np.float32 and b.dtype == np.float64
    assert np.abs(a - b).max() < 2e-3
    assert np.abs(a - b).mean() < 1e-5


def test_short_clips_and_one_frame():
    _, noisy = _moving(T=3)
    for T in (1, 2, 3):
        out = list(denoise_frames_bayes(noisy[:T], sigma=12.0))
        assert len(out) == T and out[0].shape == noisy.shape[1:]
    assert list(denoise_frames_bayes(iter([]))) == []


def test_clipped_model_estimated_and_info():
    clean, noisy = _moving(T=5, H=48, W=48, sigma=25.0)
    noisy = np.clip(noisy.astype(int) - 90, 0, 255).astype(np.uint8)  # dark: the noise piles up at 0
    info = {}
    out = np.stack(list(denoise_frames_bayes(noisy, noise="gaussian", info=info)))
    assert info["model"].bounds[0] == 0 and 15 < info["sigma255"] < 35
    assert out.min() >= -1 and out.max() <= 256


def test_recheck_warns_when_the_noise_changes(monkeypatch):
    monkeypatch.setattr(VB, "RECHECK", 3)
    rng = _rng(1)
    base = np.tile(np.linspace(40, 200, 32), (24, 1))
    frames = [np.clip(base + rng.normal(0, 5 if t < 3 else 30, base.shape), 0, 255) for t in range(5)]
    info = {}
    with pytest.warns(RuntimeWarning, match="noise level at frame 3"):
        list(denoise_frames_bayes(frames, info=info, motion="none"))
    assert info["rechecks"][0][0] == 3


def test_motion_without_opencv(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    _, noisy = _moving(T=3)
    with pytest.warns(RuntimeWarning, match="OpenCV is not installed"):
        list(denoise_frames_bayes(noisy, sigma=12.0))
    with pytest.raises(ImportError, match="motion='dis' needs OpenCV"):
        list(denoise_frames_bayes(noisy, sigma=12.0, motion="dis"))


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(motion="farneback"), ValueError, "motion must be one of"),
    (dict(dtype=np.int16), ValueError, "dtype must be float32 or float64"),
    (dict(stride=0), ValueError, "stride"),
    (dict(patch_size=4), ValueError, "patch_size must be odd"),
    (dict(temporal_radius=-1), ValueError, "temporal_radius"),
    (dict(passes=4), ValueError, "passes must be 2 or 3"),
    (dict(info=[]), TypeError, "info must be a dict"),
    (dict(noise="nope"), ValueError, "noise must be one of"),
])
def test_bad_arguments(kwargs, err, match):
    _, noisy = _moving(T=2)
    with pytest.raises(err, match=match):
        list(denoise_frames_bayes(noisy, **kwargs))


def test_bad_frames():
    _, noisy = _moving(T=3)
    with pytest.raises(ValueError, match="frame 1 has shape"):
        list(denoise_frames_bayes([noisy[0], noisy[1, :-1]], sigma=1.0))
    bad = noisy.astype(float)
    bad[2, 3, 3] = np.nan
    with pytest.raises(ValueError, match="frame 2 holds NaN"):
        list(denoise_frames_bayes(bad, sigma=1.0))
    with pytest.raises(ValueError, match="frames must be real"):
        list(denoise_frames_bayes([np.zeros((2, 3, 4, 5))]))


def test_parameters_table():
    for s in (5, 10, 20, 40, 80):
        for C in (1, 3):
            prm = video_bayes_parameters(s, C)
            assert prm["patch1"] % 2 == 1 and prm["patch2"] % 2 == 1 and prm["passes"] in (2, 3)
            assert prm["depth"] == 2 and prm["temporal_radius"] >= 1


def test_level_table_shared():
    # the video passes use the 2-D clipped-noise tables unchanged
    nlf, inv = _level_table(Gaussian(10.0, clip=(0, 255)), 0, 255)
    assert nlf.shape[0] > 3 and inv is not None


# ------------------------------------------------------------------ files and the command line
def _write_clip(path, frames, fps=25):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        colour = frames.ndim == 4
        stream.pix_fmt = "bgr0" if colour else "gray"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24" if colour else "gray")
            vf.pts = i
            for pkt in stream.encode(vf):
                container.mux(pkt)
        for pkt in stream.encode(None):
            container.mux(pkt)


def _run(*args):
    from click.testing import CliRunner

    import cli

    return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.mark.parametrize("C", [None, 3])
def test_cli_mkv_round_trip(tmp_path, C):
    from nlm.io.video import open_frames

    pytest.importorskip("av")
    clean, noisy = _moving(T=6, H=32, W=40, C=C, sigma=15.0)
    _write_clip(tmp_path / "c.mkv", noisy)
    r = _run("denoise", tmp_path / "c.mkv", tmp_path / "o.mkv", "--method", "bayes")
    assert r.exit_code == 0, r.output
    assert "NL-Bayes on space-time patches" in r.output and "frames/s" in r.output
    _, frames = open_frames(tmp_path / "o.mkv")
    out = np.stack(list(frames))
    _, frames = open_frames(tmp_path / "c.mkv")
    src = np.stack(list(frames))
    ref = np.stack(list(denoise_frames_bayes(src)))
    np.testing.assert_array_equal(out, np.clip(np.rint(ref), 0, 255).astype(np.uint8))
    assert psnr(clean, out.astype(float), data_range=255) > psnr(clean, noisy.astype(float), data_range=255) + 5
    # never over an existing output without --overwrite; the same through the Python generator
    r = _run("denoise", tmp_path / "c.mkv", tmp_path / "o.mkv", "--method", "bayes")
    assert r.exit_code == 2 and "already exists" in r.output
    from nlm.denoisers.video import denoise_frames

    again = np.stack(list(denoise_frames(src, method="bayes")))
    np.testing.assert_array_equal(again, ref)


def test_cli_tiff_stack_time_axis_and_errors(tmp_path):
    import tifffile

    from nlm.io.video import open_frames

    _, noisy = _moving(T=5, H=24, W=26, sigma=10.0)
    stack = (noisy.astype(np.uint16) * 257)
    tifffile.imwrite(tmp_path / "s.tif", np.moveaxis(stack, 0, 1), photometric="minisblack")
    r = _run("denoise", tmp_path / "s.tif", tmp_path / "o.tif", "--time-axis", "1", "--method", "bayes",
             "--sigma", "2570", "--temporal-radius", "1", "-q")
    assert r.exit_code == 0, r.output
    _, frames = open_frames(tmp_path / "o.tif")
    out = np.stack(list(frames))
    ref = np.stack(list(denoise_frames_bayes(stack, sigma=2570.0, temporal_radius=1)))
    np.testing.assert_array_equal(out, np.clip(np.rint(ref), 0, 65535).astype(np.uint16))
    # a library error is a one-line message, exit 1, and nothing is written
    r = _run("denoise", tmp_path / "s.tif", tmp_path / "o2.tif", "--time-axis", "1", "--method", "bayes",
             "--noise", "gamma", "--looks", "-1")
    assert r.exit_code in (1, 2) and "Traceback" not in r.output
    assert not (tmp_path / "o2.tif").exists()


def test_denoise_frames_method_checks():
    from nlm.denoisers.video import denoise_frames

    _, noisy = _moving(T=2)
    with pytest.raises(ValueError, match="h is not used by method='bayes'"):
        list(denoise_frames(noisy, h=3.0, method="bayes"))
    with pytest.raises(ValueError, match="method must be"):
        list(denoise_frames(noisy, method="bm3d"))
    with pytest.raises(ValueError, match="noise is for method='bayes'"):
        list(denoise_frames(noisy, noise="speckle"))
