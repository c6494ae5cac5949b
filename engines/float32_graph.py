"""An FP16 graph turned into an FP32 one for ONNX Runtime's CPU provider, which has few FP16 kernels and
otherwise wraps each op in casts.

Every FP16 initializer and constant becomes FP32 (exact), casts to FP16 become casts to FP32 (no-ops ORT
removes), and FP16 graph inputs and outputs become FP32. Q/DQ nodes keep their integer types; their FP16
scales become FP32 like every other constant, so the quantized recipes' vision towers convert too.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, numpy_helper

F16, F32 = TensorProto.FLOAT16, TensorProto.FLOAT


def _tensor_to_float32(tensor: TensorProto) -> TensorProto:
    converted = numpy_helper.from_array(numpy_helper.to_array(tensor).astype("float32"), tensor.name)
    return converted


def _value_infos(graph: onnx.GraphProto):
    return [*graph.input, *graph.output, *graph.value_info]


def to_float32(model: onnx.ModelProto) -> bool:
    """Convert ``model`` in place; -> whether anything was FP16."""
    graph, changed = model.graph, False
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == F16:
            graph.initializer[i].CopyFrom(_tensor_to_float32(tensor))
            changed = True
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == F16:
                attr.i, changed = F32, True
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == F16:
                attr.t.CopyFrom(_tensor_to_float32(attr.t))
                changed = True
            elif attr.type == onnx.AttributeProto.GRAPH:
                raise ValueError(f"{node.name}: subgraphs are not converted")
    for info in _value_infos(graph):
        if info.type.tensor_type.elem_type == F16:
            info.type.tensor_type.elem_type, changed = F32, True
    return changed
