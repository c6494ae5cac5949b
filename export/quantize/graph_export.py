"""One graph of an export at one precision: trace it, and for quantized precisions calibrate and quantize.

fp32 / fp16: the module is cast and traced.  int8 (vision tower): SmoothQuant on the FP32 module, then
traced in FP16 at opset 19 (the first opset whose QuantizeLinear takes FP16), with the weights' Q nodes
folded into INT8 initializers.  fp8: the FP16 graph is
quantized by ONNX PTQ.  int4: the FP32 graph is quantized by ONNX PTQ, then cast to FP16 keeping FP32
exactly where the FP16 PyTorch trace computes in FP32 (RMSNorm statistics, masked softmax, RoPE tables),
so the INT4 graph differs from the FP16 one only by its weights (and AWQ's activation scales).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from nvila_edge.errors import UnsupportedError
from nvila_edge.export.checkpoint import LoadedCheckpoint
from nvila_edge.export.onnx.graphs import GRAPHS
from nvila_edge.export.onnx.trace import save_graph, trace_graph
from nvila_edge.export.quantize import modelopt_ptq
from nvila_edge.export.quantize.calibration import CalibrationSet
from nvila_edge.runtime.config import LlmConfig

PARTS = {"vision": "vision_tower", "projector": "mm_projector", "llm": "llm"}
# which graphs each precision is implemented (and verified) for
SUPPORTED = {"fp32": tuple(PARTS), "fp16": tuple(PARTS), "int8": ("vision",), "int4": ("llm",),
             "fp8": ("vision", "llm")}
QDQ_FP16_OPSET = 19
CALIBRATION_BATCH = 8


def lm_head_nodes(model: onnx.ModelProto) -> list[str]:
    """MatMul nodes writing a graph output: the LLM's lm_head, whose output is ``logits``."""
    outputs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if n.op_type in ("MatMul", "Gemm") and set(n.output) & outputs]


def softmax_mask_adds(model: onnx.ModelProto) -> list[str]:
    """Add nodes feeding a Softmax: the additive attention mask.

    A Q/DQ on it would put the -30000 mask and the scores on one FP8 scale and flatten the attention.
    """
    softmax_inputs = {i for n in model.graph.node if n.op_type == "Softmax" for i in n.input}
    return [n.name for n in model.graph.node if n.op_type == "Add" and set(n.output) & softmax_inputs]


def fp32_islands(model: onnx.ModelProto) -> list[str]:
    """Nodes of an FP16 trace that compute in FP32 (every float output FP32), Casts aside."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    float_types = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    islands = []
    for node in model.graph.node:
        floats = [types[o] for o in node.output if types.get(o) in float_types]
        if node.op_type != "Cast" and floats and all(t == onnx.TensorProto.FLOAT for t in floats):
            islands.append(node.name)
    return islands


def fold_weight_quantizers(model: onnx.ModelProto) -> None:
    """QuantizeLinear(constant weight) -> DequantizeLinear becomes INT8 weight -> DequantizeLinear.

    Computes what the Q node would at run time (divide, round half to even, add the zero point, saturate),
    so outputs are unchanged while the file stores one byte per weight, as TensorRT's engine will.
    """
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    tensors = {**weights, **{n.output[0]: a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute
                             if a.name == "value"}}
    folded = [n for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) == 3 and n.input[0] in weights]
    for node in folded:
        weight, scale, zero = (numpy_helper.to_array(tensors[i]) for i in node.input)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * weight.ndim
        shape[axis] = -1
        per_axis = [] if scale.ndim == 0 else shape
        q = np.rint(weight.astype(np.float32) / scale.astype(np.float32).reshape(per_axis))
        info = np.iinfo(zero.dtype)
        q = np.clip(q + zero.astype(np.float32).reshape(per_axis), info.min, info.max)
        graph.initializer.append(numpy_helper.from_array(q.astype(zero.dtype), node.output[0]))
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def external_files(path: Path) -> list[str]:
    model = onnx.load(str(path), load_external_data=False)
    locations = {entry.value for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                 for entry in t.external_data if entry.key == "location"}
    return sorted(locations)


def vision_feeds(calibration: CalibrationSet, dtype: np.dtype) -> dict[str, np.ndarray]:
    return {"pixel_values": calibration.pixel_values.astype(dtype)}


def llm_feeds(ckpt: LoadedCheckpoint, calibration: CalibrationSet, dtype: np.dtype) -> dict[str, np.ndarray]:
    """Prefill samples with an empty past (P = 0), as the graph sees them at the start of every prompt."""
    cfg = ckpt.config.llm
    embeds = calibration.inputs_embeds.astype(dtype)
    count, length = embeds.shape[:2]
    feeds = {"inputs_embeds": embeds,
             "position_ids": np.broadcast_to(np.arange(length), (count, length)).copy(),
             "attention_mask": np.ones((count, length), dtype=np.int64)}
    empty = np.zeros((count, 0, cfg.num_key_value_heads, cfg.head_dim), dtype=dtype)
    for i in range(cfg.num_hidden_layers):
        feeds[f"past_key.{i}"] = feeds[f"past_value.{i}"] = empty
    return feeds


def pixel_batches(calibration: CalibrationSet) -> list[torch.Tensor]:
    pixels = torch.from_numpy(calibration.pixel_values)
    return list(pixels.split(CALIBRATION_BATCH))


def check_int4_widths(cfg: LlmConfig) -> None:
    """Every quantized MatMul's input width must be whole INT4 blocks (ModelOpt would pad, TensorRT would not)."""
    widths = {"hidden": cfg.hidden_size, "FFN": cfg.intermediate_size}
    odd = [f"{name} {width}" for name, width in widths.items() if width % modelopt_ptq.INT4_BLOCK]
    if odd:
        raise UnsupportedError(f"int4 needs LLM widths that are multiples of {modelopt_ptq.INT4_BLOCK}, not "
                               f"{' and '.join(odd)}; use fp16 or fp8")


