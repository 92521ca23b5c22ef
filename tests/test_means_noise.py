"""denoise_nl_means with every noise model (the NLM user of the noise layer)."""

import numpy as np
import pytest
from skimage import data
from skimage.util import img_as_float

from nlm import denoise_nl_means
from nlm.metrics import psnr
from nlm.noise import Gamma, Gaussian, PoissonGaussian


def sar_regions(n=128):
    """2x2 piecewise-constant reflectivity, n x n regions."""
    return np.kron(np.array([[0.08, 0.5], [1.0, 0.25]]), np.ones((n, n)))


def region_ratios(out, y, n=128, margin=16):
    r = []
    for i in range(2):
        for j in range(2):
            sl = (slice(i * n + margin, (i + 1) * n - margin), slice(j * n + margin, (j + 1) * n - margin))
            r.append(out[sl].mean() / y[sl].mean())
    return np.array(r)


@pytest.mark.parametrize("looks", [1, 4, 16])
def test_gamma_keeps_local_means(looks):
    x = sar_regions()
    y = Gamma(looks).sample(x, seed=looks)
    out = denoise_nl_means(y, noise="gamma")
    np.testing.assert_allclose(region_ratios(out, y), 1.0, atol=0.02)
    assert out.std() < y.std()


@pytest.fixture(scope="module")
def camera():
    return img_as_float(data.camera()[::4, ::4])


def test_poisson_beats_the_gaussian_filter(camera):
    m = PoissonGaussian(0.02, 0.01)
    y = m.sample(camera, seed=0)
    gauss = psnr(camera, denoise_nl_means(y))
    for noise in ("poisson", m, "auto"):
        assert psnr(camera, denoise_nl_means(y, noise=noise)) > gauss + 0.3


def test_auto_and_model_instances(camera):
    y = Gamma(4).sample(camera, seed=1)
    auto = denoise_nl_means(y, noise="auto")
    np.testing.assert_array_equal(auto, denoise_nl_means(y, noise="gamma"))
    assert psnr(camera, auto) > psnr(camera, y) + 5
    g = Gaussian(0.05).sample(camera, seed=2)
    np.testing.assert_array_equal(denoise_nl_means(g, noise=Gaussian(0.05)), denoise_nl_means(g, sigma=0.05))
    out32 = denoise_nl_means(y.astype(np.float32), noise="gamma")
    assert out32.dtype == np.float32
    assert np.abs(out32 - denoise_nl_means(y, noise="gamma")).mean() < 1e-3


def test_noise_argument_errors(camera):
    with pytest.raises(ValueError, match="non-negative"):
        denoise_nl_means(camera - 0.5, noise="gamma")
    with pytest.raises(ValueError, match="noise"):
        denoise_nl_means(camera, noise="laplace")
    with pytest.raises(ValueError, match="h"):
        denoise_nl_means(camera, noise="gamma", h=0)
