"""GPU (numba-cuda) kernels of NL-Bayes, 2-D and 3-D (private; ``device="cuda"``).

Imported only when :func:`nlm.denoisers.bayes.denoise_nl_bayes` runs with
``device="cuda"``; it imports ``numba.cuda``.  The twin of the CPU kernels
(:mod:`nlm.ops._bayes_kernels`, :mod:`nlm.ops._bayes_volume`): a 2-D image
runs as a volume of one slice (patch depth 1, window radius 0 along z, which
is the 2-D kernel's arithmetic and order exactly), so one kernel serves both.

Order (the CPU's, so that the results agree): the patch positions are cut
into the CPU's cells (:func:`nlm.ops._bayes_volume.bayes_step3`, cell sides
``max(2 r + p, 8)``), processed by colour (the parities of the cell's
indices).  One launch per colour, **one thread block per cell**: the block
visits the cell's references of the grid in raster order, skipping the
positions an earlier group estimated (the mask), and for each reference

1. computes the distances to every patch of its window (one thread per
   candidate, the CPU's summation order: channel, then patch voxel), in
   float64 from differences in the image's dtype;
2. selects the group: the reference, then the ``n - 1`` other nearest with
   ties in raster order (the rank of each candidate under ``(distance,
   position)``, counted by its thread; the same set as the CPU's
   quickselect), compacted in raster order by a block-wide scan;
3. estimates the group in float64 (:func:`nlm.ops._bayes_kernels.group_estimate`
   step for step: means, the noise variances from the level function or the
   noise map, the flat-area rule, the covariance, the ridge, a Cholesky
   factorisation one column at a time, the substitutions one column of
   patches per thread);
4. aggregates the estimates into float64 numerator and weight images, one
   thread per pixel of the window's box adding the members that cover it in
   the group's order (the CPU's order of additions at every pixel), and marks
   the members done.

Two cells of one colour never write the same pixels nor read each other's
marks, so the blocks of a launch need no atomics and the result does not
depend on the launch configuration (tested with several block sizes).  No
floating-point atomics anywhere; the only atomics are integer counts.
Scratch (distances, group, covariance) lives in global memory, one slice per
block (``O(W + D n + d^2)`` float64 per block: window ``W``, patch vector
``D``, group ``n``, system ``d``); cells are launched in chunks of at most
:data:`MAX_BLOCKS` blocks.  The block's few shared words (the counts, the
group's scalars, the compaction's scan) are dynamic shared memory
(:func:`shared_bytes`, given at launch), never static
``cuda.shared.array(n)`` arrays: Numba's CUDA simulator (numba-cuda 0.30)
allocates a static shared array on the first call of each of the block's
threads, checking its table and storing into it without a lock, so two
threads that interleave there get two different arrays and each reads the
other's uninitialised words (this was the intermittent garbage group
indices of the first version: 1 to 3 simulator runs in 10 failed, and all
of them with a pause widened in that window).  Dynamic shared memory is one
buffer the simulator creates before the threads start, as on a device.

Differences from the CPU: under Numba's simulator the arithmetic is the
CPU's (results equal to rounding of the final division, measured ~1e-16).
On a device NVVM contracts multiply-adds into fused multiply-adds (numba-cuda
has no switch to turn contraction off without the other fast-math flags),
so sums differ in their last bits; where two candidates are that close in
distance (or a group's variance sits on the flat-area threshold), the group
can take the other one: a local difference, whose size and frequency are
still to be measured on a device (the bar of the issue is 1e-4 of the range;
``tests/test_gpu_bayes.py`` asserts it when run with
``NUMBA_ENABLE_CUDASIM=0``, ``benchmarks/gpu.py`` prints it).

Cost per reference as the CPU's (``O(W P C)`` search, ``O(n d^2 + d^3)``
estimate) plus ``O(W^2 / T)`` for the rank selection with ``T`` threads per
block; the references of a cell are sequential (the skipping rule makes
them so), the cells of a colour run in parallel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, types

from nlm._config import CUDA_JIT
from nlm.ops._cuda_device import simulator_enabled

#: threads per block on a device / under the simulator (tests change them)
THREADS = 128
THREADS_SIM = 4
#: most blocks (cells) per launch (scratch memory is per block)
MAX_BLOCKS = 2048
#: most threads per block (the compaction's scan has a word per thread)
MAX_THREADS = 256
#: 8-byte words of dynamic shared memory before the scan (four int64 counts, four float64 scalars)
SHARED_HEAD = 8


def shared_bytes(nthreads):
    """Bytes of dynamic shared memory :func:`_cells_kernel` needs with ``nthreads`` threads per block."""
    return 8 * (SHARED_HEAD + int(nthreads))


@cuda.jit(device=True)
def _level(u, nlf):
    """Noise variance at ``u`` (:func:`nlm.ops._bayes_kernels.level`)."""
    if nlf.shape[0] == 3:
        if u < 0.0:
            u = 0.0
        return nlf[0] + (nlf[1] + nlf[2] * u) * u
    K = nlf.shape[0] - 6
    z = (u - nlf[3]) * nlf[4]
    if z <= 0.0:
        return nlf[5]
    if z >= K:
        return nlf[5 + K]
    i = int(z)
    w = z - i
    return (1.0 - w) * nlf[5 + i] + w * nlf[6 + i]


@cuda.jit(device=True)
def _unravel(q, Hp, Wp):
    """``(z, i, j)`` of the flat patch position ``q`` (``(z Hp + i) Wp + j``)."""
    j = q % Wp
    q //= Wp
    return q // Hp, q % Hp, j


@cuda.jit(device=True)
def _offset(v, py, px):
    """``(az, a, b)`` of the flat patch voxel ``v`` (``(az py + a) px + b``)."""
    az = v // (py * px)
    v -= az * py * px
    a = v // px
    return az, a, v - a * px


@cuda.jit(device=True)
def _estimate(Y, G, X, M, Z, dvar, mean, gm, pvar, shf, n, C, pp, step1, use_map, nlf, tmat, beta, flat, tid, nt):
    """The group's Bayes estimate, by the block (:func:`nlm.ops._bayes_kernels.group_estimate`)."""
    D = C * pp
    for k in range(tid, D, nt):
        s = 0.0
        for i in range(n):
            s += Y[k, i]
        mean[k] = s / n
        if not step1:
            s = 0.0
            for i in range(n):
                s += G[k, i]
            gm[k] = s / n
        else:
            gm[k] = mean[k]
    cuda.syncthreads()
    for q in range(tid, pp, nt):
        for c in range(C):
            if use_map:
                dvar[c * pp + q] = pvar[q]
                continue
            v = 0.0
            for j in range(C):
                u = 0.0
                for cc in range(C):
                    u += tmat[cc, j] * gm[cc * pp + q]
                v += tmat[c, j] * tmat[c, j] * _level(u, nlf)
            dvar[c * pp + q] = v
    cuda.syncthreads()
    nblocks = C if step1 else 1
    d = pp if step1 else D
    for blk in range(nblocks):
        o = blk * d
        if tid == 0:
            tot = 0.0
            tot2 = 0.0
            nv = 0.0
            for k in range(d):
                nv += dvar[o + k]
                for i in range(n):
                    t = Y[o + k, i]
                    tot += t
                    tot2 += t * t
            cnt = n * d
            mu = tot / cnt
            var = tot2 / cnt - mu * mu
            shf[0] = mu
            shf[1] = 1.0 if (n < 2 or var <= flat * nv / d) else 0.0
            shf[2] = nv
        cuda.syncthreads()
        if shf[1] != 0.0:
            mu = shf[0]
            for e in range(tid, d * n, nt):
                k = e // n
                X[o + k, e - k * n] = mu
            cuda.syncthreads()
            continue
        for e in range(tid, d * n, nt):
            k = e // n
            i = e - k * n
            if step1:
                Z[k, i] = Y[o + k, i] - mean[o + k]
            else:
                Z[k, i] = G[o + k, i] - gm[o + k]
        cuda.syncthreads()
        inv = 1.0 / (n - 1)
        for e in range(tid, d * d, nt):
            k = e // d
            l = e - k * d  # noqa: E741
            if l <= k:
                s = 0.0
                for i in range(n):
                    s += Z[k, i] * Z[l, i]
                M[k, l] = s * inv
                M[l, k] = s * inv
        cuda.syncthreads()
        if not step1:
            for k in range(tid, d, nt):
                M[k, k] += beta * dvar[o + k]
            cuda.syncthreads()
        if tid == 0:
            tr = 0.0
            for k in range(d):
                tr += M[k, k]
            shf[3] = 1e-6 * shf[2] / d + 1e-10 * tr / d + 1e-30
        cuda.syncthreads()
        for k in range(tid, d, nt):
            M[k, k] += shf[3]
        cuda.syncthreads()
        # Cholesky, a column at a time: the pivot by one thread, the column below it by all
        for j in range(d):
            if tid == 0:
                s = M[j, j]
                for k in range(j):
                    s -= M[j, k] * M[j, k]
                if s <= 1e-300:
                    s = 1e-300
                M[j, j] = math.sqrt(s)
            cuda.syncthreads()
            ljj = M[j, j]
            for i in range(j + 1 + tid, d, nt):
                t = M[i, j]
                for k in range(j):
                    t -= M[i, k] * M[j, k]
                M[i, j] = t / ljj
            cuda.syncthreads()
        # Z <- M^-1 (Y - m): each thread its columns, forward then backward
        for i in range(tid, n, nt):
            for r in range(d):
                Z[r, i] = Y[o + r, i] - mean[o + r]
            for r in range(d):
                for k in range(r):
                    Z[r, i] -= M[r, k] * Z[k, i]
                Z[r, i] *= 1.0 / M[r, r]
            for r in range(d - 1, -1, -1):
                for k in range(r + 1, d):
                    Z[r, i] -= M[k, r] * Z[k, i]
                Z[r, i] *= 1.0 / M[r, r]
        cuda.syncthreads()
        for e in range(tid, d * n, nt):
            k = e // n
            i = e - k * n
            f = beta * dvar[o + k]
            if f == 0.0:
                X[o + k, i] = Y[o + k, i]
            else:
                X[o + k, i] = Y[o + k, i] - f * Z[k, i]
        cuda.syncthreads()


