"""How many bytes an export takes: its files, and the weights of the linear layers inside a graph."""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import TensorProto

from nvila_edge.runtime.manifest import read_manifest

BITS = {TensorProto.FLOAT: 32, TensorProto.FLOAT16: 16, TensorProto.BFLOAT16: 16, TensorProto.INT8: 8,
        TensorProto.UINT8: 8, TensorProto.FLOAT8E4M3FN: 8, TensorProto.INT4: 4, TensorProto.UINT4: 4,
        TensorProto.FLOAT4E2M1: 4, TensorProto.INT32: 32, TensorProto.INT64: 64}


def tensor_bytes(tensor: TensorProto) -> int:
    """Stored size: 4-bit types pack two values per byte."""
    return math.ceil(math.prod(tensor.dims) * BITS[tensor.data_type] / 8)


def linear_weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the weights (and their quantization scales) of every MatMul/Gemm with a constant weight,
    except lm_head (the MatMul writing a graph output), whether stored plain, behind DequantizeLinear, or
    behind QuantizeLinear -> DequantizeLinear (and a Transpose)."""
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    outputs = {o.name for o in graph.output}

    def stored(name: str) -> int:
        if name in initializers:
            return tensor_bytes(initializers[name])
        node = producers.get(name)
        if node is None or node.op_type not in ("DequantizeLinear", "QuantizeLinear", "Transpose"):
            return 0
        return sum(stored(i) for i in node.input if i)

    return sum(stored(node.input[1]) for node in graph.node
               if node.op_type in ("MatMul", "Gemm") and not set(node.output) & outputs)


def folder_sizes(folder: Path) -> dict[str, int]:
    """Bytes per graph (with its external data) and of the embedding table, from an export folder."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    sizes = {f"{name}.onnx": sum((folder / f).stat().st_size for f in [g.file, *g.external_data])
             for name, g in manifest.graphs.items()}
    sizes[manifest.embeddings["file"]] = (folder / manifest.embeddings["file"]).stat().st_size
    return sizes
