"""Tests of private kernel building blocks against NumPy."""

import naive
import numpy as np
import pytest
from numba import njit

from nlm.ops import _nlm_kernels
from nlm.ops._nlm_kernels import _exp2_neg, _fma, _half_offsets


@njit(cache=False)
def _apply(t, out):
    for i in range(t.size):
        out[i] = _exp2_neg(t[i])


@njit(cache=False)
def _apply_fma(a, b, c, out):
    for i in range(a.size):
        out[i] = _fma(a[i], b[i], c[i])


def test_float32_exp2_is_accurate():
    """The vectorisable float32 2^-t: relative error < 1e-7 (1.7 ulp) over
    [0, 125], and 0 < 2^-t <= 2^-125 beyond (clamped at 125, still normal)."""
    t = np.concatenate([np.linspace(0, 125, 400_001), np.random.default_rng(0).uniform(0, 125, 100_000)])
    t = t.astype(np.float32)
    out = np.empty_like(t)
    _apply(t, out)
    assert out.dtype == np.float32
    ref = np.exp2(-t.astype(np.float64))
    assert np.max(np.abs(out - ref) / ref) < 1e-7
    assert _exp2_neg(np.float32(0.0)) == 1.0
    big = np.array([125.0, 126.0, 1e30, np.inf], np.float32)
    out = np.empty_like(big)
    _apply(big, out)
    assert np.all((out >= np.finfo(np.float32).tiny) & (out < 2.5e-38))


def test_float64_exp2_is_accurate():
    t = np.concatenate([np.linspace(0, 1000, 200_001), np.random.default_rng(1).uniform(0, 2, 100_000)])
    out = np.empty_like(t)
    _apply(t, out)
    np.testing.assert_allclose(out, np.exp2(-t), rtol=5e-16, atol=0)
    big = np.array([1000.0, 2000.0, np.inf])
    out = np.empty_like(big)
    _apply(big, out)
    assert np.all((out >= np.finfo(np.float64).tiny) & (out < 1e-300))


def test_fma_rounds_once():
    """(1 + e)(1 - e) - 1 = -e^2 exactly; the unfused product rounds to 1 and gives 0."""
    for dt, e in ((np.float32, 2.0**-13), (np.float64, 2.0**-30)):
        a, b, c = (np.full(5, v, dt) for v in (1 + e, 1 - e, -1.0))
        out = np.empty_like(a)
        _apply_fma(a, b, c, out)
        assert out.dtype == dt
        assert a[0] * b[0] + c[0] == 0
        np.testing.assert_array_equal(out, -dt(e * e))
        rng = np.random.default_rng(2)
        a, b, c = (rng.standard_normal(1000).astype(dt) for _ in range(3))
        _apply_fma(a, b, c, out := np.empty_like(a))
        np.testing.assert_allclose(out, a.astype(np.float64) * b + c, rtol=0, atol=4 * np.finfo(dt).eps)


def test_half_offsets_cover_window_once():
    for window in [(0, 2, 3), (1, 1, 1), (0, 0, 4), (0, 0, 0)]:
        half = _half_offsets(window)
        full = {tuple(t) for t in half} | {tuple(-t) for t in half} | {(0, 0, 0)}
        size = np.prod([2 * w + 1 for w in window])
        assert len(half) == (size - 1) // 2
        assert len(full) == size


@pytest.mark.parametrize("band,strip", [(1, 4), (3, 5), (4, 64), (128, 7)])
@pytest.mark.parametrize("patch_size,channels,dtype", [(7, 1, np.float32), (3, 2, np.float64), (5, 1, np.float64)])
def test_row_kernel_bands_and_strips(monkeypatch, band, strip, patch_size, channels, dtype):
    """Bands (threads, ring overflow) and column strips (halo accumulation)
    only appear on large images by default; force them on a small one."""
    monkeypatch.setattr(_nlm_kernels, "_row_tiles", lambda *args: (band, strip))
    x = np.random.default_rng(band * strip + patch_size).random((17, 23, channels)).astype(dtype)
    out = _nlm_kernels.nl_means_windowed(x, patch_size, (3, 4), 0.2, 0.03, 2)
    ref = naive.nl_means(x, patch_size, (3, 4), 0.2, 0.03)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5 if dtype == np.float32 else 1e-10)


def test_pad_rows_is_numpy_reflect_then_zeros():
    rng = np.random.default_rng(3)
    for shape, ry, rx, ex in [((1, 5, 7), 2, 3, 4), ((2, 1, 6), 3, 2, 0), ((1, 3, 1), 4, 5, 1), ((3, 2, 2), 0, 6, 2)]:
        img = rng.random(shape).astype(np.float32)
        out = _nlm_kernels._pad_rows(img, ry, rx, ex)
        ref = np.pad(img, [(0, 0), (ry, ry), (rx, rx)], mode="reflect")
        ref = np.pad(ref, [(0, 0), (0, 0), (ex, ex)])
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape,patch,window",
    [((5, 9, 11, 1), (3, 3, 5), (2, 2, 3)), ((4, 7, 6, 2), (1, 3, 3), (3, 1, 2)), ((1, 8, 9, 1), (1, 3, 3), (0, 2, 2))],
)
def test_frame_pairs_equal_volume_kernel(shape, patch, window, dtype):
    """The frame-pair path (used for 4-D and video) on a 3-D volume gives the band kernel's result."""
    x = np.random.default_rng(7).random(shape).astype(dtype)
    bands = _nlm_kernels.nl_means_windowed(x, patch, window, 0.3, 0.05, 3)
    img = np.ascontiguousarray(np.moveaxis(x, -1, 0))
    frames = np.moveaxis(_nlm_kernels._nl_means_frames(img, patch, window, 0.3, 0.05, dtype), 0, -1)
    assert frames.dtype == dtype
    np.testing.assert_allclose(frames, bands, rtol=0, atol=2e-6 if dtype == np.float32 else 1e-12)
