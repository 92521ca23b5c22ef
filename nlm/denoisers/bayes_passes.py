"""NL-Bayes's passes: the compiled steps run on a channel-first block, and the margins that make a block exact.

:func:`run_passes` (2-D) and :func:`run_volume_passes` (3-D) run step 1,
step 2 and the optional third pass of the kernels (:mod:`nlm.ops._bayes_kernels`,
:mod:`nlm.ops._bayes_volume`) on the dict of :mod:`nlm.denoisers.bayes_setup`;
:func:`tile_margin` and :func:`volume_margin` are the margins within which
a block of an image (:mod:`nlm.tiling`) gets the whole image's values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from nlm._config import threads as _threads

if TYPE_CHECKING:
    from typing import Any

from nlm.denoisers.bayes_setup import _grid_in, _level_table, _uniform_interp

#: numbers of spatial axes that nlm.tiling tiles exactly: run_passes and
#: tile_margin (2-D), run_volume_passes and volume_margin (3-D)
TILED_DIMS = (2, 3)


def _mix(tmat, xc, dtype=np.float64):
    """``tmat @ xc`` over the channels, pixel by pixel in a fixed order, in ``dtype``.

    Elementwise products and sums in float64, not BLAS: a pixel's rounding
    never depends on its place in the array, so a tile gets the whole
    image's values.  A channel at a time (each rounded once to ``dtype``),
    so the float64 temporaries are one channel's.  One channel and the
    identity: ``xc`` itself (contiguous) when it is already in ``dtype``,
    as the float64 sum would give it.
    """
    C = xc.shape[0]
    if C == 1 and tmat[0, 0] == 1.0:
        return np.ascontiguousarray(xc, dtype=dtype)
    out = np.empty(xc.shape, dtype=dtype)
    for c in range(C):
        acc = float(tmat[c, 0]) * xc[0].astype(np.float64)
        for j in range(1, C):
            acc += float(tmat[c, j]) * xc[j].astype(np.float64)
        out[c] = acc
    return out


def _band(radius, p):
    """Side (in reference positions) of the kernel's cells (:func:`nlm.ops._bayes_kernels.bayes_step`)."""
    return max(2 * radius + p, 8)


def tile_margin(prm):
    """Margins ``(rows, columns)`` (pixels per side) that make a tile of :func:`run_passes` exact.

    The kernel visits cells of ``B x B`` reference positions (``B``:
    :func:`_band`) in four colours (:func:`nlm.ops._bayes_kernels.bayes_step`).
    Per pass, the kept pixels receive groups of references up to ``r + p -
    1`` away, in cells reaching ``B - 1`` further, whose skipped positions
    depend on the cells of earlier colours around them: at most one cell
    further along the rows and three along the columns; the last of these
    reads ``r`` positions (and a patch) beyond its cell.  So per pass ``2 B
    + 2 r + p - 2`` rows and ``4 B + 2 r + p - 2`` columns.  Each pass reads
    the previous one's estimate: the passes' margins add up, the NL-Ridge
    pass's (with its own patch and radius) included.  ``prm``: the dict of
    :func:`nlm.denoisers.bayes_setup._parameters`.
    """
    r = prm["radius"]
    r2, r3 = prm.get("radius2", r), prm.get("radius3", r)
    steps = [(prm["p1"], r), (prm["p2"], r2)] + [(prm.get("p3", prm["p2"]), r3)] * (prm["passes"] - 2)
    if prm.get("ridge", 0.0) > 0:
        steps.append((prm["ridge_patch"], prm["ridge_radius"]))  # the NL-Ridge pass: the same cells
    rows = sum(2 * _band(q, p) + 2 * q + p - 2 for p, q in steps)
    cols = sum(4 * _band(q, p) + 2 * q + p - 2 for p, q in steps)
    return rows, cols


