"""Stands in for the ``tensorrt`` module: the runtime subset the backend calls (logger, runtime, engine, execution
context, IO queries, optimization profiles, tensor addresses, ``execute_async_v3``, engine inspector, dtypes)
and the builder subset ``nvila-edge build`` calls (see ``emulated_builder``).

Executing a context queues the engine's ONNX graph on the stream; when the stream is synchronised, the inputs
are read from emulated device memory at their tensor addresses, the graph runs on ONNX Runtime, and the outputs
are written to device memory at theirs. What TensorRT checks and reports through its logger (a shape outside
the active profile, a misaligned or unknown tensor address, unset shapes or addresses at enqueue) returns False
here as it does there; memory an execution would read or write outside its allocation raises ``EmulatorFault``.
"""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path

import numpy as np

from trt_emulator import device as _device
from trt_emulator.emulated_builder import (
    Builder,
    IBuilderConfig,
    IHostMemory,
    ILayer,
    INetworkDefinition,
    IOptimizationProfile,
    IProgressMonitor,
    ITensor,
    ITimingCache,
    LayerType,
    MemoryPoolType,
    NetworkDefinitionCreationFlag,
    OnnxParser,
    ProfilingVerbosity,
)
from trt_emulator.enums import NUMPY, DataType, ILogger, Logger, TensorIOMode, nptype
from trt_emulator.plan import Plan, file_sha256, release

__version__ = "10.3.0.30"  # JetPack 6's TensorRT; Emulator(version=...) replaces it

__all__ = ["__version__", "DataType", "TensorIOMode", "LayerInformationFormat", "ILogger", "Logger", "Runtime",
           "ICudaEngine", "IExecutionContext", "EngineInspector", "nptype", "Builder", "IBuilderConfig",
           "IHostMemory", "ILayer", "INetworkDefinition", "IOptimizationProfile", "IProgressMonitor", "ITensor",
           "ITimingCache", "LayerType", "MemoryPoolType", "NetworkDefinitionCreationFlag", "OnnxParser",
           "ProfilingVerbosity"]


class LayerInformationFormat(enum.IntEnum):
    ONELINE = 0
    JSON = 1


class Runtime:
    def __init__(self, logger):
        self._logger = logger

    def deserialize_cuda_engine(self, serialized_engine):
        plan = Plan.parse(serialized_engine)
        gpu = _device.current()
        if plan is None:
            return _error(self._logger, "the plan is not a serialized engine")
        if release(plan.version) != release(__version__):
            return _error(self._logger, f"the engine plan file is not compatible with this version of TensorRT, "
                                        f"expecting library version {__version__} got {plan.version}")
        if tuple(plan.capability) != gpu.capability:
            return _error(self._logger, f"the engine was built for compute capability {plan.capability}, this "
                                        f"device has {list(gpu.capability)}")
        if not Path(plan.onnx).is_file() or file_sha256(Path(plan.onnx)) != plan.onnx_sha256:
            return _error(self._logger, f"the emulated engine's ONNX graph {plan.onnx} is gone or changed")
        return ICudaEngine(plan, self._logger)


def _error(logger, message: str):
    logger.log(ILogger.Severity.ERROR, message)
    return None


