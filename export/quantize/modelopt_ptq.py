"""Every call into NVIDIA Model Optimizer (pinned: nvidia-modelopt 0.47.0), with its quirks contained here.

Three entry points, each verified on a CPU without a GPU:
- ``smoothquant_int8``: torch-side SmoothQuant W8A8 (``modelopt.torch.quantization``) on a module that is
  then traced by the project's own exporter into standard QuantizeLinear/DequantizeLinear pairs.
- ``quantize_onnx``: ONNX PTQ (``modelopt.onnx.quantization``), ``int4`` (AWQ-lite, weight-only, symmetric,
  block 128, opset-21 blocked DequantizeLinear; keeps the graph's float type) or ``fp8`` (E4M3: FP8 weights
  behind DequantizeLinear, Q/DQ on activations, max calibration), calibrated with ONNX Runtime on the CPU.
- ``cast_to_fp16``: AutoCast (``modelopt.onnx.autocast``) of a graph to FP16 except named nodes.

Quirks handled:
- The stock SmoothQuant config disables every module named like a vision tower (``*vision_model*``), so the
  config here is spelled out.
- Q/DQ export casts to FP32 unless ``trt_high_precision_dtype`` names the module's dtype, and then returns the
  FP32 tensor into an FP16 graph (mixed types that strict shape inference rejects); it is set to the dtype the
  module is traced in.
- ONNX PTQ calibrates on CUDA/TensorRT unless told ``calibration_eps=["cpu"]``, writes intermediate files
  beside its input (so the input lives in a scratch folder), and logs to stdout, plus an NVML error on
  machines without a driver, and progress bars: its output goes to this module's debug log.
- INT4 AWQ-lite folds its activation scales into a preceding scaling op through a CuPy-only call
  (``.get()``) that fails without CuPy ("'numpy.ndarray' object has no attribute 'get'") whenever a fold
  applies (trained RMSNorm weights): folding is off, the scales stay separate Mul nodes.
- INT4 AWQ's scale search multiplies the calibration activations in numpy: on an FP16 graph that is
  FP16 numpy arithmetic (no BLAS), about ten times slower than on the FP32 graph, so INT4 runs on the FP32
  graph and ``cast_to_fp16`` follows.
- FP8 PTQ leaves Transpose nodes on FP8 tensors (invalid before opset 21), and its Q/DQ on the attention
  matmuls become an ONNX Runtime fusion (MatMulIntegerToFloat) that rejects FP8: FP8 graphs are opset 21
  with attention-matmul Q/DQ disabled (the projections and residual adds stay FP8). Its weight-only DQ
  form (FP8 weights, half the file) leaves the replaced scales behind as unused initializers, which ONNX
  Runtime warns about on every load: they are dropped.
- INT4 packing compiles a C++ extension on first use through cppimport, whose setuptools run reads the
  project configuration of the current folder; from a checkout of this project (a scikit-build-core
  pyproject) setuptools' package discovery exits the process. The extension is compiled from the scratch
  folder instead.
- The INT4 default exclusion pattern (``/lm_head``) does not match this project's node names; callers pass
  exact node names, which are anchored here because ModelOpt matches them as regular expressions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from nvila_edge.export.onnx.trace import save_graph

log = logging.getLogger(__name__)

INT4_BLOCK = 128
FP8_OPSET = 21  # ONNX PTQ moves Transpose/Reshape between Q and DQ; Transpose takes FP8 only from opset 21
TORCH_DTYPE_NAMES = {torch.float32: "Float", torch.float16: "Half"}


@contextlib.contextmanager
def contained_output() -> Iterator[None]:
    """Model Optimizer prints and logs freely; keep it out of the user's terminal (visible with --debug)."""
    captured = io.StringIO()
    modelopt_logger = logging.getLogger("modelopt")
    propagate = modelopt_logger.propagate
    with warnings.catch_warnings(), contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
        warnings.simplefilter("ignore")  # "transformers 5.x is not tested", deprecations in its dependencies
        modelopt_logger.propagate = False
        try:
            yield
        finally:
            modelopt_logger.propagate = propagate
            for line in captured.getvalue().splitlines():
                log.debug("modelopt: %s", line)


