"""nlm.noise._special: SciPy-free erfc, ndtr, digamma and small NNLS, against SciPy as the oracle."""

import math
import subprocess
import sys

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from nlm.noise import _special


def test_erfc_ndtr_match_scipy():
    x = np.concatenate([np.linspace(-30, 30, 4001), [0.0, -0.0, 1e-300, 37.0, -37.0, np.inf, -np.inf]])
    np.testing.assert_allclose(_special.erfc(x), scipy.special.erfc(x), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(_special.ndtr(x), scipy.special.ndtr(x), rtol=1e-12, atol=1e-300)
    assert _special.erfc(x.astype(np.float32)).dtype == np.float64
    assert _special.erfc(0.5) == pytest.approx(math.erfc(0.5), rel=0, abs=0)
    assert _special.erfc(np.zeros((2, 3))).shape == (2, 3)


@pytest.mark.parametrize("x", [1e-4, 0.1, 0.5, 1.0, 1.5, 2.0, 3.7, 9.999, 10.0, 10.5, 64.0, 1e3, 1e8])
def test_digamma_matches_scipy(x):
    assert _special.digamma(x) == pytest.approx(float(scipy.special.digamma(x)), rel=1e-14, abs=1e-14)


def test_digamma_known_values():
    euler = 0.5772156649015329
    assert _special.digamma(1.0) == pytest.approx(-euler, abs=1e-15)
    assert _special.digamma(0.5) == pytest.approx(-euler - 2 * math.log(2), abs=1e-15)


def test_nnls_matches_scipy_and_kkt():
    rng = np.random.default_rng(7)
    for _ in range(300):
        m, n = int(rng.integers(2, 30)), int(rng.integers(1, 4))
        A = rng.normal(size=(m, n)) * rng.uniform(0.01, 100, size=n)
        b = rng.normal(size=m)
        c, res = _special.nnls(A, b)
        ref, ref_res = scipy.optimize.nnls(A, b)
        assert np.all(c >= 0)
        assert res == pytest.approx(ref_res, rel=1e-9, abs=1e-12)
        # KKT: the gradient is zero on the support and points outwards off it
        g = A.T @ (A @ c - b)
        scale = np.abs(A).sum() * (np.abs(b).sum() + 1)
        assert np.all(np.abs(g[c > 0]) <= 1e-9 * scale)
        assert np.all(g[c == 0] >= -1e-9 * scale)


def test_nnls_rejects_many_columns():
    with pytest.raises(ValueError, match="at most 4"):
        _special.nnls(np.ones((6, 5)), np.ones(6))


def test_noise_estimation_does_not_import_scipy_special_or_optimize():
    # a third of a warm `nlm denoise` run was importing them
    code = (
        "import sys, numpy as np\n"
        "from nlm.noise import estimate_noise, Gaussian, Speckle\n"
        "rng = np.random.default_rng(0)\n"
        "x = np.clip(rng.random((96, 96)) * 0.2 + 0.4 + rng.normal(0, 0.05, (96, 96)), 0, 1)\n"
        "estimate_noise(x, noise='auto'); estimate_noise(x, noise='speckle')\n"
        "Gaussian(0.05, clip=True).observed_moments(x)\n"
        "bad = [m for m in ('scipy.special', 'scipy.optimize') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_bessel_i0e_i1e_match_scipy():
    z = np.concatenate([np.linspace(0, 40, 4001), np.geomspace(1e-300, 1e-3, 50), [19.999999, 20.0, 20.000001],
                        np.geomspace(40, 1e12, 200)])
    np.testing.assert_allclose(_special.i0e(z), scipy.special.i0e(z), rtol=2e-14, atol=0)
    np.testing.assert_allclose(_special.i1e(z), scipy.special.i1e(z), rtol=2e-14, atol=1e-320)
    assert _special.i0e(np.zeros((2, 3))).shape == (2, 3) and _special.i0e(0.0) == 1.0


def test_minimize_bounded():
    assert _special.minimize_bounded(lambda x: (x - 0.3) ** 2, -1.0, 2.0, tol=1e-9) == pytest.approx(0.3, abs=1e-8)
    assert _special.minimize_bounded(lambda x: x, 0.0, 1.0, tol=1e-9) == pytest.approx(0.0, abs=1e-8)
