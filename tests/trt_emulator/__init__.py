"""A strict TensorRT + CUDA emulator for tests (never shipped): it stands in for the ``tensorrt`` module and
cuda-python's ``cuda.bindings.runtime`` or ``pycuda.driver`` in ``sys.modules``, so the backend's own import path runs.

    emulator = Emulator(version="10.3.0.30", capability=(8, 7))
    emulator.install(monkeypatch)        # until the test ends; binding="pycuda" for pycuda alone
    ...                                  # production code builds, opens and runs engines
    emulator.check_released()            # every device / pinned allocation and stream was released

``emulated_tensorrt`` runs an engine's ONNX graph on ONNX Runtime over emulated device memory (``device``);
``emulated_cudart`` is cuda-python's CUDA runtime subset, ``emulated_pycuda`` pycuda's driver subset, both on one
emulated device. What each proves and what still needs a device: docs/jetson.md.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types

from trt_emulator import device, emulated_cudart, emulated_pycuda, emulated_tensorrt
from trt_emulator.device import Device, EmulatorFault

__all__ = ["Emulator", "EmulatorFault", "Device", "BINDINGS"]
BINDINGS = ("cuda-python", "pycuda")
CUDA_PYTHON_MODULES = ("cuda.bindings.runtime", "cuda.cudart")


class Emulator:
    def __init__(self, version: str = "10.3.0.30", capability: tuple[int, int] = (8, 7), total_memory: int = 8 << 30):
        self.version = version
        self.device = Device(capability, total_memory)

    def install(self, monkeypatch, binding: str = "cuda-python") -> None:
        """The emulated modules replace TensorRT and the CUDA binding until ``monkeypatch`` is undone."""
        if binding not in BINDINGS:
            raise ValueError(f"unknown CUDA binding {binding!r} (emulated: {', '.join(BINDINGS)})")
        monkeypatch.setattr(device, "CURRENT", self.device)
        monkeypatch.setattr(emulated_tensorrt, "__version__", self.version)
        monkeypatch.setitem(sys.modules, "tensorrt", emulated_tensorrt)
        if binding == "cuda-python":
            self._install_cudart(monkeypatch)
            monkeypatch.setitem(sys.modules, "pycuda", None)  # the binding alone, as on a board with only it
            monkeypatch.setitem(sys.modules, "pycuda.driver", None)
        else:
            for name in CUDA_PYTHON_MODULES:
                monkeypatch.setitem(sys.modules, name, None)
            self._install_pycuda(monkeypatch)

    @staticmethod
    def _install_pycuda(monkeypatch) -> None:
        package = types.ModuleType("pycuda")
        package.__path__, package.driver = [], emulated_pycuda
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", emulated_pycuda)
        monkeypatch.setattr(emulated_pycuda, "_local", threading.local())  # no thread has a current context yet

    @staticmethod
    def _install_cudart(monkeypatch) -> None:
        try:
            package = importlib.import_module("cuda.bindings")
        except ImportError:  # no cuda-python here: provide the packages the import walks through
            cuda, package = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
            cuda.__path__, package.__path__, cuda.bindings = [], [], package
            monkeypatch.setitem(sys.modules, "cuda", cuda)
            monkeypatch.setitem(sys.modules, "cuda.bindings", package)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", emulated_cudart)
        monkeypatch.setattr(package, "runtime", emulated_cudart, raising=False)

    def check_released(self) -> None:
        self.device.check_released()
