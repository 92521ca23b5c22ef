"""Rician (magnitude MRI) noise: the model, its blind sigma and the bias-corrected denoisers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlm import denoise_nl_bayes, denoise_nl_means
from nlm.metrics import psnr
from nlm.noise import Gaussian, Rician, check_model, estimate_noise, make_model
from nlm.noise.models import rician_moments


def phantom(shape, levels=(0.2, 0.5, 1.0)):
    """A zero background (air) around nested balls / discs of the given amplitudes."""
    idx = np.indices(shape)
    r = np.sqrt(sum((i - (n - 1) / 2) ** 2 for i, n in zip(idx, shape)))
    R = min(shape) / 2
    x = np.zeros(shape)
    for v, f in zip(levels, (0.85, 0.55, 0.25)):
        x[r < f * R] = v
    return x


# ----------------------------------------------------------------- the model
def test_rician_moments_closed_forms():
    m, v = rician_moments(np.array([0.0, 1.0, 3.0, 50.0, 51.0, 1e4]), 1.0)
    # Rayleigh at 0: mean sqrt(pi / 2), variance 2 - pi / 2
    assert m[0] == pytest.approx(np.sqrt(np.pi / 2), rel=1e-14)
    assert v[0] == pytest.approx(2 - np.pi / 2, rel=1e-14)
    # E[M^2] = A^2 + 2 sigma^2 at every SNR
    A = np.array([0.0, 1.0, 3.0, 50.0, 51.0, 1e4])
    np.testing.assert_allclose(v + m * m, A * A + 2, rtol=1e-10)
    # values at SNR 1 and 3 (mpmath, 50 digits)
    assert m[1] == pytest.approx(1.5485724605511453, rel=1e-13)
    assert v[2] == pytest.approx(0.9347533522965258, rel=1e-11)
    # the series beyond SNR 50 continues the Bessel form
    assert v[3] == pytest.approx(v[4], rel=1e-3) and v[5] == pytest.approx(1.0 - 0.5e-8, rel=1e-12)
    # sigma = 0: no noise
    np.testing.assert_array_equal(rician_moments([0.0, 2.0], 0.0)[0], [0.0, 2.0])


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1e6), st.floats(1e-6, 1e3))
def test_moments_properties(A, sigma):
    # scale covariance, E[M^2] = A^2 + 2 sigma^2, mean above A and the variance between the two limits
    m, v = rician_moments(A, sigma)
    m1, v1 = rician_moments(A / sigma, 1.0)
    assert m == pytest.approx(sigma * m1, rel=1e-12) and v == pytest.approx(sigma**2 * v1, rel=1e-12)
    assert v + m * m == pytest.approx(A * A + 2 * sigma**2, rel=1e-9)
    assert m >= A - 4 * np.spacing(A) and (2 - np.pi / 2) * sigma**2 * (1 - 1e-9) <= v <= sigma**2 * (1 + 1e-9)


@pytest.mark.parametrize("A", [0.0, 0.05, 0.1, 0.3, 1.0])
def test_moments_match_monte_carlo(A):
    model = Rician(0.1)
    y = model.sample(np.full(400_000, A), seed=int(A * 100))
    m, v = model.observed_moments(A)
    assert m == pytest.approx(y.mean(), abs=4 * np.sqrt(v / y.size))
    assert v == pytest.approx(y.var(), rel=0.01)
    assert model.variance(A) == v
    assert np.mean(y * y) == pytest.approx(A * A + 0.02, rel=0.01)


def test_model_attributes_and_errors():
    model = Rician(0.05)
    assert model.name == "rician" and model.nonnegative and model.biased_mean and not model.clip
    assert model.bounds == (0.0, np.inf) and model.coefficients == pytest.approx((0.0025, 0.0, 0.0), rel=1e-12)
    assert repr(model) == "Rician(sigma=0.05)"
    assert model.scaled(4.0) == Rician(0.2) and model == Rician(0.05) and model != Gaussian(0.05)
    assert make_model("rician", sigma=0.05) == model
    x = np.linspace(0, 1, 101)
    v = model.variance(x)
    assert (v <= 0.0025 * (1 + 1e-12)).all() and (v >= (2 - np.pi / 2) * 0.0025 * (1 - 1e-12)).all()
    assert (np.diff(model.observed_moments(x)[0]) > 0).all()  # increasing: invertible
    with pytest.raises(ValueError, match="needs sigma"):
        make_model("rician")
    with pytest.raises(ValueError, match="var not used"):
        make_model("rician", sigma=0.1, var=0.1)
    with pytest.raises(ValueError, match="sigma"):
        Rician(-1.0)
    with pytest.raises(ValueError, match="sigma is too large"):
        Rician(1e300)
    with pytest.raises(TypeError, match="sigma"):
        Rician("0.1")
    with pytest.raises(ValueError, match="non-negative"):
        model.sample(np.array([-0.1, 0.2]))
    with pytest.raises(ValueError, match="magnitudes"):
        check_model(model, -0.5, 1.0)
    assert check_model(model, 0.0, 1.0) is model


def test_sampler_dtypes_seed_and_zero_sigma():
    x = phantom((32, 40)).astype(np.float32)
    y = Rician(0.1).sample(x, seed=3)
    assert y.dtype == np.float32 and (y >= 0).all()
    np.testing.assert_array_equal(y, Rician(0.1).sample(x, seed=3))
    np.testing.assert_array_equal(Rician(0.0).sample(x, seed=3), x)


# ------------------------------------------------------------- blind sigma
@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1, 0.3])
@pytest.mark.parametrize("shape", [(256, 256), (32, 64, 64)])
def test_sigma_from_the_background_within_3_percent(shape, sigma):
    y = Rician(sigma).sample(phantom(shape), seed=1)
    model, details = estimate_noise(y, "rician", return_details=True)
    assert model.name == "rician" and details["rician_from"] == "background"
    assert model.sigma == pytest.approx(sigma, rel=0.03)


@pytest.mark.parametrize("sigma", [0.01, 0.03])
def test_sigma_from_the_level_function_without_background(sigma):
    # no air: a smooth object at SNR 10..60 everywhere, sigma from the tissue level
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    clean = 0.3 + 0.3 * xx + 0.2 * yy
    y = Rician(sigma).sample(clean, seed=2)
    model, details = estimate_noise(y, "rician", return_details=True)
    assert details["rician_from"] == "level function"
    assert model.sigma == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_auto_recognises_rician_data_with_a_background(sigma):
    model = estimate_noise(Rician(sigma).sample(phantom((256, 256)), seed=4))
    assert model.name == "rician" and model.sigma == pytest.approx(sigma, rel=0.03)


def test_auto_does_not_call_non_negative_gaussian_data_rician():
    # Gaussian noise on a positive image (no background at the Rayleigh level)
    clean = 0.3 + 0.6 * phantom((256, 256), levels=(0.2, 0.5, 1.0))
    y = Gaussian(0.05).sample(clean, seed=5)
    assert y.min() > 0
    assert estimate_noise(y).name == "gaussian"


# -------------------------------------------------------------- denoisers
def _constant(shape, snr, sigma=0.1, seed=0, dtype=np.float64):
    A = snr * sigma
    return A, Rician(sigma).sample(np.full(shape, A), seed=seed).astype(dtype)


@pytest.mark.parametrize("snr", [1, 2, 3, 5])
def test_nlm_keeps_the_mean_of_homogeneous_regions(snr):
    # without the correction the mean is lifted by 54 / 13 / 6 / 2 %
    A, y = _constant((256, 256), snr, seed=snr)
    out = denoise_nl_means(y, noise=Rician(0.1))
    assert out.mean() == pytest.approx(A, rel=0.02)
    assert out.std() < 0.5 * y.std()
    # 3-D alike
    A, y = _constant((16, 64, 64), snr, seed=snr)
    out = denoise_nl_means(y, patch_size=3, patch_distance=3, noise=Rician(0.1))
    assert out.mean() == pytest.approx(A, rel=0.02)


@pytest.mark.parametrize("snr", [1, 2, 3, 5])
def test_bayes_keeps_the_mean_of_homogeneous_regions(snr):
    A, y = _constant((256, 256), snr, seed=snr)
    out = denoise_nl_bayes(y, noise=Rician(0.1))
    assert out.mean() == pytest.approx(A, rel=0.02)
    assert out.std() < 0.5 * y.std()
    # sigma= with noise="rician" is the same model
    np.testing.assert_array_equal(denoise_nl_bayes(y, noise="rician", sigma=0.1), out)


def _regions(out, clean, shape, margin):
    """Mean of ``out`` over each non-zero level of the phantom, away from its edges."""
    from scipy.ndimage import binary_erosion

    res = {}
    for v in np.unique(clean[clean > 0]):
        inside = binary_erosion(clean == v, iterations=margin)
        res[float(v)] = float(out[inside].mean())
    return res


@pytest.mark.parametrize("denoise", ["nlm", "bayes"])
def test_blind_phantom_regions_keep_their_means(denoise):
    # SNR 2.5 / 6 / 12 in the three regions, sigma estimated from the air
    sigma = 0.08
    clean = phantom((384, 384), levels=(0.2, 0.5, 1.0))
    y = Rician(sigma).sample(clean, seed=6).astype(np.float32)
    f = denoise_nl_means if denoise == "nlm" else denoise_nl_bayes
    out = f(y, noise="rician")
    assert out.dtype == np.float32
    for v, m in _regions(out, clean, clean.shape, 12).items():
        assert m == pytest.approx(v, rel=0.02), (v, m)
    # the air comes back near 0 (the uncorrected magnitude is sigma sqrt(pi / 2))
    air = out[:16, :16]
    assert air.mean() < 0.5 * sigma
    assert psnr(clean, out) > psnr(clean, y) + 6


def test_float32_matches_float64():
    A, y = _constant((96, 96), 2, seed=9)
    for f in (denoise_nl_means, denoise_nl_bayes):
        a = f(y, noise=Rician(0.1))
        b = f(y.astype(np.float32), noise=Rician(0.1))
        assert b.dtype == np.float32 and a.dtype == np.float64
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_zero_sigma_returns_the_input():
    y = phantom((40, 48)).astype(np.float32) + 0.1
    for f in (denoise_nl_means, denoise_nl_bayes):
        out = f(y, noise=Rician(0.0))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, y)


def test_noise_free_image_is_kept_blind():
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    y = 0.2 + 0.5 * xx + 0.1 * yy
    assert estimate_noise(y, "rician") == Rician(0.0)
    np.testing.assert_array_equal(denoise_nl_means(y, noise="rician"), y)
    np.testing.assert_array_equal(denoise_nl_bayes(y, noise="rician"), y)


def test_channels_and_3d_nlm():
    clean = phantom((12, 40, 40))
    y = Rician(0.05).sample(clean, seed=7)
    out = denoise_nl_means(y, patch_size=3, patch_distance=2, noise="rician")
    assert out.shape == y.shape and psnr(clean, out) > psnr(clean, y) + 3
    rgb = np.stack([y[6], y[5], y[4]], axis=-1)
    out = denoise_nl_means(rgb, noise=Rician(0.05), channel_axis=-1)
    assert out.shape == rgb.shape and (out >= 0).all()


def test_errors():
    y = np.full((32, 32), 0.5)
    y[0, 0] = -0.1
    for f in (denoise_nl_means, denoise_nl_bayes):
        with pytest.raises(ValueError, match="non-negative"):
            f(y, noise="rician")
    with pytest.raises(ValueError, match="sigma"):
        denoise_nl_means(np.abs(y), noise="rician", sigma=-1.0)
    with pytest.raises(ValueError, match="sigma"):
        denoise_nl_bayes(np.abs(y), noise="rician", sigma=np.nan)


# -------------------------------------------------------------- command line
@pytest.mark.parametrize("method", ["means", "bayes"])
def test_cli_16bit_tiff(tmp_path, method):
    import tifffile
    from click.testing import CliRunner

    import cli

    clean = phantom((192, 192)) * 40000.0
    raw = np.round(Rician(2400.0).sample(clean, seed=8)).astype(np.uint16)
    src = tmp_path / "mr.tif"
    tifffile.imwrite(src, raw)

    def run(*args):
        return CliRunner().invoke(cli.main, [str(a) for a in args])

    res = run("denoise", src, tmp_path / "o.tif", "--method", method, "--noise", "rician")
    assert res.exit_code == 0, res.output
    assert "rician, sigma" in res.output and "(estimated)" in res.output
    out = tifffile.imread(tmp_path / "o.tif")
    assert out.dtype == np.uint16 and out.shape == raw.shape
    for v, m in _regions(out.astype(np.float64), clean, clean.shape, 10).items():
        assert m == pytest.approx(v, rel=0.02), (v, m)
    assert psnr(clean / 65535, out / 65535) > psnr(clean / 65535, raw / 65535) + 5
    # a known sigma, in the file's units
    res = run("denoise", src, tmp_path / "o.tif", "--method", method, "--noise", "rician", "--sigma", 2400)
    assert res.exit_code != 0 and "exists" in res.output  # never overwritten without --overwrite
    res = run("denoise", src, tmp_path / "o.tif", "--method", method, "--noise", "rician", "--sigma", 2400,
              "--overwrite")
    assert res.exit_code == 0, res.output
    assert "rician, sigma 2400 (given)" in res.output


def test_cli_rician_errors(tmp_path):
    import tifffile
    from click.testing import CliRunner

    import cli

    src = tmp_path / "neg.tif"
    tifffile.imwrite(src, np.full((48, 48), -1.0, dtype=np.float32))
    res = CliRunner().invoke(cli.main, ["denoise", str(src), str(tmp_path / "o.tif"), "--noise", "rician"])
    assert res.exit_code == 1 and "non-negative" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(cli.main, ["denoise", str(src), str(tmp_path / "o.tif"), "--noise", "speckle",
                                        "--sigma", "1"])
    assert res.exit_code == 2


@pytest.mark.parametrize("scale", [2.0**-600, 2.0**512])
def test_extreme_magnitudes(scale):
    # squares of values near 2^513 overflow float64 (and near 2^-600 underflow):
    # the filter scales by a power of two (exact)
    A, y = _constant((48, 48), 20, seed=3)
    ref = denoise_nl_means(y, noise=Rician(0.1))
    out = denoise_nl_means(y * scale, noise=Rician(0.1 * scale))
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out / scale, ref, rtol=1e-5)


def test_rician_estimation_does_not_import_scipy_special_or_optimize():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from nlm.noise import Rician, estimate_noise\n"
        "x = np.zeros((128, 128)); x[32:96, 32:96] = 0.5\n"
        "y = Rician(0.05).sample(x, seed=0)\n"
        "estimate_noise(y); estimate_noise(y, 'rician'); Rician(0.05).observed_moments(x)\n"
        "bad = [m for m in ('scipy.special', 'scipy.optimize') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
