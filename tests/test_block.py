"""Tests of nlm.nn.block.NonLocalBlock against the literal oracle tests/naive_block.py."""

import os
import sys
import tracemalloc

import numpy as np
import pytest

from nlm.nn.block import NonLocalBlock, _max_pool, _max_unpool, convert_pytorch_port_state

sys.path.insert(0, os.path.dirname(__file__))
from naive import numeric_grad  # noqa: E402
from naive_block import naive_affinity, naive_block, naive_pool  # noqa: E402

MODES = ["gaussian", "embedded", "dot", "concat"]
POOLING = ["none", "before", "after"]
SHAPES = {1: (2, 9, 4), 2: (2, 5, 7, 4), 3: (2, 3, 5, 4, 4)}  # odd sizes on purpose
POOL = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}


def random_params(block, rng, scale=0.5):
    """Random values for every weight, including the batch-norm statistics."""
    state = {}
    for name, value in block.state_dict().items():
        if name == "bn.running_var":
            state[name] = rng.uniform(0.5, 2.0, size=value.shape)
        else:
            state[name] = rng.normal(scale=scale, size=value.shape)
    block.load_state_dict(state)
    return state


def make(mode, ndim, pooling="none", seed=0, **kw):
    block = NonLocalBlock(
        SHAPES[ndim][-1], ndim, mode=mode, sub_sample=pooling != "none",
        pool_order="before" if pooling == "none" else pooling, **kw,
    )
    rng = np.random.default_rng(seed)
    params = random_params(block, rng)
    x = rng.normal(size=SHAPES[ndim])
    return block, params, x


def oracle(block, params, x):
    return naive_block(
        x, params, mode=block.mode, sub_sample=block.sub_sample, pool_size=block.pool_size,
        pool_order=block.pool_order, bn=block.bn, bn_eps=block.bn_eps, scale=block.scale, window=block.window,
    )


# ----------------------------------------------------------------- forward


