"""The GPU backend (``device=``), on Numba's CUDA simulator.

tests/conftest.py switches the simulator on (``NUMBA_ENABLE_CUDASIM=1``)
before Numba is imported, so these tests run the numba-cuda kernels on any
CPU; with ``NUMBA_ENABLE_CUDASIM=0`` and a GPU they run on the device.  The
simulator runs every GPU thread in Python: tiny images only (one 8x8 block).
The oracle is the NumPy twin of the CPU kernel (tests/naive.py) and the CPU
path itself.
"""

import importlib.util
import logging
import subprocess
import sys

import naive
import numpy as np
import pytest
from gpu_fakes import FakeGpuArray

from nlm.denoisers.means import denoise_nl_means
from nlm.ops import _cuda_device as dev

needs_cuda = pytest.mark.skipif(
    importlib.util.find_spec("numba_cuda") is None, reason="numba-cuda is not installed (the gpu extra)"
)


@pytest.fixture
def gpu(monkeypatch):
    """The GPU backend (simulator or device); one 8x8 block per plane under the simulator."""
    ok, why = dev.cuda_status()
    if not ok:
        pytest.skip(f"no GPU backend: {why}")
    from nlm.ops import _cuda_nlm

    monkeypatch.setattr(_cuda_nlm, "BLOCK_SIM", (8, 8))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the simulator's threads meet at barriers: switch quickly
    yield _cuda_nlm
    sys.setswitchinterval(old)


# ---------------------------------------------------------------- the kernel against its oracle


@needs_cuda
@pytest.mark.parametrize(
    "shape, nd, patch, window, dtype",
    [
        ((7, 6, 1), 2, 3, (2, 1), np.float32),  # odd shape, per-axis window, borders on every side
        ((5, 8, 3), 2, (3, 5), (1, 2), np.float64),  # colour, per-axis patch
        ((8, 1), 1, 5, (3,), np.float64),  # 1-D
        ((3, 4, 5, 2), 3, (1, 3, 3), (1, 1, 1), np.float32),  # 3-D, two channels
        ((2, 5, 1), 2, 7, (1, 2), np.float64),  # patch larger than the image: radius clipped to n - 1
    ],
)
def test_kernel_matches_oracle(gpu, shape, nd, patch, window, dtype):
    rng = np.random.default_rng(sum(shape))
    x = rng.random(shape).astype(dtype)
    g = gpu.nl_means_cuda(x, patch, window, 0.25, 0.05, nd)
    assert g.dtype == dtype and g.shape == x.shape
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(g, naive.nl_means(x, patch, window, 0.25, 0.05), atol=tol, rtol=0)


@needs_cuda
def test_kernel_limits(gpu):
    rng = np.random.default_rng(3)
    x = rng.random((6, 7, 1)).astype(np.float32)
    # h = inf: the window mean; a tiny h: the image itself; a constant stays constant
    np.testing.assert_allclose(gpu.nl_means_cuda(x, 3, (1, 1), np.inf, 0.0, 2), naive.window_mean(x, 1), atol=2e-7)
    np.testing.assert_array_equal(gpu.nl_means_cuda(x, 3, (1, 1), 1e-30, 0.0, 2), x)
    c = np.full((5, 6, 1), 0.375, np.float32)
    np.testing.assert_array_equal(gpu.nl_means_cuda(c, 3, (1, 1), 0.1, 0.02, 2), c)
    # extreme magnitudes: the exact power-of-two scaling of the CPU path, result within the range
    big = (x * np.float32(3e37)).astype(np.float32)
    y = gpu.nl_means_cuda(big, 3, (1, 1), 3e36, 0.0, 2)
    assert np.isfinite(y).all() and y.min() >= big.min() and y.max() <= big.max()
    np.testing.assert_allclose(y / np.float32(3e37), gpu.nl_means_cuda(x, 3, (1, 1), 0.1, 0.0, 2), atol=2e-6)


# ---------------------------------------------------------------- the public function


