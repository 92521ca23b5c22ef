"""Video: the streamed temporal filter (nlm.denoisers.video), lossless clip I/O (nlm.io.video)
and ``nlm denoise clip.mp4 out.mkv``.  Clips are made here with PyAV, seeded."""

import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

import cli
from nlm import denoise_nl_means
from nlm.denoisers.video import TEMPORAL_RADII, default_temporal_radius, denoise_frames, frame_sigma

av = pytest.importorskip("av")

from nlm.io.video import FrameWriter, VideoInfo, open_frames  # noqa: E402

ROOT = Path(cli.__file__).resolve().parent


def _clean(T, H, W, C=None, seed=0):
    """A slowly panning smooth pattern with a bright square (values in [0.15, 0.85])."""
    yy, xx = np.mgrid[:H, :W] / max(H, W)
    frames = []
    for t in range(T):
        base = 0.5 + 0.25 * np.sin(7 * (xx + 0.02 * t)) * np.cos(5 * yy)
        base[H // 4 : H // 2, (W // 4 + t) % W : (W // 2 + t) % W or W] = 0.85
        if C:
            base = np.stack([np.roll(base, 2 * c, axis=1) for c in range(C)], -1)
        frames.append(base)
    return np.stack(frames)


def _noisy(T, H, W, C=None, dtype=np.uint8, sigma=0.08, seed=1):
    rng = np.random.default_rng(seed)
    clean = _clean(T, H, W, C)
    hi = np.iinfo(dtype).max
    noisy = np.clip(np.rint((clean + rng.normal(0, sigma, clean.shape)) * hi), 0, hi).astype(dtype)
    return noisy, clean


def _write_clip(path, frames, fps=Fraction(24000, 1001), codec="ffv1"):
    """Encode frames (T, H, W[, 3]) uint8 with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        colour = frames.ndim == 4
        if codec == "ffv1":
            stream.pix_fmt = "bgr0" if colour else "gray"
        else:
            stream.pix_fmt = "yuv420p"
            stream.options = {"qscale": "2"} if codec == "mpeg4" else {}
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24" if colour else "gray")
            vf.pts = i
            vf.time_base = 1 / fps
            for p in stream.encode(vf):
                container.mux(p)
        for p in stream.encode(None):
            container.mux(p)


def _decode(path):
    info, frames = open_frames(path)
    return info, np.stack(list(frames))


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


# --------------------------------------------------------------------------- #
# the streamed filter
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "T,shape,patch,dist,R",
    [
        (6, (20, 23), 5, 4, 2),  # grey
        (1, (9, 8), 3, 2, 1),  # one frame: the 2-D filter
        (2, (9, 8, 3), 3, 2, 2),  # colour, window longer than the clip
        (7, (15, 16), (3, 3, 5), (3, 2), 1),  # patch spanning 3 frames, anisotropic
        (5, (11, 12, 2), (5, 3, 3), (2, 3), 3),  # 5-frame patches, reflect at both ends
        (9, (10, 10), 3, 3, 0),  # R = 0: frame by frame
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_equals_filter_on_the_stacked_clip(T, shape, patch, dist, R, dtype):
    """Streaming (each pair of frames once) = denoise_nl_means on T x H x W (x C)
    with patch (pt, p, p) and window (R, d, d), which is oracle-tested."""
    clip = np.random.default_rng(T).random((T,) + shape).astype(dtype)
    out = np.stack(list(denoise_frames(iter(clip), patch, dist, 0.2, 0.05, temporal_radius=R, dtype=dtype)))
    psz = patch if isinstance(patch, tuple) and len(patch) == 3 else (1, patch, patch)
    pdd = (R,) + ((dist, dist) if np.ndim(dist) == 0 else tuple(dist))
    ref = denoise_nl_means(clip, psz, pdd, 0.2, sigma=0.05, channel_axis=-1 if len(shape) == 3 else None)
    assert out.dtype == dtype and out.shape == clip.shape
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-6 if dtype == np.float32 else 1e-12)


def test_stream_reads_a_sliding_window():
    """Frame t is yielded once frames up to t + R + pt are read: the window slides."""
    clip = np.random.default_rng(2).random((12, 16, 17)).astype(np.float32)
    read = []

    def source():
        for i, f in enumerate(clip):
            read.append(i)
            yield f

    R, pt = 2, 1
    for t, _ in enumerate(denoise_frames(source(), (2 * pt + 1, 3, 3), 2, 0.2, temporal_radius=R)):
        assert len(read) <= min(len(clip), t + R + pt + 2)
    assert len(read) == len(clip)


def test_temporal_window_beats_single_frames():
    noisy, clean = _noisy(7, 40, 40, dtype=np.uint8, sigma=0.1)
    x = noisy.astype(np.float32)
    err = lambda y: float(np.mean((np.stack(list(y)) - clean * 255) ** 2))  # noqa: E731
    alone = err(denoise_frames(x, 5, 5, temporal_radius=0))
    temporal = err(denoise_frames(x, 5, 5, temporal_radius=2))
    assert temporal < 0.75 * alone


def test_frame_sigma_gaussian_and_speckle():
    """Gaussian noise: close to the true sigma; speckle: the RMS of the fitted
    level function, closer to the true RMS noise than the wavelet estimate."""
    from nlm import estimate_sigma

    rng = np.random.default_rng(4)
    clean = _clean(1, 128, 128)[0] * 200
    g = clean + rng.normal(0, 12, clean.shape)
    assert abs(frame_sigma(g) - 12) < 1.2
    sp = clean * (1 + rng.normal(0, 0.2, clean.shape))
    true = float(np.sqrt(np.mean((sp - clean) ** 2)))
    assert abs(frame_sigma(sp) - true) < min(0.1 * true, abs(estimate_sigma(sp) - true))


def test_default_temporal_radius():
    assert [default_temporal_radius(s) for s in (0, 10, 10.01, 30, 31, 200)] == [1, 1, 2, 2, 3, 3]
    assert default_temporal_radius(20 * 257, 65535) == 2
    assert default_temporal_radius(0.2, 1.0) == 3
    assert TEMPORAL_RADII[-1][0] == np.inf
    with pytest.raises(ValueError, match="sigma"):
        default_temporal_radius(-1)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(patch_size=4), ValueError, "odd"),
        (dict(patch_size=(3, 3, 3, 3)), TypeError, "patch_size"),
        (dict(patch_distance=(1, 2, 3), temporal_radius=2), ValueError, "contradicts"),
        (dict(temporal_radius=-1), ValueError, "temporal_radius"),
        (dict(temporal_radius=1.5), TypeError, "temporal_radius"),
        (dict(h=0), ValueError, "h must be"),
        (dict(sigma=-1), ValueError, "sigma"),
        (dict(dtype=np.int16), ValueError, "dtype"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        next(denoise_frames([np.zeros((8, 8))], **kwargs))


def test_frames_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="frame 1 has shape"):
        list(denoise_frames([np.zeros((8, 8)), np.zeros((8, 9))], 3, 2, 0.1, temporal_radius=1))


# --------------------------------------------------------------------------- #
# lossless I/O
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("out", ["c.mkv", "c.tif", "frames"])
@pytest.mark.parametrize("shape,dtype", [((30, 41), np.uint8), ((30, 41), np.uint16), ((30, 41, 3), np.uint8),
                                         ((30, 41, 3), np.uint16)])
def test_writer_roundtrip_is_lossless(tmp_path, out, shape, dtype):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, np.iinfo(dtype).max + 1, (5,) + shape, dtype=dtype)
    info = VideoInfo(shape[1], shape[0], shape[2] if len(shape) == 3 else 1, np.dtype(dtype),
                     Fraction(30000, 1001), 5, "test")
    with FrameWriter(tmp_path / out, info) as w:
        for f in frames:
            w.write(f)
    back_info, back = _decode(tmp_path / out)
    np.testing.assert_array_equal(back, frames)
    assert back_info.dtype == dtype and back_info.channels == info.channels
    if out.endswith(".mkv"):
        assert back_info.fps == Fraction(30000, 1001)
    assert [p.name for p in tmp_path.iterdir()] == [out]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    new = 0o777 if out == "frames" else 0o666
    assert (tmp_path / out).stat().st_mode & 0o777 == new & ~umask  # not mkstemp's 0600


def test_writer_aborts_without_leftovers(tmp_path):
    info = VideoInfo(8, 6, 1, np.dtype(np.uint8), Fraction(25), 2, "test")
    with pytest.raises(RuntimeError):
        with FrameWriter(tmp_path / "o.mkv", info) as w:
            w.write(np.zeros((6, 8), np.uint8))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- #
# command line
# --------------------------------------------------------------------------- #
FAST = ["--patch-size", "3", "--patch-distance", "3"]


@pytest.mark.parametrize("colour,name,codec", [(True, "clip.mp4", "mpeg4"), (False, "clip.mkv", "ffv1")])
def test_cli_video_to_mkv(tmp_path, colour, name, codec):
    """A lossy colour .mp4 (YUV, decoded to RGB) or a grey FFV1 clip in, FFV1
    out: same frame count and rate, and exactly the library's result on the
    decoded frames (lossless output)."""
    noisy, _ = _noisy(9, 32, 48, 3 if colour else None)
    _write_clip(tmp_path / name, noisy, codec=codec)
    result = run("denoise", tmp_path / name, tmp_path / "out.mkv", *FAST, "--temporal-radius", "1")
    assert result.exit_code == 0, result.output
    assert "temporal radius 1 (3 frames, given)" in result.output
    src_info, src = _decode(tmp_path / name)
    out_info, out = _decode(tmp_path / "out.mkv")
    assert out.shape == src.shape == noisy.shape and out.dtype == np.uint8
    assert out_info.fps == src_info.fps == Fraction(24000, 1001)
    from nlm import default_h
    from nlm.denoisers.video import frame_sigma

    x = src.astype(np.float32)
    sigma = frame_sigma(x[0])
    ref = np.stack(list(denoise_frames(x, 3, 3, default_h(sigma), sigma, temporal_radius=1)))
    np.testing.assert_array_equal(out, np.clip(np.rint(ref), 0, 255).astype(np.uint8))


def test_cli_default_radius_from_noise_and_png_sequence(tmp_path):
    noisy, clean = _noisy(6, 30, 30, sigma=0.15)  # sigma ~38 on 0..255: R = 3
    _write_clip(tmp_path / "clip.mkv", noisy)
    result = run("denoise", tmp_path / "clip.mkv", tmp_path / "frames", *FAST)
    assert result.exit_code == 0, result.output
    assert "temporal radius 3 (7 frames, from the noise level)" in result.output
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [".nlm-frames.json"] + [f"frame_{i:06d}.png" for i in range(6)]  # the marker: nlm's own
    out_info, out = _decode(tmp_path / "frames")
    assert out_info.fps == Fraction(24000, 1001)  # kept in the marker
    assert np.mean((out / 255.0 - clean) ** 2) < 0.3 * np.mean((noisy / 255.0 - clean) ** 2)


def test_cli_tiff_stack_with_time_axis(tmp_path):
    """--time-axis 1 on a (H, T, W) uint16 stack: the library on the moved axes."""
    noisy, _ = _noisy(5, 20, 22, dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", np.moveaxis(noisy, 0, 1), photometric="minisblack")
    result = run("denoise", tmp_path / "s.tif", tmp_path / "o.tif", *FAST, "--time-axis", "1",
                 "--temporal-radius", "2", "--sigma", "3000", "--h", "2000")
    assert result.exit_code == 0, result.output
    _, out = _decode(tmp_path / "o.tif")
    ref = denoise_nl_means(noisy.astype(np.float32), (1, 3, 3), (2, 3, 3), 2000.0, sigma=3000.0)
    assert out.dtype == np.uint16 and out.shape == noisy.shape
    # float32 sums in another order (volume kernel): rounding may differ by one level
    assert np.abs(out.astype(np.int64) - np.clip(np.rint(ref), 0, 65535)).max() <= 1


def test_cli_patch_distance_with_temporal_radius_first(tmp_path):
    noisy, _ = _noisy(4, 16, 16)
    _write_clip(tmp_path / "c.mkv", noisy)
    result = run("denoise", tmp_path / "c.mkv", tmp_path / "o.mkv", "--patch-size", "3", "--patch-distance", "2,3,3")
    assert result.exit_code == 0, result.output
    assert "temporal radius 2 (5 frames, given)" in result.output


@pytest.mark.parametrize(
    "args,code,message",
    [
        (("--temporal-radius", "1", "--patch-distance", "2,3,3"), 2, "contradicts"),
        (("--patch-distance", "1,2,3,4"), 2, "1, 2 (y,x) or 3 (t,y,x)"),
        (("--volume",), 2, "--volume is for image stacks"),
        (("--noise", "speckle"), 2, "gaussian only"),
        (("--method", "bayes", "--patch-size", "3,3,3"), 2, "(step 1, step 2)"),
        (("--method", "bayes", "--patch-distance", "1,2,3"), 2, "with y = x"),
        (("--method", "bayes", "--h", "3"), 2, "not used with --method bayes"),
    ],
)
def test_cli_usage_errors(tmp_path, args, code, message):
    noisy, _ = _noisy(3, 16, 16)
    _write_clip(tmp_path / "c.mkv", noisy)
    result = run("denoise", tmp_path / "c.mkv", tmp_path / "o.mkv", *args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert not (tmp_path / "o.mkv").exists()


def test_cli_refuses_overwrite_and_bad_outputs(tmp_path):
    noisy, _ = _noisy(3, 16, 16)
    _write_clip(tmp_path / "c.mkv", noisy)
    (tmp_path / "o.mkv").write_bytes(b"keep")
    result = run("denoise", tmp_path / "c.mkv", tmp_path / "o.mkv", *FAST)
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "o.mkv").read_bytes() == b"keep"
    assert run("denoise", tmp_path / "c.mkv", tmp_path / "o.mkv", *FAST, "--overwrite").exit_code == 0
    assert _decode(tmp_path / "o.mkv")[1].shape == noisy.shape
    result = run("denoise", tmp_path / "c.mkv", tmp_path / "o.mp4", *FAST)
    assert result.exit_code == 2 and "FFV1" in result.output
    result = run("denoise", tmp_path / "c.mkv", tmp_path / "c.mkv", *FAST, "--overwrite")
    assert result.exit_code == 2 and "is the input" in result.output
    result = run("denoise", tmp_path / "c.png", tmp_path / "x.mkv", "--temporal-radius", "1")
    assert result.exit_code == 2


def test_cli_corrupt_video_leaves_nothing(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    result = run("denoise", tmp_path / "bad.mp4", tmp_path / "o.mkv")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "bad.mp4" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_cli_float_stack_needs_tiff_output(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.random.default_rng(0).random((3, 12, 12)).astype(np.float32),
                     photometric="minisblack")
    result = run("denoise", tmp_path / "s.tif", tmp_path / "o.mkv", "--time-axis", "0", *FAST)
    assert result.exit_code == 1 and "float32 frames need a .tif output" in result.output
    assert not (tmp_path / "o.mkv").exists()
    assert run("denoise", tmp_path / "s.tif", tmp_path / "o.tif", "--time-axis", "0", *FAST).exit_code == 0


def test_peak_memory_does_not_grow_with_the_clip(tmp_path):
    """Peak RSS of the CLI on 10 and on 40 frames of 384x384: the 30 extra
    frames (17 MiB as float32) must not show up in the peak."""
    for n in (10, 40):
        noisy, _ = _noisy(n, 384, 384, sigma=0.05)
        _write_clip(tmp_path / f"c{n}.mkv", noisy)
    code = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner
        import cli
        r = CliRunner().invoke(cli.main, ["denoise", sys.argv[1], sys.argv[2], "--patch-size", "3",
                                          "--patch-distance", "2", "--temporal-radius", "1", "-q"])
        assert r.exit_code == 0, r.output
        print([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
        """
    )
    peaks = {}
    for n in (10, 40):
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"c{n}.mkv"), str(tmp_path / f"o{n}.mkv")],
            capture_output=True, text=True, cwd=ROOT, check=True,
        )
        peaks[n] = int(out.stdout.split()[-1]) / 1024  # MiB
    assert peaks[40] - peaks[10] < 6, peaks
    assert _decode(tmp_path / "o40.mkv")[1].shape[0] == 40


def test_help_does_not_import_av():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, cli; from click.testing import CliRunner; "
         "CliRunner().invoke(cli.main, ['denoise', '--help']); print('av' in sys.modules)"],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    assert out.stdout.strip() == "False"
