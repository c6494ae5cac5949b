"""The emulated GPU: bounded device allocations addressed by integers, page-locked host allocations in real host
memory, and streams whose work runs only when they are synchronised.

Rules that a real GPU enforces, or that it breaks silently when violated, raise ``EmulatorFault`` here with the
allocation involved; calls that CUDA itself rejects return CUDA's error code instead (see ``emulated_cudart``).
"""

from __future__ import annotations

import bisect
import ctypes
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

ALIGNMENT = 256  # cudaMalloc / cudaMallocHost alignment, and TensorRT's requirement for tensor addresses
DEVICE_BASE = 0x2000_0000_0000  # device addresses live far from any host mapping, as with a discrete GPU
GUARD = 1 << 20  # unmapped bytes between allocations: an overrun lands in no allocation


class EmulatorFault(AssertionError):
    """Device misuse a GPU would fault on or silently corrupt memory with."""


WRAPPERS = ("trt_emulator", "cuda_device.py", "cuda_bindings.py")  # frames that only pass an allocation on


def _origin() -> str:
    """Where an allocation was made: the innermost frame outside the emulator and the backend's CUDA wrappers."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if not any(part in frame.filename for part in WRAPPERS):
            return f"{frame.filename}:{frame.lineno} ({frame.name})"
    return "?"


@dataclass
class Allocation:
    kind: str  # "device" or "pinned"
    address: int
    nbytes: int
    data: np.ndarray  # uint8 view of the bytes (device: emulator memory; pinned: the real host bytes)
    origin: str
    keep: object = None  # the ctypes buffer behind pinned memory

    @property
    def end(self) -> int:
        return self.address + self.nbytes

    def describe(self) -> str:
        return f"{self.kind} allocation of {self.nbytes} B at {self.address:#x} made at {self.origin}"


@dataclass
class Stream:
    handle: int
    pending: list[Callable[[], None]] = field(default_factory=list)
    origin: str = ""


class Device:
    def __init__(self, capability: tuple[int, int] = (8, 7), total_memory: int = 8 << 30, name: str = "Orin"):
        self.capability, self.total_memory, self.name = capability, total_memory, name
        self.live: dict[int, Allocation] = {}
        self.freed: list[Allocation] = []
        self.streams: dict[int, Stream] = {}
        self._next_device = DEVICE_BASE
        self._next_stream = 0x5000
        self.executions = 0  # engine executions completed
        self._starts: list[int] = []  # sorted start addresses of the live allocations

    # -- memory ------------------------------------------------------------------------------------------------
    @property
    def device_bytes(self) -> int:
        return sum(a.nbytes for a in self.live.values() if a.kind == "device")

    @property
    def pinned_bytes(self) -> int:
        return sum(a.nbytes for a in self.live.values() if a.kind == "pinned")

    def malloc(self, nbytes: int) -> int | None:
        """-> address, or None when the device is out of memory."""
        if nbytes <= 0 or self.device_bytes + nbytes > self.total_memory:
            return None
        address = self._next_device
        self._next_device += -(-(nbytes + GUARD) // ALIGNMENT) * ALIGNMENT
        self.live[address] = Allocation("device", address, nbytes, np.zeros(nbytes, np.uint8), _origin())
        bisect.insort(self._starts, address)
        return address

    def malloc_host(self, nbytes: int) -> int | None:
        if nbytes <= 0:
            return None
        raw = (ctypes.c_char * (nbytes + ALIGNMENT))()
        address = -(-ctypes.addressof(raw) // ALIGNMENT) * ALIGNMENT
        data = np.frombuffer((ctypes.c_char * nbytes).from_address(address), np.uint8)
        self.live[address] = Allocation("pinned", address, nbytes, data, _origin(), raw)
        bisect.insort(self._starts, address)
        return address

    def free(self, address: int, kind: str) -> bool:
        """False for an address that is not the start of a live allocation of that kind (CUDA: invalid value)."""
        allocation = self.live.get(address)
        if allocation is None or allocation.kind != kind:
            return False
        self.synchronize_all()  # cudaFree / cudaFreeHost wait for the device to be idle
        del self.live[address]
        self._starts.remove(address)
        if kind == "pinned":
            allocation.data[:] = 0xDB  # freed host memory reads as garbage, not as the last answer
        self.freed.append(allocation)
        return True

    def preceding(self, address: int) -> Allocation | None:
        """The live allocation starting closest at or below ``address``."""
        index = bisect.bisect_right(self._starts, address) - 1
        return self.live[self._starts[index]] if index >= 0 else None

    def find(self, address: int) -> Allocation | None:
        allocation = self.preceding(address)
        return allocation if allocation is not None and address < allocation.end else None

    def region(self, address: int, nbytes: int, kind: str, what: str) -> np.ndarray:
        """The bytes [address, address + nbytes) of one live allocation of ``kind``; anything else faults."""
        allocation = self.find(address)
        if allocation is None or allocation.kind != kind:
            gone = next((a for a in reversed(self.freed) if a.address <= address < a.end), None)
            if gone is not None:
                raise EmulatorFault(f"{what}: use after free of {gone.describe()}")
            before = self.preceding(address)
            if before is not None and before.kind == kind and before.end <= address < before.end + GUARD:
                raise EmulatorFault(f"{what}: {nbytes} B at {address:#x} start {address - before.end} B past the "
                                    f"end of the {before.describe()}")
            raise EmulatorFault(f"{what}: {address:#x} is not in any live {kind} allocation")
        if address + nbytes > allocation.end:
            raise EmulatorFault(f"{what}: {nbytes} B at {address:#x} run {address + nbytes - allocation.end} B past "
                                f"the end of the {allocation.describe()}")
        start = address - allocation.address
        return allocation.data[start:start + nbytes]

    def is_device_address(self, address: int) -> bool:
        return DEVICE_BASE <= address < self._next_device

    def is_pinned(self, address: int) -> bool:
        allocation = self.find(address)
        return allocation is not None and allocation.kind == "pinned"

    # -- streams -----------------------------------------------------------------------------------------------
    def create_stream(self) -> int:
        self._next_stream += 16
        self.streams[self._next_stream] = Stream(self._next_stream, origin=_origin())
        return self._next_stream

    def stream(self, handle: int) -> Stream | None:
        return self.streams.get(int(handle))

    def enqueue(self, handle: int, work: Callable[[], None]) -> None:
        self.streams[int(handle)].pending.append(work)

    def synchronize(self, handle: int) -> None:
        stream = self.streams[int(handle)]
        while stream.pending:
            stream.pending.pop(0)()

    def synchronize_all(self) -> None:
        for handle in list(self.streams):
            self.synchronize(handle)

    def destroy_stream(self, handle: int) -> bool:
        if int(handle) not in self.streams:
            return False
        self.synchronize(handle)  # queued work still completes after cudaStreamDestroy
        del self.streams[int(handle)]
        return True

    def copy_async(self, kind: str, dst: int, src: int, count: int, handle: int) -> None:
        """Queue a copy on a stream. From page-locked memory the host bytes are read when the copy runs (as DMA
        does), from pageable memory when it is enqueued; into pageable memory the copy waits for the stream first
        (CUDA's documented behaviour for pageable transfers)."""
        what = f"{kind} copy of {count} B"
        if kind == "HostToDevice":
            self.region(dst, count, "device", what)
            read = self._host_source(src, count, what)

            def work():
                self.region(dst, count, "device", what)[:] = np.frombuffer(read(), np.uint8)
        elif kind == "DeviceToHost":
            self.region(src, count, "device", what)
            if self.is_device_address(dst):
                raise EmulatorFault(f"{what}: the host destination {dst:#x} is a device address")
            if not self.is_pinned(dst):
                self.synchronize(handle)
                ctypes.memmove(dst, self.region(src, count, "device", what).ctypes.data, count)
                return
            self.region(dst, count, "pinned", what)

            def work():
                self.region(dst, count, "pinned", what)[:] = self.region(src, count, "device", what)
        elif kind == "DeviceToDevice":
            self.region(src, count, "device", what)
            self.region(dst, count, "device", what)

            def work():
                self.region(dst, count, "device", what)[:] = self.region(src, count, "device", what)
        else:
            raise EmulatorFault(f"{what}: this copy kind is not emulated")
        self.enqueue(handle, work)

    def _host_source(self, src: int, count: int, what: str) -> Callable[[], bytes]:
        if self.is_device_address(src):
            raise EmulatorFault(f"{what}: the host source {src:#x} is a device address")
        if self.is_pinned(src):
            self.region(src, count, "pinned", what)
            return lambda: self.region(src, count, "pinned", what).tobytes()
        snapshot = ctypes.string_at(src, count)
        return lambda: snapshot

    # -- end of a test -----------------------------------------------------------------------------------------
    def leaks(self) -> list[str]:
        return ([a.describe() for a in self.live.values()]
                + [f"stream {s.handle:#x} created at {s.origin}" for s in self.streams.values()])

    def check_released(self) -> None:
        leaks = self.leaks()
        if leaks:
            raise EmulatorFault(f"{len(leaks)} device resources were never released:\n  " + "\n  ".join(leaks))


CURRENT: Device | None = None  # the device the emulated modules act on; set by ``Emulator.install``


def current() -> Device:
    if CURRENT is None:
        raise EmulatorFault("the emulated CUDA / TensorRT modules were used outside an installed emulator")
    return CURRENT
