"""The two Python bindings of CUDA behind one small interface: cuda-python (the runtime API) first, pycuda (the
driver API) when that is what is installed. ``cuda_device`` builds its buffers and streams on ``binding()``; no
other module knows which binding it has. Every failed call is one ``DeviceError`` line.

Interface: ``name``, ``capability()``, ``malloc`` / ``free``, ``malloc_host`` / ``free_host`` (page-locked),
``create_stream`` / ``stream_address`` / ``destroy_stream``, ``upload`` / ``download`` (asynchronous, on a
stream) and ``synchronize``.
"""

from __future__ import annotations

import importlib

import numpy as np

from nvila_edge.errors import DeviceError, UnsupportedError

# Import names per binding, in the order they are tried (the second cuda-python name: before its 12.6 split).
BINDINGS = {"cuda-python": ("cuda.bindings.runtime", "cuda.cudart"), "pycuda": ("pycuda.driver",)}
INSTALL_HINT = "pip install 'nvila-edge[jetson]' (cuda-python matching the CUDA major version) or pip install pycuda"


def import_binding(name: str):
    """The module of one binding, or None when it does not import."""
    for module in BINDINGS[name]:
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    return None


def binding():
    runtime = import_binding("cuda-python")
    if runtime is not None:
        return CudaPython(runtime)
    driver = import_binding("pycuda")
    if driver is not None:
        return PyCuda.for_module(driver)
    raise UnsupportedError(f"neither cuda-python nor pycuda is installed; {INSTALL_HINT}")


class CudaPython:
    """cuda-python: every call returns ``(error, *values)``."""

    name = "cuda-python"

    def __init__(self, runtime):
        self.rt = runtime

    def _call(self, result, what: str):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            raise DeviceError(f"CUDA {what} failed: {getattr(err, 'name', err)}")
        return values[0] if len(values) == 1 else tuple(values)

    def capability(self) -> tuple[int, int] | None:
        err, count = self.rt.cudaGetDeviceCount()
        if err != self.rt.cudaError_t.cudaSuccess or not count:
            return None
        attr = self.rt.cudaDeviceAttr
        return (self._call(self.rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, 0), "device query"),
                self._call(self.rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, 0), "device query"))

    def malloc(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc(nbytes), f"cudaMalloc({nbytes})"))

    def free(self, ptr: int) -> None:
        self._call(self.rt.cudaFree(ptr), "cudaFree")

    def malloc_host(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMallocHost(nbytes), f"cudaMallocHost({nbytes})"))

    def free_host(self, ptr: int) -> None:
        self._call(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def create_stream(self):
        return self._call(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_address(self, stream) -> int:
        return int(stream)

    def destroy_stream(self, stream) -> None:
        self._call(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def upload(self, device_ptr: int, host: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync(device_ptr, host.ctypes.data, host.nbytes, kind, stream), "upload")

    def download(self, host: np.ndarray, device_ptr: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync(host.ctypes.data, device_ptr, host.nbytes, kind, stream), "download")

    def synchronize(self, stream) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")


class PyCuda:
    """pycuda: calls raise ``pycuda.driver.Error``; allocations are objects, kept here by address.

    The driver API needs a current context on the calling thread. TensorRT runs in the device's primary
    context, so that one is made current on each thread that calls in (the demo steps in a worker thread).
    """

    name = "pycuda"
    _instances: dict[int, PyCuda] = {}

    def __init__(self, driver):
        self.drv, self.context = driver, None
        self.device: dict[int, object] = {}  # address -> DeviceAllocation
        self.host: dict[int, np.ndarray] = {}  # address -> page-locked array

    @classmethod
    def for_module(cls, driver) -> PyCuda:
        """One instance per imported pycuda: it owns the primary context and every allocation's object."""
        if id(driver) not in cls._instances:
            cls._instances[id(driver)] = cls(driver)
        return cls._instances[id(driver)]

    def _call(self, what: str, function, *args):
        try:
            self._enter()
            return function(*args)
        except self.drv.Error as err:
            raise DeviceError(f"CUDA {what} failed: {err}") from None

    def _enter(self) -> None:
        if self.context is None:
            self.drv.init()
            self.context = self.drv.Device(0).retain_primary_context()
        if self.drv.Context.get_current() is None:
            self.context.push()

    def capability(self) -> tuple[int, int] | None:
        try:
            self.drv.init()
            if not self.drv.Device.count():
                return None
            return tuple(self.drv.Device(0).compute_capability())
        except self.drv.Error:
            return None

    def malloc(self, nbytes: int) -> int:
        allocation = self._call(f"mem_alloc({nbytes})", self.drv.mem_alloc, nbytes)
        self.device[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        allocation = self.device.pop(ptr, None)
        if allocation is None:
            raise DeviceError(f"CUDA free failed: {ptr:#x} is not a live device allocation")
        self._call("free", allocation.free)

    def malloc_host(self, nbytes: int) -> int:
        array = self._call(f"pagelocked_empty({nbytes})", self.drv.pagelocked_empty, (nbytes,), np.uint8)
        self.host[array.ctypes.data] = array
        return array.ctypes.data

    def free_host(self, ptr: int) -> None:
        array = self.host.pop(ptr, None)
        if array is None:
            raise DeviceError(f"CUDA free of page-locked memory failed: {ptr:#x} is not a live allocation")
        self._call("free of page-locked memory", array.base.free)

    def create_stream(self):
        return self._call("stream creation", self.drv.Stream)

    def stream_address(self, stream) -> int:
        return int(stream.handle)

    def destroy_stream(self, stream) -> None:
        self._call("stream synchronization", stream.synchronize)  # pycuda destroys it with its last reference

    def upload(self, device_ptr: int, host: np.ndarray, stream) -> None:
        self._call("upload", self.drv.memcpy_htod_async, device_ptr, host, stream)

    def download(self, host: np.ndarray, device_ptr: int, stream) -> None:
        self._call("download", self.drv.memcpy_dtoh_async, host, device_ptr, stream)

    def synchronize(self, stream) -> None:
        self._call("stream synchronization", stream.synchronize)
