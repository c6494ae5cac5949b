"""Trace one graph to ONNX and gate it: strict shape inference, the ONNX checker, standard ops only."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from nvila_edge.errors import ArtifactError
from nvila_edge.export.onnx.graphs import GraphIO

OPSET = 17


def trace_graph(io: GraphIO, path: Path, opset: int = OPSET) -> list[str]:
    """Export ``io`` to ``path``; returns the external data file names written beside it (maybe none)."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / path.name
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # tracer warnings about python ints from shapes are expected
            torch.onnx.export(io.module, io.sample, str(raw), input_names=io.inputs, output_names=io.outputs,
                              dynamic_axes=io.dynamic_axes, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
        # torch writes one file per tensor beside the graph when it passes the protobuf limit
        return save_graph(onnx.load(str(raw)), path, external=len(list(Path(tmp).iterdir())) > 1)


def save_graph(model: onnx.ModelProto, path: Path, external: bool) -> list[str]:
    """Write ``model`` to ``path``, its weights in ``<name>.data`` beside it when ``external``; -> the data
    file names. The model must be fully loaded: an existing data file is replaced (onnx would append)."""
    data = path.with_name(f"{path.name}.data")
    data.unlink(missing_ok=True)
    if not external:
        onnx.save_model(model, str(path))
        return []
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name,
                    size_threshold=1024)
    return [data.name]


def check_graph(path: Path) -> None:
    """The gates every exported file passes before anything runs it."""
    try:
        onnx.checker.check_model(str(path), full_check=False)
        inferred = path.with_name(f".{path.name}.inferred")
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred), check_type=True, strict_mode=True)
        inferred.unlink()
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ArtifactError(f"{path}: fails the ONNX gates: {str(err).splitlines()[0]}") from None
    model = onnx.load(str(path), load_external_data=False)
    foreign = {n.domain for n in model.graph.node if n.domain not in ("", "ai.onnx")}
    if foreign:
        raise ArtifactError(f"{path}: uses non-standard op domains {sorted(foreign)}")