@cuda.jit(device=True)
def _group(noisy, guide, num, wgt, mask, rz, ri, rj, pz, py, px, r0, r1, r2, n_sim, cap, tau, step1, nlf, tmat,
           beta, flat, vmap, use_map, pvalid, masked, cd, flags, idx, Y, G, X, M, Z, dvar, mean, gm, pvar, shi, shf,
           scan, tid, nt):
    """One reference patch by the block: search, selection, estimate, aggregation (the CPU's ``_group3``)."""
    C = noisy.shape[0]
    pp = pz * py * px
    Zp = noisy.shape[1] - pz + 1
    Hp = noisy.shape[2] - py + 1
    Wp = noisy.shape[3] - px + 1
    z0 = max(rz - r0, 0)
    z1 = min(rz + r0, Zp - 1)
    i0 = max(ri - r1, 0)
    i1 = min(ri + r1, Hp - 1)
    j0 = max(rj - r2, 0)
    j1 = min(rj + r2, Wp - 1)
    ni = i1 - i0 + 1
    nj = j1 - j0 + 1
    m = (z1 - z0 + 1) * ni * nj
    c_dist = 1 if step1 else C
    norm = 1.0 / (c_dist * pp)
    if tid == 0:
        shi[0] = 0  # candidates at distance <= tau
        shi[1] = 0  # masked candidates
    cuda.syncthreads()
    close = 0
    bad = 0
    for t in range(tid, m, nt):
        tz, ti, tj = _offset(t, ni, nj)
        qz = z0 + tz
        qi = i0 + ti
        qj = j0 + tj
        s = 0.0
        for c in range(c_dist):
            for az in range(pz):
                for a in range(py):
                    for b in range(px):
                        u = guide[c, rz + az, ri + a, rj + b] - guide[c, qz + az, qi + a, qj + b]
                        s += u * u
        s *= norm
        if masked and not pvalid[qz, qi, qj]:
            s = math.inf
            bad += 1
        elif s <= tau:
            close += 1
        cd[t] = s
    if close > 0:
        cuda.atomic.add(shi, 0, close)
    if bad > 0:
        cuda.atomic.add(shi, 1, bad)
    cuda.syncthreads()
    ref = ((rz - z0) * ni + ri - i0) * nj + rj - j0
    if tid == 0:
        c0 = shi[0]
        if cd[ref] <= tau:
            c0 -= 1
        cd[ref] = math.inf
        n = max(n_sim, min(cap, 1 + c0))
        shi[2] = min(n, m - shi[1])
    cuda.syncthreads()
    n = shi[2]
    k = n - 1
    # the k nearest others under (distance, raster position): each candidate counts those before it
    for t in range(tid, m, nt):
        flags[t] = 0
        v = cd[t]
        if k > 0 and v < math.inf:
            rank = 0
            for u in range(m):
                w = cd[u]
                if w < v or (w == v and u < t):
                    rank += 1
                    if rank >= k:
                        break
            if rank < k:
                flags[t] = 1
    cuda.syncthreads()
    # compaction in raster order: each thread its run of candidates, placed after the runs before it
    run = (m + nt - 1) // nt
    t0 = min(tid * run, m)
    t1 = min(t0 + run, m)
    cnt = 0
    for t in range(t0, t1):
        cnt += flags[t]
    scan[tid] = cnt
    cuda.syncthreads()
    pos = 1
    for u in range(tid):
        pos += scan[u]
    for t in range(t0, t1):
        if flags[t] != 0:
            tz, ti, tj = _offset(t, ni, nj)
            idx[pos] = ((z0 + tz) * Hp + i0 + ti) * Wp + j0 + tj
            pos += 1
    if tid == 0:
        idx[0] = (rz * Hp + ri) * Wp + rj
    cuda.syncthreads()
    D = C * pp
    for e in range(tid, D * n, nt):
        kk = e // n
        g = e - kk * n
        c = kk // pp
        v = kk - c * pp
        az, a, b = _offset(v, py, px)
        qz, qi, qj = _unravel(idx[g], Hp, Wp)
        Y[kk, g] = noisy[c, qz + az, qi + a, qj + b]
        if not step1:
            G[kk, g] = guide[c, qz + az, qi + a, qj + b]
    if use_map:
        for v in range(tid, pp, nt):
            az, a, b = _offset(v, py, px)
            s = 0.0
            for g in range(n):
                qz, qi, qj = _unravel(idx[g], Hp, Wp)
                s += vmap[qz + az, qi + a, qj + b]
            pvar[v] = s / n
    cuda.syncthreads()
    _estimate(Y, G, X, M, Z, dvar, mean, gm, pvar, shf, n, C, pp, step1, use_map, nlf, tmat, beta, flat, tid, nt)
    # aggregation: one thread per pixel of the window's box (every member lies in it), adding the members
    # that cover it in the group's order: the CPU's order of additions at every pixel, no conflicts
    for g in range(tid, n, nt):
        qz, qi, qj = _unravel(idx[g], Hp, Wp)
        mask[qz, qi, qj] = True
    bi = i1 + py - i0
    bj = j1 + px - j0
    nbox = (z1 + pz - z0) * bi * bj
    for e in range(tid, nbox, nt):
        z = e // (bi * bj)
        rem = e - z * bi * bj
        i = rem // bj
        j = rem - i * bj + j0
        z += z0
        i += i0
        for g in range(n):
            qz, qi, qj = _unravel(idx[g], Hp, Wp)
            az = z - qz
            a = i - qi
            b = j - qj
            if az < 0 or az >= pz or a < 0 or a >= py or b < 0 or b >= px:
                continue
            v = (az * py + a) * px + b
            wgt[z, i, j] += 1.0
            for c in range(C):
                num[c, z, i, j] += X[c * pp + v, g]
    cuda.syncthreads()