def run_passes(xc, prm, stride, num_threads, origin=None, shape=None, sigma_map=None, mask=None, device="cpu"):
    """The passes of :func:`nlm.denoisers.bayes.denoise_nl_bayes` on a channel-first float block; channel-first result.

    ``xc``: already scaled by ``prm["exponent"]`` (:func:`nlm.denoisers.bayes_setup._parameters`).
    ``origin``, ``shape``: the position of the block's first pixel in the
    image and the image's spatial shape, for a tile (:mod:`nlm.tiling`); the
    reference grid and the kernel's cells are the image's, so
    the pixels at least :func:`tile_margin` inside the block (or at the
    image's border) are those of the whole image, bit for bit.  None: the
    block is the image.  ``sigma_map``, ``mask``: the block's noise std map
    (image units) and validity mask, or None (see :func:`nlm.denoisers.bayes.denoise_nl_bayes`).
    ``device``: ``"cpu"`` or ``"cuda"`` (the steps on the GPU,
    :mod:`nlm.ops._cuda_bayes`, the image as a volume of one slice; the
    setup and :func:`_finish` stay here).
    """
    e = prm["exponent"]
    if prm["identity"]:
        # no noise to remove (see Notes): the input, in the output dtype
        return np.array(np.ldexp(xc, -e) if e else xc, dtype=xc.dtype)
    model, tmat, p1, p2, n1, n2 = prm["model"], prm["tmat"], prm["p1"], prm["p2"], prm["n1"], prm["n2"]
    radius, beta, n_max, tau, flat = prm["radius"], prm["beta"], prm["n_max"], prm["tau"], prm["flat"]
    C, H, W = xc.shape
    oy, ox = (0, 0) if origin is None else (int(origin[0]), int(origin[1]))
    Hg, Wg = (H, W) if shape is None else (int(shape[0]), int(shape[1]))
    dtype = xc.dtype

    work = _mix(tmat, xc, dtype)  # xc itself for one channel (the kernels never write it)
    nlf, unbias = _level_table(model, prm["lo"], prm["hi"])
    from nlm.ops._bayes_kernels import bayes_step

    # noise map (variances, working units) and valid patches; empty: none
    vmap = np.empty((0, 0)) if sigma_map is None else np.ascontiguousarray((sigma_map * 2.0**e) ** 2)
    valid1 = _valid_patches(mask, p1)
    valid2 = valid1 if p2 == p1 else _valid_patches(mask, p2)
    s2 = stride + prm.get("stride_add", 0)  # step 2 and pass 3 (see bayes_parameters)
    rows1, cols1 = _grid_in(Hg, p1, stride, oy, H), _grid_in(Wg, p1, stride, ox, W)
    rows2, cols2 = _grid_in(Hg, p2, s2, oy, H), _grid_in(Wg, p2, s2, ox, W)
    alpha = float(prm.get("ridge", 0.0))

    def ridge(work, est):
        # the NL-Ridge pass with ``est`` as its guide, mixed into ``est`` (see denoise_nl_bayes, Notes)
        from nlm.ops._ridge_kernels import ridge_step

        _check_finite(est, f"pass {prm['ridge_at']}", model)
        pr, rr = prm["ridge_patch"], prm["ridge_radius"]
        valid = _valid_patches(mask, pr)
        rows, cols = _grid_in(Hg, pr, stride, oy, H), _grid_in(Wg, pr, stride, ox, W)
        lin = ridge_step(work, est, rows, cols, pr, rr, prm["ridge_n"], True, nlf, tmat, 0.0, True, _band(rr, pr),
                         vmap, valid, oy, ox)
        return ((1.0 - alpha) * est.astype(np.float64) + alpha * lin).astype(dtype, copy=False)

    if device == "cuda":
        # the CPU's passes step for step on the GPU (a volume of one slice); the NL-Ridge pass, which has
        # no GPU kernel yet, runs here on the host between two device steps (one copy each way)
        zero = np.zeros(1, dtype=np.int64)
        as3 = (lambda v: None if v.size == 0 else v[None])  # noqa: E731 - (H, W) -> (1, H, W); empty: none
        radius2, radius3, p3 = prm.get("radius2", radius), prm.get("radius3", radius), prm.get("p3", p2)
        v1 = as3(valid1)
        v2 = v1 if valid2 is valid1 else as3(valid2)

        def spec(rows, cols, p, r, valid, *args):
            return (zero, rows, cols), (1, p, p), (0, r, r), (8, _band(r, p), _band(r, p)), valid, args

        steps = [spec(rows1, cols1, p1, radius, v1, n1, n1, 0.0, True, beta[0], flat[0]),
                 spec(rows2, cols2, p2, radius2, v2, n2, n_max, tau, False, beta[1], flat[1])]
        if prm["passes"] == 3:
            if p3 != p2:
                v2 = as3(_valid_patches(mask, p3))
                rows2, cols2 = _grid_in(Hg, p3, s2, oy, H), _grid_in(Wg, p3, s2, ox, W)
            steps.append(spec(rows2, cols2, p3, radius3, v2, n2, prm["n_max3"], prm["tau3"], False, beta[1], flat[1]))
        after = None
        if alpha > 0:
            def after(k, est, work=work):
                if k != prm["ridge_at"]:
                    return None
                with _threads(num_threads):
                    return ridge(work, est[:, 0])[:, None]

        final = _device_passes(work[:, None], prm, nlf, as3(vmap), steps, origin=(0, oy, ox), after=after)[:, 0]
        del work
        return _keep_zeros(_finish(final, prm, unbias, dtype), xc, prm)
    with _threads(num_threads):
        basic = bayes_step(work, work, rows1, cols1, p1, radius, n1, n1, 0.0, True, nlf, tmat, float(beta[0]),
                           float(flat[0]), _band(radius, p1), vmap, valid1, oy, ox)
        _check_finite(basic, "step 1", model)
        radius2, radius3 = prm.get("radius2", radius), prm.get("radius3", radius)  # volumes: none
        band2 = _band(radius2, p2)
        final = bayes_step(work, basic, rows2, cols2, p2, radius2, n2, n_max, tau, False, nlf, tmat,
                           float(beta[1]), float(flat[1]), band2, vmap, valid2, oy, ox)
        if alpha > 0 and prm["ridge_at"] == 2:
            final = ridge(work, final)
        if prm["passes"] == 3:
            _check_finite(final, "step 2", model)
            del basic
            basic = final
            p3 = prm.get("p3", p2)
            if p3 != p2:
                valid2 = _valid_patches(mask, p3)
                rows2, cols2 = _grid_in(Hg, p3, s2, oy, H), _grid_in(Wg, p3, s2, ox, W)
            band2 = _band(radius3, p3)
            final = bayes_step(work, basic, rows2, cols2, p3, radius3, n2, prm["n_max3"], prm["tau3"], False, nlf,
                               tmat, float(beta[1]), float(flat[1]), band2, vmap, valid2, oy, ox)
            if alpha > 0 and prm["ridge_at"] == 3:
                final = ridge(work, final)
    del basic, work
    return _keep_zeros(_finish(final, prm, unbias, dtype), xc, prm)