@needs_cuda
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(h=0.3, sigma=0.05),
        dict(),  # automatic h and sigma
        dict(noise="gamma"),
        dict(noise="rician"),
        dict(noise="poisson"),
    ],
)
def test_denoise_cuda_equals_cpu(gpu, kwargs):
    rng = np.random.default_rng(7)
    x = (0.2 + rng.random((6, 7, 3))).astype(np.float32)
    common = dict(patch_size=3, patch_distance=1, channel_axis=-1)
    g = denoise_nl_means(x, device="cuda", **common, **kwargs)
    c = denoise_nl_means(x, **common, **kwargs)
    assert g.dtype == c.dtype == np.float32
    # the bar: within 1e-5 of the range (measured: ~2.5e-7)
    assert np.abs(g - c).max() <= 1e-5 * float(np.ptp(x))


@needs_cuda
def test_gpu_array_in_gpu_array_out(gpu, caplog):
    rng = np.random.default_rng(11)
    x = rng.random((3, 6, 5)).astype(np.float64)  # channels first
    fake = FakeGpuArray(x)
    kw = dict(h=0.3, sigma=0.05, patch_size=3, patch_distance=1, channel_axis=0)
    with caplog.at_level(logging.INFO, logger="nlm"):
        out = denoise_nl_means(fake, device="auto", **kw)
    assert "running on the GPU" in caplog.text
    assert not isinstance(out, np.ndarray) and hasattr(out, "copy_to_host")  # stays a device array
    host = out.copy_to_host()
    assert host.shape == x.shape and host.dtype == np.float64
    np.testing.assert_allclose(host, denoise_nl_means(x, **kw), atol=1e-12, rtol=0)
    # grey, automatic parameters (a host copy for the estimate), result back on the device
    g = rng.random((6, 5)).astype(np.float32)
    out = denoise_nl_means(FakeGpuArray(g), patch_size=3, patch_distance=1, device="cuda")
    np.testing.assert_allclose(out.copy_to_host(), denoise_nl_means(g, patch_size=3, patch_distance=1), atol=2e-7)


@needs_cuda
def test_gpu_array_errors(gpu):
    x = np.zeros((5, 6), np.float32)
    with pytest.raises(ValueError, match="GPU array"):
        denoise_nl_means(FakeGpuArray(x), h=0.1)  # device="cpu" cannot read GPU memory
    with pytest.raises(TypeError, match="float32 or float64"):
        denoise_nl_means(FakeGpuArray(x.astype(np.uint8)), h=0.1, device="cuda")
    bad = x.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        denoise_nl_means(FakeGpuArray(bad), h=0.1, patch_size=3, patch_distance=1, device="cuda")
    with pytest.raises(ValueError, match="mask"):
        denoise_nl_means(FakeGpuArray(x), h=0.1, mask=np.ones((5, 6), bool), device="cuda")


@needs_cuda
def test_what_the_gpu_path_does_not_take(gpu, caplog):
    from nlm import UnsupportedDimensionError

    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    mask = np.ones_like(x, bool)
    mask[0, 0] = False
    with pytest.raises(UnsupportedDimensionError, match="mask"):
        denoise_nl_means(x, h=0.1, mask=mask, device="cuda")
    with caplog.at_level(logging.INFO, logger="nlm"):
        out = denoise_nl_means(x, h=0.1, patch_size=3, patch_distance=1, mask=mask, device="auto")
    assert "runs on the CPU" in caplog.text
    np.testing.assert_array_equal(out, denoise_nl_means(x, h=0.1, patch_size=3, patch_distance=1, mask=mask))


# ---------------------------------------------------------------- choosing the device (no kernel runs)


def test_device_argument_checked():
    x = np.zeros((4, 4))
    with pytest.raises(ValueError, match="device must be one of"):
        denoise_nl_means(x, h=0.1, device="gpu")
    with pytest.raises(TypeError, match="device must be one of"):
        denoise_nl_means(x, h=0.1, device=0)


