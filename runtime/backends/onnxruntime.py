"""ONNX Runtime backend (CPU here; CUDA or TensorRT execution providers when installed).

Decode steps use IO binding: the cache inputs and outputs are bound straight to the preallocated KV cache
(views of it for the export's graphs, the whole buffer updated in place for the CPU engines' LLM), and logits to
a reused buffer, so no cache data passes through Python. Which inputs the LLM graph takes follows from its cache
layout, recorded in the manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from nvila_edge.errors import ArtifactError, InputError
from nvila_edge.runtime.backends.kv_cache import KV_LAYOUTS, SEQ_MAJOR, KVCache
from nvila_edge.runtime.lifecycle import Closeable

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def session_options(threads: int | None = None, exact_int4: bool = True, optimized_path: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if exact_int4:
        # ORT fuses blocked INT4 DequantizeLinear + MatMul into MatMulNBits; level 0 keeps it exact
        # (the default quantizes activations to int8 and drifts from TensorRT's W4A16).
        options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return options


def providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise InputError(f"unknown ONNX Runtime device '{device}' (choose from: {', '.join(PROVIDERS)})")
    wanted = PROVIDERS[device]
    available = ort.get_available_providers()
    if wanted not in available:
        raise InputError(f"ONNX Runtime here has no {wanted} (available: {', '.join(available)}); "
                         "use --device cpu or install an onnxruntime build with that provider")
    return [wanted, "CPUExecutionProvider"] if wanted != PROVIDERS["cpu"] else [wanted]


ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
             "tensor(int32)": np.int32, "tensor(bool)": np.bool_, "tensor(uint8)": np.uint8}


class OrtGraph(Closeable):
    def __init__(self, path: Path, threads: int | None = None, device: str = "cpu", exact_int4: bool = True):
        import onnxruntime as ort

        options, chosen = session_options(threads, exact_int4), providers(device)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as err:  # onnxruntime's load errors (InvalidProtobuf, Fail, ...) share no base class
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            raise ArtifactError(f"{path}: ONNX Runtime cannot load it ({reason})") from err
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_dtypes = {i.name: np.dtype(ORT_TYPES[i.type])
                             for i in self.session.get_inputs() if i.type in ORT_TYPES}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feeds are cast to the graph's input dtypes (an FP16 graph takes FP32 pixels or matrices as well)."""
        typed = {name: np.asarray(value, dtype=self.input_dtypes.get(name)) for name, value in feeds.items()}
        return dict(zip(self.output_names, self.session.run(self.output_names, typed)))

    def close(self) -> None:
        self.session = None


class OrtDecoder(Closeable):
    """The LLM graph with a preallocated KV cache (batch 1).

    ``kv_layout`` SEQ_MAJOR: the export's IO (``position_ids``, ``attention_mask``, ``past_*`` -> ``new_*``);
    SHARED_HEAD_MAJOR: the CPU engines' IO (``seqlens_k``, ``total_sequence_length``, ``past_*`` -> ``present_*``
    on one buffer), whose positions follow from the cache length.
    """

    def __init__(self, path: Path, layers: int, kv_heads: int, head_dim: int, vocab: int, context: int,
                 dtype: np.dtype, threads: int | None = None, device: str = "cpu", exact_int4: bool = True,
                 kv_layout: str = SEQ_MAJOR):
        if kv_layout not in KV_LAYOUTS:
            raise InputError(f"unknown KV cache layout '{kv_layout}' in the manifest; rebuild the engines")
        self.graph = OrtGraph(path, threads, device, exact_int4)
        self.layers, self.context, self.dtype = layers, context, np.dtype(dtype)
        self.cache = KVCache.allocate(layers, context, kv_heads, head_dim, self.dtype, kv_layout)
        self.mask = np.ones((1, context), dtype=np.int64)
        self.positions = np.arange(context, dtype=np.int64)[None]
        self.logits = np.zeros((1, 1, vocab), dtype=self.dtype)
        self.shared_binding = self._bind_shared() if kv_layout != SEQ_MAJOR else None

    def reset(self) -> None:
        self.cache.length = 0

    def step(self, inputs_embeds: np.ndarray) -> np.ndarray:
        s, p = len(inputs_embeds), self.cache.length
        if p + s > self.context:
            raise InputError(f"{p + s} positions do not fit the context of {self.context}")
        if self.shared_binding is None:
            binding = self.graph.session.io_binding()
            self._bind_views(binding, s, p)
        else:  # the cache and logits stay bound; only this step's inputs change
            binding = self.shared_binding
            lengths = np.array([p + s - 1], dtype=np.int32), np.array(p + s, dtype=np.int32)
            binding.bind_cpu_input("seqlens_k", lengths[0])
            binding.bind_cpu_input("total_sequence_length", lengths[1])
        embeds = np.ascontiguousarray(inputs_embeds[None], dtype=self.dtype)  # alive until the run returns
        binding.bind_cpu_input("inputs_embeds", embeds)
        self.graph.session.run_with_iobinding(binding)
        self.cache.length = p + s
        return self.logits[0, 0].astype(np.float32)

    def _bind_views(self, binding, s: int, p: int) -> None:
        binding.bind_cpu_input("position_ids", self.positions[:, p:p + s])
        binding.bind_cpu_input("attention_mask", self.mask[:, : p + s])
        for i in range(self.layers):
            past_k, past_v = self.cache.past(i)
            new_k, new_v = self.cache.slot(i, s)
            binding.bind_cpu_input(f"past_key.{i}", past_k)
            binding.bind_cpu_input(f"past_value.{i}", past_v)
            for name, view in ((f"new_key.{i}", new_k), (f"new_value.{i}", new_v)):
                binding.bind_output(name, "cpu", 0, self.dtype, view.shape, view.ctypes.data)
        self._bind_logits(binding)

    def _bind_shared(self):
        """One binding for every step: each layer's past and present are the same whole cache buffer."""
        binding = self.graph.session.io_binding()
        for i in range(self.layers):
            for kind, buffer in (("key", self.cache.keys[i]), ("value", self.cache.values[i])):
                binding.bind_cpu_input(f"past_{kind}.{i}", buffer)
                binding.bind_output(f"present_{kind}.{i}", "cpu", 0, self.dtype, buffer.shape, buffer.ctypes.data)
        self._bind_logits(binding)
        return binding

    def _bind_logits(self, binding) -> None:
        binding.bind_output("logits", "cpu", 0, self.dtype, self.logits.shape, self.logits.ctypes.data)

    def close(self) -> None:
        self.graph.close()
