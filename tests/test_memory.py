"""Peak memory of the in-memory path (library and command line), measured (VmHWM) in a fresh subprocess."""

import json
import subprocess
import sys

import numpy as np
import pytest

PROBE = """
import json, sys
import numpy as np
from nlm import denoise_nl_means, estimate_sigma

def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024

# compile / load the kernels the measured call uses (they specialise on the patch radius)
denoise_nl_means(np.random.default_rng(0).random((64, 64), dtype=np.float32), patch_size=5, patch_distance=5,
                 h=0.1, sigma=0.1)
img = np.random.default_rng(1).random((4000, 4000), dtype=np.float32)
img += 0  # touch every page
base = hwm()
if sys.argv[1] == 'sigma':
    estimate_sigma(img)
else:
    denoise_nl_means(img, patch_size=5, patch_distance=5, h=0.1, sigma=0.1)
print(json.dumps((hwm() - base) / img.nbytes))
"""


def _extra(what):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, what], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_estimate_sigma_makes_no_float64_copy():
    # a float64 copy alone would be 2x the float32 image; here: the |d| buffer
    # (0.5x), the finiteness mask (0.25x) and a few MB of slabs
    assert _extra("sigma") < 1.25


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_filter_peak_memory():
    # padded copy (1x) + numerators and denominators (2x) + band overflow rows
    assert _extra("filter") < 3.5


@pytest.mark.parametrize("shape", [(1,), (2,), (7,), (1, 5), (5, 1), (37, 53), (4, 5, 6), (17, 3, 9)])
def test_slabs_do_not_change_the_estimate(shape):
    import numpy as np

    from nlm.noise.estimate import _detail_abs, _dwt_detail

    a = np.random.default_rng(len(shape)).normal(size=shape).astype(np.float32)
    whole = np.asarray(a, dtype=np.float64)
    for axis in range(whole.ndim):
        whole = _dwt_detail(whole, axis)
    whole = np.abs(whole[whole != 0])
    for block_bytes in (1, 64, 1 << 22):
        got = _detail_abs(a, block_bytes=block_bytes)
        assert np.array_equal(got, whole)


def _block_stats_inputs():
    rng = np.random.default_rng(5)
    cases = []
    for shape, B in [((200,), 32), ((37, 53), 8), ((18, 11), 8), ((21, 14, 17), 4), ((10, 6, 9), 4), ((13, 9), 2),
                     ((7, 6, 8), 2)]:
        clean = rng.random(shape).cumsum(axis=-1)
        clean /= clean.max()
        noisy = clean + 0.1 * rng.normal(size=shape)
        cases.append((noisy.astype(np.float32), B))  # float32, no clipping
        cases.append((np.clip(noisy, 0, 1), B))  # clipped at both ends (plateau / clipped-noise tests)
        flat = np.clip(noisy, 0, 1)
        flat[: shape[0] // 2] = 0.0  # a plateau at the minimum
        cases.append((flat, B))
        cases.append((1.0 - flat, B))  # ... at the maximum
        cases.append((np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8), B))
    return cases


@pytest.mark.parametrize("case", range(35))
def test_block_stats_slabs_equal_the_whole_image(case):
    # the estimator reads the image in slabs of block rows; every statistic and the clipped levels are those of
    # the whole float64 image (tests/naive.block_stats), bit for bit, whatever the slab size
    from nlm.noise.estimate import _block_stats
    from tests.naive import block_stats

    y, B = _block_stats_inputs()[case]
    nd = y.ndim
    want_clipped = set()
    want = block_stats(np.asarray(y, dtype=np.float64), nd, B, want_clipped)
    for slab_values in (1, 3 * B ** nd, 1 << 17):
        got_clipped = set()
        got = _block_stats(y, nd, B, got_clipped, slab_values=slab_values)
        assert got_clipped == want_clipped
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(g, w, equal_nan=True)


@pytest.mark.parametrize("shape", [(64, 48, 40), (300, 200)])
def test_estimate_noise_is_unchanged_by_slabs(shape, monkeypatch):
    # the whole estimate (model and details) with one block row per slab equals the default slabs
    import nlm.noise.estimate as E
    from nlm.noise import estimate_noise

    rng = np.random.default_rng(len(shape))
    clean = np.clip(np.linspace(0, 1, shape[-1]) + 0 * rng.random(shape), 0, 1)
    y = np.clip(clean + 0.05 * rng.normal(size=shape), 0, 1).astype(np.float32)
    want = estimate_noise(y, return_details=True)
    block_stats = E._block_stats
    monkeypatch.setattr(E, "_block_stats", lambda *a, **k: block_stats(*a, **k, slab_values=1))
    got = estimate_noise(y, return_details=True)
    assert repr(got[0]) == repr(want[0])
    assert got[1]["clipped"] == want[1]["clipped"] and got[1]["blocks"] == want[1]["blocks"]
    assert np.array_equal(got[1]["x"], want[1]["x"]) and np.array_equal(got[1]["var"], want[1]["var"])


