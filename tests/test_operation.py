"""Tests of the generic engines of nlm.ops.operation (dense, windowed, and their backward passes)."""

import itertools

import numpy as np
import pytest
from naive import numeric_grad

from nlm.ops.kernels import (
    Concatenation,
    DotProduct,
    EmbeddedGaussian,
    EuclideanGaussian,
    Identity,
    Linear,
    PatchEuclideanGaussian,
    PlainGaussian,
)
from nlm.ops.operation import _windowed, _windowed_backward, affinity, attend, attend_backward, nonlocal_op


def kernels(channels=3, d=2, seed=0):
    """One instance of every pairwise function, with random embeddings."""
    rng = np.random.default_rng(seed)

    def lin():
        return Linear(rng.normal(size=(d, channels)), rng.normal(size=d))

    return {
        "euclidean": EuclideanGaussian(h=1.5, sigma=0.2),
        "gaussian": PlainGaussian(scale=0.5),
        "embedded": EmbeddedGaussian(lin(), lin(), scale=d**-0.5),
        "dot": DotProduct(lin(), lin()),
        "concat": Concatenation(lin(), lin(), weight=rng.normal(size=(1, 2 * d))),
    }


KERNELS = list(kernels())
TRAINABLE = ["gaussian", "embedded", "dot", "concat"]


