"""The builder subset of the emulated ``tensorrt`` module: network from an ONNX file (its IO tensors and one
layer per node, Q/DQ layers with the types of their quantized tensors), builder config, optimization profiles,
timing cache, progress monitor, and ``build_serialized_network`` writing an emulated plan.

The emulator does not choose kernels: its engine inspector reports each Q/DQ layer in the type the graph gives
it, so the layer precision check's logic runs but a real silent fallback can only be seen on a device.
"""

from __future__ import annotations

import enum
from pathlib import Path

from trt_emulator import device as _device
from trt_emulator.enums import DataType, ILogger
from trt_emulator.plan import Plan, TensorInfo, file_sha256

ONNX_TYPES = {1: DataType.FLOAT, 2: DataType.UINT8, 3: DataType.INT8, 6: DataType.INT32, 7: DataType.INT64,
              9: DataType.BOOL, 10: DataType.HALF, 16: DataType.BF16, 17: DataType.FP8, 22: DataType.INT4,
              23: DataType.FP4}
INSPECTOR_TYPES = {DataType.INT8: "Row major Int8 format", DataType.FP8: "Row major linear FP8 format",
                   DataType.INT4: "Int4", DataType.HALF: "Row major linear FP16 format",
                   DataType.FLOAT: "Row major linear FP32 format"}


class LayerType(enum.IntEnum):
    CONVOLUTION = 0
    ACTIVATION = 2
    SHUFFLE = 12
    MATRIX_MULTIPLY = 17
    ELEMENTWISE = 9
    UNARY = 6
    QUANTIZE = 33
    DEQUANTIZE = 34


OP_LAYERS = {"QuantizeLinear": LayerType.QUANTIZE, "DequantizeLinear": LayerType.DEQUANTIZE,
             "MatMul": LayerType.MATRIX_MULTIPLY, "Gemm": LayerType.MATRIX_MULTIPLY, "Conv": LayerType.CONVOLUTION,
             "Reshape": LayerType.SHUFFLE, "Transpose": LayerType.SHUFFLE, "Relu": LayerType.ACTIVATION,
             "Sigmoid": LayerType.ACTIVATION, "Tanh": LayerType.ACTIVATION}


class NetworkDefinitionCreationFlag(enum.IntEnum):
    STRONGLY_TYPED = 5


class MemoryPoolType(enum.IntEnum):
    WORKSPACE = 0


class ProfilingVerbosity(enum.IntEnum):
    LAYER_NAMES_ONLY = 0
    NONE = 1
    DETAILED = 2


class ITensor:
    def __init__(self, name: str, dtype: DataType, shape: tuple[int, ...] = ()):
        self.name, self.dtype, self.shape = name, dtype, shape


class ILayer:
    def __init__(self, name: str, type: LayerType, inputs: list[ITensor], outputs: list[ITensor]):
        self.name, self.type, self._inputs, self._outputs = name, type, inputs, outputs

    def get_input(self, index):
        return self._inputs[index]

    def get_output(self, index):
        return self._outputs[index]


class INetworkDefinition:
    def __init__(self, flags: int):
        self._flags, self._inputs, self._outputs, self._layers, self._onnx = flags, [], [], [], None

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_layer(self, index):
        return self._layers[index]


class OnnxParser:
    def __init__(self, network, logger):
        self._network, self._logger, self._errors = network, logger, []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index):
        return self._errors[index]

    def parse_from_file(self, model):
        import onnx

        try:
            graph = onnx.shape_inference.infer_shapes(onnx.load(model, load_external_data=False)).graph
        except Exception as err:  # noqa: BLE001 - any parser failure is reported as TensorRT reports it
            self._errors.append(f"cannot read {model}: {err}")
            return False
        types = {i.name: ONNX_TYPES.get(i.data_type) for i in graph.initializer}
        for info in [*graph.input, *graph.output, *graph.value_info]:
            types[info.name] = ONNX_TYPES.get(info.type.tensor_type.elem_type)
        network = self._network
        network._onnx = str(Path(model).resolve())
        network._inputs = [ITensor(i.name, types[i.name], _dims(i)) for i in graph.input]
        network._outputs = [ITensor(o.name, types[o.name], _dims(o)) for o in graph.output]
        for node in graph.node:
            if node.op_type == "QuantizeLinear" and len(node.input) > 2:
                types.setdefault(node.output[0], types.get(node.input[2]))
            tensors = [[ITensor(n, types.get(n)) for n in names if n] for names in (node.input, node.output)]
            network._layers.append(ILayer(node.name, OP_LAYERS.get(node.op_type, LayerType.UNARY), *tensors))
        return True


