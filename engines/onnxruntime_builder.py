"""The ``onnxruntime`` backend's build: each graph in the form ONNX Runtime runs fastest on its execution
provider, saved in the engines folder so the runtime loads it ready.

On the CPU the LLM of the fp32, fp16 and int4 recipes is rewritten from the export's weights
(``engines/cpu_llm.py``: FP32 activations, MatMulNBits, GroupQueryAttention over an in-place KV cache, fused
skip + RMSNorm), and FP16 vision and projector graphs become FP32. Those and every other graph are then
optimised by ONNX Runtime and saved at the extended level (fusions, constant folding, INT4 DequantizeLinear +
MatMul -> MatMulNBits kept exact), which ONNX Runtime documents as portable between machines; the
hardware-specific layout rewrites of the full level are cheap and run when the runtime loads the model. The
rewritten LLM is saved as written (its FP16 weights stay FP16 on disk). Weights go to one external-data file
so models over 2 GB save too.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvila_edge.engines.cpu_options import CpuLlmOptions
from nvila_edge.errors import ArtifactError, UnsupportedError
from nvila_edge.runtime.backends.kv_cache import SHARED_HEAD_MAJOR
from nvila_edge.runtime.backends.onnxruntime import ORT_TYPES, providers, session_options
from nvila_edge.runtime.config import LlmConfig
from nvila_edge.runtime.manifest import TensorSpec

REWRITTEN_LLM = ("fp32", "fp16", "int4")  # LLM precisions the CPU rewrite reads (fp8 Q/DQ runs as exported)


@dataclass
class OrtBuild:
    files: list[str]  # model first
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    kv_layout: str | None = None  # the LLM's cache layout, when the build changed it


def optimized_names(graph: str) -> tuple[str, str]:
    """(model file, external-data file) of a saved optimized graph."""
    return f"{graph}.ort.onnx", f"{graph}.ort.onnx.data"


def build_ort_graph(onnx_path: Path, folder: Path, graph: str, precision: str, device: str, llm: LlmConfig,
                    positions: int, options: CpuLlmOptions, threads: int | None = None) -> OrtBuild:
    """Write ``graph``'s model for ``device`` into ``folder``; ``positions`` is the model's longest sequence."""
    folder = Path(folder)
    if device == "cpu" and graph == "llm" and precision in REWRITTEN_LLM:
        from nvila_edge.engines.cpu_llm import write_cpu_llm

        files = write_cpu_llm(_load(onnx_path), folder / optimized_names(graph)[0], llm, options, positions)
        session = _session(folder / files[0], session_options(threads), device)
        return OrtBuild(files, *_session_io(session), SHARED_HEAD_MAJOR)
    if device == "cpu" and graph != "llm":
        import onnx

        from nvila_edge.engines.float32_graph import to_float32

        model = _load(onnx_path)
        if to_float32(model):
            with tempfile.TemporaryDirectory(dir=folder) as scratch:
                fp32 = Path(scratch) / onnx_path.name
                onnx.save_model(model, str(fp32), save_as_external_data=True, all_tensors_to_one_file=True,
                                location=f"{fp32.name}.data", size_threshold=1024)
                return _optimize(fp32, folder, graph, device, threads)
    return _optimize(onnx_path, folder, graph, device, threads)


def _load(onnx_path: Path):
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(onnx_path))
    except (DecodeError, OSError, ValueError) as err:
        raise ArtifactError(f"{onnx_path}: ONNX Runtime cannot load this graph ({_first_line(err)}); "
                            "re-run `nvila-edge export`") from None


def _optimize(onnx_path: Path, folder: Path, graph: str, device: str, threads: int | None) -> OrtBuild:
    import onnxruntime as ort

    model, data = optimized_names(graph)
    options = session_options(threads, exact_int4=True, optimized_path=folder / model)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", data)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    session = _session(onnx_path, options, device)
    return OrtBuild([name for name in (model, data) if (folder / name).is_file()], *_session_io(session))


def _session_io(session) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Names, numpy dtypes and shapes (dimension names for dynamic axes) of a session's inputs and outputs."""

    def spec(arg) -> TensorSpec:
        shape = [d if d is not None else "?" for d in arg.shape]
        return TensorSpec(arg.name, np.dtype(ORT_TYPES[arg.type]).name, shape)

    return [spec(i) for i in session.get_inputs()], [spec(o) for o in session.get_outputs()]


def _session(onnx_path: Path, options, device: str):
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    try:
        return ort.InferenceSession(str(onnx_path), options, providers=providers(device))
    except (state.InvalidProtobuf, state.NoSuchFile) as err:
        raise ArtifactError(f"{onnx_path}: ONNX Runtime cannot load this graph ({_first_line(err)}); "
                            "re-run `nvila-edge export`") from None
    except (state.Fail, state.InvalidGraph, state.InvalidArgument) as err:
        raise UnsupportedError(f"ONNX Runtime {ort.__version__} cannot optimize {onnx_path.name} ({_first_line(err)}); "
                               "this recipe does not run on ONNX Runtime here") from None


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__