def dense_reference(x, f, window=None):
    """Literal y_i = sum_j f_ij g_j / C_i with an explicit loop over i and a dense mask."""
    spatial = x.shape[:-1]
    q, k = f.features(x)
    q, k, v = q.reshape(-1, q.shape[-1]), k.reshape(-1, k.shape[-1]), x.reshape(-1, x.shape[-1])
    coords = np.array(list(itertools.product(*[range(n) for n in spatial])))
    out = np.empty_like(v)
    for i in range(q.shape[0]):
        s = f.scores(q[i : i + 1], k)[0]
        mask = np.ones(len(s), bool) if window is None else np.all(np.abs(coords - coords[i]) <= window, axis=1)
        if f.normalization == "softmax":
            w = np.exp(s[mask])
            out[i] = w @ v[mask] / w.sum()
        else:
            out[i] = s[mask] @ v[mask] / mask.sum()
    return out.reshape(spatial + (v.shape[-1],))


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("shape", [(11, 3), (5, 6, 3), (3, 4, 5, 3)])
def test_dense_and_windowed_match_literal_definition(name, shape):
    f = kernels()[name]
    x = np.random.default_rng(1).normal(size=shape)
    np.testing.assert_allclose(nonlocal_op(x, f), dense_reference(x, f), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nonlocal_op(x, f, window=1), dense_reference(x, f, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", KERNELS)
def test_dense_equals_windowed_with_large_window(name):
    f = kernels()[name]
    x = np.random.default_rng(2).normal(size=(6, 7, 3))
    dense = nonlocal_op(x, f, chunk_size=5)
    np.testing.assert_allclose(nonlocal_op(x, f, window=6, engine="numpy"), dense, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(nonlocal_op(x, f, window=(50, 50), engine="numpy"), dense, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", KERNELS)
def test_result_does_not_depend_on_chunk_size(name):
    f = kernels()[name]
    x = np.random.default_rng(3).normal(size=(5, 7, 3))
    ref = nonlocal_op(x, f, chunk_size=10_000)
    for chunk in (1, 2, 6, 34, 35):
        np.testing.assert_allclose(nonlocal_op(x, f, chunk_size=chunk), ref, rtol=1e-12, atol=1e-14)


def test_count_normalisation():
    """C = N' (dense) and C_i = number of j inside the clipped window (windowed)."""
    f = DotProduct()  # identity embeddings: f = x_i . x_j
    x = np.random.default_rng(4).normal(size=(4, 5, 2))
    flat = x.reshape(-1, 2)
    S = flat @ flat.T
    np.testing.assert_allclose(nonlocal_op(x, f).reshape(-1, 2), S @ flat / 20, rtol=1e-12)
    # corner pixel (0, 0) with window 1 sees the 2 x 2 corner block: C = 4, not 9
    y = nonlocal_op(x, f, window=1)
    block = x[:2, :2].reshape(-1, 2)
    np.testing.assert_allclose(y[0, 0], (block @ x[0, 0]) @ block / 4, rtol=1e-12)
    # ones as values: a softmax average of ones is exactly one (rows sum to one)
    P = affinity(flat, flat, PlainGaussian())
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(affinity(flat, flat, f), S / 20, rtol=1e-13)


def test_softmax_engines_are_overflow_free():
    x = np.random.default_rng(5).normal(size=(6, 6, 2)) * 100.0  # scores ~1e4
    for window in (None, 2):
        y = nonlocal_op(x, PlainGaussian(), window=window)
        assert np.all(np.isfinite(y))
    y32 = nonlocal_op(x.astype(np.float32), PlainGaussian(), window=2)
    assert y32.dtype == np.float32 and np.all(np.isfinite(y32))


def test_concatenation_is_separable():
    """relu(w_f^T [theta_i, phi_j]) computed as relu(a_i + b_j) equals the literal concatenation."""
    f = kernels()["concat"]
    rng = np.random.default_rng(6)
    q, k = rng.normal(size=(4, 2)), rng.normal(size=(5, 2))
    literal = np.array([[max(f.weight @ np.concatenate([qi, kj]), 0.0) for kj in k] for qi in q])
    np.testing.assert_allclose(f.scores(q, k), literal, rtol=1e-13)
    np.testing.assert_allclose(f.pair_scores(q, k[:4]), np.diag(literal), rtol=1e-13)


def test_patch_gaussian_fast_path_equals_numpy_engine():
    x = np.random.default_rng(7).random((13, 11, 2))
    f = PatchEuclideanGaussian(0.3, 0.05, 3, spatial_ndim=2)
    fast = nonlocal_op(x, f, Identity(), window=2)
    numpy_engine = nonlocal_op(x, f, Identity(), window=2, engine="numpy")
    np.testing.assert_allclose(fast, numpy_engine, atol=1e-10)


# ---------------------------------------------------------------- backward



def _features(name, shape, seed):
    f = kernels(seed=seed)[name]
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    q, k = f.features(x)
    return f, np.array(q), np.array(k), rng.normal(size=shape[:-1] + (2,)), rng.normal(size=shape[:-1] + (2,))


@pytest.mark.parametrize("chunk", [1, 3, 100])
@pytest.mark.parametrize("name", TRAINABLE)
def test_attend_backward_matches_finite_differences(name, chunk):
    f, q, k, v, R = _features(name, (7, 3), seed=8)
    k, v = k[:5], v[:5]  # m != n, as with subsampling

    def loss():
        return float((attend(q, k, v, f, chunk_size=chunk) * R).sum())

    dq, dk, dv, dparams = attend_backward(q, k, v, f, R, chunk_size=chunk)
    np.testing.assert_allclose(dq, numeric_grad(loss, q), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dk, numeric_grad(loss, k), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dv, numeric_grad(loss, v), rtol=1e-6, atol=1e-8)
    if name == "concat":
        np.testing.assert_allclose(dparams["weight"], numeric_grad(loss, f.weight).reshape(1, -1), rtol=1e-6, atol=1e-8)
    else:
        assert dparams == {}


@pytest.mark.parametrize("name", TRAINABLE)
def test_attend_backward_reuses_forward_output(name):
    f, q, k, v, R = _features(name, (9, 3), seed=11)
    y = attend(q, k, v, f)
    with_y = attend_backward(q, k, v, f, R, chunk_size=4, y=y)
    without = attend_backward(q, k, v, f, R, chunk_size=4)
    for a, b in zip(with_y[:3], without[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="inconsistent"):
        attend_backward(q, k, v, f, R, y=y[:3])


@pytest.mark.parametrize("window", [(1, 1), (0, 2), (3, 3)])
@pytest.mark.parametrize("name", TRAINABLE)
def test_windowed_backward_matches_finite_differences(name, window):
    f, q, k, v, R = _features(name, (4, 5, 3), seed=9)

    def loss():
        return float((_windowed(q, k, v, f, window) * R).sum())

    dq, dk, dv, dparams = _windowed_backward(q, k, v, f, R, window)
    np.testing.assert_allclose(dq, numeric_grad(loss, q), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dk, numeric_grad(loss, k), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dv, numeric_grad(loss, v), rtol=1e-6, atol=1e-8)
    if name == "concat":
        np.testing.assert_allclose(dparams["weight"], numeric_grad(loss, f.weight).reshape(1, -1), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", TRAINABLE)
def test_dense_and_windowed_backward_agree_with_large_window(name):
    f, q, k, v, R = _features(name, (4, 5, 3), seed=10)
    flat = [a.reshape(-1, a.shape[-1]) for a in (q, k, v, R)]
    dense = attend_backward(*flat[:3], f, flat[3], chunk_size=3)
    windowed = _windowed_backward(q, k, v, f, R, (4, 5))
    for a, b in zip(dense[:3], windowed[:3]):
        np.testing.assert_allclose(a, b.reshape(a.shape), rtol=1e-10, atol=1e-12)


def test_euclidean_gaussian_has_no_gradients():
    q = np.zeros((2, 2))
    with pytest.raises(NotImplementedError, match="EuclideanGaussian"):
        attend_backward(q, q, q, EuclideanGaussian(1.0), q)


# ---------------------------------------------------------- argument errors


def test_nonlocal_op_argument_errors():
    x = np.zeros((4, 4, 1))
    f = PlainGaussian()
    with pytest.raises(TypeError, match="f must be"):
        nonlocal_op(x, "gaussian")
    with pytest.raises(TypeError, match="g must be"):
        nonlocal_op(x, f, g=np.eye(1))
    with pytest.raises(ValueError, match="x must be"):
        nonlocal_op(np.zeros(4), f)
    with pytest.raises(ValueError, match="engine"):
        nonlocal_op(x, f, engine="torch")
    with pytest.raises(ValueError, match="chunk_size"):
        nonlocal_op(x, f, chunk_size=0)
    with pytest.raises(ValueError, match="window"):
        nonlocal_op(x, f, window=-1)
    with pytest.raises(ValueError, match="window"):
        nonlocal_op(x, f, window=(1, 1, 1))
    with pytest.raises(ValueError, match="window"):
        nonlocal_op(x, f, window=1.5)


def test_backward_and_affinity_argument_errors():
    q = np.zeros((3, 2))
    with pytest.raises(ValueError, match="chunk_size"):
        attend_backward(q, q, q, PlainGaussian(), q, chunk_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        attend_backward(q, q, q, PlainGaussian(), q, chunk_size=2.5)
    with pytest.raises(ValueError, match="inconsistent shapes"):
        attend_backward(q, q, q, PlainGaussian(), np.zeros((3, 3)))
    with pytest.raises(TypeError, match="f must be"):
        affinity(q, q, None)
    with pytest.raises(ValueError, match="2-D"):
        affinity(np.zeros(3), q, PlainGaussian())


def test_kernel_constructor_errors():
    with pytest.raises(ValueError, match="scale"):
        PlainGaussian(scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        EmbeddedGaussian(scale=np.inf)
    with pytest.raises(TypeError, match="scale"):
        DotProduct(scale=True)
    with pytest.raises(TypeError, match="theta"):
        EmbeddedGaussian(theta=np.eye(2))
    with pytest.raises(TypeError, match="phi"):
        DotProduct(phi="x")
    with pytest.raises(TypeError, match="weight"):
        Concatenation()
    with pytest.raises(ValueError, match="weight"):
        Concatenation(weight=np.ones((2, 2)))
    f = Concatenation(weight=np.ones(3))
    with pytest.raises(ValueError, match="weight has 3 entries"):
        f.scores(np.zeros((2, 2)), np.zeros((2, 2)))
