"""Non-local block on a noisy image's feature map: chunked engine vs the dense NumPy formulation.

Builds a feature map from a noisy image (a fixed random bank of 3x3 filters
plus ReLU, ``C`` channels), applies an embedded-Gaussian
:class:`nlm.NonLocalBlock` (with batch norm, random weights so that the
backward pass is not trivial), and times forward and backward against the
textbook dense formulation, which holds the full ``N x N`` affinity.  Memory is
the ``tracemalloc`` peak of each call (NumPy reports its buffers to it).

Usage::

    python benchmarks/nonlocal_block.py                 # 64 x 64 x 32 (N = 4096), ~10 s
    python benchmarks/nonlocal_block.py --size 128 --channels 64
    python benchmarks/nonlocal_block.py --largest       # size search, several minutes

``--largest`` runs the chunked block (forward + backward, float64) on
growing maps until one takes longer than ``--budget`` seconds; the dense
formulation is not run there (it would exhaust the machine's memory), its
peak is extrapolated from the measured ``N^2`` scaling instead.
"""

import argparse
import math
import time
import tracemalloc

import numpy as np

from nlm import NonLocalBlock


def noisy_feature_map(size, channels, dtype, seed=0):
    """``(1, size, size, channels)`` features of a noisy camera image (or a synthetic one)."""
    rng = np.random.default_rng(seed)
    try:
        from skimage import data
        from skimage.transform import resize

        image = resize(data.camera().astype(np.float64) / 255.0, (size, size), anti_aliasing=True)
    except ImportError:  # scikit-image is a dependency, but keep the example self-contained
        yy, xx = np.mgrid[0:size, 0:size] / size
        image = 0.5 + 0.4 * np.sin(8 * xx) * np.cos(5 * yy)
    noisy = image + rng.normal(scale=0.1, size=image.shape)
    padded = np.pad(noisy, 1, mode="reflect")
    patches = np.stack([padded[dy : dy + size, dx : dx + size] for dy in range(3) for dx in range(3)], axis=-1)
    bank = rng.normal(size=(9, channels)) / 3.0
    return np.maximum(patches @ bank, 0.0)[None].astype(dtype)


def dense_forward(x, p, eps):
    """Textbook dense embedded-Gaussian block: the full N x N affinity is formed."""
    X = x.reshape(-1, x.shape[-1])
    theta = X @ p["theta.weight"].T + p["theta.bias"]
    phi = X @ p["phi.weight"].T + p["phi.bias"]
    g = X @ p["g.weight"].T + p["g.bias"]
    S = theta @ phi.T
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = P @ g
    wy = y @ p["W_z.weight"].T + p["W_z.bias"]
    inv = p["bn.weight"] / np.sqrt(p["bn.running_var"] + eps)
    z = (wy - p["bn.running_mean"]) * inv + p["bn.bias"] + X
    cache = (X, theta, phi, g, P, y, wy, inv)
    return z.reshape(x.shape), cache


def dense_backward(dz, p, cache, eps):
    """Backward of :func:`dense_forward` with the stored N x N affinity."""
    X, theta, phi, g, P, y, wy, inv = cache
    shape = dz.shape
    dz = dz.reshape(X.shape)
    grads = {"bn.weight": (dz * (wy - p["bn.running_mean"]) / np.sqrt(p["bn.running_var"] + eps)).sum(0),
             "bn.bias": dz.sum(0)}
    dwy = dz * inv
    grads["W_z.weight"], grads["W_z.bias"] = dwy.T @ y, dwy.sum(0)
    dy = dwy @ p["W_z.weight"]
    dP = dy @ g.T
    dg = P.T @ dy
    dS = P * (dP - (dP * P).sum(axis=1, keepdims=True))
    dtheta, dphi = dS @ phi, dS.T @ theta
    dx = dz.copy()
    for name, d in (("theta", dtheta), ("phi", dphi), ("g", dg)):
        grads[name + ".weight"], grads[name + ".bias"] = d.T @ X, d.sum(0)
        dx += d @ p[name + ".weight"]
    return dx.reshape(shape), grads


def measure(fun, repeat):
    """(best time in s, tracemalloc peak in bytes of one call, result)."""
    tracemalloc.start()
    try:
        result = fun()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fun()
        best = min(best, time.perf_counter() - t0)
    return best, peak, result


