"""Non-local means of an image that lives on the GPU (private; ``device="cuda"`` with a GPU array).

Called by :func:`nlm.denoisers.means.denoise_nl_means`.  With Gaussian noise
and ``h`` given, the image never leaves the device: it is validated (shape,
float type, NaN/Inf and its range, reduced on the device), padded and
filtered by :mod:`nlm.ops._cuda_nlm`, and returned as the input's kind of
array.  The automatic parameters (``h=None``) and the other noise models
(their transforms are NumPy code) copy the image to the host, run the NumPy
front end with ``device="cuda"`` and bring the result back to the device.
"""

from __future__ import annotations

import numpy as np

from nlm._validate import UnsupportedDimensionError, _check_axis, _check_bool, _per_axis

__all__ = ["nl_means_gpu_array"]


def nl_means_gpu_array(front, check, image, *, patch_size, patch_distance, h, sigma, channel_axis, noise, mask,
                       fast_mode):
    """``front`` (the NumPy front end, :func:`denoise_nl_means`) for a GPU array ``image``.

    ``check(noise) -> name`` and ``check(patch_size, patch_distance, h, sigma) -> the four checked`` (with
    the Gaussian defaults): the front end's own checks, passed in (this module imports nothing of it).
    """
    from nlm.ops import _cuda_device as dev
    from nlm.ops._cuda_nlm import device_minmax, nl_means_cuda_device

    _check_bool(fast_mode, "fast_mode")
    shape, dtype = dev.gpu_array_info(image)
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(f"image: a GPU array must be float32 or float64, got {dtype}")
    if mask is not None or np.ndim(sigma) > 0:
        raise ValueError("image: a GPU array takes no mask or noise map (sigma array); pass NumPy arrays")
    name = check(noise)
    src = dev.to_device_view(image)
    if name != "gaussian" or h is None:
        # the transforms and the noise estimate are NumPy code: one copy each way
        host = src.copy_to_host()
        out = front(host, patch_size, patch_distance, h, fast_mode, sigma, channel_axis=channel_axis, noise=noise,
                    device="cuda")
        from numba import cuda

        return dev.like_input(cuda.to_device(np.ascontiguousarray(out)), image)
    ndim = len(shape)
    if channel_axis is None:
        nd, axis = ndim, None
    else:
        axis = _check_axis(channel_axis, ndim)
        nd = ndim - 1
    if nd < 1:
        raise UnsupportedDimensionError("image has no spatial axis")
    if nd > 3:
        raise UnsupportedDimensionError(f"device='cuda': 1 to 3 spatial axes, got {nd}")
    if 0 in shape:
        raise ValueError(f"image is empty (shape {shape})")
    patch_size, patch_distance, h, sigma = check(patch_size, patch_distance, h, sigma)
    # channel-last view (no copy): the channel axis moved by strides
    order = [a for a in range(ndim) if a != axis] + ([axis] if axis is not None else [])
    view = _transpose(src, order, axis is None)
    spatial = tuple(int(n) for n in view.shape[:nd])
    what = ", channels excluded" if axis is not None else ""
    sizes = _per_axis(patch_size, "patch_size", spatial, what)
    radii = _per_axis(patch_distance, "patch_distance", spatial, what)
    from nlm.ops._cuda_nlm import _view4

    lo, hi, bad = device_minmax(_view4(view, nd))
    if bad:
        raise ValueError("image contains NaN or Inf values")
    out = nl_means_cuda_device(view, sizes, radii, h, sigma, nd, lo, hi)  # (C, Z, Y, X)
    C = out.shape[0]
    res = out.reshape((C,) + spatial)
    # back to the input's axis order: (C, *spatial) -> channel axis where it was
    if axis is None:
        res = res.reshape(spatial)
    else:
        perm = list(range(1, nd + 1))
        perm.insert(axis, 0)
        res = _transpose(res, perm, False)
    return dev.like_input(res, image)


def _transpose(a, order, add_channel):
    """A strided view of device array ``a`` with axes permuted (and a trailing length-1 channel axis)."""
    from nlm.ops._cuda_device import simulator_enabled

    shape = tuple(int(a.shape[i]) for i in order)
    strides = tuple(int(a.strides[i]) for i in order)
    if add_channel:
        shape, strides = shape + (1,), strides + (int(np.dtype(a.dtype).itemsize),)
    if shape == tuple(int(n) for n in a.shape) and strides == tuple(int(s) for s in a.strides):
        return a
    if simulator_enabled():
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        host = a._ary if isinstance(a, FakeCUDAArray) else np.asarray(a)
        return FakeCUDAArray(np.lib.stride_tricks.as_strided(host, shape, strides))
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(shape, strides, a.dtype, stream=0, gpu_data=a.gpu_data)
