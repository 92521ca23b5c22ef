"""nlm denoise --method bayes, --noise models and --looks."""

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image
from skimage import data

import cli
from nlm.metrics import psnr
from nlm.noise import Gamma, Gaussian, Speckle


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.fixture(scope="module")
def clean():
    return data.camera()[::4, ::4] / 255.0  # 128 x 128


@pytest.fixture()
def speckled(tmp_path, clean):
    path = tmp_path / "sp.png"
    Image.fromarray((Speckle(0.04).sample(clean, seed=0) * 255).round().astype(np.uint8)).save(path)
    return path


@pytest.fixture()
def sar(tmp_path, clean):
    path = tmp_path / "sar.tif"
    tifffile.imwrite(path, Gamma(4).sample(clean, seed=1).astype(np.float32))
    return path


def test_bayes_reports_clipped_noise(tmp_path, clean):
    # an 8-bit camera: Gaussian noise clipped at 0 and 255 (issue 18: it was
    # modelled at [0, 1] of the raw 0..255 values, and the output came out black)
    path = tmp_path / "g.png"
    noisy = Gaussian(0.15, clip=True).sample(clean, seed=0)
    raw = (noisy * 255).round().astype(np.uint8)
    Image.fromarray(raw).save(path)
    res = run("denoise", path, tmp_path / "o.png", "--method", "bayes")
    assert res.exit_code == 0, res.output
    assert "gaussian, sigma" in res.output and "clipped to [0, 255] (estimated)" in res.output
    out = np.asarray(Image.open(tmp_path / "o.png"))
    assert out.mean() == pytest.approx(raw.mean(), rel=0.03)
    assert psnr(clean, out / 255.0) > psnr(clean, raw / 255.0) + 5


def _photo(clean, sigma255, seed):
    """A noisy 8-bit-camera photo, as float in [0, 1] (clipped Gaussian noise)."""
    rng = np.random.default_rng(seed)
    return np.clip(clean + rng.normal(0.0, sigma255 / 255.0, clean.shape), 0.0, 1.0)


@pytest.mark.parametrize(
    "kind", ["png8", "png16", "tif8", "tif16", "tif-float-255", "jpeg"]
)
def test_bayes_on_photos_matches_the_float_path(tmp_path, clean, kind):
    # the same photo through the CLI in its stored type, and as float in [0, 1]
    # through the CLI: within 0.05 dB (issue 18's bar)
    noisy = _photo(clean, 20, seed=3)
    src = tmp_path / {"png8": "n.png", "png16": "n.png", "tif8": "n.tif", "tif16": "n.tif",
                      "tif-float-255": "n.tif", "jpeg": "n.jpg"}[kind]
    if kind in ("png8", "jpeg", "tif8"):
        stored, top = (noisy * 255).round().astype(np.uint8), 255.0
    elif kind in ("png16", "tif16"):
        stored, top = (noisy * 65535).round().astype(np.uint16), 65535.0
    else:
        stored, top = (noisy * 255).astype(np.float32), 255.0
    if kind.startswith("tif"):
        tifffile.imwrite(src, stored)
    elif kind == "jpeg":
        Image.fromarray(stored).save(src, quality=98)
    else:
        Image.fromarray(stored).save(src)
    out_path = tmp_path / ("o.png" if kind == "jpeg" else "o" + src.suffix)  # JPEG in, PNG out
    res = run("denoise", src, out_path, "--method", "bayes")
    assert res.exit_code == 0, res.output
    decoded = np.asarray(Image.open(src)) if kind == "jpeg" else (
        tifffile.imread(src) if kind.startswith("tif") else np.asarray(Image.open(src)))
    as_float = tmp_path / "f.tif"
    tifffile.imwrite(as_float, decoded.astype(np.float64) / top)
    res = run("denoise", as_float, tmp_path / "fo.tif", "--method", "bayes")
    assert res.exit_code == 0, res.output
    out = (tifffile.imread(out_path) if kind.startswith("tif") else np.asarray(Image.open(out_path))) / top
    ref = tifffile.imread(tmp_path / "fo.tif")
    assert out.mean() == pytest.approx(ref.mean(), rel=0.01)
    gain = psnr(clean, ref) - psnr(clean, decoded / top)
    assert gain > 5
    assert abs(psnr(clean, out) - psnr(clean, ref)) < 0.05, (psnr(clean, out), psnr(clean, ref))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
@pytest.mark.parametrize("extra", [[], ["--sigma", "0"], ["--looks", "1e300"]])
def test_bayes_on_noise_free_images(tmp_path, dtype, extra):
    # a noise-free ramp: the input comes back (it crashed the interpreter)
    ramp = np.linspace(0, 1, 96)[None, :].repeat(48, 0)
    img = np.round(ramp * np.iinfo(dtype).max).astype(dtype) if np.dtype(dtype).kind == "u" else ramp
    src = tmp_path / "r.tif"
    tifffile.imwrite(src, img)
    res = run("denoise", src, tmp_path / "o.tif", "--method", "bayes", *extra)
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), img)