def _finish(final, prm, unbias, dtype, chunk=1 << 16):
    """The last pass's channel-first estimate -> the caller's channels and scale, in ``dtype``.

    Back from the decorrelated channels; on clipped data, the inverse of the
    clipped mean (the groups estimate the mean of the clipped observation,
    pulled inside the bounds near them); unscaled by ``prm["exponent"]``.
    Elementwise, ``chunk`` pixels at a time (float64 temporaries of a chunk,
    not of the image; the values of one whole-image pass).  One channel,
    unclipped and unscaled: ``final`` itself (``dtype`` through float64 and back is exact).
    """
    tmat, e = prm["tmat"], prm["exponent"]
    C = final.shape[0]
    if C == 1 and tmat[0, 0] == 1.0 and unbias is None and not e and final.dtype == dtype:
        _check_finite(final, "the last step", prm["model"])
        return final
    out = np.empty(final.shape, dtype=dtype)
    src, dst = final.reshape(C, -1), out.reshape(C, -1)
    for s in range(0, src.shape[1], chunk):
        part = _mix(tmat.T, src[:, s : s + chunk])
        if unbias is not None:
            part = _uniform_interp(part, unbias)
        _check_finite(part, "the last step", prm["model"])
        if e:
            part = np.ldexp(part, -e)
        dst[:, s : s + chunk] = part
    return out