@cuda.jit(**CUDA_JIT)
def _cells_kernel(noisy, guide, num, wgt, mask, zs, rows, cols, psz, rad, cell, lows, n_sim, cap, tau, step1, nlf,
                  tmat, beta, flat, vmap, use_map, pvalid, masked, cd, flags, idx, Y, G, X, M, Z, dvar, mean, gm,
                  pvar):
    """One block per cell of ``lows``: the cell's references in raster order (the CPU's ``_cell3``)."""
    b = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    # dynamic shared memory, (SHARED_HEAD + nt) 8-byte words (see shared_bytes): the two views alias, so
    # each takes its own words; int64 words 0-3 the counts, float64 words 4-7 the group's scalars, int64
    # words 8.. the compaction's scan.  Not static shared arrays: Numba's simulator allocates those on the
    # first call of each thread without a lock, and two threads can get different arrays (see the module's
    # Notes)
    dyn_i = cuda.shared.array(0, types.int64)
    dyn_f = cuda.shared.array(0, types.float64)
    shi = dyn_i[0:4]
    shf = dyn_f[4:SHARED_HEAD]
    scan = dyn_i[SHARED_HEAD : SHARED_HEAD + nt]
    lo0 = lows[b, 0]
    lo1 = lows[b, 1]
    lo2 = lows[b, 2]
    hi0 = lo0 + cell[0]
    hi1 = lo1 + cell[1]
    hi2 = lo2 + cell[2]
    pz = psz[0]
    py = psz[1]
    px = psz[2]
    for iz in range(zs.shape[0]):
        rz = zs[iz]
        if rz < lo0 or rz >= hi0:
            continue
        for ii in range(rows.shape[0]):
            ri = rows[ii]
            if ri < lo1 or ri >= hi1:
                continue
            for ij in range(cols.shape[0]):
                rj = cols[ij]
                if rj < lo2 or rj >= hi2:
                    continue
                cuda.syncthreads()  # the mask as the block's last group left it
                if mask[rz, ri, rj] or (masked and not pvalid[rz, ri, rj]):
                    continue
                _group(noisy, guide, num, wgt, mask, rz, ri, rj, pz, py, px, rad[0], rad[1], rad[2], n_sim, cap, tau,
                       step1, nlf, tmat, beta, flat, vmap, use_map, pvalid, masked, cd[b], flags[b], idx[b], Y[b], G[b],
                       X[b], M[b], Z[b], dvar[b], mean[b], gm[b], pvar[b], shi, shf, scan, tid, nt)
    if masked:
        # valid voxels no valid reference reached get groups of their own (the CPU's second loop)
        for rz in range(max(lo0, 0), min(hi0, mask.shape[0])):
            for ri in range(max(lo1, 0), min(hi1, mask.shape[1])):
                for rj in range(max(lo2, 0), min(hi2, mask.shape[2])):
                    cuda.syncthreads()
                    if mask[rz, ri, rj] or not pvalid[rz, ri, rj]:
                        continue
                    bare = False
                    for az in range(pz):
                        for a in range(py):
                            for bb in range(px):
                                if wgt[rz + az, ri + a, rj + bb] == 0:
                                    bare = True
                    if bare:
                        _group(noisy, guide, num, wgt, mask, rz, ri, rj, pz, py, px, rad[0], rad[1], rad[2], n_sim, cap,
                               tau, step1, nlf, tmat, beta, flat, vmap, use_map, pvalid, masked, cd[b], flags[b],
                               idx[b], Y[b], G[b], X[b], M[b], Z[b], dvar[b], mean[b], gm[b], pvar[b], shi, shf,
                               scan, tid, nt)


