"""Stands in for ``pycuda.driver``: the subset the TensorRT backend calls (init, device query, primary context,
device allocations, page-locked arrays, asynchronous copies, streams, errors), over the same emulated device as
``emulated_cudart``.

Strict as the driver API is: a call that needs a context on a thread with none current raises ``LogicError``
(pycuda's "invalid device context"), and freeing an allocation twice raises.
"""

from __future__ import annotations

import threading

import numpy as np

from trt_emulator import device as _device

__all__ = ["Error", "LogicError", "MemoryError", "init", "Device", "Context", "DeviceAllocation",
           "HostAllocation", "mem_alloc", "pagelocked_empty", "memcpy_htod_async", "memcpy_dtoh_async", "Stream"]

_local = threading.local()


class Error(Exception):
    pass


class LogicError(Error):
    pass


class MemoryError(Error):  # noqa: A001 - pycuda's own name
    pass


def init(flags=0):
    _local.initialised = True


def _require_context(what: str) -> _device.Device:
    if getattr(_local, "context", None) is None:
        raise LogicError(f"{what} failed: invalid device context")
    return _device.current()


class Device:
    def __init__(self, number):
        if number != 0:
            raise LogicError("cuDeviceGet failed: invalid device ordinal")

    @staticmethod
    def count():
        return 1

    def compute_capability(self):
        return _device.current().capability

    def retain_primary_context(self):
        return Context()


class Context:
    def push(self):
        _local.context = self

    @staticmethod
    def pop():
        _local.context = None

    @staticmethod
    def get_current():
        return getattr(_local, "context", None)

    def detach(self):
        Context.pop()


class DeviceAllocation:
    def __init__(self, address: int):
        self._address = address

    def __int__(self):
        return self._address

    def free(self):
        if not _require_context("cuMemFree").free(self._address, "device"):
            raise LogicError("cuMemFree failed: invalid argument")


class HostAllocation:
    """Page-locked host memory; the arrays ``pagelocked_empty`` returns have it as their base."""

    def __init__(self, address: int, shape, dtype):
        self._address = address
        self.__array_interface__ = {"data": (address, False), "shape": tuple(shape), "typestr": np.dtype(dtype).str,
                                    "version": 3}

    def free(self):
        if not _device.current().free(self._address, "pinned"):
            raise LogicError("cuMemFreeHost failed: invalid argument")


def mem_alloc(bytes):
    address = _require_context("cuMemAlloc").malloc(int(bytes))
    if address is None:
        raise MemoryError("cuMemAlloc failed: out of memory")
    return DeviceAllocation(address)


def pagelocked_empty(shape, dtype, order="C", mem_flags=0):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    address = _require_context("cuMemHostAlloc").malloc_host(nbytes)
    if address is None:
        raise MemoryError("cuMemHostAlloc failed: out of memory")
    return np.asarray(HostAllocation(address, shape, dtype))


def _host_address(array) -> tuple[int, int]:
    array = np.asarray(array)
    if not array.flags.c_contiguous:
        raise LogicError("the host buffer is not contiguous")
    return array.ctypes.data, array.nbytes


def memcpy_htod_async(dest, src, stream=None):
    gpu = _require_context("cuMemcpyHtoDAsync")
    address, nbytes = _host_address(src)
    gpu.copy_async("HostToDevice", int(dest), address, nbytes, _handle(stream))


def memcpy_dtoh_async(dest, src, stream=None):
    gpu = _require_context("cuMemcpyDtoHAsync")
    address, nbytes = _host_address(dest)
    gpu.copy_async("DeviceToHost", address, int(src), nbytes, _handle(stream))


def _handle(stream) -> int:
    if stream is None:
        raise _device.EmulatorFault("the emulator has no default stream: pass a Stream")
    return stream.handle


class Stream:
    def __init__(self, flags=0):
        self.handle = _require_context("cuStreamCreate").create_stream()

    def synchronize(self):
        if _require_context("cuStreamSynchronize").stream(self.handle) is None:
            raise LogicError("cuStreamSynchronize failed: invalid resource handle")
        _device.current().synchronize(self.handle)

    def __del__(self):
        gpu = _device.CURRENT
        if gpu is not None and gpu.stream(self.handle) is not None:
            gpu.destroy_stream(self.handle)