def _dims(info) -> tuple[int, ...]:
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in info.type.tensor_type.shape.dim)


class IOptimizationProfile:
    def __init__(self):
        self._shapes: dict[str, list[tuple[int, ...]]] = {}

    def set_shape(self, input, min, opt, max):
        self._shapes[input] = [tuple(min), tuple(opt), tuple(max)]


class ITimingCache:
    def __init__(self, data: bytes = b""):
        self._data = bytes(data)

    def serialize(self):
        return IHostMemory(self._data)


class IHostMemory(bytes):
    """The serialized plan or timing cache (a buffer)."""


class IProgressMonitor:
    def __init__(self):
        pass


class IBuilderConfig:
    def __init__(self):
        self._pools, self._profiles, self._cache = {}, [], ITimingCache()
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self.builder_optimization_level = 3
        self.progress_monitor = None

    @property
    def num_optimization_profiles(self) -> int:
        return len(self._profiles)

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[MemoryPoolType(pool)] = int(pool_size)

    def add_optimization_profile(self, profile):
        for low, opt, high in profile._shapes.values():
            if not (len(low) == len(opt) == len(high) and all(a <= b <= c for a, b, c in zip(low, opt, high))):
                return -1
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache):
        return ITimingCache(serialized_timing_cache)

    def set_timing_cache(self, cache, ignore_mismatch):
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache


class Builder:
    def __init__(self, logger):
        self._logger = logger
        _device.current()  # TensorRT needs a GPU to build for

    def create_network(self, flags=0):
        return INetworkDefinition(flags)

    def create_builder_config(self):
        return IBuilderConfig()

    def create_optimization_profile(self):
        return IOptimizationProfile()

    def build_serialized_network(self, network, config):
        from trt_emulator import emulated_tensorrt

        if not network._flags & (1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED):
            return self._fail("the emulator builds strongly typed networks only")
        for tensor in network._inputs:
            dynamic = -1 in tensor.shape
            for index, profile in enumerate(config._profiles):
                shapes = profile._shapes.get(tensor.name)
                if dynamic and shapes is None:
                    return self._fail(f"optimization profile {index} has no shape for dynamic input {tensor.name}")
                if shapes and any(len(s) != len(tensor.shape) or any(d not in (-1, v) for d, v in zip(tensor.shape, s))
                                  for s in shapes):
                    return self._fail(f"profile {index}: {tensor.name} shapes {shapes} do not fit {tensor.shape}")
        if any(-1 in t.shape for t in network._inputs) and not config._profiles:
            return self._fail("a network with dynamic inputs needs an optimization profile")
        monitor = config.progress_monitor
        if monitor is not None:
            monitor.phase_start("Building engine", None, 1)
            monitor.step_complete("Building engine", 0)
            monitor.phase_finish("Building engine")
        tensors = [TensorInfo(t.name, mode, t.dtype.name, list(t.shape))
                   for mode, group in (("INPUT", network._inputs), ("OUTPUT", network._outputs)) for t in group]
        profiles = [{name: [list(s) for s in shapes] for name, shapes in p._shapes.items()} for p in config._profiles]
        plan = Plan(emulated_tensorrt.__version__, list(_device.current().capability), network._onnx,
                    file_sha256(Path(network._onnx)), tensors, profiles, _inspector_layers(network))
        return IHostMemory(plan.serialize())

    def _fail(self, message: str):
        self._logger.log(ILogger.Severity.ERROR, message)
        return None


def _inspector_layers(network: INetworkDefinition) -> list[dict]:
    """Inspector entries for the Q/DQ layers, each in the type of its quantized tensor."""
    layers = []
    for layer in network._layers:
        if layer.type == LayerType.DEQUANTIZE and layer.get_input(0).dtype in INSPECTOR_TYPES:
            kind = INSPECTOR_TYPES[layer.get_input(0).dtype]
            entry = {"Weights": {"Type": kind}} if layer.get_input(0).dtype == DataType.INT4 else {}
            layers.append({"Name": layer.name, "LayerType": "Dequantize",
                           "Inputs": [{"Name": layer.get_input(0).name, "Format/Datatype": kind}], **entry})
        elif layer.type == LayerType.QUANTIZE and layer.get_output(0).dtype in INSPECTOR_TYPES:
            layers.append({"Name": layer.name, "LayerType": "Quantize",
                           "Outputs": [{"Name": layer.get_output(0).name,
                                        "Format/Datatype": INSPECTOR_TYPES[layer.get_output(0).dtype]}]})
    return layers