def _keep_zeros(out, xc, prm):
    """SAR gamma speckle: the exact zeros of the data stay exact zeros of the result (``out``, modified).

    ``y = x s`` with ``s ~ Gamma(L, 1/L) > 0``, so ``y = 0`` exactly where
    ``x = 0``: such a value is known, not noisy, and the groups that mix it
    with its non-zero neighbours must not lift it.  Per channel and pixel,
    so tiles get the whole image's values.  Other models: ``out`` as it is.
    """
    if prm["model"].name == "gamma":
        out[xc == 0] = 0
    return out


def _device_passes(work, prm, nlf, vmap, steps, *, origin, after=None):
    """The passes of :func:`run_passes` / :func:`run_volume_passes` on the GPU; the channel-first host result.

    ``work``: the ``(C, Z, H, W)`` working image (host), copied to the device
    once; each step's estimate stays there as the next one's guide, and only
    the last comes back.  ``vmap``: the ``(Z, H, W)`` host noise map or None.
    ``steps``: per step ``(grid, patch, radius, cell, valid, args)``: the
    grids ``(zs, rows, cols)``, the patch sides, the window radii and the cell
    sides (three each), the ``(Z, H, W)`` host valid patches or None, and
    ``(n, n_max, tau, step1, beta, flat)``.  ``after(k, est)``: called with
    the host copy of step ``k``'s estimate (1-based) when not None; a host
    array it returns replaces the estimate (the NL-Ridge pass), None keeps it.
    """
    from numba import cuda

    from nlm.ops._cuda_bayes import all_finite, bayes_step_cuda

    model, tmat = prm["model"], prm["tmat"]
    dev = cuda.to_device(np.ascontiguousarray(work))
    vm = None if vmap is None else cuda.to_device(np.ascontiguousarray(vmap, dtype=np.float64))
    origin = np.asarray(origin, dtype=np.int64)
    valid_dev = {}  # one device copy per distinct host mask
    guide = dev
    for k, (grid, patch, rad, cell, valid, (n, n_max, tau, step1, beta, flat)) in enumerate(steps, start=1):
        if valid is not None and id(valid) not in valid_dev:
            valid_dev[id(valid)] = cuda.to_device(np.ascontiguousarray(valid))
        est = bayes_step_cuda(dev, guide, *grid, np.asarray(patch, dtype=np.int64), np.asarray(rad, dtype=np.int64),
                              n, n_max, tau, step1, nlf, tmat, float(beta), float(flat),
                              np.asarray(cell, dtype=np.int64), origin, vm,
                              None if valid is None else valid_dev[id(valid)])
        if after is not None:
            mixed = after(k, est.copy_to_host())
            if mixed is not None:
                est = cuda.to_device(np.ascontiguousarray(mixed))
        if k < len(steps) and not all_finite(est):
            _nonfinite(f"step {k}", model)
        guide = est
    return guide.copy_to_host()