def compare(size, channels, dtype, repeat, chunk_sizes):
    x = noisy_feature_map(size, channels, dtype)
    block = NonLocalBlock(channels, 2, mode="embedded", zero_init=False, seed=0)
    rng = np.random.default_rng(1)
    state = block.state_dict()
    state["bn.running_mean"] = rng.normal(scale=0.1, size=channels)
    state["bn.running_var"] = rng.uniform(0.5, 2.0, size=channels)
    block.load_state_dict(state)
    p = {k: v.astype(dtype) for k, v in block.state_dict().items()}
    dz = rng.normal(size=x.shape).astype(dtype)
    N = size * size
    print(f"map {size}x{size}x{channels} (N = N' = {N}), {np.dtype(dtype).name}, embedded Gaussian, "
          f"d = {block.inter_channels}, batch norm, no subsampling")
    mib = 2.0**20
    print(f"{'':28s}{'forward s':>11s}{'backward s':>12s}{'fwd peak MiB':>14s}{'bwd peak MiB':>14s}")
    t_fd, m_fd, (z_d, cache) = measure(lambda: dense_forward(x, p, block.bn_eps), repeat)
    t_bd, m_bd, (dx_d, g_d) = measure(lambda cache=cache: dense_backward(dz, p, cache, block.bn_eps), repeat)
    del cache
    print(f"{'dense (N x N stored)':28s}{t_fd:11.3f}{t_bd:12.3f}{m_fd / mib:14.1f}{m_bd / mib:14.1f}")
    err = 0.0
    for chunk in chunk_sizes:
        block.chunk_size = chunk
        t_fc, m_fc, z_c = measure(lambda: block.forward(x), repeat)
        t_bc, m_bc, (dx_c, g_c) = measure(lambda: block.backward(dz), repeat)
        label = f"nlm chunked ({block._chunk(N)} rows)"
        print(f"{label:28s}{t_fc:11.3f}{t_bc:12.3f}{m_fc / mib:14.1f}{m_bc / mib:14.1f}")
        err = max(err, float(np.abs(z_c - z_d).max()), float(np.abs(dx_c - dx_d).max()),
                  max(float(np.abs(g_c[k] - g_d[k]).max() / max(1.0, np.abs(g_d[k]).max())) for k in g_d))
    # (phi.bias has an exactly zero gradient: the softmax ignores a per-row constant)
    print(f"max difference chunked vs dense (z, dx, weight gradients relative to max(1, |grad|)): {err:.1e}")
    print("(the dense backward peak leaves out the N x N affinity its forward keeps for it: "
          f"{N * N * np.dtype(dtype).itemsize / mib:.0f} MiB more)")


def largest(channels, dtype, budget):
    """Grow the map until forward + backward of the chunked block takes longer than ``budget`` s."""
    itemsize = np.dtype(dtype).itemsize
    print(f"\nlargest map search: chunked block, {channels} channels, {np.dtype(dtype).name}, "
          f"budget {budget:.0f} s per forward + backward")
    last = None
    for size in (128, 192, 256, 320, 384, 448, 512, 640, 768, 1024):
        N = size * size
        x = noisy_feature_map(size, channels, dtype)
        block = NonLocalBlock(channels, 2, zero_init=False, seed=0)
        tracemalloc.start()
        t0 = time.perf_counter()
        block.forward(x)
        t_f = time.perf_counter() - t0
        block.backward(np.ones_like(x))
        t = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        dense_gib = 3 * N * N * itemsize / 2**30  # measured peak of the dense formulation: 3 N x N arrays
        print(f"  {size:5d}x{size:<5d} N = {N:7d}: forward {t_f:7.1f} s, forward+backward {t:7.1f} s, "
              f"peak {peak / 2**20:7.0f} MiB (dense formulation would need ~{dense_gib:6.1f} GiB)")
        last = size
        if t > budget:
            break
        # the next size costs (N_next / N)^2 as much: stop if it would be far past the budget
        nxt = {128: 192, 192: 256, 256: 320, 320: 384, 384: 448, 448: 512, 512: 640, 640: 768, 768: 1024}.get(size)
        if nxt is None or t * (nxt / size) ** 4 > 3 * budget:
            break
    print(f"largest map run: {last}x{last}x{channels}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="side of the square map (default 64)")
    parser.add_argument("--channels", type=int, default=32, help="channels C (default 32)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions, best reported (default 3)")
    parser.add_argument("--chunk-size", type=int, action="append", default=None,
                        help="rows per affinity chunk, repeatable (default: auto and 2048)")
    parser.add_argument("--largest", action="store_true", help="also search the largest map (minutes)")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds per run in --largest (default 300)")
    args = parser.parse_args(argv)
    if args.size < 2 or args.channels < 2 or args.repeat < 1:
        parser.error("--size and --channels must be >= 2, --repeat >= 1")
    chunks = args.chunk_size or [None, 2048]
    if any(c < 1 for c in chunks if c is not None):
        parser.error("--chunk-size must be >= 1")
    compare(args.size, args.channels, np.dtype(args.dtype), args.repeat, chunks)
    if args.largest:
        largest(args.channels, np.dtype(args.dtype), args.budget)


if __name__ == "__main__":
    main()
