"""The LLM graph in ONNX Runtime's fastest CPU form, written from the export's weights.

Per layer: ``SkipSimplifiedLayerNormalization`` joins each residual add with the next RMSNorm; INT4 weights
become ``MatMulNBits`` (same blocks and scales as the export, FP32 activations); Q/K/V (and INT4 gate/up) go
through one packed MatMul when their inputs agree (no AWQ scale, or equal scales); ``GroupQueryAttention``
applies rotary embeddings from cos/sin tables and reads and writes the KV cache in place, ``[batch, kv_heads,
context, head_dim]``, one buffer for past and present; SiLU is ``QuickGelu`` with alpha 1. The last layer's
MLP and the lm_head run on the last position only. FP16 weights stay FP16 in the file behind a Cast that ONNX Runtime
folds when it loads the model.

Inputs: ``inputs_embeds`` [B, S, H] fp32, ``seqlens_k`` [B] int32 (positions after this step - 1),
``total_sequence_length`` [] int32, ``past_key.i`` / ``past_value.i`` [B, kv, C, hd] fp32. Outputs: ``logits``
[B, 1, V] fp32, ``present_key.i`` / ``present_value.i`` (the same buffers when the caller binds them so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nvila_edge.engines.cpu_options import CpuLlmOptions
from nvila_edge.engines.llm_weights import Linear, LlmWeights, read_llm_weights
from nvila_edge.runtime.config import LlmConfig

LM_HEAD_BLOCK = 32
OPSET = 21
MS = "com.microsoft"


def quantize_blocks(weight: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric blocked quantization along K of a float [K, N] -> (signed values [K, N], scales [K/block, N])."""
    k, n = weight.shape
    blocks = weight.astype(np.float32).reshape(k // block, block, n)
    top = 2 ** (bits - 1) - 1
    scales = np.abs(blocks).max(axis=1) / top
    scales[scales == 0] = 1.0
    values = np.clip(np.rint(blocks / scales[:, None, :]), -top - 1, top)
    return values.reshape(k, n).astype(np.int8), scales.astype(np.float32)


def pack_nbits(values: np.ndarray, scales: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed values [K, N] -> MatMulNBits' B [N, K/block, block*bits/8] (uint8, default zero point
    2^(bits-1)) and scales [N, K/block] fp32."""
    k, n = values.shape
    unsigned = (values.astype(np.int16).T + 2 ** (bits - 1)).astype(np.uint8).reshape(n, k // block, block)
    if bits == 4:
        unsigned = unsigned[..., 0::2] | (unsigned[..., 1::2] << 4)
    return np.ascontiguousarray(unsigned), np.ascontiguousarray(scales.astype(np.float32).T)


class _Writer:
    def __init__(self, options: CpuLlmOptions):
        self.options = options
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def constant(self, name: str, value: np.ndarray) -> str:
        """An initializer; FP16 ones stay FP16 in the file and are cast to FP32 by a node ORT folds at load."""
        if value.dtype == np.float16:
            self.initializers.append(numpy_helper.from_array(value, f"{name}.fp16"))
            return self.node("Cast", [f"{name}.fp16"], name, to=TensorProto.FLOAT)
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str | list[str], domain: str = "", **attrs) -> str:
        outputs = [output] if isinstance(output, str) else output
        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], domain=domain, **attrs))
        return outputs[0]

    def linear(self, x: str, parts: list[Linear], name: str) -> str:
        """x @ W (+ bias) for one linear layer, or several sharing an input packed along N."""
        first = parts[0]
        if first.input_scale is not None:
            x = self.node("Mul", [x, self.constant(f"{name}.awq_scale", first.input_scale.astype(np.float32))],
                          f"{name}.scaled")
        biases = [p.bias if p.bias is not None else np.zeros(p.shape[1], np.float32) for p in parts]
        bias = np.concatenate(biases).astype(np.float32) if any(p.bias is not None for p in parts) else None
        if first.int4 is not None:
            values = np.concatenate([p.int4 for p in parts], axis=1)
            scales = np.concatenate([p.scales for p in parts], axis=1)
            return self.nbits(x, values, scales, 4, first.block_size, bias, name)
        weight = np.concatenate([p.weight for p in parts], axis=1) if len(parts) > 1 else first.weight
        if bias is None:
            return self.node("MatMul", [x, self.constant(f"{name}.weight", weight)], name)
        y = self.node("MatMul", [x, self.constant(f"{name}.weight", weight)], f"{name}.matmul")
        return self.node("Add", [y, self.constant(f"{name}.bias", bias)], name)

    def nbits(self, x: str, values: np.ndarray, scales: np.ndarray, bits: int, block: int, bias, name: str) -> str:
        packed, scales = pack_nbits(values, scales, bits, block)
        inputs = [x, self.constant(f"{name}.qweight", packed), self.constant(f"{name}.scales", scales)]
        if bias is not None:
            inputs += ["", "", self.constant(f"{name}.bias", bias)]
        k, n = values.shape
        return self.node("MatMulNBits", inputs, name, domain=MS, K=k, N=n, bits=bits, block_size=block,
                         accuracy_level=self.options.accuracy_level)

    def lm_head(self, x: str, head: Linear) -> str:
        form = self.options.lm_head
        if form == "float" or head.shape[0] % LM_HEAD_BLOCK:
            return self.linear(x, [head], "logits")
        bits = 8 if form == "int8" else 4
        values, scales = quantize_blocks(head.dense(), bits, LM_HEAD_BLOCK)
        return self.nbits(x, values, scales, bits, LM_HEAD_BLOCK, None, "logits")


def rope_tables(cfg: LlmConfig, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [positions, head_dim / 2] in FP32, computed as the export's graph computes them."""
    hd = cfg.head_dim
    exponents = np.arange(0, hd, 2, dtype=np.float32) / np.float32(hd)
    inv_freq = np.float32(1.0) / (np.float32(cfg.rope_theta) ** exponents)
    freqs = np.arange(positions, dtype=np.float32)[:, None] * inv_freq[None, :]
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


def _rebase(first: Linear, others: list[Linear], norm: np.ndarray) -> np.ndarray:
    """Move ``first``'s AWQ input scale into the RMSNorm weight ``norm`` feeding them all; the others keep only
    their ratio to it. -> the new norm weight."""
    if first.input_scale is None or any(p.input_scale is None for p in others):
        return norm
    base = first.input_scale.astype(np.float32)
    for part in others:  # a shared scale leaves no ratio, so the siblings can be packed into one MatMul
        ratio = part.input_scale.astype(np.float32) / base
        part.input_scale = None if np.all(ratio == 1) else ratio
    first.input_scale = None
    return norm.astype(np.float32) * base


def fold_awq_scales(weights: LlmWeights) -> LlmWeights:
    """Fold AWQ's per-channel activation scales into neighbouring weights where that is exact, so fewer ops run:
    q's and gate's into the RMSNorm weights before them (k, v, up keep their ratios), and down's into the output
    columns of up (SiLU(gate) * up is linear in up per channel), which for INT4 are its block scales."""
    for layer in weights.layers:
        q, k, v, gate, up, down = (layer.linears[n] for n in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj",
                                                               "down_proj"))
        if down.input_scale is not None:
            scale = down.input_scale.astype(np.float32)
            if up.int4 is not None:
                up.scales = up.scales.astype(np.float32) * scale[None, :]
            else:
                up.weight = up.weight.astype(np.float32) * scale[None, :]
            if up.bias is not None:
                up.bias = up.bias.astype(np.float32) * scale
            down.input_scale = None
        layer.input_norm = _rebase(q, [k, v], layer.input_norm)
        layer.post_norm = _rebase(gate, [up], layer.post_norm)
    return weights