def _valid_patches(mask, p, ndim=2):
    """The patches (first corners) without a masked pixel: bool of ``n_a - p_a + 1`` per axis.

    ``p``: the patch side (an int: every axis) or one per axis; ``mask``: bool
    of ``ndim`` axes (True = valid), or None: an empty array of ``ndim`` axes
    (the kernels' "no mask").  A summed-area table of the masked pixels, so
    ``O(N)`` whatever the patch.
    """
    if mask is None:
        return np.empty((0,) * ndim, dtype=bool)
    nd = mask.ndim
    ps = (int(p),) * nd if np.ndim(p) == 0 else tuple(int(q) for q in p)
    it = np.int32 if mask.size < 2**31 else np.int64  # the counts fit: half the memory of int64
    bad = (~mask).astype(it)
    for a in range(nd):
        bad = bad.cumsum(a, dtype=it)
    bad = np.pad(bad, [(1, 0)] * nd)
    box = np.zeros(tuple(n - q + 1 for n, q in zip(mask.shape, ps)), dtype=it)
    # inclusion-exclusion over the 2^nd corners of every box
    for corner in np.ndindex(*(2,) * nd):
        sl = tuple(slice(q, None) if c else slice(None, n + 1 - q) for c, q, n in zip(corner, ps, mask.shape))
        sign = (-1) ** (nd - sum(corner))
        box += sign * bad[sl]
    return np.ascontiguousarray(box == 0)


def _restore(out, given, mask, nodata, axis):
    """Channel-first ``out`` -> the caller's layout, masked pixels as given (and their NaN/Inf)."""
    if mask is not None:
        out[:, ~mask] = given[:, ~mask]
    out = out[0] if axis is None else np.moveaxis(out, 0, axis)
    if nodata is not None:
        out[nodata[0]] = nodata[1].astype(out.dtype)
    return out


def _check_finite(a, where, model):
    """A last guard: non-finite values must never reach the next kernel (its search would index garbage)."""
    if not np.isfinite(a).all():
        _nonfinite(where, model)


def _nonfinite(where, model):
    """The error of :func:`_check_finite` (the GPU passes reduce the check on the device)."""
    raise FloatingPointError(
        f"NL-Bayes produced NaN or infinite values in {where} with the noise model {model!r}; this is a bug "
        "in nlm, please report it with the image's shape, dtype and range"
    )


def _cells3(rad, p):
    """Cell sides (in reference positions) of :func:`nlm.ops._bayes_volume.bayes_step3`, per axis."""
    return np.array([max(2 * int(r) + int(q), 8) for r, q in zip(rad, p)], dtype=np.int64)


def volume_margin(prm: dict[str, Any]) -> tuple[int, int, int]:
    """Margins (voxels per side, per axis) that make a block of :func:`run_volume_passes` exact.

    Per pass, a kept voxel receives groups of references up to ``r + p - 1``
    away, in cells reaching ``B - 1`` further, whose skipped positions
    depend on the cells of earlier colours around them: chains of at most 1
    / 3 / 7 cells along the first / second / third axis (colour ``4 pz + 2 py
    + px``); the last of these reads ``r`` positions and a patch beyond its
    cell.  So per pass ``(k + 1) B + 2 r + p - 2`` with ``k`` = 1, 3, 7; the
    passes' margins add up.  ``prm``: the dict of :func:`nlm.denoisers.bayes_setup._volume_parameters`.
    """
    rad = prm["radius"]
    ps = [prm["p1"]] + [prm["p2"]] * (prm["passes"] - 1)
    out = []
    for a, k in enumerate((1, 3, 7)):
        out.append(sum((k + 1) * _cells3(rad, p)[a] + 2 * rad[a] + p[a] - 2 for p in ps))
    return tuple(int(m) for m in out)