class ICudaEngine:
    def __init__(self, plan: Plan, logger):
        self._plan, self._logger, self._session, self._output_shapes = plan, logger, None, {}
        self._tensors = {t.name: t for t in plan.tensors}
        self._itemsize = {t.name: np.dtype(NUMPY[DataType[t.dtype]]).itemsize for t in plan.tensors
                          if DataType[t.dtype] in NUMPY}

    @property
    def num_io_tensors(self) -> int:
        return len(self._plan.tensors)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._plan.profiles)

    def get_tensor_name(self, index):
        return self._plan.tensors[index].name

    def get_tensor_mode(self, name):
        tensor = self._tensors.get(name)
        return TensorIOMode.NONE if tensor is None else TensorIOMode[tensor.mode]

    def get_tensor_dtype(self, name):
        return DataType[self._tensors[name].dtype]

    def get_tensor_shape(self, name):
        return tuple(self._tensors[name].shape)

    def get_tensor_profile_shape(self, name, profile_index):
        return [tuple(shape) for shape in self._plan.profiles[profile_index][name]]

    def create_execution_context(self, strategy=None):
        return IExecutionContext(self)

    def create_engine_inspector(self):
        return EngineInspector(self)

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            # TensorRT runs INT4 weights as W4A16 (dequantized weights, FP16 activations): keep ORT's blocked
            # INT4 MatMul from quantizing the activations.
            options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
            self._session = ort.InferenceSession(self._plan.onnx, options, providers=["CPUExecutionProvider"])
        names = [t.name for t in self._plan.tensors if t.mode == "OUTPUT"]
        return dict(zip(names, self._session.run(names, feeds)))

    def _output_shapes_for(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """TensorRT derives output shapes from input shapes; the emulator runs the graph once per input shape set."""
        key = tuple(sorted(shapes.items()))
        if key not in self._output_shapes:
            feeds = {name: np.zeros(shape, nptype(self.get_tensor_dtype(name))) for name, shape in shapes.items()}
            self._output_shapes[key] = {name: out.shape for name, out in self._run(feeds).items()}
        return self._output_shapes[key]


class IExecutionContext:
    def __init__(self, engine: ICudaEngine):
        self._engine, self._profile, self._shapes, self._addresses = engine, 0, {}, {}

    def set_optimization_profile_async(self, profile_index, stream_handle):
        if not 0 <= profile_index < self._engine.num_optimization_profiles or \
                _device.current().stream(stream_handle) is None:
            return _error(self._engine._logger, f"cannot select optimization profile {profile_index}") or False
        self._profile = profile_index
        self._shapes = {}  # input shapes must be set again after a profile switch
        return True

    def _inputs(self) -> list[str]:
        return [t.name for t in self._engine._plan.tensors if t.mode == "INPUT"]

    def set_input_shape(self, name, shape):
        shape = tuple(int(d) for d in shape)
        if name not in self._inputs():
            return _error(self._engine._logger, f"set_input_shape: '{name}' is not an input tensor") or False
        low, _, high = self._engine._plan.profiles[self._profile][name]
        if len(shape) != len(low) or any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
            return _error(self._engine._logger, f"set_input_shape: {name} {list(shape)} is outside profile "
                                                f"{self._profile} [{low}, {high}]") or False
        self._shapes[name] = shape
        return True

    def set_tensor_address(self, name, memory):
        if name not in self._engine._tensors:
            return _error(self._engine._logger, f"set_tensor_address: no tensor '{name}'") or False
        if int(memory) % _device.ALIGNMENT:
            return _error(self._engine._logger, f"set_tensor_address: {name} address {int(memory):#x} is not "
                                                f"{_device.ALIGNMENT}-byte aligned") or False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_shape(self, name):
        if name in self._shapes:
            return self._shapes[name]
        if self._engine.get_tensor_mode(name) == TensorIOMode.OUTPUT and set(self._shapes) == set(self._inputs()):
            return self._engine._output_shapes_for(self._shapes)[name]
        return self._engine.get_tensor_shape(name)

    def execute_async_v3(self, stream_handle):
        engine, gpu = self._engine, _device.current()
        unset = [n for n in self._inputs() if n not in self._shapes]
        unbound = [t.name for t in engine._plan.tensors if t.name not in self._addresses]
        if unset or unbound or gpu.stream(stream_handle) is None:
            return _error(engine._logger, f"execute_async_v3: input shapes not set: {unset}; addresses not set: "
                                          f"{unbound}") or False
        shapes, addresses = dict(self._shapes), dict(self._addresses)  # what TensorRT captures at enqueue
        for name, shape in shapes.items():
            gpu.region(addresses[name], _nbytes(engine, name, shape), "device", f"input {name}")

        def work():
            feeds = {}
            for name, shape in shapes.items():
                dtype = nptype(engine.get_tensor_dtype(name))
                raw = gpu.region(addresses[name], _nbytes(engine, name, shape), "device", f"input {name}")
                feeds[name] = raw.view(dtype).reshape(shape)
            for name, value in engine._run(feeds).items():
                value = np.ascontiguousarray(value, nptype(engine.get_tensor_dtype(name)))
                gpu.region(addresses[name], value.nbytes, "device", f"output {name}")[:] = value.reshape(-1).view(
                    np.uint8)
            gpu.executions += 1

        gpu.enqueue(stream_handle, work)
        return True


def _nbytes(engine: ICudaEngine, name: str, shape) -> int:
    return math.prod(shape) * engine._itemsize[name]


class EngineInspector:
    def __init__(self, engine: ICudaEngine):
        self._engine = engine

    def get_engine_information(self, format):
        if format != LayerInformationFormat.JSON:
            return "\n".join(layer["Name"] for layer in self._engine._plan.layers)
        return json.dumps({"Layers": self._engine._plan.layers,
                           "Bindings": [t.name for t in self._engine._plan.tensors]})
