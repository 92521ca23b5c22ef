"""Tests of private kernel building blocks against NumPy."""

import numpy as np
from numba import njit

from nlm._nlm_kernels import _exp_neg, _half_offsets


@njit(cache=False)
def _apply(a, out):
    for i in range(a.size):
        out[i] = _exp_neg(a[i])


def test_float32_exp_is_accurate():
    """The vectorisable float32 exp(-a): relative error < 2e-7 (about 2 ulp)
    over [0, 87], and 0 < exp(-a) <= 1 beyond (clamped at 87)."""
    a = np.concatenate([np.linspace(0, 87, 400_001), np.random.default_rng(0).uniform(0, 87, 100_000)])
    a = a.astype(np.float32)
    out = np.empty_like(a)
    _apply(a, out)
    assert out.dtype == np.float32
    ref = np.exp(-a.astype(np.float64))
    assert np.max(np.abs(out - ref) / ref) < 2e-7
    big = np.array([87.0, 100.0, 1e30], np.float32)
    out = np.empty_like(big)
    _apply(big, out)
    assert np.all((out > 0) & (out < 2e-38))


def test_float64_exp_is_libm():
    a = np.linspace(0, 700, 1001)
    out = np.empty_like(a)
    _apply(a, out)
    np.testing.assert_allclose(out, np.exp(-a), rtol=1e-15, atol=0)


def test_half_offsets_cover_window_once():
    for window in [(0, 2, 3), (1, 1, 1), (0, 0, 4), (0, 0, 0)]:
        half = _half_offsets(window)
        full = {tuple(t) for t in half} | {tuple(-t) for t in half} | {(0, 0, 0)}
        size = np.prod([2 * w + 1 for w in window])
        assert len(half) == (size - 1) // 2
        assert len(full) == size
