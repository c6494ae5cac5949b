"""CUDA through cuda-python: the device's compute capability, device buffers, pinned host buffers, a stream.

Imported only when TensorRT engines are opened. Every cuda-python call returns ``(error, *values)``; ``_call``
turns a non-success code into one ``UnsupportedError`` line.
"""

from __future__ import annotations

import ctypes

import numpy as np

from nvila_edge.errors import UnsupportedError


def _cudart():
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python before the 12.6 package split
        except ImportError:
            raise UnsupportedError("cuda-python is not installed; pip install 'nvila-edge[jetson]' "
                                   "(cuda-python matching the CUDA major version)") from None
    return runtime


def _call(result, what: str):
    cudart = _cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        raise UnsupportedError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
    return values[0] if len(values) == 1 else tuple(values)


def device_capability() -> tuple[int, int] | None:
    """Compute capability of GPU 0, or None when there is no usable CUDA device (no GPU, no driver)."""
    cudart = _cudart()
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or not count:
        return None
    attr = cudart.cudaDeviceAttr
    return (_call(cudart.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, 0), "device query"),
            _call(cudart.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, 0), "device query"))


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
        self.ptr, self.nbytes = 0, 0
        self.reserve(nbytes)

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.nbytes or not self.ptr:
            self.close()
            self.ptr = int(_call(_cudart().cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes})"))
            self.nbytes = max(nbytes, 1)
        return self.ptr

    def close(self) -> None:
        if self.ptr:
            _call(_cudart().cudaFree(self.ptr), "cudaFree")
            self.ptr, self.nbytes = 0, 0


class PinnedBuffer:
    """Page-locked host memory (fast, asynchronous copies) viewed as numpy arrays."""

    def __init__(self, nbytes: int = 0):
        self.ptr, self.nbytes = 0, 0
        self.reserve(nbytes)

    def reserve(self, nbytes: int) -> int:
        if nbytes > self.nbytes or not self.ptr:
            self.close()
            self.ptr = int(_call(_cudart().cudaMallocHost(max(nbytes, 1)), f"cudaMallocHost({nbytes})"))
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
            _call(_cudart().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr, self.nbytes = 0, 0


class Stream:
    def __init__(self):
        self.handle = _call(_cudart().cudaStreamCreate(), "cudaStreamCreate")

    @property
    def address(self) -> int:
        return int(self.handle)

    def upload(self, device_ptr: int, host: np.ndarray) -> None:
        """Asynchronous host -> device copy; ``host`` must stay alive (pinned) until ``synchronize``."""
        if host.nbytes:
            cudart = _cudart()
            _call(cudart.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.handle), "upload")

    def download(self, host: np.ndarray, device_ptr: int) -> None:
        if host.nbytes:
            cudart = _cudart()
            _call(cudart.cudaMemcpyAsync(host.ctypes.data, device_ptr, host.nbytes,
                                         cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.handle), "download")

    def synchronize(self) -> None:
        _call(_cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            _call(_cudart().cudaStreamDestroy(self.handle), "cudaStreamDestroy")
            self.handle = None