@cuda.jit(**CUDA_JIT)
def _finish_kernel(noisy, num, wgt, out):
    """``num / wgt`` where a group reached the pixel, the noisy value elsewhere (the CPU's last loop)."""
    C = noisy.shape[0]
    Zn = noisy.shape[1]
    H = noisy.shape[2]
    W = noisy.shape[3]
    n = Zn * H * W
    for e in range(cuda.grid(1), n, cuda.gridsize(1)):
        z = e // (H * W)
        r = e - z * H * W
        i = r // W
        j = r - i * W
        w = wgt[z, i, j]
        for c in range(C):
            if w > 0:
                out[c, z, i, j] = num[c, z, i, j] / w
            else:
                out[c, z, i, j] = noisy[c, z, i, j]


@cuda.jit(**CUDA_JIT)
def _zero_kernel(a):
    for e in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        a[e] = 0


def _threads():
    return min(THREADS_SIM if simulator_enabled() else THREADS, MAX_THREADS)


def _zeros(shape, dtype):
    a = cuda.device_array(shape, dtype)
    flat = a.reshape(-1)
    nthr = 32 if simulator_enabled() else 256
    blocks = max(1, min(2 if simulator_enabled() else 4096, -(-flat.shape[0] // nthr)))
    _zero_kernel[blocks, nthr](flat)
    return a


def cells_by_colour(npos, cell, origin):
    """Per colour (0-7, ``4 pz + 2 py + px``), the first positions (block coordinates) of its cells: ``(n, 3)`` int64.

    The cells of :func:`nlm.ops._bayes_volume.bayes_step3` that reach a
    block of ``npos`` patch positions per axis from ``origin``.
    """
    k0 = [int(origin[a]) // int(cell[a]) for a in range(3)]
    nk = [(int(origin[a]) + int(npos[a]) - 1) // int(cell[a]) + 1 - k0[a] for a in range(3)]
    out = []
    for colour in range(8):
        per_axis = []
        for a in range(3):
            par = (colour >> (2 - a)) & 1
            f = (par - k0[a]) % 2
            ks = np.arange(k0[a] + f, k0[a] + nk[a], 2, dtype=np.int64)
            per_axis.append(ks * int(cell[a]) - int(origin[a]))
        g = np.stack(np.meshgrid(*per_axis, indexing="ij"), axis=-1).reshape(-1, 3)
        out.append(np.ascontiguousarray(g, dtype=np.int64))
    return out


def bayes_step_cuda(noisy, guide, zs, rows, cols, psz, rad, n_sim, n_max, tau, step1, nlf, tmat, beta, flat, cell,
                    origin, vmap=None, pvalid=None):
    """One NL-Bayes step on the GPU: :func:`nlm.ops._bayes_volume.bayes_step3`'s arguments, device arrays.

    ``noisy``, ``guide``: ``(C, Z, H, W)`` float32 or float64 device arrays
    (the same dtype); ``vmap``: ``(Z, H, W)`` float64 device array of noise
    variances or None; ``pvalid``: the valid patches (bool device array) or
    None.  The grids, ``psz``, ``rad``, ``cell``, ``origin``: host int64
    arrays; ``nlf``, ``tmat``: host float64.  Returns a new device array of
    ``noisy``'s shape and dtype.
    """
    C, Zn, H, W = (int(n) for n in noisy.shape)
    psz = np.asarray(psz, dtype=np.int64)
    rad = np.asarray(rad, dtype=np.int64)
    cell = np.asarray(cell, dtype=np.int64)
    npos = (Zn - int(psz[0]) + 1, H - int(psz[1]) + 1, W - int(psz[2]) + 1)
    pp = int(np.prod(psz))
    D = C * pp
    cap = int(n_max) if not step1 else int(n_sim)
    dd = pp if step1 else D
    side = int(np.prod(2 * rad + 1))
    num = _zeros((C, Zn, H, W), np.float64)
    wgt = _zeros((Zn, H, W), np.float64)
    mask = _zeros(npos, np.bool_)
    use_map = vmap is not None
    masked = pvalid is not None
    vmap_d = vmap if use_map else cuda.to_device(np.zeros((1, 1, 1)))
    pvalid_d = pvalid if masked else cuda.to_device(np.ones((1, 1, 1), dtype=np.bool_))
    args_h = [cuda.to_device(np.ascontiguousarray(a, dtype=np.int64)) for a in (zs, rows, cols, psz, rad, cell)]
    nlf_d = cuda.to_device(np.ascontiguousarray(nlf, dtype=np.float64))
    tmat_d = cuda.to_device(np.ascontiguousarray(tmat, dtype=np.float64))
    colours = cells_by_colour(npos, cell, origin)
    nb = max(1, min(MAX_BLOCKS, max(len(c) for c in colours)))
    cd = cuda.device_array((nb, side), np.float64)
    flags = cuda.device_array((nb, side), np.int32)
    idx = cuda.device_array((nb, cap), np.int64)
    Y = cuda.device_array((nb, D, cap), np.float64)
    G = cuda.device_array((nb, D, cap), np.float64) if not step1 else cuda.device_array((nb, 1, 1), np.float64)
    X = cuda.device_array((nb, D, cap), np.float64)
    M = cuda.device_array((nb, dd, dd), np.float64)
    Zs = cuda.device_array((nb, dd, cap), np.float64)
    dvar = cuda.device_array((nb, D), np.float64)
    mean = cuda.device_array((nb, D), np.float64)
    gm = cuda.device_array((nb, D), np.float64)
    pvar = cuda.device_array((nb, pp), np.float64)
    nthr = _threads()
    tau = -1.0 if step1 else float(tau)
    for lows in colours:
        for s in range(0, len(lows), nb):
            part = cuda.to_device(lows[s : s + nb])
            _cells_kernel[part.shape[0], nthr, 0, shared_bytes(nthr)](
                noisy, guide, num, wgt, mask, *args_h[:3], *args_h[3:5], args_h[5], part, int(n_sim), cap, tau,
                bool(step1), nlf_d, tmat_d, float(beta), float(flat), vmap_d, use_map, pvalid_d, masked, cd, flags,
                idx, Y, G, X, M, Zs, dvar, mean, gm, pvar,
            )
    out = cuda.device_array((C, Zn, H, W), np.dtype(noisy.dtype))
    tpb = 32 if simulator_enabled() else 256
    blocks = max(1, min(2 if simulator_enabled() else 4096, -(-(Zn * H * W) // tpb)))
    _finish_kernel[blocks, tpb](noisy, num, wgt, out)
    return out


def all_finite(a):
    """Whether a device array holds only finite values (reduced on the device)."""
    from nlm.ops._cuda_nlm import device_minmax

    flat = a.reshape(1, 1, 1, -1)
    return device_minmax(flat)[2] == 0