def smoothquant_int8(module: nn.Module, batches: Iterable[torch.Tensor], export_dtype: torch.dtype) -> None:
    """SmoothQuant every Linear of ``module`` in place (INT8 per-channel weights, per-tensor activations).

    Calibrates in the module's current (FP32) dtype; the Q/DQ pairs are exported in ``export_dtype``.
    The patch embedding (raw pixels) and LayerNorm inputs stay unquantized.
    """
    with contained_output():
        import modelopt.torch.quantization as mtq

        high = TORCH_DTYPE_NAMES[export_dtype]
        weights = {"num_bits": 8, "axis": 0, "trt_high_precision_dtype": high}  # per output channel
        inputs = {"num_bits": 8, "axis": None, "trt_high_precision_dtype": high}  # per tensor
        config = {
            "quant_cfg": [
                {"quantizer_name": "*", "enable": False},
                {"quantizer_name": "*weight_quantizer", "cfg": weights},
                {"quantizer_name": "*input_quantizer", "cfg": inputs},
                {"quantizer_name": "*patch_embedding*", "enable": False},
                {"quantizer_name": "*layer_norm*", "enable": False},
            ],
            "algorithm": "smoothquant",
        }

        def forward_loop(model: nn.Module) -> None:
            with torch.no_grad():
                for batch in batches:
                    model(batch)

        mtq.quantize(module, config, forward_loop)


def anchored(node_names: Iterable[str]) -> list[str]:
    return [f"^{re.escape(name)}$" for name in node_names]


def quantize_onnx(source: Path, dest: Path, mode: str, feeds: dict[str, np.ndarray], exclude: list[str],
                  external_data: bool) -> None:
    """ModelOpt ONNX PTQ of the graph ``source`` into ``dest`` (``mode`` = ``int4`` or ``fp8``).

    ``source`` must sit in a scratch folder of its own: ModelOpt writes intermediate files beside it.
    ``feeds`` holds one array per graph input with the calibration samples stacked on axis 0; each sample is
    run on its own (batch 1). ``exclude`` lists node names to keep in FP16.
    """
    if mode not in ("int4", "fp8"):
        raise ValueError(f"ONNX PTQ mode {mode!r}")
    shapes = ",".join(f"{name}:{'x'.join(str(d) for d in (1, *array.shape[1:]))}" for name, array in feeds.items())
    # One AWQ scale per activation (q/k/v share one, gate/up another), searched jointly, so a consumer may
    # pack the siblings into one MatMul; ModelOpt's own folding of that scale into the norm needs CuPy.
    options = {"calibration_method": "awq_lite", "block_size": INT4_BLOCK, "use_zero_point": False,
               "awqlite_fuse_nodes": False, "awqlite_run_per_subgraph": True} if mode == "int4" \
        else {"calibration_method": "max", "disable_mha_qdq": True, "opset": FP8_OPSET, "dq_only": True}
    with contained_output():
        compile_pack_extension(source.parent)
        from modelopt.onnx.quantization import quantize

        quantize(str(source), quantize_mode=mode, calibration_data=feeds, calibration_shapes=shapes,
                 calibration_eps=["cpu"], nodes_to_exclude=anchored(exclude), high_precision_dtype="fp16",
                 use_external_data_format=external_data, output_path=str(dest), log_level="CRITICAL", **options)
    drop_unused_initializers(dest, external_data)


def compile_pack_extension(folder: Path) -> None:
    """Import (and on first use compile) ModelOpt's INT4 packing extension with ``folder`` as the working
    directory, so its setuptools build does not read the project configuration of the caller's folder."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        import modelopt.onnx.quantization.extensions  # noqa: F401
    finally:
        os.chdir(cwd)


def drop_unused_initializers(path: Path, external_data: bool) -> None:
    model = onnx.load(str(path), load_external_data=False)
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    unused = [t for t in model.graph.initializer if t.name not in used]
    if not unused:
        return
    data_files = {entry.value for t in model.graph.initializer for entry in t.external_data if entry.key == "location"}
    onnx.load_external_data_for_model(model, str(path.parent))
    for tensor in unused:
        model.graph.initializer.remove(tensor)
    for name in data_files:
        (path.parent / name).unlink()
    save_graph(model, path, external_data)


def cast_to_fp16(source: Path, dest: Path, keep_fp32: list[str], external_data: bool) -> None:
    """``source`` with FP16 graph I/O and FP16 compute, except the nodes named in ``keep_fp32``.

    Initializers are converted too (INT4 DequantizeLinear scales become FP16, as TensorRT's W4A16 takes).
    """
    with contained_output():
        from modelopt.onnx.autocast import convert_to_mixed_precision

        # data_max = inf: no reference run, the node list alone decides what stays FP32
        model = convert_to_mixed_precision(str(source), low_precision_type="fp16", nodes_to_exclude=anchored(keep_fp32),
                                           data_max=np.inf, keep_io_types=False)
    save_graph(model, dest, external_data)