def run_volume_passes(xc, prm, stride, num_threads, origin=None, shape=None, sigma_map=None, mask=None,
                      device="cpu"):
    """The passes of :func:`nlm.denoisers.bayes.denoise_nl_bayes` on a channel-first float volume or block of one.

    ``xc``: ``(C, Z, H, W)``, already scaled by ``prm["exponent"]``
    (:func:`nlm.denoisers.bayes_setup._volume_parameters`).  ``origin``, ``shape``: the position of the
    block's first voxel in the volume and the volume's spatial shape; the
    reference grid and the kernel's cells are the volume's, so the voxels at
    least :func:`volume_margin` inside the block (or at the volume's border)
    are those of the whole volume, bit for bit.  None: the block is the
    volume.  ``sigma_map``, ``mask``: the block's noise std map (image
    units) and validity mask (spatial shape), or None (see
    :func:`nlm.denoisers.bayes.denoise_nl_bayes`).  Returns the
    channel-first result in ``xc``'s dtype (unscaled).  ``device``:
    ``"cpu"`` or ``"cuda"`` (the steps on the GPU, :mod:`nlm.ops._cuda_bayes`).
    """
    e = prm["exponent"]
    if prm["identity"]:
        return np.array(np.ldexp(xc, -e) if e else xc, dtype=xc.dtype)
    model, tmat, beta, flat = prm["model"], prm["tmat"], prm["beta"], prm["flat"]
    block = xc.shape[1:]
    origin = (0, 0, 0) if origin is None else tuple(int(o) for o in origin)
    shape = block if shape is None else tuple(int(n) for n in shape)
    rad = np.array(prm["radius"], dtype=np.int64)
    p1 = np.array(prm["p1"], dtype=np.int64)
    p2 = np.array(prm["p2"], dtype=np.int64)
    dtype = xc.dtype
    work = _mix(tmat, xc, dtype)  # xc itself for one channel (the kernels never write it)
    nlf, unbias = _level_table(model, prm["lo"], prm["hi"])
    o = np.array(origin, dtype=np.int64)
    # noise map (variances, working units) and valid patches; empty: none
    vmap = np.empty((0, 0, 0)) if sigma_map is None else np.ascontiguousarray((sigma_map * 2.0**e) ** 2)
    valid1 = _valid_patches(mask, p1, 3)
    valid2 = valid1 if (p2 == p1).all() else _valid_patches(mask, p2, 3)

    def grids(p):
        return [_grid_in(shape[a], int(p[a]), stride, origin[a], block[a]) for a in range(3)]

    if device == "cuda":
        v1 = None if valid1.size == 0 else valid1
        v2 = None if valid2.size == 0 else valid2
        steps = [(grids(p1), p1, rad, _cells3(rad, p1), v1, (prm["n1"], prm["n1"], 0.0, True, beta[0], flat[0])),
                 (grids(p2), p2, rad, _cells3(rad, p2), v2,
                  (prm["n2"], prm["n_max"], prm["tau"], False, beta[1], flat[1]))]
        if prm["passes"] == 3:
            steps.append((grids(p2), p2, rad, _cells3(rad, p2), v2,
                          (prm["n2"], prm["n_max3"], prm["tau3"], False, beta[1], flat[1])))
        final = _device_passes(work, prm, nlf, None if vmap.size == 0 else vmap, steps, origin=o)
        del work
        return _keep_zeros(_finish(final, prm, unbias, dtype), xc, prm)
    from nlm.ops._bayes_volume import bayes_step3

    with _threads(num_threads):
        basic = bayes_step3(work, work, *grids(p1), p1, rad, prm["n1"], prm["n1"], 0.0, True, nlf, tmat,
                            float(beta[0]), float(flat[0]), _cells3(rad, p1), o, vmap, valid1)
        _check_finite(basic, "step 1", model)
        g2, c2 = grids(p2), _cells3(rad, p2)
        final = bayes_step3(work, basic, *g2, p2, rad, prm["n2"], prm["n_max"], prm["tau"], False, nlf, tmat,
                            float(beta[1]), float(flat[1]), c2, o, vmap, valid2)
        if prm["passes"] == 3:
            _check_finite(final, "step 2", model)
            del basic
            basic = final
            final = bayes_step3(work, basic, *g2, p2, rad, prm["n2"], prm["n_max3"], prm["tau3"], False, nlf,
                                tmat, float(beta[1]), float(flat[1]), c2, o, vmap, valid2)
    del basic, work
    return _keep_zeros(_finish(final, prm, unbias, dtype), xc, prm)
