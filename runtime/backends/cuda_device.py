"""CUDA for the TensorRT backend: the device's compute capability, device buffers, pinned host buffers, a stream.

Imported only when TensorRT engines are opened. The calls go through ``cuda_bindings.binding()``: cuda-python
when it is installed, pycuda otherwise; every failed call is one ``DeviceError`` line.
"""

from __future__ import annotations

import ctypes

import numpy as np

from nvila_edge.errors import UnsupportedError
from nvila_edge.runtime.backends.cuda_bindings import binding


def device_capability() -> tuple[int, int] | None:
    """Compute capability of GPU 0, or None when there is no usable CUDA device (no GPU, no driver)."""
    return binding().capability()


def require_device() -> tuple[int, int]:
    capability = device_capability()
    if capability is None:
        raise UnsupportedError("no CUDA device is usable here (no GPU or no NVIDIA driver); TensorRT engines run on "
                               "the GPU they were built for, so run this on that device, or build with "
                               "--backend onnxruntime")
    return capability


class DeviceBuffer:
    """Device memory that only grows; ``ptr`` is 256-byte aligned (cudaMalloc), as TensorRT requires."""

    def __init__(self, nbytes: int = 0):
        self.cuda, self.ptr, self.nbytes = binding(), 0, 0
        self.reserve(nbytes)

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.nbytes or not self.ptr:
            self.close()
            self.ptr = self.cuda.malloc(max(nbytes, 1))
            self.nbytes = max(nbytes, 1)
        return self.ptr

    def close(self) -> None:
        if self.ptr:
            ptr, self.ptr, self.nbytes = self.ptr, 0, 0
            self.cuda.free(ptr)


class PinnedBuffer:
    """Page-locked host memory (fast, asynchronous copies) viewed as numpy arrays."""

    def __init__(self, nbytes: int = 0):
        self.cuda, self.ptr, self.nbytes = binding(), 0, 0
        self.reserve(nbytes)

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.nbytes or not self.ptr:
            self.close()
            self.ptr = self.cuda.malloc_host(max(nbytes, 1))
            self.nbytes = max(nbytes, 1)
        return self.ptr

    def view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        self.reserve(count * dtype.itemsize)
        raw = (ctypes.c_char * self.nbytes).from_address(self.ptr)
        return np.frombuffer(raw, dtype=np.uint8, count=count * dtype.itemsize).view(dtype).reshape(shape)

    def close(self) -> None:
        if self.ptr:
            ptr, self.ptr, self.nbytes = self.ptr, 0, 0
            self.cuda.free_host(ptr)


class Stream:
    def __init__(self):
        self.cuda = binding()
        self.handle = self.cuda.create_stream()

    @property
    def address(self) -> int:
        return self.cuda.stream_address(self.handle)

    def upload(self, device_ptr: int, host: np.ndarray) -> None:
        """Asynchronous host -> device copy; ``host`` must stay alive (pinned) until ``synchronize``."""
        if host.nbytes:
            self.cuda.upload(device_ptr, host, self.handle)

    def download(self, host: np.ndarray, device_ptr: int) -> None:
        if host.nbytes:
            self.cuda.download(host, device_ptr, self.handle)

    def synchronize(self) -> None:
        self.cuda.synchronize(self.handle)

    def close(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            self.cuda.destroy_stream(handle)
