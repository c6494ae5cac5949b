"""The ``onnxruntime`` backend's build: optimise a graph for its execution provider and save the result, so the
runtime loads an already fused model and starts fast.

Saved at the extended level (fusions, constant folding, INT4 DequantizeLinear + MatMul -> MatMulNBits kept
exact), which ONNX Runtime documents as portable between machines; the hardware-specific layout rewrites of
the full level are cheap and run when the runtime loads the model. Weights go to one external-data file
so models over 2 GB save too.
"""

from __future__ import annotations

from pathlib import Path

from nvila_edge.errors import ArtifactError, UnsupportedError
from nvila_edge.runtime.backends.onnxruntime import providers, session_options


def optimized_names(graph: str) -> tuple[str, str]:
    """(model file, external-data file) of a saved optimized graph."""
    return f"{graph}.ort.onnx", f"{graph}.ort.onnx.data"


def build_ort_model(onnx_path: Path, folder: Path, graph: str, device: str, threads: int | None = None) -> list[str]:
    """Write the optimized model into ``folder``; -> the file names written (model first)."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    model, data = optimized_names(graph)
    options = session_options(threads, exact_int4=True, optimized_path=Path(folder) / model)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", data)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    try:
        ort.InferenceSession(str(onnx_path), options, providers=providers(device))
    except (state.InvalidProtobuf, state.NoSuchFile) as err:
        raise ArtifactError(f"{onnx_path}: ONNX Runtime cannot load this graph ({_first_line(err)}); "
                            "re-run `nvila-edge export`") from None
    except (state.Fail, state.InvalidGraph, state.InvalidArgument) as err:
        raise UnsupportedError(f"ONNX Runtime {ort.__version__} cannot optimize {onnx_path.name} ({_first_line(err)}); "
                               "this recipe does not run on ONNX Runtime here") from None
    return [name for name in (model, data) if (Path(folder) / name).is_file()]


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__
