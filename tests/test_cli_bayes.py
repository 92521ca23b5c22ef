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
    # an 8-bit camera: Gaussian noise clipped at 0 and 255
    path = tmp_path / "g.png"
    noisy = Gaussian(0.15, clip=True).sample(clean, seed=0)
    Image.fromarray((noisy * 255).round().astype(np.uint8)).save(path)
    res = run("denoise", path, tmp_path / "o.png", "--method", "bayes")
    assert res.exit_code == 0, res.output
    assert "gaussian, sigma" in res.output and "clipped to [0, 1] (estimated)" in res.output


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


def test_bayes_sigma_given_and_volume_refused(speckled, tmp_path):
    res = run("denoise", speckled, tmp_path / "o.png", "--method", "bayes", "--sigma", "10")
    assert res.exit_code == 0, res.output
    assert "gaussian, sigma 10 (given)" in res.output  # a given sigma: not clipped
    stack = tmp_path / "vol.tif"
    tifffile.imwrite(stack, np.random.default_rng(0).random((4, 16, 16)).astype(np.float32), photometric="minisblack")
    res = run("denoise", stack, tmp_path / "v.tif", "--method", "bayes", "--volume", "--sigma", "0.1")
    assert res.exit_code == 1 and "2-D" in res.output and "Traceback" not in res.output