def test_no_device_is_a_clear_error_and_auto_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(dev, "_STATUS", (False, "no CUDA GPU or driver was found"))
    x = np.random.default_rng(1).random((6, 5)).astype(np.float32)
    with pytest.raises(dev.DeviceUnavailableError, match="no CUDA GPU or driver"):
        denoise_nl_means(x, h=0.1, device="cuda")
    with caplog.at_level(logging.INFO, logger="nlm"):
        out = denoise_nl_means(x, h=0.1, patch_size=3, patch_distance=1, device="auto")
    assert "running on the CPU" in caplog.text
    np.testing.assert_array_equal(out, denoise_nl_means(x, h=0.1, patch_size=3, patch_distance=1))
    assert issubclass(dev.DeviceUnavailableError, RuntimeError)


def test_missing_numba_cuda_named_in_the_error(monkeypatch):
    monkeypatch.setattr(dev, "_STATUS", None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    ok, why = dev.cuda_status()
    assert not ok and "numba-cuda is not installed" in why and "nlm[gpu]" in why
    monkeypatch.setattr(dev, "_STATUS", None)  # not cached for the other tests


def test_nl_bayes_device():
    from nlm.denoisers.bayes import denoise_nl_bayes

    x = np.zeros((8, 8), np.float32)
    with pytest.raises(NotImplementedError, match="no GPU kernel"):
        denoise_nl_bayes(x, device="cuda")
    with pytest.raises(ValueError, match="device must be one of"):
        denoise_nl_bayes(x, device="gpu")


def test_dlpack_cuda_detected():
    class DL:
        def __dlpack__(self, stream=None):
            raise AssertionError("not read")

        def __dlpack_device__(self):
            return (2, 0)  # kDLCUDA

    assert dev.is_gpu_array(DL())
    assert not dev.is_gpu_array(np.zeros(3))  # NumPy's DLPack device is the CPU


def test_cpu_path_does_not_import_numba_cuda():
    code = (
        "import sys, numpy as np, nlm\n"
        "nlm.denoise_nl_means(np.random.default_rng(0).random((16, 16)), h=0.1, patch_size=3, patch_distance=2)\n"
        "bad = [m for m in sys.modules if m.startswith('numba.cuda') or m.startswith('numba_cuda.numba.cuda')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_cli_device(tmp_path, monkeypatch):
    import imageio.v3 as iio
    from click.testing import CliRunner

    from cli import main

    src = tmp_path / "in.png"
    iio.imwrite(src, (np.random.default_rng(2).random((10, 11)) * 255).astype(np.uint8))
    run = CliRunner().invoke
    monkeypatch.setattr(dev, "_STATUS", (False, "no CUDA GPU or driver was found"))
    r = run(main, ["denoise", str(src), str(tmp_path / "a.png"), "--device", "cuda"])
    assert r.exit_code == 1 and "no CUDA GPU or driver" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "a.png").exists()
    r = run(main, ["denoise", str(src), str(tmp_path / "b.png"), "--device", "auto", "--verbose"])
    assert r.exit_code == 0 and "device cpu (no CUDA GPU" in r.output
    r = run(main, ["denoise", str(src), str(tmp_path / "c.png"), "--device", "cuda", "--method", "bayes"])
    assert r.exit_code == 2 and "NL-Bayes has no GPU kernel" in r.output
    r = run(main, ["denoise", str(src), str(tmp_path / "d.png"), "--device", "tpu"])
    assert r.exit_code == 2


@needs_cuda
def test_cli_device_cuda_equals_cpu(gpu, tmp_path):
    import imageio.v3 as iio
    from click.testing import CliRunner

    from cli import main

    src = tmp_path / "in.png"
    iio.imwrite(src, (np.random.default_rng(4).random((7, 8)) * 255).astype(np.uint8))
    args = ["--patch-size", "3", "--patch-distance", "1", "--sigma", "20"]
    for name, device in (("g.png", "cuda"), ("c.png", "cpu")):
        r = CliRunner().invoke(main, ["denoise", str(src), str(tmp_path / name), "--device", device, *args])
        assert r.exit_code == 0, r.output
    g, c = iio.imread(tmp_path / "g.png").astype(int), iio.imread(tmp_path / "c.png").astype(int)
    assert np.abs(g - c).max() <= 1  # 8-bit rounding of results equal to ~1e-7
