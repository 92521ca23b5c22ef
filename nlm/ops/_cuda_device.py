"""Choosing the device and moving arrays to and from it (private; the GPU backend).

The GPU kernels (:mod:`nlm.ops._cuda_nlm`) are
written with ``numba-cuda``, the CUDA target of Numba (the ``gpu`` extra).
Nothing here imports ``numba.cuda`` at module level: importing :mod:`nlm` and
the CPU path never loads it.

Devices
-------
``"cpu"`` (the default of every filter) runs the Numba CPU kernels.
``"cuda"`` runs the GPU kernels on the current CUDA device; it raises
:class:`DeviceUnavailableError` when ``numba-cuda`` is not installed or no
GPU / driver is found.  ``"auto"`` is ``"cuda"`` when a device is there (or
the image already lives on the GPU), else ``"cpu"``, and says which it chose
in a ``logging`` record of the ``"nlm"`` logger (``nlm denoise --verbose``
prints it).

Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` in the environment
*before* Numba is imported) counts as a device: the kernels then run in
Python on the CPU, very slowly (tiny images only).  The test suite uses it
(``tests/conftest.py``) so that the GPU code is tested on every machine.

Arrays on the GPU
-----------------
Anything with ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors,
Numba device arrays) is wrapped with ``numba.cuda.as_cuda_array``, without a
copy; an object with only DLPack (``__dlpack__`` on a CUDA device) goes
through CuPy's ``from_dlpack`` (CuPy needed).  Results come back as the
input's kind: a CuPy array for CuPy (and DLPack) input, a tensor for
PyTorch, a Numba device array otherwise.
"""

from __future__ import annotations

import importlib.util
import logging
import os

__all__ = [
    "DEVICES",
    "DeviceUnavailableError",
    "resolve_device",
    "is_gpu_array",
    "cuda_status",
    "simulator_enabled",
]

logger = logging.getLogger("nlm")

#: the values of every ``device=`` argument
DEVICES = ("cpu", "cuda", "auto")

# DLPack device types of CUDA memory (kDLCUDA, kDLCUDAHost, kDLCUDAManaged)
_DLPACK_CUDA = (2, 3, 13)


class DeviceUnavailableError(RuntimeError):
    """``device="cuda"`` was asked for and no usable CUDA device (or ``numba-cuda``) is there."""


def simulator_enabled() -> bool:
    """True when Numba's CUDA simulator is switched on (``NUMBA_ENABLE_CUDASIM=1``)."""
    value = os.environ.get("NUMBA_ENABLE_CUDASIM", "0").strip()
    try:
        return int(value) != 0
    except ValueError:
        return False


_STATUS: tuple[bool, str] | None = None


def cuda_status() -> tuple[bool, str]:
    """``(available, why)``: whether the GPU kernels can run here, and if not why not.

    Cached after the first call (driver initialisation is not repeated).
    """
    global _STATUS
    if _STATUS is not None:
        return _STATUS
    if importlib.util.find_spec("numba_cuda") is None:
        _STATUS = (False, "numba-cuda is not installed (pip install 'nlm[gpu]')")
        return _STATUS
    try:
        from numba import cuda
    except Exception as exc:  # noqa: BLE001 - a broken install is "not available", with its reason
        _STATUS = (False, f"numba-cuda cannot be imported: {exc}")
        return _STATUS
    try:
        ok = bool(cuda.is_available())
    except Exception as exc:  # noqa: BLE001
        ok, why = False, str(exc)
    else:
        why = "" if ok else "no CUDA GPU or driver was found"
    if not ok and not why:
        why = "no CUDA GPU or driver was found"
    if ok:
        why = "Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1)" if simulator_enabled() else "CUDA device"
    elif simulator_enabled():
        why += "; note: NUMBA_ENABLE_CUDASIM must be set before Numba is imported"
    _STATUS = (ok, why)
    return _STATUS