NOISE_PROBE = """
import json, sys
import numpy as np
from nlm import estimate_noise

def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024

shape = (96, 256, 256) if sys.argv[1] == '3d' else (3000, 3000)
rng = np.random.default_rng(1)
img = np.linspace(0, 1, shape[-1], dtype=np.float32) + rng.normal(0, 0.05, shape).astype(np.float32)
estimate_noise(img[:32, :32])
base = hwm()
estimate_noise(img)
print(json.dumps((hwm() - base) / img.nbytes))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("nd", ["2d", "3d"])
def test_estimate_noise_makes_no_float64_copy(nd):
    # the block statistics read float64 slabs: the finiteness mask (0.25x), the per-block statistics (10 float64
    # values per 64 pixels, 0.3x) and a few MB of slabs; whole-image float64 temporaries made it 12x
    proc = subprocess.run([sys.executable, "-c", NOISE_PROBE, nd], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) < 1.5


def test_bayes_chunks_and_shared_buffers_do_not_change_values():
    # NL-Bayes' elementwise steps by chunks (the colour transform, the clipped / Rician inverse, the unscaling,
    # the mean noise variance) give the values of one whole-array pass; one channel works on its input itself
    from nlm.denoisers.bayes_passes import _finish, _mix
    from nlm.denoisers.bayes_setup import _colour_transform, _level_table, _uniform_interp, _variance_in_place
    from nlm.noise import Gamma, Gaussian, PoissonGaussian, Rician

    rng = np.random.default_rng(3)
    for C in (1, 3):
        tmat = _colour_transform(C)
        for dtype in (np.float32, np.float64):
            final = rng.random((C, 5, 7, 9)).astype(dtype)
            for model, e in ((Gaussian(0.1), 0), (Gaussian(0.1, clip=True), 0), (Rician(0.1), 3), (Gaussian(0.1), -2)):
                nlf, unbias = _level_table(model, 0.0, 1.0)
                prm = dict(tmat=tmat, exponent=e, model=model)
                whole = _mix(tmat.T, final)  # one pass over the image, float64
                if unbias is not None:
                    whole = _uniform_interp(whole, unbias)
                whole = (np.ldexp(whole, -e) if e else whole).astype(dtype)
                for chunk in (1, 7, 1 << 16):
                    got = _finish(final, prm, unbias, dtype, chunk=chunk)
                    assert got.dtype == dtype and np.array_equal(got, whole)
            work = _mix(tmat, final, dtype)
            assert work.dtype == dtype
            if C == 1:
                assert work is final  # no copy
                assert _finish(final, dict(tmat=tmat, exponent=0, model=None), None, dtype) is final
            else:
                want = _mix(tmat, final).astype(dtype)  # float64, then rounded once
                assert np.array_equal(work, want)
    smooth = rng.random((2, 9, 11, 13)) * 2 - 0.2
    for model in (Gaussian(0.1), PoissonGaussian(0.01, 0.02), Gamma(4), Rician(0.2)):
        want = model.variance(smooth)
        for chunk in (1, 100, 1 << 16):
            got = _variance_in_place(model, smooth.copy(), chunk=chunk)
            assert np.array_equal(got, want) and float(np.mean(got)) == float(np.mean(want))


# --------------------------------------------------------------------------- #
# the command line's in-memory path: scratch buffer, freed pixels
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("shape,channels", [((37, 53), 1), ((29, 31), 3), ((61,), 1), ((1, 40), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scratch_accumulators_give_the_same_result(shape, channels, dtype):
    from nlm import denoise_nl_means
    from nlm.ops.scratch import scratch

    rng = np.random.default_rng(channels + len(shape))
    n = int(np.prod(shape))
    image = rng.random(shape + ((channels,) if channels > 1 else ()), dtype=np.float64).astype(dtype)
    axis = -1 if channels > 1 else None
    kw = dict(patch_size=5, patch_distance=4, h=0.3, sigma=0.05, channel_axis=axis)
    ref = denoise_nl_means(image, **kw)
    buffer = np.full(n * (channels + 1), np.nan, dtype)
    work = buffer[: image.size].reshape(image.shape)
    work[...] = image
    with scratch(buffer):
        got = denoise_nl_means(work, **kw)
    assert np.shares_memory(got, buffer)  # the accumulators were the lent buffer
    assert got.dtype == ref.dtype and np.array_equal(got, ref)  # bit for bit


def test_scratch_is_used_once_and_only_for_its_input():
    from nlm import denoise_nl_means
    from nlm.ops.scratch import scratch

    rng = np.random.default_rng(3)
    image = rng.random((40, 30), dtype=np.float32)
    kw = dict(patch_size=3, patch_distance=3, h=0.2)
    ref = denoise_nl_means(image, **kw)

    def lent(size, dtype=np.float32):
        buffer = np.zeros(size, dtype)
        buffer[: image.size] = image.ravel()
        return buffer, buffer[: image.size].reshape(image.shape)

    buffer, work = lent(2 * image.size)
    with scratch(buffer):
        first = denoise_nl_means(work, **kw)
        second = denoise_nl_means(first.copy(), **kw)  # the loan is spent: its own accumulators
        assert np.shares_memory(first, buffer) and not np.shares_memory(second, buffer)
        assert np.array_equal(first, ref)
    for buffer, work in (lent(2 * image.size - 1), lent(2 * image.size, np.float16)):
        with scratch(buffer):  # too small; float16 (computed in float32: the input is converted)
            got = denoise_nl_means(work, **kw)
        assert not np.shares_memory(got, buffer) and not np.shares_memory(work, got)
        assert np.array_equal(got, ref if work.dtype == np.float32 else denoise_nl_means(work.copy(), **kw))
    buffer = np.zeros(3 * image.size, np.float32)
    with scratch(buffer):  # input elsewhere: the buffer may hold something the caller needs
        assert not np.shares_memory(denoise_nl_means(image, **kw), buffer)
    assert not np.shares_memory(denoise_nl_means(work, **kw), buffer)  # outside the context


@pytest.mark.parametrize(
    "shape,dtype", [((90, 70), np.uint8), ((64, 50, 3), np.uint8), ((60, 44, 4), np.uint16), ((50, 66), np.float32)]
)
def test_cli_output_equals_library_with_automatic_parameters(tmp_path, shape, dtype):
    """`nlm denoise IN OUT` (default patch, distance, sigma and h) is the library's result,
    bit for bit, and leaves alpha as it was."""
    import tifffile
    from click.testing import CliRunner

    import cli
    import nlm
    from nlm.io import from_float, to_float

    rng = np.random.default_rng(len(shape))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    clean = ((np.sin(xx / 6.0) * np.cos(yy / 9.0)) > 0) * 0.5 + 0.25
    if len(shape) == 3:
        clean = np.stack([np.roll(clean, k, axis=1) for k in range(shape[2])], -1)
    noisy = clean + rng.normal(0, 0.08, clean.shape)
    if np.dtype(dtype).kind == "u":
        top = np.iinfo(dtype).max
        data = np.clip(np.rint(noisy * top), 0, top).astype(dtype)
    else:
        data = (noisy * 3000 - 500).astype(dtype)
    src, dst = tmp_path / "in.tif", tmp_path / "out.tif"
    photometric = "rgb" if len(shape) == 3 else "minisblack"
    extra = dict(extrasamples=["unassalpha"]) if len(shape) == 3 and shape[2] == 4 else {}
    tifffile.imwrite(src, data, photometric=photometric, **extra)
    result = CliRunner().invoke(cli.main, ["denoise", str(src), str(dst), "-q"])
    assert result.exit_code == 0, result.output
    colour = data[..., :3] if extra else data
    axis = -1 if len(shape) == 3 else None
    work = to_float(colour)
    sigma = float(nlm.estimate_sigma(work, channel_axis=axis, average_sigmas=True))
    h = float(nlm.default_h(sigma))
    ref = from_float(nlm.denoise_nl_means(work, h=h, sigma=sigma, channel_axis=axis, preserve_range=True), dtype)
    out = tifffile.imread(dst)
    assert out.dtype == dtype and out.shape == data.shape
    assert np.array_equal(out[..., :3] if extra else out, ref)
    if extra:
        assert np.array_equal(out[..., 3], data[..., 3])
    assert np.array_equal(tifffile.imread(src), data)  # the input file is untouched


CLI_PROBE = """
import json, sys
import numpy as np
import tifffile
from nlm.cli.image_job import denoise_file
from nlm.cli.params import FilterParams