def _packable(parts: list[Linear]) -> bool:
    scales = [p.input_scale for p in parts]
    if all(s is None for s in scales):
        return True
    return all(s is not None and np.array_equal(s, scales[0]) for s in scales)


def _attention(w: _Writer, cfg: LlmConfig, h: str, layer, i: int, cos: str, sin: str) -> str:
    q, k, v = (layer.linears[name] for name in ("q_proj", "k_proj", "v_proj"))
    if _packable([q, k, v]):
        qkv = [w.linear(h, [q, k, v], f"layers.{i}.qkv"), "", ""]
    else:
        qkv = [w.linear(h, [part], f"layers.{i}.{name}") for part, name in ((q, "q"), (k, "k"), (v, "v"))]
    inputs = [*qkv, f"past_key.{i}", f"past_value.{i}", "seqlens_k", "total_sequence_length", cos, sin]
    out = w.node("GroupQueryAttention", inputs, [f"layers.{i}.attention", f"present_key.{i}", f"present_value.{i}"],
                 domain=MS, num_heads=cfg.num_attention_heads, kv_num_heads=cfg.num_key_value_heads, do_rotary=1,
                 rotary_interleaved=0, scale=float(cfg.head_dim ** -0.5))
    return w.linear(out, [layer.linears["o_proj"]], f"layers.{i}.o_proj")


