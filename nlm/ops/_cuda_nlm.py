"""GPU (numba-cuda) kernels of the non-local means filter.

Private module, imported only when a filter runs with ``device="cuda"``; it
imports ``numba.cuda``.  The entry point :func:`nl_means_cuda` takes the same
validated arguments as :func:`nlm.ops._nlm_kernels.nl_means_windowed` (1-D to
3-D, channel-last, float32 or float64) and gives the same result to float
rounding: the weights are the CPU kernel's,

    w(i, j) = 2^-(max(d^2(i, j) - 2 sigma^2, 0) gamma),   gamma = 1 / (h^2 ln 2),

with ``d^2`` the patch's summed squared differences over all channels times
``inv_norm = 1 / (patch pixels * channels)``, and the same scalars
(:func:`nlm.ops._nlm_kernels._scalars`: ``2 sigma^2`` and ``gamma`` clamped to
the float type's finite range, so an infinite ``h`` gives weights 1 and a
tiny one weights 0, never NaN).  The search window is clipped at the borders;
patches read reflect padding with the patch radius clipped to ``n - 1``.

Algorithm (one thread per output pixel, one block per tile of ``TY x TX``
pixels of one plane): for every offset ``t`` of the full window, the block
computes the squared differences ``D(q) = sum_c sum_dz (v(q) - v(q + t))^2``
of its tile and patch halo into shared memory, box-sums them along y (a
second shared buffer), then each thread box-sums its row segment along x,
takes the weight and accumulates ``w v(p + t)`` in registers.  Each pixel
gathers its own pairs (no symmetric scatter, no atomics): the result does
not depend on the launch configuration or the order of blocks, and is
deterministic.  Sums are in the image's float type, like the CPU kernel.
Work ``O(N W (C P_z + 2 r))`` for ``N`` pixels, ``W`` window positions,
``C`` channels, ``P_z`` the patch depth (3-D) and patch radius ``r``; shared
memory ``(TY + 2 ry)(TX + 2 rx) + TY (TX + 2 rx)`` values per block.

Channels accumulate in registers of at most :data:`MAX_CHANNELS` values;
more channels run in groups (the distance always takes every channel).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import cuda

from nlm.ops._cuda_device import like_input, simulator_enabled, to_device_view  # noqa: F401
from nlm.ops._nlm_kernels import _scalars

#: value channels accumulated per launch (registers per thread)
MAX_CHANNELS = 8
#: threads per block (x, y) on a device; the simulator uses small blocks
BLOCK = (32, 8)
BLOCK_SIM = (4, 2)


@functools.cache
def _nlm_kernel(dtype_name):
    """The NLM gather kernel for one float type (shared arrays need the type at compile time)."""
    from numba import types

    dt = types.float32 if dtype_name == "float32" else types.float64

    @cuda.jit
    def kernel(P, out, c0, nc, rz, ry, rx, wz, wy, wx, inv_norm, var2, gamma, unscale, lo, hi):
        C = P.shape[0]
        Z = out.shape[1]
        Y = out.shape[2]
        X = out.shape[3]
        TX = cuda.blockDim.x
        TY = cuda.blockDim.y
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        x0 = cuda.blockIdx.x * TX
        y0 = cuda.blockIdx.y * TY
        z = cuda.blockIdx.z
        HX = TX + 2 * rx
        HY = TY + 2 * ry
        PY = Y + 2 * ry
        PX = X + 2 * rx
        nd = HY * HX
        sh = cuda.shared.array(0, dtype=dt)
        D = sh[:nd]
        V = sh[nd : nd + TY * HX]
        tid = ty * TX + tx
        nthr = TX * TY
        x = x0 + tx
        y = y0 + ty
        inside = x < X and y < Y
        zero = var2 - var2  # typed constants (a literal would widen float32 sums to float64)
        acc = cuda.local.array(MAX_CHANNELS, dt)
        for c in range(MAX_CHANNELS):
            acc[c] = zero
        den = inv_norm / inv_norm  # the pixel itself: weight 1
        if inside:
            for c in range(nc):
                acc[c] = P[c0 + c, z + rz, y + ry, x + rx]
        for dz in range(-wz, wz + 1):
            zz = z + dz
            if zz < 0 or zz >= Z:
                continue  # the same for the whole block
            for dy in range(-wy, wy + 1):
                if y0 + dy >= Y or y0 + TY - 1 + dy < 0:
                    continue  # no pixel of the tile has a partner this row
                for dx in range(-wx, wx + 1):
                    if dz == 0 and dy == 0 and dx == 0:
                        continue
                    if x0 + dx >= X or x0 + TX - 1 + dx < 0:
                        continue
                    # squared differences of the tile and its halo (padded coordinates)
                    for k in range(tid, nd, nthr):
                        hy = k // HX
                        py = y0 + hy
                        px = x0 + k - hy * HX
                        qy = py + dy
                        qx = px + dx
                        s = zero
                        if py < PY and px < PX and qy >= 0 and qy < PY and qx >= 0 and qx < PX:
                            for pz in range(2 * rz + 1):
                                for c in range(C):
                                    d = P[c, z + pz, py, px] - P[c, zz + pz, qy, qx]
                                    s += d * d
                        D[k] = s
                    cuda.syncthreads()
                    # box sums along y
                    for k in range(tid, TY * HX, nthr):
                        vy = k // HX
                        vx = k - vy * HX
                        s = zero
                        for j in range(2 * ry + 1):
                            s += D[(vy + j) * HX + vx]
                        V[k] = s
                    cuda.syncthreads()
                    yq = y + dy
                    xq = x + dx
                    if inside and yq >= 0 and yq < Y and xq >= 0 and xq < X:
                        s = zero
                        base = ty * HX + tx
                        for j in range(2 * rx + 1):
                            s += V[base + j]
                        e = s * inv_norm - var2
                        if e < zero:
                            e = zero
                        w = math.exp2(-(e * gamma))
                        den += w
                        for c in range(nc):
                            acc[c] += w * P[c0 + c, zz + rz, yq + ry, xq + rx]
                    cuda.syncthreads()
        if inside:
            for c in range(nc):
                # exact power-of-two unscaling, clipped to the image's range (rounding must not leave it)
                out[c0 + c, z, y, x] = min(max((acc[c] / den) * unscale, lo), hi)

    return kernel


@functools.cache
def _pad_kernel(dtype_name):
    """P[c, z, y, x] = scale * x[reflect(z - rz), reflect(y - ry), reflect(x - rx), c] (any strides)."""

    @cuda.jit(device=True)
    def reflect(i, n):
        if n == 1:
            return 0
        period = 2 * (n - 1)
        i = i % period
        if i < 0:
            i += period
        if i >= n:
            i = period - i
        return i

    @cuda.jit
    def pad(src, P, rz, ry, rx, scale):
        Z = src.shape[0]
        Y = src.shape[1]
        X = src.shape[2]
        C = src.shape[3]
        PZ = P.shape[1]
        PY = P.shape[2]
        PX = P.shape[3]
        n = PZ * PY * PX
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for k in range(start, n, step):
            pz = k // (PY * PX)
            r = k - pz * PY * PX
            py = r // PX
            px = r - py * PX
            sz = reflect(pz - rz, Z)
            sy = reflect(py - ry, Y)
            sx = reflect(px - rx, X)
            for c in range(C):
                P[c, pz, py, px] = src[sz, sy, sx, c] * scale

    return pad


@functools.cache
def _minmax_kernel(dtype_name):
    """Per-block minimum, maximum and count of non-finite values of a 4-D array (any strides)."""
    from numba import types

    dt = types.float32 if dtype_name == "float32" else types.float64

    @cuda.jit
    def minmax(a, zero, one, inf, lo, hi, bad):
        A1 = a.shape[1]
        A2 = a.shape[2]
        A3 = a.shape[3]
        n = a.shape[0] * A1 * A2 * A3
        tid = cuda.threadIdx.x
        nthr = cuda.blockDim.x
        sh = cuda.shared.array(0, dtype=dt)
        smin = sh[:nthr]
        smax = sh[nthr : 2 * nthr]
        sbad = sh[2 * nthr : 3 * nthr]
        mn = inf
        mx = -inf
        nb = zero
        start = cuda.grid(1)
        step = cuda.gridsize(1)
        for k in range(start, n, step):
            i3 = k % A3
            r = k // A3
            i2 = r % A2
            r = r // A2
            i1 = r % A1
            i0 = r // A1
            v = a[i0, i1, i2, i3]
            if v - v != zero:  # NaN or +-inf
                nb += one
            else:
                mn = min(mn, v)
                mx = max(mx, v)
        smin[tid] = mn
        smax[tid] = mx
        sbad[tid] = nb
        cuda.syncthreads()
        half = nthr // 2
        while half > 0:
            if tid < half:
                smin[tid] = min(smin[tid], smin[tid + half])
                smax[tid] = max(smax[tid], smax[tid + half])
                sbad[tid] = sbad[tid] + sbad[tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            b = cuda.blockIdx.x
            lo[b] = smin[0]
            hi[b] = smax[0]
            bad[b] = sbad[0]

    return minmax


def _threads_1d():
    return 32 if simulator_enabled() else 256


def device_minmax(a4):
    """``(min, max, n_nonfinite)`` of a 4-D device array, reduced on the device (three small copies back)."""
    dtype = np.dtype(a4.dtype)
    nthr = _threads_1d()
    blocks = max(1, min(1024 if not simulator_enabled() else 2, -(-a4.size // nthr)))
    lo = cuda.device_array(blocks, dtype)
    hi = cuda.device_array(blocks, dtype)
    bad = cuda.device_array(blocks, dtype)
    typ = dtype.type
    _minmax_kernel(dtype.name)[blocks, nthr, 0, 3 * nthr * dtype.itemsize](a4, typ(0), typ(1), typ(np.inf), lo, hi,
                                                                            bad)
    lo, hi, bad = lo.copy_to_host(), hi.copy_to_host(), bad.copy_to_host()
    return float(lo.min()), float(hi.max()), int(bad.sum())


def _launch_nlm(P, out, radii, window, scalars, unscale, lo, hi):
    C = P.shape[0]
    Z, Y, X = out.shape[1:]
    rz, ry, rx = radii
    wz, wy, wx = window
    dtype = np.dtype(P.dtype)
    bx, by = BLOCK_SIM if simulator_enabled() else BLOCK
    grid = (-(-X // bx), -(-Y // by), Z)
    shared = ((by + 2 * ry) * (bx + 2 * rx) + by * (bx + 2 * rx)) * dtype.itemsize
    kernel = _nlm_kernel(dtype.name)
    inv_norm, var2, gamma = scalars
    typ = dtype.type
    for c0 in range(0, C, MAX_CHANNELS):
        nc = min(MAX_CHANNELS, C - c0)
        kernel[grid, (bx, by), 0, shared](P, out, c0, nc, rz, ry, rx, wz, wy, wx, inv_norm, var2, gamma,
                                          typ(unscale), typ(lo), typ(hi))


def nl_means_cuda_device(src, patch, window, h, sigma, spatial_ndim, lo=None, hi=None):
    """Non-local means of a device array ``src`` (``(*spatial, C)`` view, any strides) on the GPU.

    ``patch``: patch sides (odd), ``window``: search radii, one per spatial
    axis (1-3); ``lo``/``hi``: the image's minimum and maximum (reduced on
    the device when not given).  Returns a new C-contiguous ``(C, Z, Y, X)``
    device array of ``src``'s float type (the caller views it channel-last).
    The extreme-magnitude scaling of the CPU path (an exact power of two,
    :func:`nlm.ops.kernels._rescale`) is applied while padding and undone
    while writing.
    """
    from nlm.ops.kernels import _SAFE_EXP

    dtype = np.dtype(src.dtype)
    full = tuple(int(n) for n in src.shape)  # (the simulator's shape takes no negative index)
    spatial = full[:spatial_ndim]
    C = full[spatial_ndim]
    src4 = _view4(src, spatial_ndim)
    if lo is None or hi is None:
        lo, hi, _ = device_minmax(src4)
    big = max(abs(lo), abs(hi))
    k = 0
    if big > 0:
        e = int(np.frexp(big)[1])
        if abs(e) > _SAFE_EXP.get(dtype.itemsize, 24):
            k = -e
    sigma = min(sigma, hi - lo)
    with np.errstate(over="ignore", under="ignore"):
        h_s, sigma_s = float(np.ldexp(h, k)), float(np.ldexp(sigma, k))
    shape3 = (1,) * (3 - spatial_ndim) + spatial
    patch3 = (1,) * (3 - spatial_ndim) + tuple(patch)
    window3 = (0,) * (3 - spatial_ndim) + tuple(window)
    # patch radius clipped to n - 1 (reflect padding supplies at most that), window clipped to the image
    radii = tuple(min(p // 2, n - 1) for p, n in zip(patch3, shape3))
    window3 = tuple(min(w, n - 1) for w, n in zip(window3, shape3))
    sizes = tuple(2 * r + 1 for r in radii)
    scalars = _scalars(sizes, C, h_s, sigma_s, dtype)
    pshape = (C,) + tuple(n + 2 * r for n, r in zip(shape3, radii))
    P = cuda.device_array(pshape, dtype)
    nthr = _threads_1d()
    blocks = max(1, min(4096 if not simulator_enabled() else 4, -(-int(np.prod(pshape[1:])) // nthr)))
    _pad_kernel(dtype.name)[blocks, nthr](src4, P, radii[0], radii[1], radii[2], dtype.type(np.ldexp(1.0, k)))
    out = cuda.device_array((C,) + shape3, dtype)
    _launch_nlm(P, out, radii, window3, scalars, float(np.ldexp(1.0, -k)), lo, hi)
    return out


def _view4(a, spatial_ndim):
    """A ``(Z, Y, X, C)`` view of a ``(*spatial, C)`` device array (missing axes of length 1)."""
    shape = (1,) * (3 - spatial_ndim) + tuple(int(n) for n in a.shape)
    strides = (0,) * (3 - spatial_ndim) + tuple(int(s) for s in a.strides)
    if simulator_enabled():
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        host = a._ary if isinstance(a, FakeCUDAArray) else np.asarray(a)
        return FakeCUDAArray(np.lib.stride_tricks.as_strided(host, shape, strides))
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(shape, strides, a.dtype, stream=0, gpu_data=a.gpu_data)


def nl_means_cuda(x, patch_size, window, h, sigma, spatial_ndim):
    """Non-local means of a NumPy channel-last map on the GPU: NumPy in, NumPy out.

    The drop-in twin of :func:`nlm.ops._nlm_kernels.nl_means_windowed` for
    1-3 spatial axes: one copy to the device, one back.
    """
    dtype = np.dtype(np.float32 if x.dtype.kind == "f" and x.dtype.itemsize <= 4 else np.float64)
    x = np.ascontiguousarray(x, dtype=dtype)
    patch = (int(patch_size),) * spatial_ndim if np.ndim(patch_size) == 0 else tuple(int(p) for p in patch_size)
    src = cuda.to_device(x)
    out = nl_means_cuda_device(src, patch, tuple(int(w) for w in window), h, sigma, spatial_ndim,
                               float(x.min()), float(x.max()))
    y = out.copy_to_host()  # (C, Z, Y, X)
    return np.moveaxis(y.reshape((x.shape[-1],) + x.shape[:spatial_ndim]), 0, -1)