def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024

src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
tifffile.imwrite(src + '.small.tif', np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
denoise_file(src + '.small.tif', dst + '.small.tif', PARAMS, volume=False, overwrite=True)  # load kernels
y, x = np.mgrid[0:n, 0:n]
clean = ((np.sin(x / 40.0) * np.cos(y / 60.0)) > 0) * 120.0 + 60
noisy = clean + np.random.default_rng(1).normal(0, 20, clean.shape)
tifffile.imwrite(src, np.clip(noisy, 0, 255).astype(np.uint8))
del y, x, clean, noisy
with open('/proc/self/clear_refs', 'w') as fh:  # reset VmHWM to the current RSS
    fh.write('5')
base = hwm()
denoise_file(src, dst, PARAMS, volume=False, overwrite=True)
print(json.dumps((hwm() - base) / (4 * n * n)))
""".replace(
    "PARAMS",
    "FilterParams(method='means', noise='gaussian', patch_size=7, patch_distance=11)",
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_cli_in_memory_peak(tmp_path):
    # a 2048^2 uint8 grey image with automatic parameters: the float image and
    # the accumulator plane lent to the filter (2x), the padded copy (1x), the
    # band overflow rows (0.17x); the decoded pixels are freed.  It was 4.4x:
    # the uint8 pixels (0.25x), the float image and the filter's own
    # accumulators next to it (3x), and more.
    proc = subprocess.run(
        [sys.executable, "-c", CLI_PROBE, str(tmp_path / "in.tif"), str(tmp_path / "out.tif"), "2048"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) < 3.6
