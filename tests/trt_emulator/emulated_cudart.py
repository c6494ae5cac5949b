"""Stands in for cuda-python's ``cuda.bindings.runtime``: the calls the TensorRT backend makes, returning
``(cudaError_t, *values)`` tuples as cuda-python does. Copies are queued on their stream (``Device.copy_async``).
"""

from __future__ import annotations

import enum

from trt_emulator import device as _device

__all__ = ["cudaError_t", "cudaDeviceAttr", "cudaMemcpyKind", "cudaStream_t", "cudaGetDeviceCount",
           "cudaDeviceGetAttribute", "cudaMemGetInfo", "cudaMalloc", "cudaFree", "cudaMallocHost", "cudaFreeHost",
           "cudaMemcpyAsync", "cudaStreamCreate", "cudaStreamSynchronize", "cudaStreamDestroy", "cudaGetErrorString"]


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400


class cudaDeviceAttr(enum.IntEnum):
    cudaDevAttrComputeCapabilityMajor = 75
    cudaDevAttrComputeCapabilityMinor = 76


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStream_t:
    def __init__(self, init_value: int = 0):
        self._handle = int(init_value)

    def __int__(self) -> int:
        return self._handle


_OK = cudaError_t.cudaSuccess


def _gpu() -> _device.Device:
    return _device.current()


def cudaGetDeviceCount():
    return _OK, 1


def cudaDeviceGetAttribute(attr, device):
    if device != 0:
        return cudaError_t.cudaErrorInvalidDevice, None
    values = {cudaDeviceAttr.cudaDevAttrComputeCapabilityMajor: _gpu().capability[0],
              cudaDeviceAttr.cudaDevAttrComputeCapabilityMinor: _gpu().capability[1]}
    return (_OK, values[attr]) if attr in values else (cudaError_t.cudaErrorInvalidValue, None)


def cudaMemGetInfo():
    gpu = _gpu()
    return _OK, gpu.total_memory - gpu.device_bytes, gpu.total_memory


def cudaMalloc(size):
    address = _gpu().malloc(int(size))
    return (_OK, address) if address is not None else (cudaError_t.cudaErrorMemoryAllocation, 0)


def cudaFree(devPtr):
    return (_OK if int(devPtr) == 0 or _gpu().free(int(devPtr), "device") else cudaError_t.cudaErrorInvalidValue,)


def cudaMallocHost(size):
    address = _gpu().malloc_host(int(size))
    return (_OK, address) if address is not None else (cudaError_t.cudaErrorMemoryAllocation, 0)


def cudaFreeHost(ptr):
    return (_OK if int(ptr) == 0 or _gpu().free(int(ptr), "pinned") else cudaError_t.cudaErrorInvalidValue,)


def cudaMemcpyAsync(dst, src, count, kind, stream):
    gpu = _gpu()
    if gpu.stream(stream) is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    gpu.copy_async(cudaMemcpyKind(kind).name.removeprefix("cudaMemcpy"), int(dst), int(src), int(count), stream)
    return (_OK,)


def cudaStreamCreate():
    return _OK, cudaStream_t(_gpu().create_stream())


def cudaStreamSynchronize(stream):
    if _gpu().stream(stream) is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    _gpu().synchronize(stream)
    return (_OK,)


def cudaStreamDestroy(stream):
    return (_OK if _gpu().destroy_stream(stream) else cudaError_t.cudaErrorInvalidResourceHandle,)


def cudaGetErrorString(error):
    return _OK, cudaError_t(error).name.encode()
