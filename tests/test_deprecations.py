"""Renamed public names: the new name works, the old one still does, with a
DeprecationWarning that names the new one."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

import nlm
from nlm.noise.models import NoiseModel
from nlm.ops.kernels import Pairwise


def test_plain_gaussian_is_the_pairwise_function():
    f = nlm.PlainGaussian(scale=0.5)
    assert isinstance(f, Pairwise) and f.normalization == "softmax"
    x = np.random.default_rng(0).normal(size=(6, 3))
    s = x @ x.T * 0.5
    w = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(nlm.nonlocal_op(x, f), (w / w.sum(axis=1, keepdims=True)) @ x, rtol=1e-12)
    assert "PlainGaussian" in nlm.__all__ and "PlainGaussian" in dir(nlm)


def test_old_name_warns_and_returns_the_new_class():
    for _ in range(2):  # every use warns: the old name is never cached in the module
        with pytest.warns(DeprecationWarning, match=r"nlm\.Gaussian is deprecated.*nlm\.PlainGaussian") as rec:
            cls = nlm.Gaussian
        assert cls is nlm.PlainGaussian
        assert rec[0].filename == __file__  # points at the caller
    with pytest.warns(DeprecationWarning, match="PlainGaussian"):
        from nlm import Gaussian
    assert Gaussian is nlm.PlainGaussian
    with pytest.warns(DeprecationWarning, match="PlainGaussian"):
        assert getattr(nlm, "Gaussian") is nlm.PlainGaussian  # noqa: B009


def test_old_name_is_not_listed_and_the_noise_model_is_untouched():
    assert "Gaussian" not in nlm.__all__ and "Gaussian" not in dir(nlm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from nlm.noise import Gaussian

        namespace = {}
        exec("from nlm import *", namespace)
    assert issubclass(Gaussian, NoiseModel) and "Gaussian" not in namespace
    assert namespace["PlainGaussian"] is nlm.PlainGaussian


def test_old_name_warns_in_a_fresh_process():
    code = (
        "import warnings; warnings.simplefilter('error')\n"
        "import nlm\n"
        "try:\n    nlm.Gaussian\nexcept DeprecationWarning as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "use nlm.PlainGaussian" in out


def test_kernels_module_renamed_the_class():
    from nlm.ops import kernels

    assert kernels.PlainGaussian is nlm.PlainGaussian and nlm.PlainGaussian.__name__ == "PlainGaussian"
    assert repr(nlm.PlainGaussian(2.0)) == "PlainGaussian(scale=2.0)"
    assert "Gaussian" not in kernels.__all__ and "PlainGaussian" in kernels.__all__
    with pytest.warns(DeprecationWarning, match=r"nlm\.ops\.kernels\.Gaussian is deprecated.*PlainGaussian"):
        from nlm.ops.kernels import Gaussian
    assert Gaussian is kernels.PlainGaussian