@pytest.mark.parametrize("chunk_size", [1, 5, None])
@pytest.mark.parametrize("pooling", POOLING)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_matches_naive(mode, ndim, pooling, chunk_size):
    block, params, x = make(mode, ndim, pooling, chunk_size=chunk_size)
    z = block(x)
    assert z.shape == x.shape and z.dtype == np.float64
    np.testing.assert_allclose(z, oracle(block, params, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["gaussian", "embedded", "dot"])
@pytest.mark.parametrize("pooling", POOLING)
def test_scale_matches_naive(mode, pooling):
    block, params, x = make(mode, 2, pooling, scale=True)
    d = block.in_channels if mode == "gaussian" else block.inter_channels
    assert block.scale == pytest.approx(d**-0.5)
    np.testing.assert_allclose(block(x), oracle(block, params, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("bn", [True, False])
def test_without_bn_and_inter_channels(bn):
    block = NonLocalBlock(4, 2, inter_channels=3, bn=bn)
    params = random_params(block, np.random.default_rng(3))
    x = np.random.default_rng(4).normal(size=(1, 4, 6, 4))
    np.testing.assert_allclose(block(x), oracle(block, params, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("window", [0, 1, (1, 2)])
@pytest.mark.parametrize("mode", MODES)
def test_window_matches_naive(mode, window):
    block, params, x = make(mode, 2, window=window)
    np.testing.assert_allclose(block(x), oracle(block, params, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ndim", [1, 3])
def test_window_other_dimensions(ndim):
    block, params, x = make("embedded", ndim, window=1)
    np.testing.assert_allclose(block(x), oracle(block, params, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_window_covering_everything_is_dense(mode):
    dense, params, x = make(mode, 2)
    windowed = NonLocalBlock(4, 2, mode=mode, window=10)
    windowed.load_state_dict(params)
    np.testing.assert_allclose(windowed(x), dense(x), rtol=1e-10, atol=1e-12)


def test_custom_pool_size():
    block, params, x = make("embedded", 2, "after", pool_size=(1, 3))
    assert block.pool_size == (1, 3)
    np.testing.assert_allclose(block(x), oracle(block, params, x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_max_pool_and_unpool(ndim):
    rng = np.random.default_rng(ndim)
    x = rng.normal(size=SHAPES[ndim])
    pooled, idx = _max_pool(x, POOL[ndim])
    for b in range(x.shape[0]):
        np.testing.assert_array_equal(pooled[b], naive_pool(x[b], POOL[ndim]))
    # unpool routes each value to its argmax: <unpool(d), x> == <d, pooled>
    d = rng.normal(size=pooled.shape)
    back = _max_unpool(d, idx, POOL[ndim], x.shape[1:-1])
    assert back.shape == x.shape
    assert np.count_nonzero(back) == d.size
    assert np.isclose((back * x).sum(), (d * pooled).sum())


@pytest.mark.parametrize("mode", MODES)
def test_channels_first(mode):
    block, params, x = make(mode, 3, "after")
    cf = NonLocalBlock(4, 3, mode=mode, sub_sample=True, pool_order="after", channels_first=True)
    cf.load_state_dict(params)
    xc = np.moveaxis(x, -1, 1)
    z = cf(xc)
    assert z.shape == xc.shape
    np.testing.assert_allclose(np.moveaxis(z, 1, -1), block(x), rtol=1e-12, atol=1e-14)
    dz = np.random.default_rng(0).normal(size=x.shape)
    dx_c, g_c = cf.backward(np.moveaxis(dz, -1, 1))
    dx, g = block.backward(dz)
    np.testing.assert_allclose(np.moveaxis(dx_c, 1, -1), dx, rtol=1e-12, atol=1e-14)
    for name in g:
        np.testing.assert_allclose(g_c[name], g[name], rtol=1e-12, atol=1e-14)


# ----------------------------------------------------- structural properties


@pytest.mark.parametrize("pooling", POOLING)
@pytest.mark.parametrize("bn", [True, False])
@pytest.mark.parametrize("mode", MODES)
def test_identity_at_initialisation(mode, bn, pooling):
    block = NonLocalBlock(4, 2, mode=mode, bn=bn, sub_sample=pooling != "none",
                          pool_order="before" if pooling == "none" else pooling, seed=7)
    x = np.random.default_rng(0).normal(size=(2, 5, 6, 4))
    np.testing.assert_array_equal(block(x), x)
    # ... yet it is not a constant function of its weights: W_z/gamma receive gradient
    _, grads = block.backward(np.ones_like(x))
    key = "bn.weight" if bn else "W_z.weight"
    assert np.abs(grads[key]).max() > 0


def test_zero_init_false_is_not_identity():
    block = NonLocalBlock(4, 2, zero_init=False, seed=1)
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 4))
    assert not np.allclose(block(x), x)
    assert np.all(block.state_dict()["bn.weight"] == 1.0)


def test_seeded_initialisation():
    a = NonLocalBlock(6, 2, mode="concat", seed=3).state_dict()
    b = NonLocalBlock(6, 2, mode="concat", seed=np.random.default_rng(3)).state_dict()
    c = NonLocalBlock(6, 2, mode="concat", seed=4).state_dict()
    assert a.keys() == b.keys() == c.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["theta.weight"], c["theta.weight"])
    # PyTorch's default bound 1/sqrt(fan_in) for 1x1 convolutions
    assert np.abs(a["theta.weight"]).max() <= 6**-0.5
    assert np.abs(a["w_f.weight"]).max() <= 6**-0.5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_permutation_equivariance(mode, ndim):
    block, _, x = make(mode, ndim, chunk_size=3)
    B, C = x.shape[0], x.shape[-1]
    flat = x.reshape(B, -1, C)
    perm = np.random.default_rng(5).permutation(flat.shape[1])
    z = block(x).reshape(B, -1, C)
    z_perm = block(flat[:, perm].reshape(x.shape)).reshape(B, -1, C)
    np.testing.assert_allclose(z_perm, z[:, perm], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pooling", POOLING)
@pytest.mark.parametrize("mode", MODES)
def test_affinity_rows(mode, pooling):
    block, params, x = make(mode, 2, pooling)
    P = block.affinity(x, sample=1)
    n = 5 * 7
    m = 2 * 3 if pooling != "none" else n  # odd sizes: the remainder row/column is dropped
    assert P.shape == (n, m)
    P_ref, _ = naive_affinity(
        x[1], params, mode=mode, sub_sample=block.sub_sample, pool_size=block.pool_size, pool_order=block.pool_order
    )
    np.testing.assert_allclose(P, P_ref, rtol=1e-10, atol=1e-14)
    if mode in ("gaussian", "embedded"):
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
        assert np.all(P > 0)
    if mode == "concat":
        assert np.all(P >= 0)
    np.testing.assert_allclose(block.affinity(x, sample=-1, rows=[0, 3]), P[[0, 3]], rtol=1e-12)


def test_softmax_is_overflow_free():
    block, _, x = make("gaussian", 2, chunk_size=4)
    z = block(x * 60.0)  # scores up to ~1e4: exp would overflow without max subtraction
    assert np.all(np.isfinite(z))
    assert np.allclose(block.affinity(x * 60.0).sum(axis=1), 1.0)


def test_float32_stays_float32():
    block, params, x = make("embedded", 2, "before")
    x32 = x.astype(np.float32)
    z = block(x32)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, block(x), rtol=1e-4, atol=1e-5)
    block(x32)
    dx, grads = block.backward(np.ones_like(x32))
    assert dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    # integer input is computed in float64
    assert block(np.ones((1, 3, 3, 4), dtype=np.int32)).dtype == np.float64


def test_memory_of_a_large_map_is_bounded():
    """128 x 128 x 64 map (N = N' = 16384): the dense affinity alone would be 1 GiB in float32."""
    block = NonLocalBlock(64, 2, zero_init=False, seed=0)
    x = np.random.default_rng(0).normal(size=(1, 128, 128, 64)).astype(np.float32)
    peaks = []
    tracemalloc.start()
    try:
        z = block.forward(x)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.reset_peak()
        dx, _ = block.backward(np.ones_like(x))
        peaks.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()
    assert z.shape == x.shape and np.all(np.isfinite(z)) and np.all(np.isfinite(dx))
    assert max(peaks) < 128 * 2**20, f"peaks {[p / 2**20 for p in peaks]} MiB"


# ---------------------------------------------------------------- backward



def check_gradients(block, params, x, seed=0):
    R = np.random.default_rng(seed).normal(size=x.shape)
    block(x)
    dx, grads = block.backward(R)
    trainable = {k for k in params if "running" not in k}
    assert set(grads) == trainable

    def loss_x():
        return float((block.forward(x, cache=False) * R).sum())

    np.testing.assert_allclose(dx, numeric_grad(loss_x, x), rtol=1e-5, atol=1e-7)
    for name in sorted(trainable):
        p = params[name]

        def loss_p(name=name, p=p):
            block.load_state_dict({name: p}, strict=False)
            return float((block.forward(x, cache=False) * R).sum())

        num = numeric_grad(loss_p, p)
        block.load_state_dict({name: p}, strict=False)
        np.testing.assert_allclose(grads[name], num, rtol=1e-5, atol=1e-7, err_msg=name)


def small(mode, ndim, pooling="none", seed=0, **kw):
    shape = {1: (2, 7, 3), 2: (2, 5, 5, 3), 3: (1, 3, 4, 5, 3)}[ndim]
    block = NonLocalBlock(shape[-1], ndim, mode=mode, inter_channels=2, sub_sample=pooling != "none",
                          pool_order="before" if pooling == "none" else pooling, **kw)
    rng = np.random.default_rng(seed)
    params = random_params(block, rng, scale=0.7)
    return block, params, rng.normal(size=shape)


@pytest.mark.parametrize("pooling", POOLING)
@pytest.mark.parametrize("mode", MODES)
def test_gradients_2d(mode, pooling):
    block, params, x = small(mode, 2, pooling, chunk_size=4)
    check_gradients(block, params, x)


@pytest.mark.parametrize("ndim", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_gradients_1d_3d(mode, ndim):
    block, params, x = small(mode, ndim, "after" if mode in ("dot", "gaussian") else "before", chunk_size=3)
    check_gradients(block, params, x)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_windowed_no_bn_scaled(mode):
    block, params, x = small(mode, 2, window=1, bn=False, scale=mode != "concat")
    check_gradients(block, params, x)


@pytest.mark.parametrize("mode", MODES)
def test_gradients_do_not_depend_on_chunk_size(mode):
    results = []
    for chunk in (1, 4, None):
        block, _, x = small(mode, 2, "after", chunk_size=chunk)
        block(x)
        results.append(block.backward(np.cos(x)))
    for dx, grads in results[1:]:
        np.testing.assert_allclose(dx, results[0][0], rtol=1e-12, atol=1e-14)
        for name in grads:
            np.testing.assert_allclose(grads[name], results[0][1][name], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------ weights, API


def test_state_dict_round_trip_and_pytorch_shapes():
    block = NonLocalBlock(6, 2, mode="concat", seed=0)
    state = block.state_dict()
    assert set(state) == {
        "theta.weight", "theta.bias", "phi.weight", "phi.bias", "g.weight", "g.bias", "W_z.weight", "W_z.bias",
        "w_f.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
    }
    assert state["theta.weight"].shape == (3, 6) and state["W_z.weight"].shape == (6, 3)
    state["theta.weight"][...] = 0  # a copy: the block is unchanged
    assert np.any(block.state_dict()["theta.weight"] != 0)
    torch_like = {k: (v[..., None, None] if v.ndim == 2 else v) for k, v in state.items()}
    other = NonLocalBlock(6, 2, mode="concat", seed=1)
    other.load_state_dict(torch_like)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[name])
    assert "theta.weight" not in NonLocalBlock(6, 2, mode="gaussian").state_dict()


@pytest.mark.parametrize("bn", [True, False])
def test_convert_pytorch_port_state(bn):
    """Names of the common PyTorch port (W.0/W.1, phi.0/g.0 with sub_sample, concat_project.0)."""
    block = NonLocalBlock(4, 2, mode="concat", sub_sample=True, pool_order="after", bn=bn, seed=2)
    ours = block.state_dict()
    port = {}
    for name, value in ours.items():
        layer, kind = name.split(".")
        layer = {"phi": "phi.0", "g": "g.0", "W_z": "W.0" if bn else "W", "bn": "W.1", "w_f": "concat_project.0"}.get(
            layer, layer
        )
        port[f"{layer}.{kind}"] = value[..., None, None] if value.ndim == 2 else value
    if bn:
        port["W.1.num_batches_tracked"] = np.array(0)
    renamed = convert_pytorch_port_state(port)
    assert set(renamed) == set(ours)
    other = NonLocalBlock(4, 2, mode="concat", sub_sample=True, pool_order="after", bn=bn, seed=3)
    other.load_state_dict(renamed)
    for name, value in other.state_dict().items():
        np.testing.assert_array_equal(value, ours[name])
    with pytest.raises(TypeError, match="mapping"):
        convert_pytorch_port_state([("W.weight", 0)])
    with pytest.raises(TypeError, match="strings"):
        convert_pytorch_port_state({1: 0})


def test_load_state_dict_errors():
    block = NonLocalBlock(4, 2)
    with pytest.raises(KeyError, match="unknown"):
        block.load_state_dict({"nope.weight": np.zeros(2)}, strict=False)
    with pytest.raises(KeyError, match="missing"):
        block.load_state_dict({"g.weight": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="g.weight must have shape"):
        block.load_state_dict({"g.weight": np.zeros((4, 2))}, strict=False)
    with pytest.raises(ValueError, match="non-finite"):
        block.load_state_dict({"g.bias": np.array([0.0, np.nan])}, strict=False)
    with pytest.raises(ValueError, match="running_var"):
        block.load_state_dict({"bn.running_var": -np.ones(4)}, strict=False)
    before = block.state_dict()
    with pytest.raises(ValueError):
        block.load_state_dict({"g.bias": np.ones(2), "g.weight": np.zeros(3)}, strict=False)
    np.testing.assert_array_equal(block.state_dict()["g.bias"], before["g.bias"])  # all or nothing


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(in_channels=0), "in_channels"),
        (dict(in_channels=2.5), "in_channels"),
        (dict(spatial_ndim=4), "spatial_ndim"),
        (dict(mode="softmax"), "mode"),
        (dict(inter_channels=0), "inter_channels"),
        (dict(pool_order="middle"), "pool_order"),
        (dict(pool_size=(2, 0)), "pool_size"),
        (dict(pool_size=(2, 2, 2)), "pool_size"),
        (dict(bn_eps=0.0), "bn_eps"),
        (dict(scale=-1.0), "scale"),
        (dict(mode="concat", scale=True), "scale"),
        (dict(window=-1), "window"),
        (dict(window=(1, 2, 3)), "window"),
        (dict(window=1, sub_sample=True), "window"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_constructor_errors(kwargs, match):
    kw = dict(in_channels=4, spatial_ndim=2)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        NonLocalBlock(kw.pop("in_channels"), kw.pop("spatial_ndim"), **kw)


def test_constructor_type_errors():
    with pytest.raises(TypeError, match="seed"):
        NonLocalBlock(4, seed="x")
    with pytest.raises(TypeError, match="scale"):
        NonLocalBlock(4, scale="big")
    with pytest.raises(TypeError, match="bn_eps"):
        NonLocalBlock(4, bn_eps="small")


def test_call_errors():
    block = NonLocalBlock(4, 2, sub_sample=True)
    with pytest.raises(RuntimeError, match="forward"):
        block.backward(np.zeros((1, 4, 4, 4)))
    with pytest.raises(ValueError, match="axes"):
        block(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="channels"):
        block(np.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="pool_size"):
        block(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="numeric"):
        block(np.full((1, 4, 4, 4), "a"))
    block(np.zeros((1, 4, 4, 4)))
    with pytest.raises(ValueError, match="dz"):
        block.backward(np.zeros((1, 4, 5, 4)))
    with pytest.raises(ValueError, match="sample"):
        block.affinity(np.zeros((1, 4, 4, 4)), sample=1)
    with pytest.raises(ValueError, match="window"):
        NonLocalBlock(4, 2, window=1).affinity(np.zeros((1, 4, 4, 4)))
    # changing the weights invalidates the cached forward
    block.load_state_dict({"g.bias": np.ones(2)}, strict=False)
    with pytest.raises(RuntimeError):
        block.backward(np.zeros((1, 4, 4, 4)))


def test_repr_and_top_level_name():
    import nlm

    assert nlm.NonLocalBlock is NonLocalBlock
    r = repr(NonLocalBlock(4, 3, mode="dot", sub_sample=True, window=None))
    assert "mode='dot'" in r and "pool_size=(1, 2, 2)" in r


# ------------------------------------------------------- link to the filter


def test_nonlocal_op_with_patch_gaussian_is_the_nlm_filter():
    """The generic operation with f = PatchEuclideanGaussian, g = Identity, NumPy engine == nlm.denoise_nl_means."""
    from nlm import denoise_nl_means
    from nlm.ops.kernels import Identity, PatchEuclideanGaussian
    from nlm.ops.operation import nonlocal_op

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:19, 0:23]
    image = 0.5 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(scale=0.1, size=xx.shape)
    for patch_size, patch_distance, h, sigma in [(3, 2, 0.15, 0.0), (5, 3, 0.1, 0.05)]:
        ref = denoise_nl_means(image, patch_size, patch_distance, h, sigma=sigma)
        f = PatchEuclideanGaussian(h, sigma, patch_size, spatial_ndim=2)
        y = nonlocal_op(image[..., None], f, Identity(), window=patch_distance, engine="numpy")[..., 0]
        np.testing.assert_allclose(y, ref, atol=1e-6)
        assert not np.allclose(y, image, atol=1e-3)  # it did filter


# ------------------------------------------------------ optional: PyTorch


def _torch_block(torch, mode, ndim, C, d, sub_sample, pool_order, scale):
    """A small PyTorch non-local block written from the paper's equations (channels first)."""
    nn = torch.nn
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[ndim]
    pool = {1: nn.MaxPool1d(2), 2: nn.MaxPool2d(2), 3: nn.MaxPool3d((1, 2, 2))}[ndim]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            if mode != "gaussian":
                self.theta, self.phi = conv(C, d, 1), conv(C, d, 1)
            self.g = conv(C, d, 1)
            self.W_z = conv(d, C, 1)
            if mode == "concat":
                self.w_f = conv(2 * d, 1, 1, bias=False)
            self.bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[ndim](C)

        def forward(self, x):
            B = x.shape[0]
            theta = x if mode == "gaussian" else self.theta(x)
            src = pool(x) if sub_sample and pool_order == "before" else x
            phi = src if mode == "gaussian" else self.phi(src)
            g = self.g(src)
            if sub_sample and pool_order == "after":
                phi, g = pool(phi), pool(g)
            theta = theta.reshape(B, theta.shape[1], -1).transpose(1, 2)  # (B, N, d)
            phi = phi.reshape(B, phi.shape[1], -1).transpose(1, 2)  # (B, N', d)
            g = g.reshape(B, g.shape[1], -1).transpose(1, 2)
            M = phi.shape[1]
            if mode in ("gaussian", "embedded"):
                P = torch.softmax(scale * theta @ phi.transpose(1, 2), dim=-1)
            elif mode == "dot":
                P = scale * theta @ phi.transpose(1, 2) / M
            else:
                N = theta.shape[1]
                cat = torch.cat(
                    [theta[:, :, None, :].expand(B, N, M, -1), phi[:, None, :, :].expand(B, N, M, -1)], dim=-1
                )
                P = torch.relu(cat @ self.w_f.weight.reshape(-1)) / M
            y = (P @ g).transpose(1, 2).reshape((B, g.shape[2]) + x.shape[2:])
            return self.bn(self.W_z(y)) + x

    return Block().double().eval()


@pytest.mark.parametrize("pooling", POOLING)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("mode", MODES)
def test_matches_pytorch(mode, ndim, pooling):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    C, d = 4, 2
    sub = pooling != "none"
    order = "before" if pooling == "none" else pooling
    scale = 0.7 if mode != "concat" else 1.0
    ref = _torch_block(torch, mode, ndim, C, d, sub, order, scale)
    with torch.no_grad():  # non-trivial batch norm, as after training
        ref.bn.weight.uniform_(0.5, 1.5)
        ref.bn.bias.normal_()
        ref.bn.running_mean.normal_()
        ref.bn.running_var.uniform_(0.5, 2.0)
    state = {k: v.detach().numpy() for k, v in ref.state_dict().items() if k != "bn.num_batches_tracked"}
    block = NonLocalBlock(C, ndim, mode=mode, inter_channels=d, sub_sample=sub, pool_order=order, scale=scale,
                          channels_first=True, chunk_size=5)
    block.load_state_dict(state)  # PyTorch's (out, in, 1, 1) conv weights load as they are
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, C) + {1: (9,), 2: (5, 7), 3: (3, 5, 4)}[ndim])
    xt = torch.tensor(x, requires_grad=True)
    zt = ref(xt)
    z = block(x)
    np.testing.assert_allclose(z, zt.detach().numpy(), rtol=1e-10, atol=1e-12)
    R = rng.normal(size=x.shape)
    (zt * torch.tensor(R)).sum().backward()
    dx, grads = block.backward(R)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    named = dict(ref.named_parameters())
    assert set(grads) == set(named)
    for name, g in grads.items():
        np.testing.assert_allclose(g, named[name].grad.numpy().reshape(g.shape), rtol=1e-9, atol=1e-11, err_msg=name)
