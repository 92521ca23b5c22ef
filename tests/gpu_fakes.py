"""Stand-ins for GPU arrays, shared by the GPU tests (``tests/test_gpu*.py``)."""


class FakeGpuArray:
    """An array "on the GPU" for the simulator: only ``__cuda_array_interface__`` (host memory)."""

    def __init__(self, a):
        self.a = a

    @property
    def __cuda_array_interface__(self):
        return {"shape": self.a.shape, "typestr": self.a.dtype.str, "data": (self.a.ctypes.data, False),
                "strides": self.a.strides, "version": 3}