def export_graph(ckpt: LoadedCheckpoint, name: str, precision: str, path: Path,
                 calibration: CalibrationSet | None, quantize_lm_head: bool = False) -> list[str]:
    """Write graph ``name`` at ``precision`` to ``path``; returns the external data files written beside it."""
    if name not in SUPPORTED[precision]:
        raise ValueError(f"{precision} is not implemented for the {name} graph")
    if precision not in ("fp32", "fp16") and calibration is None:
        raise ValueError(f"{precision} needs calibration data")
    if precision == "int4":
        return export_int4(ckpt, name, path, calibration, quantize_lm_head)
    part = getattr(ckpt.model, PARTS[name])
    dtype = torch.float32 if precision == "fp32" else torch.float16
    if precision == "int8":
        modelopt_ptq.smoothquant_int8(part, pixel_batches(calibration), dtype)
    part.to(dtype)
    io = GRAPHS[name](ckpt.model, dtype)
    if precision in ("fp32", "fp16"):
        return trace_graph(io, path)
    if precision == "int8":
        external = trace_graph(io, path, opset=QDQ_FP16_OPSET)
        model = onnx.load(str(path))
        fold_weight_quantizers(model)
        return save_graph(model, path, bool(external))
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        source = Path(scratch) / path.name
        external = bool(trace_graph(io, source))
        model = onnx.load(str(source), load_external_data=False)
        exclude = softmax_mask_adds(model) + ([] if quantize_lm_head else lm_head_nodes(model))
        feeds = llm_feeds(ckpt, calibration, np.dtype(np.float16)) if name == "llm" \
            else vision_feeds(calibration, np.dtype(np.float16))
        modelopt_ptq.quantize_onnx(source, path, "fp8", feeds, exclude, external)
    return external_files(path)


def export_int4(ckpt: LoadedCheckpoint, name: str, path: Path, calibration: CalibrationSet,
                quantize_lm_head: bool) -> list[str]:
    check_int4_widths(ckpt.config.llm)
    part = getattr(ckpt.model, PARTS[name])
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        fp32_dir, fp16_dir = Path(scratch) / "fp32", Path(scratch) / "fp16"
        fp32_dir.mkdir()
        fp16_dir.mkdir()
        source, quantized = fp32_dir / path.name, Path(scratch) / f"int4-fp32-{path.name}"
        external = bool(trace_graph(GRAPHS[name](ckpt.model, torch.float32), source))
        model = onnx.load(str(source), load_external_data=False)
        exclude = [] if quantize_lm_head else lm_head_nodes(model)
        modelopt_ptq.quantize_onnx(source, quantized, "int4", llm_feeds(ckpt, calibration, np.dtype(np.float32)),
                                   exclude, external)
        part.to(torch.float16)
        reference = fp16_dir / path.name
        trace_graph(GRAPHS[name](ckpt.model, torch.float16), reference)
        islands = fp32_islands(onnx.load(str(reference), load_external_data=False))
        modelopt_ptq.cast_to_fp16(quantized, path, islands, external)
    return external_files(path)
