"""Tests of the ``nlm`` command line (cli.py), with CliRunner and real files."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

import cli
import nlm
from nlm.io import read_image, write_image

ROOT = Path(cli.__file__).resolve().parent
SAMPLES = ROOT / "samples"
FAST = ["--patch-size", "3", "--patch-distance", "3"]  # keep tiny runs quick


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def ok(result):
    assert result.exit_code == 0, result.output
    return result


def failed(result, code, *messages):
    """Assert a clean failure: exit code, message on stderr, no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for message in messages:
        assert message in result.stderr, result.stderr
    return result


def clean_image(shape=(24, 24), dtype=np.uint8, seed=0):
    """A smooth test pattern with a sharp square, in the dtype's range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]] / max(shape[:2])
    base = 0.25 + 0.5 * (0.5 * np.sin(6 * xx) * np.cos(4 * yy) + 0.5)
    base[6:14, 6:14] = 0.9
    if len(shape) == 3:
        base = np.stack([np.roll(base, k, axis=1) for k in range(shape[2])], -1)
    base = base + rng.normal(0, 0.001, base.shape)
    if np.dtype(dtype).kind == "u":
        return np.clip(np.rint(base * np.iinfo(dtype).max), 0, np.iinfo(dtype).max).astype(dtype)
    return base.astype(dtype)


def noisy_image(shape=(24, 24), dtype=np.uint8, sigma=0.08, seed=1):
    clean = clean_image(shape, dtype)
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "u":
        top = np.iinfo(dtype).max
        x = clean / top + rng.normal(0, sigma, clean.shape)
        return clean, np.clip(np.rint(x * top), 0, top).astype(dtype)
    return clean, (clean + rng.normal(0, sigma, clean.shape)).astype(dtype)


def expected_denoise(data, channel_axis=None, patch_size=3, patch_distance=3, h=None, sigma=None):
    """What `nlm denoise` must produce: the library on the values as stored."""
    work = data.astype(np.float32) if data.dtype.itemsize <= 4 and data.dtype != np.float64 else data
    work = work.astype(np.float64) if data.dtype == np.float64 else work
    if sigma is None:
        sigma = float(nlm.estimate_sigma(work, channel_axis=channel_axis, average_sigmas=True))
    if h is None:
        h = float(nlm.default_h(sigma))
    out = nlm.denoise_nl_means(
        work, patch_size, patch_distance, h=h, sigma=sigma, channel_axis=channel_axis,
        preserve_range=True,
    )
    if data.dtype.kind == "u":
        info = np.iinfo(data.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(data.dtype), sigma, h
    return out.astype(data.dtype), sigma, h


def mse(a, b):
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def files(path):
    return sorted(p.name for p in Path(path).iterdir())


@pytest.fixture
def noisy_png(tmp_path):
    clean, noisy = noisy_image()
    write_image(tmp_path / "in.png", noisy)
    return tmp_path / "in.png", clean, noisy


# --------------------------------------------------------------------------- #
# help, version, import cost
# --------------------------------------------------------------------------- #
HELP_PROBE = textwrap.dedent(
    """
    import sys
    from click.testing import CliRunner
    import cli
    for args in (["--help"], ["denoise", "--help"], ["noise", "--help"], ["psnr", "--help"], ["--version"]):
        result = CliRunner().invoke(cli.main, args)
        assert result.exit_code == 0, (args, result.output)
    names = ("numba", "numpy", "nlm.denoisers.means", "scipy", "skimage", "imageio", "dask", "distributed", "zarr")
    heavy = sorted(m for m in names if m in sys.modules)
    print("HEAVY", heavy)
    """
)


def test_help_imports_no_numba_numpy_or_filter():
    proc = subprocess.run(
        [sys.executable, "-c", HELP_PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout


RUN_PROBE = textwrap.dedent(
    """
    import sys
    from click.testing import CliRunner
    import cli
    result = CliRunner().invoke(cli.main, ["denoise", "--quiet", sys.argv[1], sys.argv[2]])
    assert result.exit_code == 0, result.output
    names = ("scipy.linalg", "numpy.f2py", "skimage", "dask", "distributed", "zarr", "nlm.io.tiled", "nlm.tiling",
             "nlm.denoisers.bayes", "nlm.io.video", "numba.cuda", "numba_cuda", "nlm.ops._nlm_volume")
    print("LOADED", sorted(m for m in names if m in sys.modules))
    import numba
    import numpy as np

    @numba.njit(cache=False)
    def dot(a, b):
        return np.dot(a, b)

    print("DOT", dot(np.ones(3), np.arange(3.0)))  # BLAS still works in compiled code: SciPy comes in now
    print("LATER", "scipy.linalg" in sys.modules)
    """
)


def test_a_run_on_a_png_loads_only_what_it_uses(noisy_png, tmp_path):
    """The warm command's import budget (issue 19): no SciPy linear algebra (Numba's eager BLAS probe is
    answered without it, nlm._config.defer_blas_probe), no dask, no tiled reader, no NL-Bayes, video or volume code."""
    src = noisy_png[0]
    proc = subprocess.run([sys.executable, "-c", RUN_PROBE, str(src), str(tmp_path / "out.png")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
    assert "DOT 3.0" in proc.stdout and "LATER True" in proc.stdout, proc.stdout


def test_python_dash_m_nlm_works():
    proc = subprocess.run(
        [sys.executable, "-m", "nlm", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: nlm ")
    for command in ("denoise", "noise", "psnr", "bench"):
        assert command in proc.stdout


def test_version():
    result = ok(run("--version"))
    assert nlm.__version__ in result.stdout


def test_denoise_help_lists_every_option_in_sections():
    result = ok(run("denoise", "--help"))
    for option in ("--patch-size", "--patch-distance", "--h", "--sigma", "--noise", "--overwrite",
                   "--quiet", "--verbose", "--volume", "--output-dir", "--suffix", "--ext"):
        assert option in result.stdout
    for section in ("Filter:", "Input/output:", "Messages:"):
        assert section in result.stdout


# --------------------------------------------------------------------------- #
# denoise: one file
# --------------------------------------------------------------------------- #
def test_denoise_uint8_matches_library_and_reports(noisy_png, tmp_path):
    src, clean, noisy = noisy_png
    result = ok(run("denoise", src, tmp_path / "out.png", *FAST))
    out = read_image(tmp_path / "out.png").data
    expected, sigma, h = expected_denoise(noisy)
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    np.testing.assert_array_equal(out, expected)
    assert mse(out, clean) < 0.6 * mse(noisy, clean)  # it denoised
    assert f"{sigma:.6g} (estimated)" in result.stdout
    assert f"{h:.6g} (automatic, from sigma)" in result.stdout
    assert " s filter" in result.stdout
    np.testing.assert_array_equal(read_image(src).data, noisy)  # input untouched


def test_denoise_given_sigma_and_h_are_used(noisy_png, tmp_path):
    src, _, noisy = noisy_png
    result = ok(run("denoise", src, tmp_path / "o.png", *FAST, "--sigma", "12.5", "--h", "30"))
    expected, _, _ = expected_denoise(noisy, sigma=12.5, h=30.0)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").data, expected)
    assert "12.5 (given)" in result.stdout and "30 (given)" in result.stdout


def test_denoise_sigma_given_h_from_it(noisy_png, tmp_path):
    src, _, noisy = noisy_png
    result = ok(run("denoise", src, tmp_path / "o.png", *FAST, "--sigma", "20"))
    expected, _, h = expected_denoise(noisy, sigma=20.0)
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").data, expected)
    assert f"{h:.6g} (automatic, from sigma)" in result.stdout


def test_denoise_quiet_and_verbose(noisy_png, tmp_path):
    src, _, _ = noisy_png
    quiet = ok(run("denoise", src, tmp_path / "q.png", *FAST, "--quiet"))
    assert quiet.stdout == "" and quiet.stderr == ""
    verbose = ok(run("denoise", src, tmp_path / "v.png", *FAST, "-v"))
    assert "steps" in verbose.stdout and "filter" in verbose.stdout
    failed(run("denoise", src, tmp_path / "b.png", "-q", "-v"), 2, "exclude each other")
    assert not (tmp_path / "b.png").exists()


def test_constant_image_is_left_as_is(tmp_path):
    write_image(tmp_path / "c.png", np.full((24, 24), 77, np.uint8))
    result = ok(run("denoise", tmp_path / "c.png", tmp_path / "o.png", *FAST))
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").data, 77)
    assert "no noise detected" in result.stdout


# --------------------------------------------------------------------------- #
# dtype round trips
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_uint16_in_uint16_out(tmp_path, ext):
    clean, noisy = noisy_image(dtype=np.uint16)
    write_image(tmp_path / f"in{ext}", noisy)
    ok(run("denoise", tmp_path / f"in{ext}", tmp_path / f"out{ext}", *FAST))
    out = read_image(tmp_path / f"out{ext}").data
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, expected_denoise(noisy)[0])
    assert out.max() > 255  # the 16-bit range was kept, not squeezed to 8 bits


def test_uint16_rgb_png_keeps_16_bits(tmp_path):
    _, noisy = noisy_image((24, 24, 3), np.uint16)
    write_image(tmp_path / "in.png", noisy)
    ok(run("denoise", tmp_path / "in.png", tmp_path / "out.png", *FAST))
    out = read_image(tmp_path / "out.png").data
    assert out.dtype == np.uint16 and out.shape == (24, 24, 3)
    np.testing.assert_array_equal(out, expected_denoise(noisy, channel_axis=-1)[0])
    assert np.any(out % 256 != 0)


def test_float32_tiff_keeps_dtype_and_range(tmp_path):
    _, noisy = noisy_image(dtype=np.float32)
    data = (noisy * 4000 - 1500).astype(np.float32)  # far outside [0, 1], negative too
    tifffile.imwrite(tmp_path / "in.tif", data)
    ok(run("denoise", tmp_path / "in.tif", tmp_path / "out.tif", *FAST))
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected_denoise(data)[0])
    assert out.min() < -500 and out.max() > 1000  # no rescale, no clipping


def test_float64_tiff_stays_float64(tmp_path):
    _, noisy = noisy_image(dtype=np.float64)
    tifffile.imwrite(tmp_path / "in.tif", noisy)
    ok(run("denoise", tmp_path / "in.tif", tmp_path / "out.tiff", *FAST))
    out = tifffile.imread(tmp_path / "out.tiff")
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, expected_denoise(noisy)[0], rtol=0, atol=1e-12)


def test_float_tiff_to_png_is_refused_before_work(tmp_path):
    tifffile.imwrite(tmp_path / "in.tif", noisy_image(dtype=np.float32)[1])
    failed(run("denoise", tmp_path / "in.tif", tmp_path / "out.png", *FAST), 1,
           "PNG stores only uint8 or uint16", "write .tif")
    assert files(tmp_path) == ["in.tif"]


# --------------------------------------------------------------------------- #
# colour, alpha, palette, 1-bit
# --------------------------------------------------------------------------- #
def test_rgb_is_denoised_jointly(tmp_path):
    clean, noisy = noisy_image((24, 24, 3))
    write_image(tmp_path / "in.png", noisy)
    ok(run("denoise", tmp_path / "in.png", tmp_path / "out.png", *FAST))
    out = read_image(tmp_path / "out.png")
    assert out.mode == "RGB"
    np.testing.assert_array_equal(out.data, expected_denoise(noisy, channel_axis=-1)[0])


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_rgba_alpha_passes_through(tmp_path, ext):
    _, noisy = noisy_image((24, 24, 3))
    alpha = np.random.default_rng(5).integers(0, 256, (24, 24), dtype=np.uint8)
    write_image(tmp_path / f"in{ext}", np.dstack([noisy, alpha]))
    result = ok(run("denoise", tmp_path / f"in{ext}", tmp_path / f"out{ext}", *FAST))
    out = read_image(tmp_path / f"out{ext}")
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(out.data[..., 3], alpha)
    np.testing.assert_array_equal(out.data[..., :3], expected_denoise(noisy, channel_axis=-1)[0])
    assert "alpha" in result.stdout


def test_grey_alpha_passes_through(tmp_path):
    _, noisy = noisy_image()
    alpha = np.random.default_rng(6).integers(0, 256, (24, 24), dtype=np.uint8)
    write_image(tmp_path / "in.png", np.dstack([noisy, alpha]))
    ok(run("denoise", tmp_path / "in.png", tmp_path / "out.png", *FAST))
    out = read_image(tmp_path / "out.png")
    assert out.mode == "LA"
    np.testing.assert_array_equal(out.data[..., 1], alpha)
    np.testing.assert_array_equal(out.data[..., 0], expected_denoise(noisy)[0])


def test_palette_png_is_denoised_as_rgb_with_a_note(tmp_path):
    _, noisy = noisy_image((24, 24, 3))
    Image.fromarray(noisy).quantize(64).save(tmp_path / "p.png")
    result = ok(run("denoise", tmp_path / "p.png", tmp_path / "out.png", *FAST))
    assert read_image(tmp_path / "out.png").mode == "RGB"
    assert "palette image converted to RGB" in result.stderr


def test_one_bit_png_is_denoised_as_uint8(tmp_path):
    Image.fromarray(noisy_image()[1] > 128).save(tmp_path / "b.png")
    result = ok(run("denoise", tmp_path / "b.png", tmp_path / "out.png", *FAST))
    assert read_image(tmp_path / "out.png").data.dtype == np.uint8
    assert "1-bit" in result.stderr


def test_cmyk_jpeg_is_refused(tmp_path):
    Image.new("CMYK", (24, 24), (10, 20, 30, 40)).save(tmp_path / "c.jpg")
    failed(run("denoise", tmp_path / "c.jpg", tmp_path / "out.png"), 1, "CMYK", "convert it to RGB")
    assert not (tmp_path / "out.png").exists()


# --------------------------------------------------------------------------- #
# volumes
# --------------------------------------------------------------------------- #
def test_stack_refused_without_volume(tmp_path):
    stack = np.stack([noisy_image(seed=s)[1] for s in range(4)])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    failed(run("denoise", tmp_path / "s.tif", tmp_path / "o.tif", *FAST), 1, "stack of 4", "--volume")
    assert not (tmp_path / "o.tif").exists()


def test_stack_denoised_as_volume(tmp_path):
    stack = np.stack([noisy_image(seed=s)[1] for s in range(5)])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    ok(run("denoise", tmp_path / "s.tif", tmp_path / "o.tif", *FAST, "--volume"))
    out = read_image(tmp_path / "o.tif")
    assert out.stack and out.data.shape == stack.shape and out.data.dtype == np.uint8
    np.testing.assert_array_equal(out.data, expected_denoise(stack)[0])


def test_per_axis_geometry_on_a_stack(tmp_path):
    """--patch-size 1,3,3 --patch-distance 2,3,3: the library with the same tuples."""
    stack = np.stack([noisy_image(seed=s)[1] for s in range(5)])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    result = ok(run("denoise", tmp_path / "s.tif", tmp_path / "o.tif", "--volume",
                    "--patch-size", "1,3,3", "--patch-distance", "2, 3,3"))
    assert "(1, 3, 3)" in result.output and "(2, 3, 3)" in result.output
    out = read_image(tmp_path / "o.tif")
    np.testing.assert_array_equal(out.data, expected_denoise(stack, None, (1, 3, 3), (2, 3, 3))[0])


@pytest.mark.parametrize(
    "args,code,message",
    [
        (("--patch-size", "3,4,3"), 2, "must be odd"),
        (("--patch-size", "3,x"), 2, "is not a valid integer"),
        (("--patch-distance", "1,-1,1"), 2, "smaller than the minimum 0"),
        (("--patch-size", "3,3"), 1, "has 2 entries"),
    ],
)
def test_per_axis_geometry_errors(tmp_path, args, code, message):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((3, 24, 24), np.uint8), photometric="minisblack")
    failed(run("denoise", tmp_path / "s.tif", tmp_path / "o.tif", "--volume", *args), code, message)
    assert not (tmp_path / "o.tif").exists()


def test_volume_flag_on_a_2d_image_is_refused(noisy_png, tmp_path):
    src, _, _ = noisy_png
    failed(run("denoise", src, tmp_path / "o.png", "--volume"), 1, "single 2-D image")
    assert not (tmp_path / "o.png").exists()


def test_volume_to_png_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((3, 24, 24), np.uint8), photometric="minisblack")
    failed(run("denoise", tmp_path / "s.tif", tmp_path / "o.png", "--volume"), 1, "not a stack")
    assert not (tmp_path / "o.png").exists()


# --------------------------------------------------------------------------- #
# overwrite and safety
# --------------------------------------------------------------------------- #
def test_existing_output_needs_overwrite(noisy_png, tmp_path):
    src, _, noisy = noisy_png
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    failed(run("denoise", src, target, *FAST), 2, "already exists", "--overwrite")
    assert target.read_bytes() == b"keep me"
    ok(run("denoise", src, target, *FAST, "--overwrite"))
    np.testing.assert_array_equal(read_image(target).data, expected_denoise(noisy)[0])


def test_writing_onto_the_input_needs_overwrite(noisy_png, tmp_path):
    src, _, noisy = noisy_png
    before = src.read_bytes()
    failed(run("denoise", src, src, *FAST), 2, "is the input file", "--overwrite")
    assert src.read_bytes() == before
    # a different spelling of the same path is caught too
    failed(run("denoise", src, tmp_path / "." / src.name, *FAST), 2, "is the input file")
    ok(run("denoise", src, src, *FAST, "--overwrite"))
    np.testing.assert_array_equal(read_image(src).data, expected_denoise(noisy)[0])
    assert files(tmp_path) == ["in.png"]  # no temporary file left


def test_failed_write_leaves_nothing(noisy_png, tmp_path, monkeypatch):
    import nlm.io.image

    def broken(tmp, *args):
        Path(tmp).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nlm.io.image, "_encode", broken)
    src, _, _ = noisy_png
    failed(run("denoise", src, tmp_path / "out.png", *FAST), 1, "No space left on device")
    assert files(tmp_path) == ["in.png"]


def test_interrupted_filter_leaves_nothing(noisy_png, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("nlm.denoisers.means.denoise_nl_means", interrupted)
    src, _, _ = noisy_png
    result = run("denoise", src, tmp_path / "out.png", *FAST)
    assert result.exit_code == 130, result.output  # 128 + SIGINT, as shells report it
    assert "Error: interrupted by SIGINT" in result.stderr and "Traceback" not in result.output
    assert files(tmp_path) == ["in.png"]


# --------------------------------------------------------------------------- #
# errors: one line, right exit code, no file
# --------------------------------------------------------------------------- #
def test_usage_errors_exit_2_and_write_nothing(noisy_png, tmp_path):
    src, _, _ = noisy_png
    (tmp_path / "adir").mkdir()
    (tmp_path / "in.xyz").write_bytes(b"whatever")
    out = tmp_path / "out.png"
    cases = [
        (("denoise", tmp_path / "missing.png", out), "no such file"),
        (("denoise", tmp_path / "adir", out), "is a directory"),
        (("denoise", src, tmp_path / "adir"), "is a directory"),
        (("denoise", tmp_path / "in.xyz", out), "unsupported extension"),
        (("denoise", src, tmp_path / "out.jpg"), "lossy"),
        (("denoise", src, tmp_path / "out.gif"), "not a supported output format"),
        (("denoise", src, tmp_path / "out"), "unsupported extension"),
        (("denoise", src, tmp_path / "nodir" / "out.png"), "does not exist"),
        (("denoise", src), "expected INPUT OUTPUT"),
        (("denoise", src, out, tmp_path / "x.png"), "expected INPUT OUTPUT"),
        (("denoise",), "expected INPUT OUTPUT"),
        (("denoise", src, out, "--patch-size", "0"), "--patch-size"),
        (("denoise", src, out, "--patch-size", "4"), "must be odd"),
        (("denoise", src, out, "--patch-size", "x"), "is not a valid integer"),
        (("denoise", src, out, "--patch-distance", "-1"), "--patch-distance"),
        (("denoise", src, out, "--h", "0"), "--h"),
        (("denoise", src, out, "--h", "-2"), "--h"),
        (("denoise", src, out, "--sigma", "-1"), "--sigma"),
        (("denoise", src, out, "--noise", "laplace"), "--noise"),
        (("denoise", src, out, "--noise", "speckle", "--sigma", "3"), "not used with --noise speckle"),
        (("denoise", src, out, "--suffix", "_x"), "batch mode"),
        (("denoise", src, out, "--bogus"), "No such option"),
    ]
    for args, message in cases:
        failed(run(*args), 2, message)
        assert files(tmp_path) == ["adir", "in.png", "in.xyz"], args


def test_data_errors_exit_1_with_one_line(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    good = tmp_path / "good.png"
    write_image(good, noisy_image()[1])
    (tmp_path / "trunc.png").write_bytes(good.read_bytes()[:70])
    (tmp_path / "junk.tif").write_bytes(b"II*\x00" + bytes(range(60)))
    nan = noisy_image(dtype=np.float32)[1]
    nan[3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    write_image(tmp_path / "tiny.png", np.zeros((2, 2), np.uint8))
    cases = [
        ("empty.png", "file is empty"),
        ("text.png", "not a recognised PNG file"),
        ("trunc.png", "cannot read"),
        ("junk.tif", "junk.tif"),
        ("nan.tif", "NaN"),
        ("tiny.png", "larger than the image"),
    ]
    before = files(tmp_path)
    for name, message in cases:
        out = tmp_path / ("o_" + Path(name).stem + Path(name).suffix)
        result = failed(run("denoise", tmp_path / name, out, "--sigma", "1"), 1, message, name)
        assert result.stderr.count("\n") == 1, result.stderr  # one line
        assert result.stderr.startswith("Error: ")
        assert files(tmp_path) == before


def test_unreadable_input_exits_1(noisy_png, tmp_path, monkeypatch):
    import nlm.io._png

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    # the PNG's colour key is the first thing read with open(): refused there
    monkeypatch.setattr(nlm.io._png, "open", denied, raising=False)
    src, _, _ = noisy_png
    failed(run("denoise", src, tmp_path / "o.png"), 1, "cannot read: Permission denied")
    assert files(tmp_path) == ["in.png"]


def test_speckle_mode_is_passed_to_the_filter(noisy_png, tmp_path, monkeypatch):
    calls = []

    def recorder(image, *args, **kwargs):
        calls.append(kwargs)
        return image

    monkeypatch.setattr("nlm.denoisers.means.denoise_nl_means", recorder)
    src, _, noisy = noisy_png
    result = ok(run("denoise", src, tmp_path / "o.png", *FAST, "--noise", "speckle"))
    assert calls == [dict(patch_size=3, patch_distance=3, channel_axis=None, preserve_range=True,
                          h=None, noise="speckle")]
    assert "set by the speckle filter" in result.stdout and "speckle" in result.stdout
    np.testing.assert_array_equal(read_image(tmp_path / "o.png").data, noisy)
    ok(run("denoise", src, tmp_path / "o2.png", *FAST, "--noise", "speckle", "--h", "0.5"))
    assert calls[-1]["h"] == 0.5 and "sigma" not in calls[-1]


# --------------------------------------------------------------------------- #
# batch mode
# --------------------------------------------------------------------------- #
@pytest.fixture
def batch_dir(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    images = {}
    for i, name in enumerate(["a.png", "b.png", "c.tif"]):
        images[name] = noisy_image(seed=10 + i)[1]
        write_image(src / name, images[name])
    (src / "notes.txt").write_text("not an image")
    return src, images


def _check_batch_outputs(outdir, images, names):
    assert files(outdir) == sorted(names.values())
    for name, out_name in names.items():
        out = read_image(outdir / out_name).data
        np.testing.assert_array_equal(out, expected_denoise(images[name])[0])


def test_batch_several_files(batch_dir, tmp_path):
    src, images = batch_dir
    outdir = tmp_path / "out" / "deeper"  # created, parents too
    result = ok(run("denoise", src / "a.png", src / "c.tif", "-o", outdir, *FAST))
    _check_batch_outputs(outdir, images, {"a.png": "a.png", "c.tif": "c.tif"})
    assert "Denoising 2 image(s)" in result.stderr  # the progress bar
    assert "denoised 2 of 2 image(s)" in result.stdout
    assert result.stdout.count("(estimated)") == 2


def test_batch_directory_input(batch_dir, tmp_path):
    src, images = batch_dir
    ok(run("denoise", src, "-o", tmp_path / "out", *FAST, "--suffix", "_dn", "--ext", "tif"))
    _check_batch_outputs(
        tmp_path / "out", images, {"a.png": "a_dn.tif", "b.png": "b_dn.tif", "c.tif": "c_dn.tif"}
    )


def test_batch_glob_input(batch_dir, tmp_path):
    src, images = batch_dir
    result = ok(run("denoise", str(src / "*.png"), "-o", tmp_path / "out", *FAST, "-q"))
    _check_batch_outputs(tmp_path / "out", images, {"a.png": "a.png", "b.png": "b.png"})
    assert result.stdout == "" and result.stderr == ""


def test_batch_refuses_existing_outputs_before_any_work(batch_dir, tmp_path):
    src, _ = batch_dir
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "b.png").write_bytes(b"keep")
    failed(run("denoise", src, "-o", outdir, *FAST), 2, "b.png", "already exists")
    assert files(outdir) == ["b.png"] and (outdir / "b.png").read_bytes() == b"keep"
    ok(run("denoise", src, "-o", outdir, *FAST, "--overwrite"))
    assert files(outdir) == ["a.png", "b.png", "c.tif"]


def test_batch_into_the_input_directory_needs_overwrite(batch_dir):
    src, _ = batch_dir
    before = {p: p.read_bytes() for p in src.iterdir()}
    failed(run("denoise", src / "a.png", "-o", src, *FAST), 2, "is the input file")
    assert {p: p.read_bytes() for p in src.iterdir()} == before


def test_batch_name_collision_is_refused(batch_dir, tmp_path):
    src, _ = batch_dir
    write_image(src / "a.tif", noisy_image()[1])
    failed(run("denoise", src / "a.png", src / "a.tif", "-o", tmp_path / "out", "--ext", "png"), 2,
           "would both be written")
    assert not (tmp_path / "out").exists()


def test_batch_usage_errors(batch_dir, tmp_path):
    src, _ = batch_dir
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = [
        ((src / "missing.png", "-o", tmp_path / "out"), "no such file or directory"),
        ((str(src / "*.jpg"), "-o", tmp_path / "out"), "matches no readable image"),
        ((tmp_path / "empty_dir", "-o", tmp_path / "out"), "holds no readable image"),
        ((src / "notes.txt", "-o", tmp_path / "out"), "unsupported extension"),
        ((src / "a.png", "-o", tmp_path / "file.txt"), "file.txt"),
        (("-o", tmp_path / "out"), "no input given"),
    ]
    for args, message in cases:
        failed(run("denoise", *args), 2, message)
        assert not (tmp_path / "out").exists()


def test_batch_continues_past_a_bad_file_and_exits_1(batch_dir, tmp_path):
    src, images = batch_dir
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = failed(run("denoise", src, "-o", tmp_path / "out", *FAST), 1, "bad.png", "1 of 4 image(s) failed")
    _check_batch_outputs(tmp_path / "out", images, {"a.png": "a.png", "b.png": "b.png", "c.tif": "c.tif"})
    assert "denoised 3 of 4" in result.stdout


# --------------------------------------------------------------------------- #
# noise
# --------------------------------------------------------------------------- #
def test_noise_speckle_matches_scikit_image(tmp_path):
    from skimage.util import img_as_ubyte, random_noise

    clean = clean_image()
    write_image(tmp_path / "c.png", clean)
    result = ok(run("noise", tmp_path / "c.png", tmp_path / "n.png", "--model", "speckle",
                    "--var", "0.04", "--seed", "0"))
    expected = img_as_ubyte(random_noise(clean, mode="speckle", var=0.04, rng=0))
    np.testing.assert_array_equal(read_image(tmp_path / "n.png").data, expected)
    assert "speckle noise, var 0.04, seed 0" in result.stdout


def test_noise_gaussian_seeded_and_reproducible(tmp_path):
    from skimage.util import img_as_ubyte, random_noise

    clean = clean_image()
    write_image(tmp_path / "c.png", clean)
    for name, seed in [("n1.png", 3), ("n2.png", 3), ("n3.png", 4)]:
        ok(run("noise", tmp_path / "c.png", tmp_path / name, "--model", "gaussian", "--var", "0.01",
               "--seed", seed))
    n1, n2, n3 = (read_image(tmp_path / n).data for n in ("n1.png", "n2.png", "n3.png"))
    np.testing.assert_array_equal(n1, n2)
    assert np.any(n1 != n3)
    np.testing.assert_array_equal(n1, img_as_ubyte(random_noise(clean, mode="gaussian", var=0.01, rng=3)))


def test_noise_gamma_float32_tiff_and_alpha(tmp_path):
    clean = clean_image((24, 24, 3), np.float32)
    alpha = np.linspace(0, 1, 24 * 24, dtype=np.float32).reshape(24, 24)
    write_image(tmp_path / "c.tif", np.dstack([clean, alpha]))
    ok(run("noise", tmp_path / "c.tif", tmp_path / "n.tif", "--model", "gamma", "--looks", "4"))
    out = read_image(tmp_path / "n.tif")
    assert out.mode == "RGBA" and out.data.dtype == np.float32
    np.testing.assert_array_equal(out.data[..., 3], alpha)
    from nlm.noise import add_noise

    np.testing.assert_array_equal(out.data[..., :3], add_noise(clean, "gamma", looks=4, seed=0))


def test_noise_uint16(tmp_path):
    clean = clean_image(dtype=np.uint16)
    write_image(tmp_path / "c.png", clean)
    ok(run("noise", tmp_path / "c.png", tmp_path / "n.png", "--var", "0.04"))
    out = read_image(tmp_path / "n.png").data
    from nlm.noise import add_noise

    expected = np.clip(np.rint(add_noise(clean, "speckle", var=0.04, seed=0) * 65535), 0, 65535)
    np.testing.assert_array_equal(out, expected.astype(np.uint16))


def test_noise_errors(tmp_path):
    write_image(tmp_path / "c.png", clean_image())
    tifffile.imwrite(tmp_path / "big.tif", np.full((24, 24), 3.0, np.float32))
    out = tmp_path / "n.png"
    failed(run("noise", tmp_path / "c.png", out, "--looks", "4"), 2, "--model gamma")
    failed(run("noise", tmp_path / "c.png", out, "--model", "gamma"), 2, "--looks")
    failed(run("noise", tmp_path / "c.png", out, "--model", "gamma", "--looks", "2", "--var", "0.1"), 2)
    failed(run("noise", tmp_path / "c.png", out, "--var", "0"), 2, "--var")
    failed(run("noise", tmp_path / "c.png", out, "--seed", "-1"), 2, "--seed")
    failed(run("noise", tmp_path / "c.png", out, "--model", "salt"), 2, "--model")
    failed(run("noise", tmp_path / "missing.png", out), 2, "no such file")
    failed(run("noise", tmp_path / "c.png", tmp_path / "c.png"), 2, "is the input file")
    failed(run("noise", tmp_path / "big.tif", tmp_path / "n.tif"), 1, "[0, 1]")
    assert files(tmp_path) == ["big.tif", "c.png"]


# --------------------------------------------------------------------------- #
# psnr
# --------------------------------------------------------------------------- #
def test_psnr_and_ssim_match_scikit_image(tmp_path):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    clean, noisy = noisy_image((24, 24, 3))
    write_image(tmp_path / "c.png", clean)
    write_image(tmp_path / "n.png", noisy)
    result = ok(run("psnr", tmp_path / "c.png", tmp_path / "n.png"))
    p = peak_signal_noise_ratio(clean, noisy, data_range=255)
    s = structural_similarity(clean.astype(float), noisy.astype(float), data_range=255, channel_axis=-1)
    assert result.stdout == f"PSNR  {p:.2f} dB\nSSIM  {s:.4f}\n"
    same = ok(run("psnr", tmp_path / "c.png", tmp_path / "c.png"))
    assert "PSNR  inf dB" in same.stdout and "SSIM  1.0000" in same.stdout


def test_psnr_ignores_alpha_and_honours_data_range(tmp_path):
    clean, noisy = noisy_image()
    write_image(tmp_path / "c.png", np.dstack([clean, np.zeros_like(clean)]))
    write_image(tmp_path / "n.png", np.dstack([noisy, np.full_like(noisy, 255)]))
    write_image(tmp_path / "n2.png", noisy)
    with_alpha = ok(run("psnr", tmp_path / "c.png", tmp_path / "n.png")).stdout.splitlines()[0]
    ok(run("psnr", tmp_path / "c.png", tmp_path / "c.png"))
    write_image(tmp_path / "c2.png", clean)
    plain = ok(run("psnr", tmp_path / "c2.png", tmp_path / "n2.png")).stdout.splitlines()[0]
    assert with_alpha == plain
    doubled = ok(run("psnr", tmp_path / "c2.png", tmp_path / "n2.png", "--data-range", "510")).stdout
    p255, p510 = float(plain.split()[1]), float(doubled.split()[1])
    assert abs(p510 - p255 - 20 * np.log10(2)) < 0.011


def test_psnr_errors(tmp_path):
    write_image(tmp_path / "a.png", clean_image())
    write_image(tmp_path / "b.png", clean_image((20, 24)))
    write_image(tmp_path / "c.png", clean_image(dtype=np.uint16))
    write_image(tmp_path / "t.png", np.zeros((4, 4), np.uint8))
    write_image(tmp_path / "t2.png", np.ones((4, 4), np.uint8))
    failed(run("psnr", tmp_path / "a.png", tmp_path / "b.png"), 1, "does not match")
    failed(run("psnr", tmp_path / "a.png", tmp_path / "c.png"), 1, "same data type")
    failed(run("psnr", tmp_path / "a.png", tmp_path / "missing.png"), 2, "no such file")
    failed(run("psnr", tmp_path / "a.png", tmp_path / "a.png", "--data-range", "0"), 2, "--data-range")
    tiny = ok(run("psnr", tmp_path / "t.png", tmp_path / "t2.png"))
    assert "PSNR  48.13 dB" in tiny.stdout and "SSIM  n/a" in tiny.stdout


# --------------------------------------------------------------------------- #
# bench
# --------------------------------------------------------------------------- #
def test_bench_forwards_every_argument(tmp_path, monkeypatch):
    (tmp_path / "benchmarks").mkdir()
    # a regular package, so it shadows the real benchmarks/ like a checkout would
    (tmp_path / "benchmarks" / "__init__.py").write_text("")
    (tmp_path / "benchmarks" / "psnr.py").write_text(
        "def main(argv=None):\n    print('HARNESS', argv)\n    return 3 if '--fail' in argv else 0\n"
    )
    from nlm.cli import bench

    monkeypatch.setattr(bench, "__file__", str(tmp_path / "nlm" / "cli" / "bench.py"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ("benchmarks", "benchmarks.psnr"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    result = ok(run("bench", "--help", "--sizes", "64", "-x"))
    assert "HARNESS ['--help', '--sizes', '64', '-x']" in result.stdout
    assert run("bench", "--fail").exit_code == 3
    for name in ("benchmarks", "benchmarks.psnr"):
        sys.modules.pop(name, None)


def test_bench_without_source_checkout(tmp_path, monkeypatch):
    from nlm.cli import bench

    monkeypatch.setattr(bench, "__file__", str(tmp_path / "nlm" / "cli" / "bench.py"))
    failed(run("bench"), 1, "nlm bench needs a source checkout")


# --------------------------------------------------------------------------- #
# samples/
# --------------------------------------------------------------------------- #
def test_samples_are_what_the_readme_says(tmp_path):
    from skimage import data

    camera = read_image(SAMPLES / "camera.png")
    assert camera.mode == "L" and camera.data.dtype == np.uint8 and camera.data.shape == (512, 512)
    np.testing.assert_array_equal(camera.data, data.camera())
    # the README's exact command reproduces the noisy sample
    ok(run("noise", SAMPLES / "camera.png", tmp_path / "n.png", "--model", "speckle", "--var", "0.04",
           "--seed", "0"))
    np.testing.assert_array_equal(read_image(tmp_path / "n.png").data,
                                  read_image(SAMPLES / "camera_speckle04.png").data)
    ok(run("noise", SAMPLES / "astronaut256.png", tmp_path / "a.png", "--model", "speckle", "--var",
           "0.04", "--seed", "0"))
    np.testing.assert_array_equal(read_image(tmp_path / "a.png").data,
                                  read_image(SAMPLES / "astronaut256_speckle04.png").data)
    assert read_image(SAMPLES / "astronaut256.png").data.shape == (256, 256, 3)
    assert sum(p.stat().st_size for p in SAMPLES.iterdir()) < 1.5e6
    readme = (SAMPLES / "README.md").read_text()
    for name in ("camera.png", "camera_speckle04.png", "astronaut256.png", "astronaut256_speckle04.png"):
        assert name in readme
    assert "nlm noise samples/camera.png samples/camera_speckle04.png --model speckle --var 0.04 --seed 0" in readme


# first run: the compile note


@pytest.mark.parametrize("pending", [True, False])
def test_compile_note_only_when_kernels_compile_and_not_quiet(noisy_png, tmp_path, monkeypatch, pending):
    import nlm.ops

    src, _, _ = noisy_png
    kinds = []
    monkeypatch.setattr(nlm.ops, "compile_pending", lambda kind: kinds.append(kind) or pending)
    note = "compiling kernels (first run only)"
    result = ok(run("denoise", src, tmp_path / "a.png"))
    assert (note in result.stderr) is pending
    assert result.stderr.count(note) <= 1
    assert kinds == ["nlm"]
    result = ok(run("denoise", "-q", src, tmp_path / "b.png"))
    assert note not in result.stderr and note not in result.stdout
    ok(run("denoise", "--method", "bayes", src, tmp_path / "c.png"))
    assert kinds[-1] == "bayes"


def test_compile_pending_reads_numba_cache(tmp_path):
    # an empty cache directory: every kind compiles; after one 2-D call the row kernel is cached
    probe = textwrap.dedent("""
        import numpy as np
        from nlm.ops._jit_cache import compile_pending
        before = [compile_pending(k) for k in ("nlm", "nlm3d", "bayes")]
        from nlm.ops import _nlm_kernels
        _nlm_kernels.nl_means_windowed(np.zeros((8, 9, 1), np.float32), 3, (2, 2), 0.1, 0.0, 2)
        print("PENDING", before, compile_pending("nlm"))
    """)
    env = dict(__import__("os").environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    assert "PENDING [True, True, True] False" in proc.stdout, proc.stdout
    proc = subprocess.run([sys.executable, "-c", "from nlm.ops._jit_cache import compile_pending; "
                           "print('PENDING', compile_pending('nlm'))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, env=env)
    assert "PENDING False" in proc.stdout, (proc.stdout, proc.stderr)


def test_compile_pending_bayes_counts_the_ridge_kernels(monkeypatch):
    # the NL-Ridge pass runs by default after the NL-Bayes steps: its kernel uncompiled is a pending compile too
    from nlm.ops import _jit_cache, _ridge_kernels

    monkeypatch.setattr(_jit_cache, "_cached", lambda d: d is not _ridge_kernels._cell)
    assert _jit_cache.compile_pending("bayes") is True
    monkeypatch.setattr(_jit_cache, "_cached", lambda d: True)
    assert _jit_cache.compile_pending("bayes") is False