@pytest.mark.parametrize(
    "extra, code, word",
    [
        (["--sigma", "1e300"], 2, "'--sigma'"),
        (["--looks", "1e-320"], 2, "'--looks'"),
        (["--sigma", "1e100"], 1, "more than 1000 times"),
        (["--sigma", "nan"], 2, "sigma"),
        (["--sigma", "inf"], 2, "sigma"),
    ],
)
def test_bayes_extreme_noise_options(tmp_path, extra, code, word):
    src = tmp_path / "r.tif"
    tifffile.imwrite(src, np.linspace(0, 1, 48 * 40).reshape(48, 40))
    res = run("denoise", src, tmp_path / "o.tif", "--method", "bayes", *extra)
    assert res.exit_code == code, res.output
    assert word in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o.tif").exists()


def test_bayes_blind_reports_the_model(speckled, tmp_path, clean):
    out = tmp_path / "o.png"
    res = run("denoise", speckled, out, "--method", "bayes")
    assert res.exit_code == 0, res.output
    assert "non-local Bayes" in res.output and "speckle, variance" in res.output and "(estimated)" in res.output
    result = np.asarray(Image.open(out)) / 255.0
    noisy = np.asarray(Image.open(speckled)) / 255.0
    assert psnr(clean, result) > psnr(clean, noisy) + 5


@pytest.mark.parametrize("method", ["means", "bayes"])
def test_sar_with_looks_keeps_float_and_mean(sar, tmp_path, method):
    out = tmp_path / "o.tif"
    res = run("denoise", sar, out, "--method", method, "--looks", "4")
    assert res.exit_code == 0, res.output
    assert "gamma (SAR), L 4 looks (given)" in res.output
    result = tifffile.imread(out)
    noisy = tifffile.imread(sar)
    assert result.dtype == np.float32
    assert result.mean() == pytest.approx(noisy.mean(), rel=0.02)
    assert result.std() < noisy.std()


@pytest.mark.parametrize("noise", ["gaussian", "poisson", "speckle", "gamma", "auto"])
@pytest.mark.parametrize("method", ["means", "bayes"])
def test_every_model_with_both_methods(speckled, tmp_path, noise, method):
    res = run("denoise", speckled, tmp_path / "o.png", "--method", method, "--noise", noise)
    assert res.exit_code == 0, res.output
    assert "noise model" in res.output


@pytest.mark.parametrize(
    "args, word",
    [
        (["--method", "bayes", "--h", "3"], "--h"),
        (["--noise", "speckle", "--looks", "3"], "--looks"),
        (["--noise", "gamma", "--sigma", "3"], "--sigma"),
        (["--method", "nlb"], "--method"),
        (["--noise", "laplace"], "--noise"),
        (["--looks", "0"], "--looks"),
    ],
)
def test_usage_errors(speckled, tmp_path, args, word):
    res = run("denoise", speckled, tmp_path / "o.png", *args)
    assert res.exit_code == 2 and word in res.output
    assert not (tmp_path / "o.png").exists()


def test_bayes_sigma_given(speckled, tmp_path):
    res = run("denoise", speckled, tmp_path / "o.png", "--method", "bayes", "--sigma", "10")
    assert res.exit_code == 0, res.output
    assert "gaussian, sigma 10 (given)" in res.output  # a given sigma: not clipped


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_bayes_on_a_volume(tmp_path, dtype):
    """nlm denoise stack.tif out.tif --volume --method bayes (in memory): blind, the input's dtype back."""
    z, y, x = np.meshgrid(np.linspace(-1, 1, 8), np.linspace(-1, 1, 32), np.linspace(-1, 1, 28), indexing="ij")
    clean = 0.5 + 0.25 * np.sin(3 * x + 2 * y) * np.cos(z) + 0.15 * ((x**2 + y**2 + z**2) < 0.5)
    noisy = np.clip(Gaussian(0.06).sample(clean, seed=3), 0, 1)
    scale = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    data = noisy.astype(np.float32) if dtype == np.float32 else np.round(noisy * scale).astype(dtype)
    src, dst = tmp_path / "stack.tif", tmp_path / "out.tif"
    tifffile.imwrite(src, data, photometric="minisblack")
    res = run("denoise", src, dst, "--volume", "--method", "bayes")
    assert res.exit_code == 0, res.output
    out = tifffile.imread(dst)
    assert out.shape == data.shape and out.dtype == dtype
    assert psnr(clean, out / scale, data_range=1.0) > psnr(clean, data / scale, data_range=1.0) + 6
    # per-axis geometry from the command line
    res = run("denoise", src, tmp_path / "o2.tif", "--volume", "--method", "bayes", "--patch-size", "1,5,5",
              "--patch-distance", "1,4,4")
    assert res.exit_code == 0, res.output
    assert res.output.count("Traceback") == 0
