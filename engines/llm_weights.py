"""Read the LLM's weights back out of an exported ``llm.onnx``, layer by layer, in the form the export stored them.

The export traces ``export/modeling/qwen2.py``, so every linear layer is a MatMul node named after its module
(``/llm/layers.3/self_attn/q_proj/MatMul``, ``/llm/layers.3/mlp/down_proj/MatMul``; lm_head writes ``logits``).
Its weight input is a float initializer ``[K, N]`` (fp32 / fp16 recipes) or the output of a blocked INT4
``DequantizeLinear`` (int4 recipe: symmetric, no zero point, blocks along K); an AWQ ``Mul`` by a per-channel
activation scale may sit in front of it, and the bias is the ``Add`` that follows. RMSNorm weights are the
initializers of each norm's last ``Mul``. Nothing is converted here: the graph writer decides what each becomes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from nvila_edge.errors import UnsupportedError

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


@dataclass
class Linear:
    """``y = (x * input_scale) @ W + bias`` with ``W`` [K, N] either float or blocked INT4."""

    weight: np.ndarray | None = None  # float [K, N] as stored (fp32 or fp16)
    int4: np.ndarray | None = None  # int8 values in [-8, 7], [K, N]
    scales: np.ndarray | None = None  # INT4 block scales [K / block_size, N]
    block_size: int = 0
    input_scale: np.ndarray | None = None  # AWQ pre-quantization scale [K]
    bias: np.ndarray | None = None  # [N]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.weight if self.weight is not None else self.int4).shape

    def dense(self) -> np.ndarray:
        """The float weight [K, N] as fp32 (dequantized for INT4), with the AWQ scale folded in."""
        if self.weight is not None:
            w = self.weight.astype(np.float32)
        else:
            w = self.int4.astype(np.float32) * np.repeat(self.scales.astype(np.float32), self.block_size, axis=0)
        return w * self.input_scale[:, None] if self.input_scale is not None else w


@dataclass
class Layer:
    input_norm: np.ndarray
    post_norm: np.ndarray
    linears: dict[str, Linear]  # q_proj ... down_proj


@dataclass
class LlmWeights:
    layers: list[Layer]
    final_norm: np.ndarray
    lm_head: Linear

    @property
    def quantized(self) -> bool:
        return self.layers[0].linears["q_proj"].int4 is not None


class _Graph:
    """Producer lookup and constant values of one loaded model."""

    def __init__(self, model: onnx.ModelProto):
        self.nodes = {n.name: n for n in model.graph.node}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.outputs = {o.name for o in model.graph.output}

    def constant(self, name: str) -> np.ndarray | None:
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        if node is not None and node.op_type == "Identity":  # the tracer's stand-in for a repeated initializer
            return self.constant(node.input[0])
        return None

    def node(self, name: str) -> onnx.NodeProto:
        if name not in self.nodes:
            raise UnsupportedError(f"the LLM graph has no node {name}; it is not an nvila-edge Qwen2 export "
                                   "(re-run `nvila-edge export`)")
        return self.nodes[name]

    def linear(self, matmul: onnx.NodeProto) -> Linear:
        found = Linear()
        source = self.producer.get(matmul.input[0])
        if source is not None and source.op_type == "Mul" and len(self.consumers[source.output[0]]) == 1:
            # AWQ's pre-quantization scale: a [1, K] constant in front of this MatMul alone (an RMSNorm's own
            # weight is [K] and its output feeds several projections)
            scale = next((v for v in map(self.constant, source.input) if v is not None), None)
            if scale is not None and scale.ndim == 2:
                found.input_scale = scale.reshape(-1)
        weight = self.constant(matmul.input[1])
        if weight is not None:
            found.weight = weight
        else:
            dq = self.producer.get(matmul.input[1])
            while dq is not None and dq.op_type == "Cast":
                dq = self.producer.get(dq.input[0])
            if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) > 2:
                raise UnsupportedError(f"{matmul.name}: weight is neither a constant nor a symmetric blocked "
                                       "DequantizeLinear; this recipe's LLM cannot be rewritten for the CPU")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in dq.attribute}
            found.int4 = self.constant(dq.input[0]).astype(np.int8)
            found.scales, found.block_size = self.constant(dq.input[1]), int(attrs.get("block_size", 0))
            if attrs.get("axis", 1) != 0 or found.scales.ndim != 2 or found.block_size < 16:
                raise UnsupportedError(f"{matmul.name}: INT4 weights are not blocked along the input axis")
        adds = [n for n in self.consumers.get(matmul.output[0], []) if n.op_type == "Add"]
        bias = next((v for n in adds for v in map(self.constant, n.input) if v is not None), None)
        if bias is not None and bias.ndim == 1:
            found.bias = bias
        return found

    def norm_weight(self, scope: str) -> np.ndarray:
        node = self.node(f"{scope}/Mul_1")
        return next(v for v in map(self.constant, node.input) if v is not None)


def read_llm_weights(model: onnx.ModelProto, layers: int) -> LlmWeights:
    graph = _Graph(model)
    found = []
    for i in range(layers):
        scope = f"/llm/layers.{i}"
        linears = {name: graph.linear(graph.node(f"{scope}/self_attn/{name}/MatMul")) for name in ATTENTION}
        linears.update({name: graph.linear(graph.node(f"{scope}/mlp/{name}/MatMul")) for name in MLP})
        found.append(Layer(graph.norm_weight(f"{scope}/input_layernorm"),
                           graph.norm_weight(f"{scope}/post_attention_layernorm"), linears))
    head = next((n for n in graph.nodes.values() if n.op_type == "MatMul" and "logits" in n.output), None)
    if head is None:
        raise UnsupportedError("no MatMul of the LLM graph writes 'logits'; not an nvila-edge LLM export")
    return LlmWeights(found, graph.norm_weight("/llm/norm"), graph.linear(head))