def _mlp(w: _Writer, h: str, layer, i: int) -> str:
    gate, up = layer.linears["gate_proj"], layer.linears["up_proj"]
    # INT4: one MatMulNBits call and a Split beat two calls; FP32 MatMuls gained nothing from it (measured)
    if gate.int4 is not None and _packable([gate, up]):
        n = gate.shape[1]
        packed = w.linear(h, [gate, up], f"layers.{i}.gate_up_proj")
        g, u = f"layers.{i}.gate_proj", f"layers.{i}.up_proj"
        w.node("Split", [packed, w.constant(f"layers.{i}.gate_up_split", np.array([n, n], np.int64))], [g, u],
               axis=-1)
    else:
        g = w.linear(h, [gate], f"layers.{i}.gate_proj")
        u = w.linear(h, [up], f"layers.{i}.up_proj")
    act = w.node("QuickGelu", [g], f"layers.{i}.silu", domain=MS, alpha=1.0)  # x * sigmoid(1.0 * x) = SiLU
    product = w.node("Mul", [act, u], f"layers.{i}.gated")
    return w.linear(product, [layer.linears["down_proj"]], f"layers.{i}.down_proj")


def _skip_norm(w: _Writer, x: str, residual: str, gamma: np.ndarray, eps: float, name: str) -> tuple[str, str]:
    """-> (normalized x + residual, x + residual); the statistics outputs stay unnamed, so none are written."""
    outputs = [f"{name}.normed", "", "", f"{name}.sum"]
    w.node("SkipSimplifiedLayerNormalization", [x, residual, w.constant(f"{name}.gamma", gamma)], outputs,
           domain=MS, epsilon=eps)
    return outputs[0], outputs[3]


def llm_graph(weights: LlmWeights, cfg: LlmConfig, options: CpuLlmOptions, positions: int) -> onnx.ModelProto:
    w = _Writer(options)
    eps, last = cfg.rms_norm_eps, w.constant("last_index", np.array([-1], np.int64))
    cos_table, sin_table = rope_tables(cfg, positions)
    cos, sin = w.constant("rope.cos", cos_table), w.constant("rope.sin", sin_table)
    residual = "inputs_embeds"
    gamma = w.constant("layers.0.input_norm", weights.layers[0].input_norm)
    h = w.node("SimplifiedLayerNormalization", [residual, gamma], "layers.0.input_norm.normed", axis=-1, epsilon=eps,
               stash_type=1)
    for i, layer in enumerate(weights.layers):
        attention = _attention(w, cfg, h, layer, i, cos, sin)
        if i == len(weights.layers) - 1:  # only the last position's logits are wanted
            attention = w.node("Gather", [attention, last], f"layers.{i}.attention.last", axis=1)
            residual = w.node("Gather", [residual, last], f"layers.{i}.residual.last", axis=1)
        h, residual = _skip_norm(w, attention, residual, layer.post_norm, eps, f"layers.{i}.post_norm")
        mlp = _mlp(w, h, layer, i)
        following = weights.layers[i + 1].input_norm if i + 1 < len(weights.layers) else weights.final_norm
        h, residual = _skip_norm(w, mlp, residual, following, eps,
                                 f"layers.{i + 1}.input_norm" if i + 1 < len(weights.layers) else "final_norm")
    w.lm_head(h, weights.lm_head)
    return _model(w, cfg, len(weights.layers), weights.lm_head.shape[1])


def _model(w: _Writer, cfg: LlmConfig, layers: int, vocab: int) -> onnx.ModelProto:
    f32, kv, hd = TensorProto.FLOAT, cfg.num_key_value_heads, cfg.head_dim
    inputs = [helper.make_tensor_value_info("inputs_embeds", f32, ["batch", "seq", cfg.hidden_size]),
              helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
              helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, [])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch", 1, vocab])]
    for i in range(layers):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}.{i}", f32, ["batch", kv, "past", hd]))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}.{i}", f32, ["batch", kv, "present", hd]))
    graph = helper.make_graph(w.nodes, "llm_cpu", inputs, outputs, w.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                             producer_name="nvila-edge")


def write_cpu_llm(export: onnx.ModelProto, out: Path, cfg: LlmConfig, options: CpuLlmOptions,
                  positions: int) -> list[str]:
    """Write the CPU graph of the export's loaded ``llm.onnx`` to ``out`` (weights in ``<out>.data``), with rotary
    tables for ``positions`` positions; -> the file names written, model first."""
    model = llm_graph(fold_awq_scales(read_llm_weights(export, cfg.num_hidden_layers)), cfg, options, positions)
    data = f"{out.name}.data"
    onnx.save_model(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True, location=data,
                    size_threshold=1024)
    return [out.name, data]