def is_gpu_array(obj: object) -> bool:
    """True for an array that lives on a CUDA device (``__cuda_array_interface__`` or CUDA DLPack)."""
    if hasattr(obj, "__cuda_array_interface__"):
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is None or not hasattr(obj, "__dlpack__"):
        return False
    try:
        return int(dev()[0]) in _DLPACK_CUDA
    except Exception:  # noqa: BLE001 - not a DLPack device we know
        return False


def resolve_device(device: object, image: object = None, what: str = "device") -> str:
    """Check a ``device=`` argument and return ``"cpu"`` or ``"cuda"``.

    Parameters
    ----------
    device : {"cpu", "cuda", "auto"}
    image : the filter's input; a GPU array makes ``"auto"`` choose ``"cuda"``
        and refuses ``"cpu"`` (the CPU filter cannot read GPU memory).
    what : the parameter's name in messages.

    Raises
    ------
    TypeError
        ``device`` not a string.
    ValueError
        Unknown ``device``; a GPU array with ``device="cpu"``.
    DeviceUnavailableError
        ``"cuda"`` (or a GPU array) without a usable device.
    """
    if not isinstance(device, str):
        raise TypeError(f"{what} must be one of {DEVICES}, got {type(device).__name__}")
    if device not in DEVICES:
        raise ValueError(f"{what} must be one of {DEVICES}, got {device!r}")
    on_gpu = image is not None and is_gpu_array(image)
    if device == "cpu":
        if on_gpu:
            raise ValueError(
                f"image is a GPU array ({type(image).__name__}): pass {what}='cuda' or 'auto', or copy it to the "
                f"host first"
            )
        return "cpu"
    ok, why = cuda_status()
    if device == "cuda" or on_gpu:
        if not ok:
            raise DeviceUnavailableError(f"{what}='cuda' was asked for but the GPU backend cannot run: {why}")
        if device == "auto":
            logger.info("device='auto': the image is on the GPU; running on the GPU (%s)", why)
        return "cuda"
    if ok:
        logger.info("device='auto': running on the GPU (%s)", why)
        return "cuda"
    logger.info("device='auto': no GPU backend (%s); running on the CPU", why)
    return "cpu"


# --------------------------------------------------------------------------
# arrays in and out
# --------------------------------------------------------------------------


def to_device_view(obj):
    """A Numba device array viewing the GPU memory of ``obj`` (no copy).

    Under the simulator, "device memory" is host memory: the interface's
    pointer is viewed as a NumPy array (still no copy).
    """
    from numba import cuda

    if not hasattr(obj, "__cuda_array_interface__"):
        if importlib.util.find_spec("cupy") is None:
            raise TypeError(
                f"image ({type(obj).__name__}) is a DLPack GPU array without __cuda_array_interface__: "
                f"install CuPy to read it, or pass a CuPy array / PyTorch tensor"
            )
        import cupy

        obj = cupy.from_dlpack(obj)
    if simulator_enabled():
        import numpy as np
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        desc = dict(obj.__cuda_array_interface__)

        class _Host:
            __array_interface__ = {
                "shape": tuple(desc["shape"]), "typestr": desc["typestr"], "data": tuple(desc["data"]),
                "strides": desc.get("strides"), "version": 3,
            }
            owner = obj

        return FakeCUDAArray(np.asarray(_Host()))
    return cuda.as_cuda_array(obj)


def like_input(dev, original):
    """The device array ``dev`` as the kind of GPU array ``original`` was (no copy)."""
    mod = type(original).__module__.split(".")[0]
    if mod == "torch":
        import torch

        return torch.as_tensor(dev, device=original.device)
    if mod == "cupy" or not hasattr(original, "__cuda_array_interface__"):
        if importlib.util.find_spec("cupy") is not None and not simulator_enabled():
            import cupy

            return cupy.asarray(dev)
    return dev


def gpu_array_info(obj):
    """``(shape, dtype)`` of a GPU array without touching its data."""
    import numpy as np

    if hasattr(obj, "__cuda_array_interface__"):
        desc = obj.__cuda_array_interface__
        return tuple(desc["shape"]), np.dtype(desc["typestr"])
    return tuple(obj.shape), np.dtype(str(obj.dtype).replace("torch.", ""))
